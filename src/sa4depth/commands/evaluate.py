"""Evaluate depth / scale consistency / odometry / video depth and write one JSON per evaluation.

  sa4depth evaluate depth    --run RUN_DIR | --pred FILE [--gt GT_NPZ|auto] [--split S] --out JSON
  sa4depth evaluate scale    --run RUN_DIR --out JSON
  sa4depth evaluate odometry --run RUN_DIR --sequence 09 [--sequence 10] | --pred-poses F --gt-poses F
  sa4depth evaluate video    --run RUN_DIR | --pred FILE [--gt GT_NPZ|auto] --out JSON
  ... [--config FILE] [key=value ...]

Configuration: with --run, the run's stored config.yaml, then --config files and key=value
overrides on top (checked like `sa4depth config` checks them: an unknown key is named with the
closest valid one); without --run, the --data / --scale / --row presets as in `sa4depth train`.
Scoring your own predictions needs no dataset: --pred FILE --gt gt_depths.npz.

Every JSON holds the numbers, the resolved config, git commit + dirty flag, a sha256 over the GT /
split files used, seed, device, protocol name and the command line. External predictions
(``--pred``) follow Monodepth2's ``--ext_disp_to_eval``: an .npy/.npz of per-image disparity
(``--pred-kind depth`` for depth), in the order of the split's test file.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

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


# ----------------------------------------------------------------------------- helpers
def _device(args) -> str:
    """The torch device of ``--device``, with ``--threads`` applied (only where a model runs)."""
    from sa4depth.device import resolve_device, set_threads

    device = str(resolve_device(args.device))
    set_threads(args.threads)
    return device


def _config(args):
    """(cfg, model_path or None): the run's stored config, else the presets; then ``--config`` files and
    ``key=value`` overrides, validated against the schema either way."""
    from sa4depth.config import apply_overrides, config_from_args, overrides_of

    if getattr(args, "run", None):
        from sa4depth.config import load_resolved

        from sa4depth.models.io import run_model_path

        mp = run_model_path(args.run)
        cfg_file = mp.parent / "config.yaml"
        if cfg_file.is_file():
            cfg = load_resolved(cfg_file)
        else:
            from sa4depth.models import read_model_file

            cfg = read_model_file(mp)["config"]
        return apply_overrides(cfg, files=args.config, overrides=overrides_of(args)), mp
    return config_from_args(args), None


_SPLIT_DATASET = {"eigen": "kitti", "eigen_benchmark": "kitti", "video": "kitti", "cityscapes": "cityscapes",
                  "nyu": "nyu"}


def _split_file(cfg, split: str) -> Path:
    """The split's ``test_files.txt`` as the data loaders find it (``data.split_file``)."""
    from sa4depth.data import dataset_root, split_file

    return split_file(cfg, split, "test_files.txt", dataset_root(cfg, _SPLIT_DATASET[split]))


def _gt_file(cfg, split: str, gt_arg: str, pred: bool = False) -> Path:
    """Explicit --gt, else ``gt_depths.npz`` beside the split's test_files.txt (Monodepth2's
    ``splits/<split>/gt_depths.npz``), exported with ``data.export_gt_depths`` on first use.
    ``pred``: scoring --pred predictions, where a --gt file makes the dataset unnecessary."""
    if gt_arg != "auto":
        p = Path(gt_arg)
        if not p.is_file():
            raise FileNotFoundError(f"{p}: --gt file not found")
        return p
    try:
        sf = _split_file(cfg, split)
    except FileNotFoundError as e:
        if not pred:
            raise
        raise FileNotFoundError(f"{e}; --gt auto reads the GT depths next to it (exporting them from the "
                                f"dataset on first use). To score --pred without the dataset, pass "
                                f"--gt gt_depths.npz (Monodepth2's splits/{split}/gt_depths.npz)") from None
    p = sf.parent / "gt_depths.npz"
    if p.is_file():
        stale = _gt_cache_problem(p, sf)
        if stale is None:
            return p
        if stale.startswith("foreign"):
            print(f"   note: {p} was not exported by sa4depth ({stale[8:]}); it is used as is and cannot be "
                  f"checked against {sf}")
            return p
        print(f"-> {p}: {stale}; exporting it again")
    from sa4depth.data import export_gt_depths

    print(f"-> exporting GT depths of split {split!r} to {p}")
    export_gt_depths(cfg, split, p)  # atomic: the old file stays until the new one is complete
    if not p.is_file():
        raise FileNotFoundError(f"{p}: GT export for split {split!r} produced no file")
    return p


