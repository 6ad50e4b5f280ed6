"""Visual-odometry evaluation (SA4Depth Table V, Fig. 6).

* Trajectories are camera-to-world 4x4 poses in float64, read/written in KITTI pose format
  (12 numbers per line, row-major 3x4; docs/DATA_LAYOUTS.md, evo ``read_kitti_poses_file``).
  Reading validates every line (12 finite numbers, a rotation block orthonormal within
  :data:`ROTATION_TOL` with det +1) and names the file and line otherwise, instead of letting evo
  fail later without either; rotations that pass but are further from SO(3) than evo's own check
  (1e-6, ``lie_algebra.is_so3``), i.e. files written with few digits, are replaced by the nearest
  rotation (SVD).
* Relative poses follow the project / Monodepth2 convention ``T_{i+1<-i} = inv(Twc_{i+1}) Twc_i``
  (the pose net's output for the pair ``[img_i, img_{i+1}]`` with ``invert=False``), so chaining is
  ``Twc_{i+1} = Twc_i inv(T_{i+1<-i})`` with ``Twc_0 = I``; each product's rotation is
  re-orthonormalised by SVD (nearest rotation, det +1) to stop drift from float round-off.
* Alignment: Sim(3) Umeyama (7 DoF) of the estimate onto the GT positions with **evo**
  (``PosePath3D.align(correct_scale=True)``), as the paper's "7DoF alignment" and DF-VO's ``7dof``.
* ATE = evo APE (translation part) RMSE after alignment; RPE = evo RPE with delta = 1 frame,
  translation part (m) and rotation angle (deg), RMSE (same as ``evo_ape/evo_rpe kitti ... -as``).
* KITTI devkit t_err / r_err (``evaluate_odometry.cpp``; DF-VO ``kitti_odometry.py``): segments of
  lengths 100..800 m (step 100) starting every 10 frames; for each, the error pose
  ``inv(inv(E_a) E_b) (inv(G_a) G_b)``; t_err = |t| / length, r_err = angle / length, averaged over
  all segments, reported in % and deg / 100 m. A trajectory shorter than the shortest standard
  length falls back to lengths ``k/10 * total`` (k = 1..8) and says so in the result.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from sa4depth.data.io import ROTATION_TOL  # largest accepted |R^T R - I|, |det R - 1| of a pose file
from sa4depth.files import atomic_path, write_text_atomic

__all__ = [
    "ROTATION_TOL",
    "read_kitti_poses",
    "write_kitti_poses",
    "orthonormalize",
    "chain_relative_poses",
    "trajectory_distances",
    "kitti_segment_errors",
    "evo_metrics",
    "evaluate_trajectory",
    "plot_trajectories",
    "STANDARD_LENGTHS",
]

STANDARD_LENGTHS = (100.0, 200.0, 300.0, 400.0, 500.0, 600.0, 700.0, 800.0)

_EVO_SO3_ATOL = 1e-6  # evo.core.lie_algebra.is_so3


# ----------------------------------------------------------------------------- I/O
def read_kitti_poses(path: str | os.PathLike) -> np.ndarray:
    """Read a KITTI pose file into (N, 4, 4) float64 (:func:`sa4depth.data.io.parse_kitti_poses`:
    blank lines and ``#`` comments skipped; a line without 12 finite numbers, or whose 3x3 block is
    not a rotation within ``ROTATION_TOL``, is an error naming the file and line). Accepted rotations
    further than evo's 1e-6 from SO(3) (files written with few decimals) are projected onto it."""
    from sa4depth.data.io import text_lines, parse_kitti_poses

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: pose file not found")
    T, _ = parse_kitti_poses(p, text_lines(p, "pose file"), comments=True)
    R = T[:, :3, :3]
    orth = np.abs(np.swapaxes(R, 1, 2) @ R - np.eye(3)).max(axis=(1, 2))
    fix = (orth > _EVO_SO3_ATOL) | (np.abs(np.linalg.det(R) - 1.0) > _EVO_SO3_ATOL)
    if fix.any():
        T[fix, :3, :3] = orthonormalize(R[fix])
    return T


def write_kitti_poses(path: str | os.PathLike, poses: np.ndarray) -> Path:
    """Write (N, 4, 4) poses in KITTI format atomically (``path.tmp`` then ``os.replace``)."""
    poses = np.asarray(poses, dtype=np.float64)
    if poses.ndim != 3 or poses.shape[1:] != (4, 4):
        raise ValueError(f"{path}: poses must be (N, 4, 4), got {poses.shape}")
    return write_text_atomic(path, "".join(" ".join(f"{v:.12e}" for v in T[:3, :].ravel()) + "\n"
                                           for T in poses))


# ----------------------------------------------------------------------------- chaining
def orthonormalize(R: np.ndarray) -> np.ndarray:
    """Nearest rotation matrix(es) by SVD: ``U diag(1, 1, det(U V^T)) V^T`` (batched over leading dims)."""
    U, _, Vt = np.linalg.svd(R)
    d = np.sign(np.linalg.det(U @ Vt))
    D = np.zeros(R.shape, dtype=np.float64)
    D[..., 0, 0] = 1.0
    D[..., 1, 1] = 1.0
    D[..., 2, 2] = d
    return U @ D @ Vt


