"""Depth metrics, evaluation crops, scaling and scale-consistency statistics (numpy only).

Conventions and their sources:

* Error metrics ``abs_rel, sq_rel, rmse, rmse_log, a1, a2, a3``: Monodepth2
  ``evaluate_depth.compute_errors`` (Eigen et al. 2014 definitions), computed per image on the
  valid pixels and then averaged over images.
* Garg crop (KITTI Eigen split): rows ``[0.40810811 h, 0.99189189 h)``, columns
  ``[0.03594771 w, 0.96405229 w)``, truncated with ``astype(int32)`` exactly as Monodepth2 does.
  Eigen crop: rows ``[0.3324324 h, 0.91351351 h)``, same columns (SfMLearner ``eval_depth``).
* Median scaling (up-to-scale models): ``ratio = median(gt) / median(pred)`` on the valid pixels,
  ``pred *= ratio``, then ``pred`` is clamped to ``[min_depth, max_depth]`` (Monodepth2).
  Scale Std (SA4Depth Table II) = standard deviation of the per-image ratios; we also report the
  ratios' mean and Monodepth2's printed statistic ``std(ratios / median(ratios))``.
* Table I scale variances: variance over samples of GT/pred depth-median ratios and of
  GT/pred translation-norm ratios (SA4Depth Sec. IV).
* Scale-and-shift alignment: least squares ``min_{s,t} sum (s x + t - y)^2`` (MiDaS / Marigold /
  DepthCrafter evaluation).
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

__all__ = [
    "METRIC_NAMES",
    "compute_depth_errors",
    "crop_mask",
    "garg_crop_mask",
    "eigen_crop_mask",
    "nyu_crop_mask",
    "median_scale",
    "scale_ratio_stats",
    "scale_variances",
    "fit_scale_shift",
    "mean_errors",
]

METRIC_NAMES = ("abs_rel", "sq_rel", "rmse", "rmse_log", "a1", "a2", "a3")

# Monodepth2 / Garg et al. crop fractions (rows top, bottom, columns left, right)
GARG_CROP = (0.40810811, 0.99189189, 0.03594771, 0.96405229)
EIGEN_CROP = (0.3324324, 0.91351351, 0.0359477, 0.96405229)
# The standard NYUv2 evaluation crop on 480x640: rows 45:471, columns 41:601 (Eigen et al. 2014,
# used by MonoIndoor++ / P2Net / VDA's nyuv2 benchmark); as fractions for other sizes.
NYU_CROP = (45 / 480, 471 / 480, 41 / 640, 601 / 640)


def compute_depth_errors(gt: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Monodepth2's ``compute_errors`` on 1-D arrays of valid GT and (scaled, clamped) predictions.

    ``abs_rel = mean(|gt - pred| / gt)``, ``sq_rel = mean((gt - pred)^2 / gt)``,
    ``rmse = sqrt(mean((gt - pred)^2))``, ``rmse_log = sqrt(mean((log gt - log pred)^2))``,
    ``a_k = mean(max(gt/pred, pred/gt) < 1.25^k)``.
    """
    gt = np.asarray(gt, dtype=np.float64).ravel()
    pred = np.asarray(pred, dtype=np.float64).ravel()
    if gt.shape != pred.shape:
        raise ValueError(f"compute_depth_errors: gt has {gt.size} values, pred has {pred.size}")
    if gt.size == 0:
        raise ValueError("compute_depth_errors: no valid pixels")
    if not (np.all(gt > 0) and np.all(pred > 0)):
        raise ValueError("compute_depth_errors: depths must be positive")
    thresh = np.maximum(gt / pred, pred / gt)
    diff = gt - pred
    return {
        "abs_rel": float(np.mean(np.abs(diff) / gt)),
        "sq_rel": float(np.mean(diff ** 2 / gt)),
        "rmse": float(np.sqrt(np.mean(diff ** 2))),
        "rmse_log": float(np.sqrt(np.mean((np.log(gt) - np.log(pred)) ** 2))),
        "a1": float(np.mean(thresh < 1.25)),
        "a2": float(np.mean(thresh < 1.25 ** 2)),
        "a3": float(np.mean(thresh < 1.25 ** 3)),
    }


def _fraction_crop(shape: tuple[int, int], fr: tuple[float, float, float, float]) -> np.ndarray:
    h, w = shape
    c = np.array([fr[0] * h, fr[1] * h, fr[2] * w, fr[3] * w]).astype(np.int32)
    m = np.zeros((h, w), dtype=bool)
    m[c[0]:c[1], c[2]:c[3]] = True
    return m


def garg_crop_mask(shape: tuple[int, int]) -> np.ndarray:
    """Boolean (H, W) mask of the Garg crop (Monodepth2 ``evaluate_depth``, eigen split)."""
    return _fraction_crop(shape, GARG_CROP)


def eigen_crop_mask(shape: tuple[int, int]) -> np.ndarray:
    """Boolean (H, W) mask of the Eigen et al. crop (SfMLearner ``kitti_eval/eval_depth``)."""
    return _fraction_crop(shape, EIGEN_CROP)


