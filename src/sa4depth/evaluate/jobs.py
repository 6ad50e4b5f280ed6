"""The evaluation jobs as a library: config in, :class:`EvalResult` out, one JSON per result.

``sa4depth evaluate KIND`` only parses its options and calls these (as evo's CLI calls
``main_ape.ape()``); from Python::

    from sa4depth.evaluate.jobs import resolve_config, evaluate_depth, write_result

    cfg, model = resolve_config("runs/synthetic/smoke/md2_18")        # or resolve_config(data=..., scale=...)
    res = evaluate_depth(cfg, model, split="eigen_benchmark", device="cuda")
    write_result("depth.json", res)                                   # numbers + provenance, atomically

* :func:`resolve_config`: the run's stored config (else the presets), ``--config`` files and
  ``key=value`` overrides on top, validated by :mod:`sa4depth.config`.
* :func:`evaluate_depth` / :func:`evaluate_scale` / :func:`evaluate_odometry` / :func:`evaluate_video`:
  one job each, on a model file or on prediction files (which need no dataset and no device).
  ``device`` is a torch device string as :func:`sa4depth.device.resolve_device` returns it; it is used
  only where a network runs (otherwise the result records ``"cpu"``). Progress and the human-readable
  summary go to ``log`` (default :func:`print`). These wrap the array-level protocols of
  :mod:`~sa4depth.evaluate.depth`, :mod:`~sa4depth.evaluate.scale` (whose ``evaluate_scale`` works
  on collected factors), :mod:`~sa4depth.evaluate.odometry` and :mod:`~sa4depth.evaluate.video`.
* :func:`write_result`: ``{"evaluation": kind, **result, "provenance": ...}`` written atomically.
* :func:`gt_file`: the GT depths of a split (exported from the dataset on first use, re-exported
  when the split file changed).

torch, PIL and evo are imported inside the functions that need them.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

__all__ = ["EvalResult", "resolve_config", "evaluate_depth", "evaluate_scale", "evaluate_odometry",
           "evaluate_video", "write_result", "training_record", "gt_file", "DEPTH_SPLITS"]

Log = Callable[[str], Any]

#: the single-image depth splits of :func:`evaluate_depth`
DEPTH_SPLITS = ("eigen", "eigen_benchmark", "cityscapes", "nyu")


@dataclass
class EvalResult:
    """One evaluation: ``result`` holds the numbers (the JSON's top-level keys besides ``evaluation``
    and ``provenance``); the rest is what :func:`write_result` records as provenance."""

    kind: str                      # depth | scale | odometry | video | refinement (the JSON's "evaluation")
    protocol: str                  # e.g. depth/eigen, odometry/kitti_devkit+evo_sim3
    result: dict[str, Any]
    cfg: Any                       # the resolved sa4depth.config.Config
    data_files: list[Path] = field(default_factory=list)  # GT / split files, hashed into provenance
    device: str = "cpu"
    model: str | os.PathLike | None = None  # the model.pt evaluated (None: scored files); its run in provenance

    def __post_init__(self):
        if self.model is not None:
            self.model = Path(self.model)


# ----------------------------------------------------------------------------- config
def resolve_config(run: str | os.PathLike | None = None, *, data: str | None = "synthetic",
                   scale: str | None = "smoke", row: str | None = None,
                   config_files: Iterable[str | os.PathLike] = (),
                   overrides: Iterable[str] | dict[str, Any] = ()):
    """``(cfg, model_path or None)``: with ``run`` (a run directory or a model.pt) its stored
    config.yaml (else the config inside the model file) and ``model_path``; without it the
    ``data`` / ``scale`` / ``row`` presets (defaults as ``sa4depth evaluate``'s). ``config_files``
    and ``key=value`` ``overrides`` go on top, validated against the schema either way."""
    from sa4depth.config import apply_overrides, load_config

    if not run:
        return load_config(data=data, scale=scale, row=row, files=config_files, overrides=overrides), None
    from sa4depth.config import load_resolved
    from sa4depth.models.io import run_model_path

    mp = run_model_path(run)
    cfg_file = mp.parent / "config.yaml"
    if cfg_file.is_file():
        cfg = load_resolved(cfg_file)
    else:
        from sa4depth.models import read_model_file

        cfg = read_model_file(mp)["config"]
    return apply_overrides(cfg, files=config_files, overrides=overrides), mp


# ----------------------------------------------------------------------------- GT and split files
_SPLIT_DATASET = {"eigen": "kitti", "eigen_benchmark": "kitti", "video": "kitti", "cityscapes": "cityscapes",
                  "nyu": "nyu"}


def _split_file(cfg, split: str) -> Path:
    """The split's ``test_files.txt`` as the data loaders find it (``data.split_file``)."""
    from sa4depth.data import dataset_root, split_file

    return split_file(cfg, split, "test_files.txt", dataset_root(cfg, _SPLIT_DATASET[split]))


def gt_file(cfg, split: str, gt: str | os.PathLike = "auto", *, pred: bool = False, log: Log = print) -> Path:
    """Explicit ``gt`` file, else ``gt_depths.npz`` beside the split's test_files.txt (Monodepth2's
    ``splits/<split>/gt_depths.npz``), exported with ``data.export_gt_depths`` on first use.
    ``pred``: scoring external predictions, where a GT file makes the dataset unnecessary."""
    if str(gt) != "auto":
        p = Path(gt)
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
            log(f"   note: {p} was not exported by sa4depth ({stale[8:]}); it is used as is and cannot be "
                f"checked against {sf}")
            return p
        log(f"-> {p}: {stale}; exporting it again")
    from sa4depth.data import export_gt_depths

    log(f"-> exporting GT depths of split {split!r} to {p}")
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


def _sequence_labels(split_file: Path, n: int) -> list[str]:
    from sa4depth.data.io import read_split_file

    labels = []
    for ln, fields in read_split_file(split_file, min_fields=1, max_fields=3):
        labels.append(fields[0])
    if len(labels) != n:
        raise ValueError(f"{split_file}: {len(labels)} lines but there are {n} predictions / GT maps")
    return labels


# ----------------------------------------------------------------------------- inference
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


def _source(model_path, pred, what: str = "pred") -> None:
    if (model_path is None) == (pred is None):
        raise ValueError(f"give exactly one of model_path and {what}")


# ----------------------------------------------------------------------------- jobs
def evaluate_depth(cfg, model_path: str | os.PathLike | None = None, *, pred: str | os.PathLike | None = None,
                   pred_kind: str = "disp", pred_key: str | None = None, gt: str | os.PathLike = "auto",
                   split: str | None = None, scale_aware: bool = False, save_pred: str | os.PathLike | None = None,
                   device: str = "cpu", log: Log = print) -> EvalResult:
    """Single-image depth metrics (Tables II-IV) of ``model_path``'s depth net on ``split`` (default
    ``data.eval_split``), or of external predictions ``pred`` (Monodepth2's ``--ext_disp_to_eval``:
    per-image ``pred_kind`` maps, in the split file's order). ``save_pred``: also save the network's
    disparities (.npy)."""
    import numpy as np

    from sa4depth.evaluate.depth import (evaluate_depth_arrays, format_metrics, load_gt_depths, load_predictions,
                                         protocol_for_split)

    _source(model_path, pred)
    split = split or cfg.data.eval_split
    if split not in DEPTH_SPLITS:
        raise ValueError(f"data.eval_split={split!r} is not a single-image depth split; pass --split")
    median = cfg.eval.median_scaling and not scale_aware
    proto = protocol_for_split(split, crop=cfg.eval.crop, min_depth=cfg.eval.min_depth,
                               max_depth=None if split in ("nyu",) else cfg.eval.max_depth, median_scaling=median)
    gt_path = gt_file(cfg, split, gt, pred=model_path is None, log=log)
    gts = load_gt_depths(gt_path)
    data_files = [gt_path]
    if model_path is not None:
        preds, _keys = _predict(cfg, Path(model_path), split, device)
        kind, source = "disp", str(model_path)
        data_files.append(_split_file(cfg, split))
        if save_pred:
            np.save(save_pred, np.stack(preds))
    else:
        device = "cpu"  # files only: no network runs
        preds = load_predictions(pred, pred_kind, pred_key)
        kind, source = pred_kind, pred
    res = evaluate_depth_arrays(preds, gts, proto, pred_kind=kind, pred_source=source, gt_source=str(gt_path))
    log(f"   {split}: {res['num_images']} images, median scaling {'on' if median else 'off'}")
    log(format_metrics(res["metrics"]))
    if res["scale"]:
        how = "applied" if res["scale"]["applied"] else "measured, not applied"
        log(f"   scale ratios ({how}): mean {res['scale']['scale_mean']:.4f} std {res['scale']['scale_std']:.4f}")
    result = {"split": split, "protocol_detail": proto.to_dict(), "predictions": source, "pred_kind": kind,
              **res}
    return EvalResult("depth", f"depth/{split}", result, cfg, data_files, device, model_path)


def evaluate_scale(cfg, model_path: str | os.PathLike, *, max_batches: int = 0, device: str = "cpu",
                   log: Log = print) -> EvalResult:
    """Table I: variance of the depth and pose scale factors of ``model_path`` on the validation split
    (``max_batches`` > 0: only that many batches)."""
    import torch

    from sa4depth.data import build_dataset
    from sa4depth.evaluate.scale import collect_scale_factors
    from sa4depth.evaluate.scale import evaluate_scale as scale_stats
    from sa4depth.models import load_model_file

    _, modules = load_model_file(model_path, map_location=device)
    ds = build_dataset(cfg, "val")
    loader = torch.utils.data.DataLoader(ds, batch_size=cfg.eval.batch_size, shuffle=False,
                                         num_workers=cfg.data.num_workers)
    factors = collect_scale_factors(modules["depth"], modules["pose"], loader, cfg, device, max_batches)
    res = scale_stats(factors)
    log(f"   depth scale var {res['depth_scale_var']:.6g}  pose scale var {res['pose_scale_var']:.6g}"
        f"  ({res['num_samples']} samples)")
    vf = Path(cfg.data.splits_dir) / cfg.data.split / "val_files.txt"
    return EvalResult("scale", "scale/table_i", res, cfg, [vf] if vf.is_file() else [], device, model_path)


#: the damping settings of :func:`evaluate_refinement`: the run's learned lambda, or lambda at
#: ``refine.damping_min`` (the LM nearly a Gauss-Newton step)
REFINE_DAMPING = ("trained", "min")


def evaluate_refinement(cfg, model_path: str | os.PathLike, *, iterations: Sequence[int] = (1, 2, 3, 5, 10, 30),
                        damping: Sequence[str] = REFINE_DAMPING, device: str = "cpu",
                        log: Log = print) -> EvalResult:
    """The SA4Depth refinement of a trained run under other LM settings, without training: the
    scale-alignment monitor (:class:`sa4depth.train.monitor.ScaleMonitor`, the run's validation
    subset and sampled points) for each number of LM ``iterations`` and each ``damping`` setting
    (:data:`REFINE_DAMPING`); the pose net's values are the same in every row. ``matches_training``:
    the largest relative difference between the row at the run's own settings (when swept) and the
    final monitor values its done.json recorded: 0 with the training's torch thread count, float
    noise (about 1e-5) with another."""
    import math

    import torch

    from sa4depth.models import read_model_file
    from sa4depth.models.io import load_state_dicts
    from sa4depth.train.monitor import ScaleMonitor
    from sa4depth.train.trainer import build_train_model

    bad = [d for d in damping if d not in REFINE_DAMPING]
    if bad or not damping:
        raise ValueError(f"damping {bad or list(damping)!r}: choose from {', '.join(REFINE_DAMPING)}")
    if not iterations or any(int(i) < 1 for i in iterations):
        raise ValueError(f"iterations {list(iterations)!r}: one or more counts >= 1")
    mp = Path(model_path)
    payload = read_model_file(mp, map_location="cpu")
    model = build_train_model(cfg, load_pretrained=False)
    if model.refiner is None:
        raise ValueError(f"{mp}: not an SA4Depth run (refine.enabled is false, or a matcher row): no refinement "
                         f"to evaluate")
    load_state_dicts(model.named_modules_for_saving(), payload["state_dicts"], mp)
    model.to(device).eval()
    monitor = ScaleMonitor.from_config(cfg, torch.device(device), log=log)
    if monitor is None or not monitor.has_pose:
        raise ValueError(f"{mp}: the refinement needs validation GT depth and poses (train.monitor_every > 0 "
                         f"and a dataset with GT poses), which this run's config does not give")
    ref = model.refiner
    trained_iterations, trained_logit = int(ref.opts.iterations), ref.damping_logit.detach().clone()
    rows = []
    try:
        for mode in damping:
            for it in iterations:
                ref.opts.iterations = int(it)
                with torch.no_grad():
                    ref.damping_logit.copy_(trained_logit if mode == "trained"
                                            else torch.full_like(trained_logit, -60.0))
                vals = monitor(model)
                rows.append({"lm_iterations": int(it), "damping_setting": mode, **vals})  # vals' damping: lambda
                log(f"   {mode:7s} lambda, {int(it):3d} iterations: translation error refined "
                    f"{vals.get('ref_trans_err', math.nan):.4g} / pose net {vals.get('net_trans_err', math.nan):.4g}, "
                    f"worse pairs {vals.get('ref_worse_frac', math.nan):.3f}")
    finally:
        ref.opts.iterations = trained_iterations
        with torch.no_grad():
            ref.damping_logit.copy_(trained_logit)
    done_mon = training_record(mp)
    matches = None
    own = [r for r in rows if r["lm_iterations"] == trained_iterations and r["damping_setting"] == "trained"]
    if own and done_mon.get("done"):
        from sa4depth.safeio import load_json_object

        recorded = load_json_object(mp.parent / "done.json", "done.json").get("monitor") or {}
        diffs = [abs(float(own[0][k]) - float(v)) / max(abs(float(v)), 1e-12) for k, v in recorded.items() if k in own[0]
                 and isinstance(v, (int, float)) and math.isfinite(float(v)) and math.isfinite(float(own[0][k]))]
        matches = max(diffs) if diffs else None
    vf = Path(cfg.data.splits_dir) / cfg.data.split / "val_files.txt"
    result = {"trained": {"iterations": trained_iterations, "damping": float(ref.damping.detach().mean()),
                          "damping_min": float(cfg.refine.damping_min)},
              "monitor_samples": len(monitor.indices), "rows": rows, "matches_training": matches}
    return EvalResult("refinement", "refinement/monitor_sweep", result, cfg, [vf] if vf.is_file() else [],
                      device, mp)


def evaluate_odometry(cfg, model_path: str | os.PathLike | None = None, *, out: str | os.PathLike,
                      pred_poses: str | os.PathLike | None = None, gt_poses: str | os.PathLike | None = None,
                      relative: bool = False, sequences: Sequence[str] = (), plot: str | os.PathLike | None = None,
                      traj_dir: str | os.PathLike | None = None, device: str = "cpu",
                      log: Log = print) -> EvalResult:
    """Table V / Fig. 6: KITTI devkit t_err / r_err and evo ATE / RPE (Sim(3)-aligned).

    With ``model_path`` the pose net runs on the KITTI odometry ``sequences`` (default
    ``data.odom_test_sequences``) and the chained estimates go to ``traj_dir`` as KITTI pose files;
    else ``pred_poses`` (N absolute, or with ``relative`` N-1 relative poses ``T_{i+1<-i}``) is scored
    against ``gt_poses`` (``sequences[0]`` names it, default the file's stem). ``out`` is the result
    JSON's path: ``traj_dir`` defaults to ``<out stem>_traj/`` and the per-sequence trajectory plots
    to ``<out stem>_<seq>.png`` next to it (``plot``: the PNG, when there is one sequence)."""
    from sa4depth.evaluate.odometry import (chain_relative_poses, evaluate_trajectory, plot_trajectories,
                                            read_kitti_poses, write_kitti_poses)

    _source(model_path, pred_poses, "pred_poses")
    out = Path(out)
    traj_dir = Path(traj_dir) if traj_dir else out.parent / (out.stem + "_traj")
    step = cfg.eval.odom_step_size
    per_seq: dict[str, Any] = {}
    data_files: list[Path] = []
    plots: dict[str, str] = {}
    if model_path is not None:
        from sa4depth.models import load_model_file

        _, modules = load_model_file(model_path, map_location=device)
        jobs = []
        for seq in list(sequences) or list(cfg.data.odom_test_sequences):
            gt_path = Path(cfg.data.roots["kitti_odom"]) / "poses" / f"{seq}.txt"
            gt = read_kitti_poses(gt_path)
            images = _odom_images(cfg, seq)
            if images.shape[0] != gt.shape[0]:
                raise ValueError(f"{gt_path}: {gt.shape[0]} poses but sequence {seq} has {images.shape[0]} images")
            est = chain_relative_poses(_predict_trajectory(modules["pose"], images, cfg.eval.batch_size, device))
            write_kitti_poses(traj_dir / f"{seq}.txt", est)
            jobs.append((seq, gt, est, gt_path))
    else:
        device = "cpu"  # files only: no network runs
        if not gt_poses:
            raise ValueError("--pred-poses needs --gt-poses")
        gt = read_kitti_poses(gt_poses)
        est = read_kitti_poses(pred_poses)
        if relative:
            # N GT poses need N-1 relative poses T_{i+1<-i}; count what the file holds, not the chain
            if est.shape[0] != gt.shape[0] - 1:
                raise ValueError(f"{pred_poses}: {est.shape[0]} relative poses but {gt_poses} has "
                                 f"{gt.shape[0]} poses (--relative needs {gt.shape[0] - 1} = one per consecutive pair)")
            # relative poses T_{i+1<-i} -> camera-to-world, anchored at the GT's first pose
            est = chain_relative_poses(est, start=gt[0])
        elif est.shape[0] != gt.shape[0]:
            raise ValueError(f"{pred_poses}: {est.shape[0]} poses but {gt_poses} has {gt.shape[0]}")
        name = sequences[0] if sequences else Path(pred_poses).stem
        jobs = [(name, gt, est, Path(gt_poses))]
    relative_input = model_path is None and relative
    for seq, gt, est, gt_path in jobs:
        res, est_al = evaluate_trajectory(gt, est, step_size=step)
        # num_frames: poses of each trajectory; num_motions: consecutive pairs (RPE delta 1, and the
        # relative poses an estimate is chained from: those the pose net predicts / --relative reads)
        res["num_motions"] = int(gt.shape[0]) - 1
        res["pred_format"] = "relative" if (relative_input or model_path is not None) else "absolute"
        per_seq[seq] = res
        data_files.append(gt_path)
        png = Path(plot) if (plot and len(jobs) == 1) else out.parent / f"{out.stem}_{seq}.png"
        plot_trajectories(png, gt, {"estimate (Sim(3)-aligned)": est_al}, title=f"sequence {seq}")
        plots[seq] = str(png)
        fb = " (fallback lengths)" if res["lengths_fallback"] else ""
        rel = " (chained from relative poses)" if res["pred_format"] == "relative" else ""
        log(f"   seq {seq}: {res['num_frames']} poses, {res['num_motions']} relative motions{rel}")
        log(f"   seq {seq}: t_err {res['t_err']:.3f}%  r_err {res['r_err']:.3f} deg/100m{fb}  "
            f"ATE {res['ate_rmse']:.4f} m  RPE {res['rpe_trans_rmse']:.4f} m / {res['rpe_rot_rmse_deg']:.4f} deg")
    result = {"sequences": per_seq, "plots": plots,
              "trajectories": str(traj_dir) if model_path is not None else pred_poses}
    return EvalResult("odometry", "odometry/kitti_devkit+evo_sim3", result, cfg, data_files, device, model_path)


def evaluate_video(cfg, model_path: str | os.PathLike | None = None, *, pred: str | os.PathLike | None = None,
                   pred_kind: str = "disp", pred_key: str | None = None, gt: str | os.PathLike = "auto",
                   split_file: str | os.PathLike | None = None, align: str | None = None, device: str = "cpu",
                   log: Log = print) -> EvalResult:
    """Table VIII: per-sequence scale+shift aligned video depth (Eq. 19) of ``model_path`` or of
    external predictions ``pred``; ``split_file`` groups the frames into sequences (default
    ``<splits_dir>/video/test_files.txt``), ``align`` is ``disparity`` or ``depth`` (default
    ``eval.video_align``)."""
    from sa4depth.evaluate.depth import load_gt_depths, load_predictions
    from sa4depth.evaluate.video import evaluate_video as video_stats

    _source(model_path, pred)
    split = "video"
    gt_path = gt_file(cfg, split, gt, pred=model_path is None and split_file is not None, log=log)
    gts = load_gt_depths(gt_path)
    sf = Path(split_file) if split_file else _split_file(cfg, split)
    if not sf.is_file():
        raise FileNotFoundError(f"{sf}: video split file not found (it groups frames into sequences)")
    if model_path is not None:
        preds, _ = _predict(cfg, Path(model_path), split, device)
        kind, source = "disp", str(model_path)
    else:
        device = "cpu"  # files only: no network runs
        preds = load_predictions(pred, pred_kind, pred_key)
        kind, source = pred_kind, pred
    labels = _sequence_labels(sf, len(gts))
    if len(preds) != len(gts):
        raise ValueError(f"{source}: {len(preds)} predictions but {gt_path} has {len(gts)} images")
    space = align or cfg.eval.video_align
    res = video_stats(preds, gts, labels, pred_kind=kind, space=space, max_depth=cfg.eval.max_depth,
                      max_len=cfg.eval.video_max_len or None, pred_source=source)
    m = res["metrics"]
    log(f"   {res['num_sequences']} sequences: abs_rel {m['abs_rel']:.4f} rmse {m['rmse']:.4f} a1 {m['a1']:.4f}"
        f"  seq scale std {res['seq_scale_std']:.4f} ({space} alignment)")
    result = {"split": split, "predictions": source, "pred_kind": kind, **res}
    return EvalResult("video", f"video/depthcrafter_{space}", result, cfg, [gt_path, sf], device, model_path)


# ----------------------------------------------------------------------------- output
def training_record(model_path: str | os.PathLike) -> dict[str, Any]:
    """What the evaluated model's run recorded in its ``done.json`` beside the model file: the commit
    that trained it (``git``, None when the run predates that record), the model's sha256 and the
    steps. ``done: false`` when there is no done.json, when it describes another model file, or
    when it cannot be read (``error``): the evaluation's numbers are written either way."""
    from sa4depth.safeio import load_json_object

    mp = Path(model_path)
    done = mp.parent / "done.json"
    rec: dict[str, Any] = {"model": str(mp), "done": False}
    if not done.is_file():
        return rec
    try:
        d = load_json_object(done, "done.json")
    except (OSError, ValueError) as e:
        return {**rec, "error": str(e)}
    if d.get("model", mp.name) != mp.name:
        return {**rec, "error": f"{done} describes {d.get('model')!r}, not {mp.name!r}"}
    rec.update(done=True, git=d.get("git"), model_sha256=d.get("model_sha256"), steps=d.get("steps"),
               **({"code": d["code"]} if isinstance(d.get("code"), list) else {}))
    return rec


def write_result(path: str | os.PathLike, result: EvalResult, argv: Sequence[str] | None = None) -> Path:
    """Write ``{"evaluation": kind, **numbers, "provenance": ...}`` to ``path`` atomically (strict JSON).
    The provenance block holds the resolved config, git commit + dirty flag, a sha256 over
    ``result.data_files``, seed, device, protocol and the command line (``argv``, default ``sys.argv``),
    and for an evaluated model ``trained`` (:func:`training_record`)."""
    from sa4depth.evaluate.provenance import provenance, to_jsonable
    from sa4depth.files import write_json_atomic

    r = result
    prov = provenance(protocol=r.protocol, data_files=r.data_files, cfg=r.cfg, seed=r.cfg.get("seed"),
                      device=r.device, argv=list(sys.argv if argv is None else argv))
    if r.model is not None:
        prov["trained"] = training_record(r.model)
    out = {"evaluation": r.kind, **r.result, "provenance": prov}
    return write_json_atomic(path, to_jsonable(out), allow_nan=False)