def chain_relative_poses(rel: np.ndarray, start: np.ndarray | None = None) -> np.ndarray:
    """(N-1, 4, 4) relative poses ``T_{i+1<-i}`` -> (N, 4, 4) camera-to-world poses (float64).

    The chain is inherently sequential; each step is one 4x4 product plus an SVD."""
    rel = np.asarray(rel, dtype=np.float64)
    if rel.ndim != 3 or rel.shape[1:] != (4, 4):
        raise ValueError(f"relative poses must be (N-1, 4, 4), got {rel.shape}")
    if not np.all(np.isfinite(rel)):
        raise ValueError("relative poses contain NaN or inf")
    Tinv = np.linalg.inv(rel)
    out = np.empty((rel.shape[0] + 1, 4, 4), dtype=np.float64)
    out[0] = np.eye(4) if start is None else start
    for i in range(rel.shape[0]):
        T = out[i] @ Tinv[i]
        T[:3, :3] = orthonormalize(T[:3, :3])
        T[3] = (0.0, 0.0, 0.0, 1.0)
        out[i + 1] = T
    return out


# ----------------------------------------------------------------------------- KITTI devkit
def trajectory_distances(poses: np.ndarray) -> np.ndarray:
    """Cumulative path length along the GT positions (devkit ``trajectoryDistances``)."""
    t = poses[:, :3, 3]
    steps = np.linalg.norm(np.diff(t, axis=0), axis=1)
    return np.concatenate([[0.0], np.cumsum(steps)])


def _rotation_angle(R: np.ndarray) -> np.ndarray:
    """Devkit ``rotationError``: ``acos(clip((trace(R) - 1) / 2, -1, 1))`` (batched)."""
    tr = np.trace(R, axis1=-2, axis2=-1)
    return np.arccos(np.clip(0.5 * (tr - 1.0), -1.0, 1.0))


def kitti_segment_errors(gt: np.ndarray, est: np.ndarray, lengths: Sequence[float] = STANDARD_LENGTHS,
                         step_size: int = 10) -> dict[str, Any]:
    """KITTI odometry devkit errors of ``est`` against ``gt`` (both (N, 4, 4) camera-to-world).

    Returns ``t_err`` (%), ``r_err`` (deg / 100 m) averaged over all segments (DF-VO's
    ``compute_overall_err``), per-length averages, the lengths used and whether the fallback to
    shorter lengths was needed.
    """
    gt = np.asarray(gt, dtype=np.float64)
    est = np.asarray(est, dtype=np.float64)
    if gt.shape != est.shape:
        raise ValueError(f"trajectories differ in size: GT {gt.shape[0]} poses, estimate {est.shape[0]} poses")
    dist = trajectory_distances(gt)
    total = float(dist[-1])
    lengths = [float(x) for x in lengths]
    fits = [L for L in lengths if np.any(dist > L)]  # some segment from frame 0 exists
    fallback = False
    if not fits:
        if total <= 0:
            raise ValueError("GT trajectory has zero length; segment errors are undefined")
        fallback = True
        fits = [total * k / 10.0 for k in range(1, 9)]
    firsts, lasts, lens = [], [], []
    for first in range(0, gt.shape[0], step_size):
        for L in fits:
            idx = np.nonzero(dist > dist[first] + L)[0]  # devkit lastFrameFromSegmentLength
            if idx.size == 0:
                continue
            firsts.append(first)
            lasts.append(int(idx[0]))
            lens.append(L)
    if not firsts:
        raise ValueError(f"no segment of lengths {fits} fits a trajectory of {total:.3f} m")
    a, b, lens_a = np.array(firsts), np.array(lasts), np.array(lens)
    d_gt = np.linalg.inv(gt[a]) @ gt[b]
    d_est = np.linalg.inv(est[a]) @ est[b]
    err = np.linalg.inv(d_est) @ d_gt
    t_seg = np.linalg.norm(err[:, :3, 3], axis=1) / lens_a
    r_seg = _rotation_angle(err[:, :3, :3]) / lens_a
    per_length = {}
    for L in fits:
        sel = lens_a == L
        if sel.any():
            per_length[f"{L:g}"] = {"t_err": float(t_seg[sel].mean() * 100.0),
                                    "r_err": float(np.degrees(r_seg[sel].mean()) * 100.0),
                                    "segments": int(sel.sum())}
    return {
        "t_err": float(t_seg.mean() * 100.0),
        "r_err": float(np.degrees(r_seg.mean()) * 100.0),
        "num_segments": int(t_seg.size),
        "lengths_used": [float(L) for L in fits],
        "lengths_fallback": fallback,
        "step_size": int(step_size),
        "trajectory_length": total,
        "per_length": per_length,
    }


