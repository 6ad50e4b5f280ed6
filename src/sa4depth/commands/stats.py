"""Print dataset counts per split (training triplets, test images, odometry frames).

Compare with the paper's setups: KITTI Eigen-Zhou 39,810 train / 4,424 val triplets, Eigen test
697 images (652 with improved GT), Cityscapes 69,731 train / 1,525 test, NYUv2 654 test images,
KITTI odometry sequences 00-08 train and 09 / 10 test.

Every dataset whose root exists is listed unless ``--dataset`` picks one. A split whose files
are missing or broken is reported with the error instead of a count; the broken splits are
listed again on stderr. Exit status 1 when no split could be counted at all (every split broken,
or no dataset root exists), else 0.
"""
from __future__ import annotations

import sys

from sa4depth.commands import add_option
from sa4depth.config import add_config_args, config_from_args
from sa4depth.files import write_json_atomic

#: Counts of the real datasets as used by Monodepth2 / ManyDepth / the paper (for comparison).
PAPER_COUNTS = {
    ("kitti", "train"): 39810, ("kitti", "val"): 4424, ("kitti", "test:eigen"): 697,
    ("kitti", "test:eigen_benchmark"): 652, ("cityscapes", "train"): 69731, ("cityscapes", "test"): 1525,
    ("nyu", "test"): 654,
}

DATASETS = ("kitti", "kitti_odom", "cityscapes", "nyu")


def add_arguments(parser) -> None:
    parser.add_argument("--dataset", choices=[*DATASETS, "vkitti2", "all"], default="all",
                        help="dataset to count (default: every dataset whose root exists)")
    add_option(parser, "--out", deprecated=("--json",), default=None, metavar="JSON",
               help="also write the counts as JSON (atomic)")
    add_config_args(parser)


def collect(cfg, datasets) -> list[dict]:
    """Rows {dataset, split, count, paper, note} for the requested datasets."""
    from sa4depth.config import Config
    from sa4depth.data import build_dataset
    from sa4depth.data.factory import dataset_root
    from sa4depth.data.io import read_seconds_file
    from sa4depth.data.kitti import odometry_sequences

    rows: list[dict] = []

    def cfg_for(name: str):
        d = cfg.to_dict()
        d["data"] = dict(d["data"], dataset=name, cache_dir=None)
        return Config(d)

    for name in datasets:
        root = dataset_root(cfg, name)
        if not root.is_dir():
            rows.append(dict(dataset=name, split="-", count=None, paper=None, note=f"root {root} missing"))
            continue
        c = cfg_for(name)
        if name == "kitti_odom":
            for group, seqs in (("train", c.data.odom_train_sequences), ("test", c.data.odom_test_sequences)):
                for seq in odometry_sequences(root, seqs):
                    try:
                        n = len(read_seconds_file(root / "sequences" / seq / "times.txt"))
                        rows.append(dict(dataset=name, split=f"{group}:seq{seq}", count=n, paper=None, note="frames"))
                    except (OSError, ValueError) as e:
                        rows.append(dict(dataset=name, split=f"{group}:seq{seq}", count=None, paper=None, note=str(e)))
        splits: list[tuple[str, str, str | None]] = [("train", "train", None), ("val", "val", None)]
        if name in ("kitti", "vkitti2"):
            splits += [(f"test:{s}", "test", s) for s in ("eigen", "eigen_benchmark", "video")]
        elif name == "kitti_odom":
            splits = [(f"{s}", s, None) for s in ("train", "val", "test")]
        else:
            splits.append(("test", "test", None))
        for label, split, ev in splits:
            try:
                n = len(build_dataset(c, split, load_depth=False, eval_split=ev))
                note = "triplets" if split != "test" else "images"
                if name == "kitti_odom":
                    note = "samples"
                rows.append(dict(dataset=name, split=label, count=n, paper=PAPER_COUNTS.get((name, label)), note=note))
            except (OSError, ValueError) as e:
                rows.append(dict(dataset=name, split=label, count=None, paper=PAPER_COUNTS.get((name, label)),
                                 note=str(e)))
    return rows


def run(args) -> int:
    cfg = config_from_args(args)
    datasets = DATASETS if args.dataset == "all" else (args.dataset,)
    rows = collect(cfg, datasets)
    print(f"{'dataset':<11} {'split':<22} {'count':>8} {'paper':>8}  note")
    for r in rows:
        cnt = "-" if r["count"] is None else str(r["count"])
        paper = "" if r["paper"] is None else str(r["paper"])
        print(f"{r['dataset']:<11} {r['split']:<22} {cnt:>8} {paper:>8}  {r['note']}")
    if args.out:
        write_json_atomic(args.out, {"rows": rows, "config_layers": cfg.meta.layers}, trailing_newline=False)
    counted = [r for r in rows if r["count"] is not None]
    # with every dataset requested, a missing root only means that dataset is not installed
    broken = [r for r in rows if r["count"] is None and (r["split"] != "-" or not counted)]
    if broken:
        head = ("no split could be counted" if not counted else
                f"{len(broken)} split(s) could not be counted ({len(counted)} counted)")
        print(f"sa4depth stats: {head}:", file=sys.stderr)
        for r in broken:
            print(f"  {r['dataset']} {r['split']}: {r['note']}", file=sys.stderr)
    return 0 if counted else 1