def _gt_cache_problem(gt: Path, split_file: Path) -> str | None:
    """Why a cached ``gt_depths.npz`` cannot be reused for ``split_file`` (None: it can).

    Our exports record the sha256 of the split file they were made from; a file with ``keys`` but
    no record is an older export of ours; one with neither is someone else's (Monodepth2's own)."""
    from sa4depth.files import sha256_file
    from sa4depth.safeio import load_npz, npz_names

    names = npz_names(gt)
    if "split_sha256" not in names:
        return "exported before split records were kept" if "keys" in names else "foreign: no split record"
    recorded = str(load_npz(gt, ["split_sha256"])["split_sha256"])
    if recorded != sha256_file(split_file):
        return f"exported from another version of {split_file}"
    return None


def _test_images(cfg, split: str):
    """All test images of ``split`` as one (N, 3, H, W) float tensor at the network size, plus keys."""
    import torch
    import torch.nn.functional as F

    from sa4depth.data import load_test_images

    ims, keys = [], []
    for item in load_test_images(cfg, split):
        if isinstance(item, dict):
            img, key = item.get("color", item.get("image")), item.get("key", str(len(keys)))
        else:
            img, key = item
        img = torch.as_tensor(img).float()
        if img.ndim == 4:
            img = img[0]
        if img.shape[-2:] != (cfg.data.height, cfg.data.width):
            img = F.interpolate(img[None], size=(cfg.data.height, cfg.data.width), mode="bilinear",
                                align_corners=False, antialias=True)[0]
        ims.append(img)
        keys.append(str(key))
    if not ims:
        raise ValueError(f"split {split!r}: no test images")
    return torch.stack(ims), keys


def _predict(cfg, model_path: Path, split: str, device: str):
    from sa4depth.evaluate.depth import predict_disparities
    from sa4depth.models import load_depth_model

    net, mcfg = load_depth_model(model_path, device=device)
    images, keys = _test_images(cfg, split)
    disps = predict_disparities(net, images, min_depth=mcfg.model.min_depth, max_depth=mcfg.model.max_depth,
                                batch_size=cfg.eval.batch_size, device=device)
    return disps, keys


def _write(args, kind: str, protocol: str, result: dict[str, Any], cfg, data_files, device) -> int:
    from sa4depth.evaluate.provenance import provenance, to_jsonable
    from sa4depth.files import write_json_atomic

    prov = provenance(protocol=protocol, data_files=data_files, cfg=cfg, seed=cfg.get("seed"), device=device,
                      argv=list(sys.argv))
    out = {"evaluation": kind, **result, "provenance": prov}
    path = write_json_atomic(args.out, to_jsonable(out), allow_nan=False)
    print(f"-> wrote {path}")
    return 0


# ----------------------------------------------------------------------------- kinds
def _run_depth(args) -> int:
    import numpy as np

    from sa4depth.evaluate.depth import (evaluate_depth_arrays, format_metrics, load_gt_depths, load_predictions,
                                         protocol_for_split)

    cfg, mp = _config(args)
    split = args.split or cfg.data.eval_split
    if split not in ("eigen", "eigen_benchmark", "cityscapes", "nyu"):
        raise ValueError(f"data.eval_split={split!r} is not a single-image depth split; pass --split")
    median = cfg.eval.median_scaling and not args.scale_aware
    proto = protocol_for_split(split, crop=cfg.eval.crop, min_depth=cfg.eval.min_depth,
                               max_depth=None if split in ("nyu",) else cfg.eval.max_depth, median_scaling=median)
    gt_file = _gt_file(cfg, split, args.gt, pred=mp is None)
    gts = load_gt_depths(gt_file)
    device = "cpu"
    data_files = [gt_file]
    if mp is not None:
        device = _device(args)
        preds, _keys = _predict(cfg, mp, split, device)
        kind, source = "disp", str(mp)
        data_files.append(_split_file(cfg, split))
        if args.save_pred:
            np.save(args.save_pred, np.stack(preds))
    else:
        preds = load_predictions(args.pred, args.pred_kind, args.pred_key)
        kind, source = args.pred_kind, args.pred
    res = evaluate_depth_arrays(preds, gts, proto, pred_kind=kind, pred_source=source, gt_source=str(gt_file))
    print(f"   {split}: {res['num_images']} images, median scaling {'on' if median else 'off'}")
    print(format_metrics(res["metrics"]))
    if res["scale"]:
        how = "applied" if res["scale"]["applied"] else "measured, not applied"
        print(f"   scale ratios ({how}): mean {res['scale']['scale_mean']:.4f} std {res['scale']['scale_std']:.4f}")
    result = {"split": split, "protocol_detail": proto.to_dict(), "predictions": source, "pred_kind": kind,
              **res}
    return _write(args, "depth", f"depth/{split}", result, cfg, data_files, device)