# ----------------------------------------------------------------------------- evo
def _evo_plot():
    """``evo.tools.plot``, imported with the line evo prints to stdout when it first creates
    ``~/.evo/settings.json`` (on a fresh machine) kept off stdout: a command's stdout is its result."""
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        from evo.tools import plot as evo_plot
    return evo_plot


def _path(poses: np.ndarray, name: str = ""):
    from evo.core.trajectory import PosePath3D

    return PosePath3D(poses_se3=[p.copy() for p in poses], name=name)


def evo_metrics(gt: np.ndarray, est: np.ndarray, correct_scale: bool = True) -> tuple[dict[str, Any], np.ndarray]:
    """Align ``est`` onto ``gt`` with evo's Umeyama (Sim(3) if ``correct_scale``) and compute APE
    and RPE (delta 1 frame). Returns (metrics, aligned estimate (N, 4, 4))."""
    import copy

    from evo.core import metrics as evo_m
    from evo.core.geometry import GeometryException
    from evo.core.units import Unit

    ref = _path(gt, "gt")
    traj = _path(est, "est")
    traj_al = copy.deepcopy(traj)
    try:
        r, t, s = traj_al.align(ref, correct_scale=correct_scale)
    except GeometryException as e:
        raise ValueError(f"Umeyama alignment impossible ({e}): the trajectories are degenerate "
                         "(e.g. all positions on one line)") from None
    ape = evo_m.APE(evo_m.PoseRelation.translation_part)
    ape.process_data((ref, traj_al))
    rpe_t = evo_m.RPE(evo_m.PoseRelation.translation_part, delta=1, delta_unit=Unit.frames, all_pairs=False)
    rpe_t.process_data((ref, traj_al))
    rpe_r = evo_m.RPE(evo_m.PoseRelation.rotation_angle_deg, delta=1, delta_unit=Unit.frames, all_pairs=False)
    rpe_r.process_data((ref, traj_al))
    st_ape = ape.get_all_statistics()
    st_t = rpe_t.get_all_statistics()
    st_r = rpe_r.get_all_statistics()
    out = {
        "ate_rmse": float(st_ape["rmse"]),
        "ate_mean": float(st_ape["mean"]),
        "rpe_trans_rmse": float(st_t["rmse"]),
        "rpe_trans_mean": float(st_t["mean"]),
        "rpe_rot_rmse_deg": float(st_r["rmse"]),
        "rpe_rot_mean_deg": float(st_r["mean"]),
        "align_scale": float(s),
        "align_rotation": np.asarray(r).tolist(),
        "align_translation": np.asarray(t).tolist(),
        "alignment": "sim3_umeyama" if correct_scale else "se3_umeyama",
    }
    return out, np.stack(traj_al.poses_se3)


def evaluate_trajectory(gt: np.ndarray, est: np.ndarray, lengths: Sequence[float] = STANDARD_LENGTHS,
                        step_size: int = 10) -> tuple[dict[str, Any], np.ndarray]:
    """All Table V numbers for one sequence: evo ATE/RPE after Sim(3) alignment, KITTI t_err/r_err
    after the same alignment (DF-VO "7dof") and, for reference, before any alignment (``*_raw``)."""
    gt = np.asarray(gt, dtype=np.float64)
    est = np.asarray(est, dtype=np.float64)
    if gt.shape != est.shape:
        raise ValueError(f"trajectories differ in size: GT {gt.shape[0]} poses, estimate {est.shape[0]} poses")
    if gt.shape[0] < 3:
        raise ValueError(f"need at least 3 poses, got {gt.shape[0]}")
    res, est_al = evo_metrics(gt, est, correct_scale=True)
    seg = kitti_segment_errors(gt, est_al, lengths, step_size)
    raw = kitti_segment_errors(gt, est, lengths, step_size)
    res.update({k: seg[k] for k in ("t_err", "r_err", "num_segments", "lengths_used", "lengths_fallback",
                                    "step_size", "trajectory_length", "per_length")})
    res["t_err_raw"] = raw["t_err"]
    res["r_err_raw"] = raw["r_err"]
    res["num_frames"] = int(gt.shape[0])
    return res, est_al


def plot_trajectories(path: str | os.PathLike, gt: np.ndarray, estimates: dict[str, np.ndarray],
                      title: str = "") -> Path:
    """Top-view (x-z) plot of GT and aligned estimates with evo's plotting, written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    evo_plot = _evo_plot()

    fig = plt.figure(figsize=(6, 6))
    ax = evo_plot.prepare_axis(fig, evo_plot.PlotMode.xz)
    evo_plot.traj(ax, evo_plot.PlotMode.xz, _path(gt, "GT"), style="--", color="black", label="GT")
    colors = ["tab:red", "tab:blue", "tab:green", "tab:orange", "tab:purple"]
    for i, (name, poses) in enumerate(estimates.items()):
        evo_plot.traj(ax, evo_plot.PlotMode.xz, _path(poses, name), style="-",
                      color=colors[i % len(colors)], label=name)
    ax.legend()
    if title:
        ax.set_title(title)
    path = Path(path)
    with atomic_path(path, keep_suffix=True) as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight")
        plt.close(fig)
    return path
