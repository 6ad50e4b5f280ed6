"""Data-loader throughput: samples/s of the training loader for several worker counts, with and
without the pre-resized image cache (``data.cache_dir``).

    sa4depth bench data --workers 0 1 2 --batches 20 [--out JSON] [config args]

The first pass with the cache fills it (reported as ``cache-fill``), the second reads it
(``cache-warm``). Timings include collation; the first batch (worker start-up) is excluded.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from sa4depth.commands import add_option
from sa4depth.config import add_config_args, config_from_args
from sa4depth.files import write_json_atomic


def add_arguments(p) -> None:
    p.add_argument("--workers", type=int, nargs="+", default=[0, 2], metavar="N",
                   help="num_workers values to try (default: 0 2); key=value overrides go before it or after --")
    p.add_argument("--batches", type=int, default=20, help="batches timed per setting (after one warm-up)")
    p.add_argument("--split", default="train", choices=["train", "val", "test"],
                   help="split whose loader is timed (default: train)")
    p.add_argument("--no-cache", action="store_true", help="skip the cached runs")
    add_option(p, "--out", deprecated=("--json",), default=None, metavar="JSON",
               help="also write the results as JSON (atomic)")
    add_config_args(p)


def time_loader(loader, batches: int) -> tuple[float, int]:
    """(samples/s, batches timed) over up to ``batches`` batches after a warm-up batch."""
    it = iter(loader)
    try:
        next(it)
    except StopIteration:
        return 0.0, 0
    n = done = 0
    t0 = time.perf_counter()
    for _ in range(batches):
        try:
            b = next(it)
        except StopIteration:
            break
        n += int(b["index"].shape[0])
        done += 1
    dt = time.perf_counter() - t0
    return (n / dt if dt > 0 and n else 0.0), done


def run(args) -> int:
    import torch

    from sa4depth.config import Config
    from sa4depth.data import build_loader

    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    cfg = config_from_args(args)
    rows = []
    tmp_cache = Path(tempfile.mkdtemp(prefix="sa4depth_bench_cache_"))
    try:
        modes = [("no-cache", None)] + ([] if args.no_cache else [("cache-fill", tmp_cache), ("cache-warm", tmp_cache)])
        for nw in args.workers:
            for mode, cache in modes:
                if mode == "cache-fill" and cache is not None:
                    shutil.rmtree(cache, ignore_errors=True)
                d = cfg.to_dict()
                d["data"] = dict(d["data"], cache_dir=str(cache) if cache else None)
                loader = build_loader(Config(d), args.split, num_workers=nw, shuffle=False)
                sps, nb = time_loader(loader, args.batches)
                rows.append({"num_workers": nw, "mode": mode, "samples_per_s": round(sps, 2), "batches": nb,
                             "batch_size": loader.batch_size})
                print(f"workers={nw:<2d} {mode:<10s} {sps:8.1f} samples/s  ({nb} batches of {loader.batch_size})",
                      flush=True)
    finally:
        shutil.rmtree(tmp_cache, ignore_errors=True)
    if args.out:
        write_json_atomic(args.out, {"rows": rows, "dataset": cfg.data.dataset, "size": [cfg.data.height, cfg.data.width],
                                     "config_layers": cfg.meta.layers, "cpu_count": os.cpu_count()},
                          trailing_newline=False)
    return 0
