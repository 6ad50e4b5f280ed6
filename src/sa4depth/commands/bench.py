"""Benchmarks (speed and memory targets live here, not in tests).

    sa4depth bench synth   rendering speed of the synthetic benchmark
    sa4depth bench data    data-loader samples/s with N workers, with/without a resized cache
    sa4depth bench train   training steps/s, images/s, peak memory; SA4Depth overhead
    sa4depth bench infer   depth-net inference FPS (Table VI FPS column)
"""
from __future__ import annotations

import argparse
import importlib

TOPICS = {
    "synth": "rendering speed of the synthetic benchmark (frames/s per scale)",
    "data": "data-loader throughput (samples/s) with N workers and an optional cache",
    "train": "training speed and memory for Md2-18/Md2-50, and SA4Depth's overhead",
    "infer": "depth-net inference frames per second",
}


def add_arguments(p) -> None:
    sub = p.add_subparsers(dest="topic", metavar="TOPIC")
    for topic, help_text in TOPICS.items():
        try:
            mod = importlib.import_module(f"sa4depth.benchmarks.{topic}")
        except ModuleNotFoundError as e:
            if e.name != f"sa4depth.benchmarks.{topic}":
                raise
            continue
        sp = sub.add_parser(topic, help=help_text, description=(mod.__doc__ or help_text).strip(),
                            formatter_class=argparse.RawDescriptionHelpFormatter)
        mod.add_arguments(sp)
        sp.set_defaults(_bench=mod.run)
    p.set_defaults(_bench_parser=p)


def run(args) -> int:
    if not getattr(args, "_bench", None):
        args._bench_parser.print_help()
        return 2
    return int(args._bench(args) or 0)