def nyu_crop_mask(shape: tuple[int, int]) -> np.ndarray:
    """Boolean (H, W) mask of the NYUv2 crop ``[45:471, 41:601]`` on 480x640 (exact there),
    scaled by the same fractions (rounded) on other sizes."""
    h, w = shape
    if (h, w) == (480, 640):
        r0, r1, c0, c1 = 45, 471, 41, 601
    else:
        r0, r1 = int(round(NYU_CROP[0] * h)), int(round(NYU_CROP[1] * h))
        c0, c1 = int(round(NYU_CROP[2] * w)), int(round(NYU_CROP[3] * w))
    m = np.zeros((h, w), dtype=bool)
    m[r0:r1, c0:c1] = True
    return m


def crop_mask(name: str, shape: tuple[int, int]) -> np.ndarray:
    """Crop by name: ``garg | eigen | nyu | none`` (the Cityscapes crop is applied to the arrays
    themselves, see :mod:`sa4depth.evaluate.depth`)."""
    if name == "garg":
        return garg_crop_mask(shape)
    if name == "eigen":
        return eigen_crop_mask(shape)
    if name == "nyu":
        return nyu_crop_mask(shape)
    if name == "none":
        return np.ones(shape, dtype=bool)
    raise ValueError(f"unknown crop {name!r} (expected garg, eigen, nyu or none)")


def median_scale(gt: np.ndarray, pred: np.ndarray, min_depth: float, max_depth: float,
                 enabled: bool = True) -> tuple[np.ndarray, float]:
    """Monodepth2 median scaling on valid pixels: ``ratio = median(gt)/median(pred)``,
    ``pred * ratio`` clamped to ``[min_depth, max_depth]``. With ``enabled=False`` the ratio is 1
    and only the clamp is applied (scale-aware models)."""
    pred = np.asarray(pred, dtype=np.float64)
    ratio = float(np.median(gt) / np.median(pred)) if enabled else 1.0
    return np.clip(pred * ratio, min_depth, max_depth), ratio


def scale_ratio_stats(ratios: np.ndarray) -> dict[str, float]:
    """Statistics of per-image median-scaling ratios.

    ``scale_std`` = std of the ratios (population, ``ddof=0``: SA4Depth Table II "Scale Std");
    ``scale_mean``; ``scale_median``; ``scale_std_md2`` = ``std(ratios / median(ratios))`` as printed
    by Monodepth2's evaluate_depth.py.
    """
    r = np.asarray(ratios, dtype=np.float64)
    if r.size == 0:
        return {"scale_std": float("nan"), "scale_mean": float("nan"),
                "scale_median": float("nan"), "scale_std_md2": float("nan")}
    med = float(np.median(r))
    return {"scale_std": float(np.std(r)), "scale_mean": float(np.mean(r)),
            "scale_median": med, "scale_std_md2": float(np.std(r / med))}


def scale_variances(gt_depth_medians, pred_depth_medians, gt_trans_norms, pred_trans_norms
                    ) -> dict[str, float]:
    """SA4Depth Table I: variances (``ddof=0``) over samples of the depth scale factor
    ``median(D_gt) / median(D_pred)`` and of the pose scale factor ``|t_gt| / |t_pred|``.

    Also returns the means of both factors and their ratio-of-scales disagreement
    ``var(depth_scale / pose_scale)`` (how well pose and depth scales agree per sample).
    """
    arrs = [np.asarray(a, dtype=np.float64).ravel()
            for a in (gt_depth_medians, pred_depth_medians, gt_trans_norms, pred_trans_norms)]
    names = ("gt_depth_medians", "pred_depth_medians", "gt_trans_norms", "pred_trans_norms")
    n = arrs[0].size
    for a, nm in zip(arrs, names):
        if a.size != n:
            raise ValueError(f"scale_variances: {nm} has {a.size} values, expected {n}")
        if n == 0:
            raise ValueError("scale_variances: no samples")
        if not np.all(np.isfinite(a)) or np.any(a <= 0):
            raise ValueError(f"scale_variances: {nm} must be finite and > 0")
    depth_scale = arrs[0] / arrs[1]
    pose_scale = arrs[2] / arrs[3]
    return {
        "depth_scale_var": float(np.var(depth_scale)),
        "pose_scale_var": float(np.var(pose_scale)),
        "depth_scale_mean": float(np.mean(depth_scale)),
        "pose_scale_mean": float(np.mean(pose_scale)),
        "depth_pose_scale_ratio_var": float(np.var(depth_scale / pose_scale)),
        "num_samples": int(n),
    }


def fit_scale_shift(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares ``(s, t) = argmin sum (s x + t - y)^2`` in float64 (closed-form 2x2 solve)."""
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.size != y.size or x.size < 2:
        raise ValueError(f"fit_scale_shift: need >= 2 paired values, got {x.size} and {y.size}")
    a = np.stack([x, np.ones_like(x)], axis=1)
    sol, *_ = np.linalg.lstsq(a, y, rcond=None)
    return float(sol[0]), float(sol[1])


def mean_errors(per_image: list[Mapping[str, float]]) -> dict[str, float]:
    """Average each metric over images (Monodepth2: ``np.array(errors).mean(0)``)."""
    if not per_image:
        raise ValueError("mean_errors: no images")
    return {k: float(np.mean([e[k] for e in per_image])) for k in METRIC_NAMES}
