"""Single-image depth evaluation protocols (KITTI Eigen / Eigen-benchmark, Cityscapes, NYUv2).

Every protocol follows Monodepth2's ``evaluate_depth.py`` loop: the prediction (disparity, as
written by ``--ext_disp_to_eval``, or depth) is resized with ``cv2.resize`` (bilinear) to the GT
size, depth = 1 / disparity, pixels are selected by a validity mask (and crop), the prediction is
median-scaled per image for up-to-scale models (ratio = median(gt) / median(pred)) and clamped to
``[min_depth, max_depth]``, and the metrics are averaged over images.

Protocol sources:

* ``eigen`` (697 images, projected LiDAR GT): Monodepth2 -- valid = ``min < gt < max`` inside the
  Garg crop; ``(min, max) = (1e-3, 80)``.
* ``eigen_benchmark`` (652 images, improved GT of Uhrig et al.): the Garg crop and
  ``(min, max) = (1e-3, 80)`` as for ``eigen`` (the protocol SA4Depth's Table II and the papers it
  compares with report). Monodepth2's own script uses ``gt > 0`` without a crop for every split
  other than ``eigen``: ``eval.crop=none`` gives exactly that variant.
* ``cityscapes``: ManyDepth ``evaluate_depth.py`` -- the GT's bottom 25 % (ego-car hood) is cut
  (``gt[:round(0.75 h)]``), the prediction (made from the input image with the same bottom 25 %
  cut, as ManyDepth's test loader does) is resized to that size, then both are cropped to
  ``[256:, 192:1856]`` of the 1024x2048 frame (fractions ``1/4`` of the full height and
  ``0.09375 .. 0.90625`` of the width on other sizes); valid = ``1e-3 < gt < 80``; median scaling.
* ``nyu``: MonoIndoor++ / P2Net -- the standard crop ``[45:471, 41:601]`` of 480x640 (fractions
  elsewhere), valid = ``1e-3 < gt < 10``, median scaling, clamp to ``[1e-3, 10]``.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .metrics import METRIC_NAMES, compute_depth_errors, crop_mask, mean_errors, median_scale, scale_ratio_stats

__all__ = [
    "DepthProtocol",
    "protocol_for_split",
    "load_predictions",
    "load_gt_depths",
    "evaluate_depth_arrays",
    "predict_disparities",
    "format_metrics",
]

SPLITS = ("eigen", "eigen_benchmark", "cityscapes", "nyu")


@dataclass(frozen=True)
class DepthProtocol:
    """How one split is scored. ``crop``: garg | eigen | nyu | none | cityscapes;
    ``mask``: ``range`` (min < gt < max) or ``positive`` (gt > 0, Monodepth2's non-eigen branch)."""

    name: str
    crop: str
    mask: str
    min_depth: float
    max_depth: float
    median_scaling: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def protocol_for_split(split: str, *, crop: str = "auto", min_depth: float = 1e-3,
                       max_depth: float | None = None, median_scaling: bool = True) -> DepthProtocol:
    """The protocol of ``split`` (see module docstring); ``crop='auto'`` picks the split's own."""
    if split not in SPLITS:
        raise ValueError(f"unknown evaluation split {split!r} (expected one of {', '.join(SPLITS)})")
    default_crop = {"eigen": "garg", "eigen_benchmark": "garg", "cityscapes": "cityscapes", "nyu": "nyu"}[split]
    cap = 10.0 if split == "nyu" else 80.0
    c = default_crop if crop == "auto" else crop
    # Monodepth2's non-eigen branch: gt > 0, no crop (eigen_benchmark with eval.crop=none)
    mask = "positive" if (split == "eigen_benchmark" and c == "none") else "range"
    if c == "cityscapes" and split != "cityscapes":
        raise ValueError(f"crop 'cityscapes' only applies to split 'cityscapes', not {split!r}")
    if split == "cityscapes" and c != "cityscapes":
        raise ValueError("split 'cityscapes' uses ManyDepth's crop; set eval.crop to auto or cityscapes")
    return DepthProtocol(name=split, crop=c, mask=mask, min_depth=float(min_depth),
                         max_depth=float(max_depth if max_depth is not None else cap),
                         median_scaling=bool(median_scaling))


# ----------------------------------------------------------------------------- loading
def _as_map_list(arr: Any, path: str, what: str) -> list[np.ndarray]:
    """(N,H,W) / (N,1,H,W) array or object array of (H,W) maps -> list of float64 (H,W) maps."""
    if isinstance(arr, np.ndarray) and arr.dtype == object:
        maps = list(arr)
    else:
        a = np.asarray(arr)
        if a.ndim == 4 and a.shape[1] == 1:
            a = a[:, 0]
        if a.ndim != 3:
            raise ValueError(f"{path}: {what} must have shape (N, H, W) or (N, 1, H, W), got {a.shape}")
        maps = list(a)
    out = []
    for i, m in enumerate(maps):
        m = np.squeeze(np.asarray(m))
        if m.ndim != 2:
            raise ValueError(f"{path}: {what} #{i} must be a 2-D map, got shape {np.asarray(maps[i]).shape}")
        if not np.issubdtype(m.dtype, np.number):
            raise ValueError(f"{path}: {what} #{i} is not numeric (dtype {m.dtype})")
        out.append(m.astype(np.float64))
    return out


def load_predictions(path: str | os.PathLike, kind: str = "disp", key: str | None = None) -> list[np.ndarray]:
    """Read external predictions (Monodepth2 ``--ext_disp_to_eval`` style).

    ``.npy``: an (N,H,W) or (N,1,H,W) array. ``.npz``: the array under ``key`` if given, else the
    only array, else the first of ``data, disp, depth, pred``. ``kind`` is ``disp`` or ``depth``;
    values must be finite and > 0 (a disparity of 0 would be an infinite depth).
    """
    path = str(path)
    if kind not in ("disp", "depth"):
        raise ValueError(f"--pred-kind must be 'disp' or 'depth', got {kind!r}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: prediction file not found")
    from sa4depth.safeio import load_npy, load_npz, npz_names

    if path.endswith(".npz"):
        names = npz_names(path)
        if not names:
            raise ValueError(f"{path}: the .npz file holds no arrays")
        if key is not None:
            if key not in names:
                raise ValueError(f"{path}: no array {key!r} (has {names}); choose one with --pred-key")
            pick = key
        elif len(names) == 1:
            pick = names[0]
        else:
            pick = next((n for n in ("data", "disp", "depth", "pred") if n in names), None)
            if pick is None:
                raise ValueError(f"{path}: several arrays {names}; choose one with --pred-key")
        arr = load_npz(path, [pick])[pick]
    elif path.endswith(".npy"):
        arr = load_npy(path)
    else:
        raise ValueError(f"{path}: predictions must be a .npy or .npz file")
    maps = _as_map_list(arr, path, f"predicted {kind}")
    for i, m in enumerate(maps):
        if not np.all(np.isfinite(m)):
            raise ValueError(f"{path}: predicted {kind} #{i} contains NaN or inf")
        if np.any(m <= 0):
            raise ValueError(f"{path}: predicted {kind} #{i} has non-positive values (min {m.min():g})")
    return maps


def load_gt_depths(path: str | os.PathLike) -> list[np.ndarray]:
    """Read a Monodepth2-style ``gt_depths.npz`` (key ``data``: N maps in metres, 0 = invalid)."""
    path = str(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: ground-truth file not found")
    from sa4depth.safeio import load_npz, npz_names

    if not path.endswith(".npz"):
        raise ValueError(f"{path}: ground truth must be a .npz file with an array 'data' (Monodepth2's "
                         f"gt_depths.npz, as `sa4depth prepare` or the evaluation's --gt auto export it)")
    names = npz_names(path)
    if "data" not in names:
        raise ValueError(f"{path}: no array 'data' (has {names}); expected Monodepth2's gt_depths.npz")
    arr = load_npz(path, ["data"])["data"]
    maps = _as_map_list(arr, path, "GT depth")
    for i, m in enumerate(maps):
        if np.any(np.isnan(m)):
            raise ValueError(f"{path}: GT depth #{i} contains NaN")
    return maps


# ----------------------------------------------------------------------------- evaluation
def _resize(m: np.ndarray, h: int, w: int) -> np.ndarray:
    import cv2

    if m.shape == (h, w):
        return m.astype(np.float32)
    return cv2.resize(m.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)


def _cityscapes_crop(gt: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ManyDepth: cut GT's bottom 25 %, resize the prediction to it, crop ``[256:, 192:1856]``
    (of 1024x2048; fractions elsewhere)."""
    H, W = gt.shape
    gh = int(round(H * 0.75))
    gt = gt[:gh]
    pred = _resize(pred, gh, W)
    r0 = int(round(H * 256 / 1024))
    c0, c1 = int(round(W * 192 / 2048)), int(round(W * 1856 / 2048))
    return gt[r0:, c0:c1], pred[r0:, c0:c1]


def evaluate_depth_arrays(preds: Sequence[np.ndarray], gts: Sequence[np.ndarray], protocol: DepthProtocol,
                          pred_kind: str = "disp", pred_source: str = "predictions",
                          gt_source: str = "ground truth") -> dict[str, Any]:
    """Score predictions against GT maps under ``protocol``.

    Returns ``{"metrics": mean over images, "scale": statistics of the per-image ratios
    median(gt)/median(pred) (applied only with median scaling; for scale-aware models they are
    measured, not applied, so Table II's Scale Std exists for both halves; ``scale["applied"]``),
    "per_image": [{metric: value, "ratio": r, "valid": n}], "num_images", "skipped"}``.
    Images without any valid GT pixel are skipped and listed (never silently).
    """
    if len(preds) != len(gts):
        raise ValueError(f"{pred_source}: {len(preds)} predictions but {gt_source} has {len(gts)} images")
    if pred_kind not in ("disp", "depth"):
        raise ValueError(f"pred_kind must be 'disp' or 'depth', got {pred_kind!r}")
    per_image: list[dict[str, float]] = []
    ratios: list[float] = []
    skipped: list[int] = []
    for i, (p, g) in enumerate(zip(preds, gts)):
        g = np.asarray(g, dtype=np.float64)
        p = np.asarray(p, dtype=np.float64)
        if p.ndim != 2 or g.ndim != 2:
            raise ValueError(f"{pred_source}: image #{i}: prediction {p.shape} and GT {g.shape} must be 2-D")
        if protocol.crop == "cityscapes":
            g, p = _cityscapes_crop(g, p)
        else:
            p = _resize(p, *g.shape)
        depth = 1.0 / p if pred_kind == "disp" else p.astype(np.float64)
        if protocol.mask == "positive":
            valid = g > 0
        else:
            valid = (g > protocol.min_depth) & (g < protocol.max_depth)
        if protocol.crop not in ("cityscapes",):
            valid &= crop_mask(protocol.crop, g.shape)
        if not valid.any():
            skipped.append(i)
            continue
        gv, pv = g[valid], depth[valid]
        if not np.all(np.isfinite(pv)) or np.any(pv <= 0):
            raise ValueError(f"{pred_source}: image #{i}: non-finite or non-positive depth after resizing")
        measured = float(np.median(gv) / np.median(pv))  # the scale this image would need
        pv, _ = median_scale(gv, pv, protocol.min_depth, protocol.max_depth, protocol.median_scaling)
        err = compute_depth_errors(gv, pv)
        err["ratio"] = measured
        err["valid"] = int(valid.sum())
        per_image.append(err)
        ratios.append(measured)
    if not per_image:
        raise ValueError(f"{gt_source}: no image has valid GT pixels under protocol {protocol.name!r}")
    out: dict[str, Any] = {
        "metrics": mean_errors(per_image),
        "num_images": len(per_image),
        "skipped": skipped,
        "per_image": per_image,
    }
    out["scale"] = {**scale_ratio_stats(np.array(ratios)), "applied": bool(protocol.median_scaling)}
    return out


# ----------------------------------------------------------------------------- model inference
def predict_disparities(depth_net, images, *, min_depth: float, max_depth: float, batch_size: int = 8,
                        device: str = "cpu") -> list[np.ndarray]:
    """Run a Monodepth2-style depth net on images and return scaled disparities (as Monodepth2's
    ``evaluate_depth`` stores them: ``disp_to_depth(sigmoid)[0]``), one (h, w) map per image.

    ``images``: a float tensor/array (N, 3, H, W) in [0, 1], or a sequence of (3, H, W) tensors /
    (H, W, 3) uint8 arrays. Batched, ``torch.no_grad``.
    """
    import torch

    from sa4depth.geometry import disp_to_depth

    if isinstance(images, (list, tuple)):
        ims = [_to_chw(x) for x in images]
        batch = torch.stack(ims) if ims else torch.zeros(0)
    else:
        batch = _to_nchw(images)
    if batch.ndim != 4 or batch.shape[1] != 3:
        raise ValueError(f"test images must be (N, 3, H, W), got {tuple(batch.shape)}")
    out: list[np.ndarray] = []
    depth_net.eval().to(device)
    with torch.no_grad():
        for s in range(0, batch.shape[0], batch_size):
            x = batch[s:s + batch_size].to(device=device, dtype=torch.float32)
            disp = depth_net(x)[("disp", 0)]
            scaled, _ = disp_to_depth(disp, min_depth, max_depth)
            out.extend(scaled[:, 0].float().cpu().numpy())
    return out


def _to_chw(x):
    import torch

    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    if t.ndim == 3 and t.shape[-1] == 3 and t.shape[0] != 3:
        t = t.permute(2, 0, 1)
    if t.dtype == torch.uint8:
        t = t.float() / 255.0
    return t.float()


def _to_nchw(x):
    import torch

    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    if t.ndim == 4 and t.shape[-1] == 3 and t.shape[1] != 3:
        t = t.permute(0, 3, 1, 2)
    if t.dtype == torch.uint8:
        t = t.float() / 255.0
    return t.float()


def format_metrics(m: dict[str, float]) -> str:
    """Monodepth2's printout: a header row and a row of values."""
    head = " | ".join(f"{k:>8}" for k in METRIC_NAMES)
    vals = " | ".join(f"{m[k]:8.4f}" for k in METRIC_NAMES)
    return f"{head}\n{vals}"

