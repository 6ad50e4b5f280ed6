"""Evaluate depth / scale consistency / odometry / video depth and write one JSON per evaluation.

  sa4depth evaluate depth    --run RUN_DIR | --pred FILE [--gt GT_NPZ|auto] [--split S] --out JSON
  sa4depth evaluate scale    --run RUN_DIR --out JSON
  sa4depth evaluate odometry --run RUN_DIR --sequence 09 [--sequence 10] | --pred-poses F --gt-poses F
  sa4depth evaluate video    --run RUN_DIR | --pred FILE [--gt GT_NPZ|auto] --out JSON
  sa4depth evaluate refinement --run RUN_DIR [--iterations 1 2 3 5 10 30] [--damping trained min] --out JSON
                             (an SA4Depth run's LM refinement under other settings, on the monitor's
                             validation pairs, without training)
  ... [--config FILE] [key=value ...]

Configuration: with --run, the run's stored config.yaml, then --config files and key=value
overrides on top (checked like `sa4depth config` checks them: an unknown key is named with the
closest valid one); without --run, the --data / --scale / --row presets as in `sa4depth train`.
Scoring your own predictions needs no dataset: --pred FILE --gt gt_depths.npz.

Every JSON holds the numbers, the resolved config, git commit + dirty flag, a sha256 over the GT /
split files used, seed, device, protocol name and the command line. External predictions
(``--pred``) follow Monodepth2's ``--ext_disp_to_eval``: an .npy/.npz of per-image disparity
(``--pred-kind depth`` for depth), in the order of the split's test file.

Library API (the same jobs from Python, without argparse): ``sa4depth.evaluate.jobs``.
"""
from __future__ import annotations

import argparse

__all__ = ["add_arguments", "run"]


def _common(p: argparse.ArgumentParser, out_required: bool = True) -> None:
    from sa4depth.commands import add_device_arg, add_threads_arg
    from sa4depth.config import add_config_args, add_set_alias

    p.add_argument("--out", required=out_required, metavar="JSON", help="result JSON (written atomically)")
    add_device_arg(p)
    add_threads_arg(p)
    add_config_args(p, run_note="; ignored with --run (the run's config.yaml is used)")
    add_set_alias(p)