def _run_scale(args) -> int:
    import torch

    from sa4depth.data import build_dataset
    from sa4depth.evaluate.scale import collect_scale_factors, evaluate_scale
    from sa4depth.models import load_model_file

    cfg, mp = _config(args)
    device = _device(args)
    _, modules = load_model_file(mp, map_location=device)
    ds = build_dataset(cfg, "val")
    loader = torch.utils.data.DataLoader(ds, batch_size=cfg.eval.batch_size, shuffle=False,
                                         num_workers=cfg.data.num_workers)
    factors = collect_scale_factors(modules["depth"], modules["pose"], loader, cfg, device, args.max_batches)
    res = evaluate_scale(factors)
    print(f"   depth scale var {res['depth_scale_var']:.6g}  pose scale var {res['pose_scale_var']:.6g}"
          f"  ({res['num_samples']} samples)")
    vf = Path(cfg.data.splits_dir) / cfg.data.split / "val_files.txt"
    return _write(args, "scale", "scale/table_i", res, cfg, [vf] if vf.is_file() else [], device)


def _odom_images(cfg, seq: str):
    import numpy as np
    import torch
    from PIL import Image

    d = Path(cfg.data.roots["kitti_odom"]) / "sequences" / seq / "image_2"
    files = sorted(d.glob(f"*{cfg.data.img_ext}"))
    if not files:
        raise FileNotFoundError(f"{d}: no *{cfg.data.img_ext} images for odometry sequence {seq}")
    from sa4depth.data.io import read_image

    ims = []
    for f in files:
        im = read_image(f).resize((cfg.data.width, cfg.data.height), Image.LANCZOS)  # errors name the file
        ims.append(torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0).permute(2, 0, 1))
    return torch.stack(ims)


def _predict_trajectory(pose_net, images, batch_size: int, device: str):
    """Relative poses ``T_{i+1<-i}`` for consecutive frames, batched over pairs."""
    import numpy as np
    import torch

    from sa4depth.models import predict_relative_pose

    rel = []
    pose_net.eval().to(device)
    with torch.no_grad():
        for s in range(0, images.shape[0] - 1, batch_size):
            a = images[s:s + batch_size].to(device)
            b = images[s + 1:s + 1 + batch_size].to(device)
            a = a[: b.shape[0]]
            T = predict_relative_pose(pose_net, a, b, 1)
            rel.append(T.reshape(-1, 4, 4).double().cpu().numpy())
    return np.concatenate(rel)


