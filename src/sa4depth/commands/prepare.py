"""Check a real dataset's layout, and optionally download what is missing.

``sa4depth prepare {kitti,kitti_odom,cityscapes,nyu,vkitti2} [--root DIR] [--splits-dir DIR]
[--download [--archive-dir DIR] [--keep-archives]] [--export-gt] [--img-ext .png|.jpg]
[--to-jpeg] [--sequences NN ...] [--convert-mat FILE --splits-mat FILE] [--skip-counts] [--quiet]``

Without flags it only checks: every missing part is listed with its official source (archive
name, URL or download page, size, checksum availability) and the exit status is 1 unless the
dataset is complete. ``--download`` fetches what has a direct URL (resumable, checksummed where a
checksum is published), extracts it under the root and checks again; login-only archives
(Cityscapes) are extracted when found in the archive folder. ``--export-gt`` writes
``<splits-dir>/<split>/gt_depths.npz`` once everything else is present. Roots default to
``data.roots.<dataset>`` / ``data.splits_dir`` of the ``--data`` preset (default ``real``).
See docs/REAL_DATA.md.
"""
from __future__ import annotations

import sys

DATASET_NAMES = ("kitti", "kitti_odom", "cityscapes", "nyu", "vkitti2")


def add_arguments(p) -> None:
    p.add_argument("dataset", choices=DATASET_NAMES, help="which dataset to check / prepare")
    p.add_argument("--root", default=None, help="dataset root (default: data.roots.<dataset> of --data)")
    p.add_argument("--splits-dir", default=None, help="split lists folder (default: data.splits_dir of --data)")
    p.add_argument("--data", default="real", help="data preset giving the default roots (default: real)")
    p.add_argument("--download", action="store_true",
                   help="fetch missing parts that have a direct URL, extract them, check again")
    p.add_argument("--archive-dir", default=None, help="where archives are downloaded / looked for "
                   "(default: <root>/_archives)")
    p.add_argument("--keep-archives", action="store_true", help="keep archives after extraction")
    p.add_argument("--export-gt", action="store_true",
                   help="write <splits-dir>/<split>/gt_depths.npz once the rest is complete")
    p.add_argument("--img-ext", default=None, choices=[".png", ".jpg"],
                   help="KITTI raw image extension (default: detected from the first split line)")
    p.add_argument("--to-jpeg", action="store_true",
                   help="kitti / kitti_odom: convert camera PNGs to JPEG (quality 92, 4:2:0) as Monodepth2, "
                   "deleting the PNGs")
    p.add_argument("--sequences", nargs="+", default=None, metavar="NN",
                   help="kitti_odom sequences (default: data.odom_train_sequences + data.odom_test_sequences)")
    p.add_argument("--convert-mat", default=None, metavar="FILE",
                   help="nyu: write the labelled test images from nyu_depth_v2_labeled.mat (needs --splits-mat)")
    p.add_argument("--splits-mat", default=None, metavar="FILE", help="nyu: splits.mat (testNdxs) for --convert-mat")
    p.add_argument("--skip-counts", action="store_true",
                   help="accept split lists / sequences whose size differs from the official one (subsets)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args) -> int:
    from sa4depth.config import load_config
    from sa4depth.data.prepare import ChecksumError, DownloadError, prepare

    root, splits_dir, sequences = args.root, args.splits_dir, args.sequences
    if root is None or splits_dir is None or (sequences is None and args.dataset == "kitti_odom"):
        cfg = load_config(data=args.data, scale=None)
        root = root or str(cfg.data.roots[args.dataset])
        splits_dir = splits_dir or str(cfg.data.splits_dir)
        if sequences is None:
            sequences = [*cfg.data.odom_train_sequences, *cfg.data.odom_test_sequences]
    log = (lambda s: None) if args.quiet else (lambda s: print(s, flush=True))
    try:
        report, pending = prepare(args.dataset, root, splits_dir, download_missing=args.download,
                                  archive_dir=args.archive_dir, keep_archives=args.keep_archives,
                                  export=args.export_gt, check_counts=not args.skip_counts,
                                  img_ext=args.img_ext, sequences=sequences, to_jpeg=args.to_jpeg,
                                  nyu_mat=args.convert_mat, nyu_splits_mat=args.splits_mat,
                                  progress=not args.quiet, log=log)
    except (DownloadError, ChecksumError) as e:
        print(f"sa4depth prepare: download error: {e}", file=sys.stderr)
        return 3
    print(report.format())
    for line in pending:
        print(f"  by hand: {line}")
    if args.skip_counts:
        print("  note: --skip-counts: split / sequence sizes were not compared with the official ones")
    if not report.complete:
        hints = []
        if not args.download:
            hints.append("--download fetches the parts that have a direct URL")
        if any(p.derived_split for p in report.missing) and not args.export_gt:
            hints.append("--export-gt writes the GT .npz files once the rest is complete")
        if hints:
            print("  hint: " + "; ".join(hints))
        return 1
    return 0