_PRED_KIND_HELP = "what --pred holds: disp (disparity, Monodepth2's default) or depth (default: disp)"
_PRED_KEY_HELP = ("array name inside an .npz prediction file (default: its only array, else the first of "
                  "data, disp, depth, pred)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="kind", metavar="KIND", required=True)

    p = sub.add_parser("depth", help="single-image depth metrics (Tables II-IV)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", help="run directory (config.yaml + model.pt) or a model.pt file")
    src.add_argument("--pred", help="external predictions .npy/.npz (Monodepth2 --ext_disp_to_eval)")
    p.add_argument("--pred-kind", default="disp", choices=["disp", "depth"], help=_PRED_KIND_HELP)
    p.add_argument("--pred-key", default=None, help=_PRED_KEY_HELP)
    p.add_argument("--gt", default="auto",
                   help="gt_depths.npz, or 'auto': <splits_dir>/<split>/gt_depths.npz, exported from the split's "
                        "data on first use (with --pred and a --gt file no dataset is needed)")
    p.add_argument("--split", default=None, choices=["eigen", "eigen_benchmark", "cityscapes", "nyu"],
                   help="evaluation split (default: data.eval_split of the config)")
    p.add_argument("--scale-aware", action="store_true", help="no median scaling (scale-aware models)")
    p.add_argument("--save-pred", default=None, help="with --run: also save the predicted disparities (.npy)")
    _common(p)

    p = sub.add_parser("scale", help="Table I: variance of depth and pose scale factors on the val split")
    p.add_argument("--run", required=True, help="run directory or model.pt")
    p.add_argument("--max-batches", type=int, default=0, help=">0: only this many validation batches")
    _common(p)

    p = sub.add_parser("refinement", help="an SA4Depth run's refinement with other LM iteration counts and "
                                          "damping, on the scale monitor's validation pairs (no training)")
    p.add_argument("--run", required=True, help="run directory or model.pt of an SA4Depth run")
    p.add_argument("--iterations", type=int, nargs="+", default=[1, 2, 3, 5, 10, 30], metavar="N",
                   help="LM iteration counts to evaluate (default: 1 2 3 5 10 30)")
    p.add_argument("--damping", nargs="+", default=["trained", "min"], choices=["trained", "min"],
                   help="lambda: the run's learned value and/or refine.damping_min (default: both)")
    _common(p)

    p = sub.add_parser("odometry", help="Table V / Fig. 6: ATE, RPE, KITTI t_err / r_err")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", help="run directory or model.pt (pose net on KITTI odometry sequences)")
    src.add_argument("--pred-poses", help="estimated trajectory, KITTI format (camera-to-world)")
    p.add_argument("--gt-poses", help="GT trajectory, KITTI format (with --pred-poses)")
    p.add_argument("--relative", action="store_true",
                   help="--pred-poses holds N-1 relative poses T_{i+1<-i} (chained here) instead of N absolute ones")
    p.add_argument("--sequence", action="append", default=[], metavar="NN",
                   help="odometry sequence with --run, repeatable (default: data.odom_test_sequences); with "
                        "--pred-poses: the name in the result (default: the file's stem)")
    p.add_argument("--plot", default=None, help="trajectory PNG (default: next to --out)")
    p.add_argument("--traj-dir", default=None, help="where estimated KITTI pose files go (default: next to --out)")
    _common(p)

    p = sub.add_parser("video", help="Table VIII: per-sequence scale+shift aligned video depth")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", help="run directory or model.pt")
    src.add_argument("--pred", help="external predictions .npy/.npz, in the split file's order")
    p.add_argument("--pred-kind", default="disp", choices=["disp", "depth"], help=_PRED_KIND_HELP)
    p.add_argument("--pred-key", default=None, help=_PRED_KEY_HELP)
    p.add_argument("--gt", default="auto", help="gt_depths.npz or 'auto' (<splits_dir>/video/gt_depths.npz)")
    p.add_argument("--split-file", default=None,
                   help="split file grouping images into sequences (default: <splits_dir>/video/test_files.txt)")
    p.add_argument("--align", default=None, choices=["disparity", "depth"], help="default: eval.video_align")
    _common(p)


# ----------------------------------------------------------------------------- args -> library
def _device(args) -> str:
    """The torch device of ``--device``, with ``--threads`` applied, where a network runs (``--run``);
    scoring files (``--pred``, ``--pred-poses``) resolves none: ``cpu``."""
    if not getattr(args, "run", None):
        return "cpu"
    from sa4depth.device import resolve_device, set_threads

    device = str(resolve_device(args.device))
    set_threads(args.threads)
    return device


def _config(args):
    """(cfg, model_path or None) of :func:`sa4depth.evaluate.jobs.resolve_config` for the parsed options."""
    from sa4depth.config import overrides_of
    from sa4depth.evaluate.jobs import resolve_config

    return resolve_config(getattr(args, "run", None), data=args.data, scale=args.scale, row=args.row,
                          config_files=args.config, overrides=overrides_of(args))


def run(args) -> int:
    from sa4depth.evaluate import jobs

    cfg, mp = _config(args)
    device = _device(args)
    if args.kind == "depth":
        res = jobs.evaluate_depth(cfg, mp, pred=args.pred, pred_kind=args.pred_kind, pred_key=args.pred_key,
                                  gt=args.gt, split=args.split, scale_aware=args.scale_aware,
                                  save_pred=args.save_pred, device=device)
    elif args.kind == "scale":
        res = jobs.evaluate_scale(cfg, mp, max_batches=args.max_batches, device=device)
    elif args.kind == "refinement":
        res = jobs.evaluate_refinement(cfg, mp, iterations=args.iterations, damping=args.damping, device=device)
    elif args.kind == "odometry":
        res = jobs.evaluate_odometry(cfg, mp, out=args.out, pred_poses=args.pred_poses, gt_poses=args.gt_poses,
                                     relative=args.relative, sequences=args.sequence, plot=args.plot,
                                     traj_dir=args.traj_dir, device=device)
    else:
        res = jobs.evaluate_video(cfg, mp, pred=args.pred, pred_kind=args.pred_kind, pred_key=args.pred_key,
                                  gt=args.gt, split_file=args.split_file, align=args.align, device=device)
    print(f"-> wrote {jobs.write_result(args.out, res)}")
    return 0