def _run_odometry(args) -> int:
    import numpy as np

    from sa4depth.evaluate.odometry import (chain_relative_poses, evaluate_trajectory, plot_trajectories,
                                            read_kitti_poses, write_kitti_poses)

    cfg, mp = _config(args)
    out = Path(args.out)
    traj_dir = Path(args.traj_dir) if args.traj_dir else out.parent / (out.stem + "_traj")
    step = cfg.eval.odom_step_size
    per_seq: dict[str, Any] = {}
    data_files: list[Path] = []
    device = "cpu"
    plots: dict[str, str] = {}
    if mp is not None:
        from sa4depth.models import load_model_file

        device = _device(args)
        _, modules = load_model_file(mp, map_location=device)
        seqs = args.sequence or list(cfg.data.odom_test_sequences)
        jobs = []
        for seq in seqs:
            gt_file = Path(cfg.data.roots["kitti_odom"]) / "poses" / f"{seq}.txt"
            gt = read_kitti_poses(gt_file)
            images = _odom_images(cfg, seq)
            if images.shape[0] != gt.shape[0]:
                raise ValueError(f"{gt_file}: {gt.shape[0]} poses but sequence {seq} has {images.shape[0]} images")
            est = chain_relative_poses(_predict_trajectory(modules["pose"], images, cfg.eval.batch_size, device))
            write_kitti_poses(traj_dir / f"{seq}.txt", est)
            jobs.append((seq, gt, est, gt_file))
    else:
        if not args.gt_poses:
            raise ValueError("--pred-poses needs --gt-poses")
        gt = read_kitti_poses(args.gt_poses)
        est = read_kitti_poses(args.pred_poses)
        if args.relative:
            # N GT poses need N-1 relative poses T_{i+1<-i}; count what the file holds, not the chain
            if est.shape[0] != gt.shape[0] - 1:
                raise ValueError(f"{args.pred_poses}: {est.shape[0]} relative poses but {args.gt_poses} has "
                                 f"{gt.shape[0]} poses (--relative needs {gt.shape[0] - 1} = one per consecutive pair)")
            # relative poses T_{i+1<-i} -> camera-to-world, anchored at the GT's first pose
            est = chain_relative_poses(est, start=gt[0])
        elif est.shape[0] != gt.shape[0]:
            raise ValueError(f"{args.pred_poses}: {est.shape[0]} poses but {args.gt_poses} has {gt.shape[0]}")
        name = args.sequence[0] if args.sequence else Path(args.pred_poses).stem
        jobs = [(name, gt, est, Path(args.gt_poses))]
    relative_input = mp is None and args.relative
    for seq, gt, est, gt_file in jobs:
        res, est_al = evaluate_trajectory(gt, est, step_size=step)
        # num_frames: poses of each trajectory; num_motions: consecutive pairs (RPE delta 1, and the
        # relative poses an estimate is chained from: those the pose net predicts / --relative reads)
        res["num_motions"] = int(gt.shape[0]) - 1
        res["pred_format"] = "relative" if (relative_input or mp is not None) else "absolute"
        per_seq[seq] = res
        data_files.append(gt_file)
        png = Path(args.plot) if (args.plot and len(jobs) == 1) else out.parent / f"{out.stem}_{seq}.png"
        plot_trajectories(png, gt, {"estimate (Sim(3)-aligned)": est_al}, title=f"sequence {seq}")
        plots[seq] = str(png)
        fb = " (fallback lengths)" if res["lengths_fallback"] else ""
        rel = " (chained from relative poses)" if res["pred_format"] == "relative" else ""
        print(f"   seq {seq}: {res['num_frames']} poses, {res['num_motions']} relative motions{rel}")
        print(f"   seq {seq}: t_err {res['t_err']:.3f}%  r_err {res['r_err']:.3f} deg/100m{fb}  "
              f"ATE {res['ate_rmse']:.4f} m  RPE {res['rpe_trans_rmse']:.4f} m / {res['rpe_rot_rmse_deg']:.4f} deg")
    result = {"sequences": per_seq, "plots": plots,
              "trajectories": str(traj_dir) if mp is not None else args.pred_poses}
    return _write(args, "odometry", "odometry/kitti_devkit+evo_sim3", result, cfg, data_files, device)


def _sequence_labels(split_file: Path, n: int) -> list[str]:
    from sa4depth.data.io import read_split_file

    labels = []
    for ln, fields in read_split_file(split_file, min_fields=1, max_fields=3):
        labels.append(fields[0])
    if len(labels) != n:
        raise ValueError(f"{split_file}: {len(labels)} lines but there are {n} predictions / GT maps")
    return labels


def _run_video(args) -> int:
    from sa4depth.evaluate.depth import load_gt_depths, load_predictions
    from sa4depth.evaluate.video import evaluate_video

    cfg, mp = _config(args)
    split = "video"
    gt_file = _gt_file(cfg, split, args.gt, pred=mp is None and args.split_file is not None)
    gts = load_gt_depths(gt_file)
    sf = Path(args.split_file) if args.split_file else _split_file(cfg, split)
    if not sf.is_file():
        raise FileNotFoundError(f"{sf}: video split file not found (it groups frames into sequences)")
    device = "cpu"
    if mp is not None:
        device = _device(args)
        preds, _ = _predict(cfg, mp, split, device)
        kind, source = "disp", str(mp)
    else:
        preds = load_predictions(args.pred, args.pred_kind, args.pred_key)
        kind, source = args.pred_kind, args.pred
    labels = _sequence_labels(sf, len(gts))
    if len(preds) != len(gts):
        raise ValueError(f"{source}: {len(preds)} predictions but {gt_file} has {len(gts)} images")
    space = args.align or cfg.eval.video_align
    res = evaluate_video(preds, gts, labels, pred_kind=kind, space=space, max_depth=cfg.eval.max_depth,
                         max_len=cfg.eval.video_max_len or None, pred_source=source)
    m = res["metrics"]
    print(f"   {res['num_sequences']} sequences: abs_rel {m['abs_rel']:.4f} rmse {m['rmse']:.4f} a1 {m['a1']:.4f}"
          f"  seq scale std {res['seq_scale_std']:.4f} ({space} alignment)")
    result = {"split": split, "predictions": source, "pred_kind": kind, **res}
    return _write(args, "video", f"video/depthcrafter_{space}", result, cfg, [gt_file, sf], device)


def run(args) -> int:
    return {"depth": _run_depth, "scale": _run_scale, "odometry": _run_odometry, "video": _run_video}[args.kind](args)
