"""Paper figures drawn from result files and arrays (matplotlib, Agg). Never imports torch.

- Fig. 1 analogue: per-image median-scaling factors (``per_image[i].ratio`` of ``sa4depth evaluate
  depth`` JSONs) for several runs; the spread is the Table II "Scale Std".
- Figs. 3-5 analogue: input | predicted disparity per run | GT depth, one row per image.
- Fig. 6 analogue: the per-sequence trajectory plots written by ``sa4depth evaluate odometry``
  (``plots`` in its JSON), assembled into one figure.
- Fig. 10 analogue: feature maps as RGB of their first three principal components (PCA fitted on both
  frames jointly, so equal colours mean equal features, as the paper's Fig. 10) and confidence maps.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

__all__ = ["per_image_ratios", "plot_scale_factors", "montage", "odometry_plots", "plot_qualitative",
           "pca_rgb", "plot_features", "save_figure", "read_monitor_log", "plot_monitor"]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, out: str | os.PathLike, dpi: int = 120) -> Path:
    """Save atomically (tmp + rename) and close."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.stem + ".tmp" + out.suffix)
    fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
    _plt().close(fig)
    os.replace(tmp, out)
    return out


def _load(path: str | os.PathLike) -> dict:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: result file not found")
    try:
        with open(p) as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{p}: not valid JSON: {e}") from None


def per_image_ratios(path: str | os.PathLike) -> np.ndarray:
    """Median-scaling ratios (GT median / prediction median) per test image of a depth-eval JSON."""
    obj = _load(path)
    per = obj.get("per_image")
    if not isinstance(per, list) or not per:
        raise ValueError(f"{path}: no 'per_image' list (needs `sa4depth evaluate depth` without --scale-aware)")
    try:
        r = np.array([float(e["ratio"]) for e in per], dtype=np.float64)
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"{path}: per_image entries need a numeric 'ratio'") from None
    return r


def plot_scale_factors(series: Mapping[str, Sequence[float]], out: str | os.PathLike,
                       title: str = "Per-image depth scale factors (Fig. 1)") -> Path:
    """One line per run: the per-image scale factor normalised by its mean (so runs with different
    global scales compare), with its std in the legend (the Table II Scale Std uses the raw ratios)."""
    if not series:
        raise ValueError("plot_scale_factors: no series")
    plt = _plt()
    fig, (ax, axh) = plt.subplots(1, 2, figsize=(11, 3.4), gridspec_kw={"width_ratios": [3, 1]})
    for label, vals in series.items():
        v = np.asarray(vals, dtype=np.float64)
        if v.size == 0 or not np.all(np.isfinite(v)):
            raise ValueError(f"plot_scale_factors: series {label!r} is empty or not finite")
        n = v / v.mean()
        ax.plot(np.arange(v.size), n, marker=".", lw=0.8, label=f"{label} (std/mean {n.std():.3f}, raw std {v.std():.3f})")
        axh.hist(n, bins=min(30, max(5, v.size // 3)), alpha=0.5, label=label)
    ax.set_xlabel("test image")
    ax.set_ylabel("scale factor / mean")
    ax.set_title(title)
    ax.legend(fontsize=7)
    axh.set_xlabel("scale factor / mean")
    axh.set_ylabel("images")
    return save_figure(fig, out)


def montage(panels: Sequence[tuple[str, str | os.PathLike]], out: str | os.PathLike, title: str = "",
            ncols: int | None = None) -> Path:
    """Place existing PNGs side by side (titled)."""
    if not panels:
        raise ValueError("montage: no panels")
    plt = _plt()
    imgs = []
    for label, p in panels:
        if not Path(p).is_file():
            raise FileNotFoundError(f"{p}: panel image not found ({label})")
        imgs.append((label, plt.imread(str(p))))
    ncols = ncols or min(len(imgs), 4)
    nrows = math.ceil(len(imgs) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.5 * ncols, 4.2 * nrows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (label, im) in zip(axes.ravel(), imgs):
        ax.imshow(im)
        ax.set_title(label, fontsize=9)
    if title:
        fig.suptitle(title)
    return save_figure(fig, out)


def odometry_plots(path: str | os.PathLike) -> dict[str, str]:
    """``{sequence: png}`` of an odometry-eval JSON (relative paths resolved against the cwd)."""
    obj = _load(path)
    plots = obj.get("plots")
    if not isinstance(plots, dict) or not plots:
        raise ValueError(f"{path}: no 'plots' mapping (written by `sa4depth evaluate odometry`)")
    return {str(k): str(v) for k, v in sorted(plots.items())}


def _disp_vis(d: np.ndarray) -> np.ndarray:
    """Disparity scaled to [min, 95th percentile] -> [0, 1] (Monodepth2's vmax = 95th percentile)."""
    d = np.asarray(d, dtype=np.float64)
    if not d.size:
        return d
    lo, hi = float(d.min()), float(np.percentile(d, 95))
    return np.clip((d - lo) / max(hi - lo, 1e-12), 0, 1)


def plot_qualitative(images: Sequence[np.ndarray], preds: Mapping[str, Sequence[np.ndarray]],
                     out: str | os.PathLike, gts: Sequence[np.ndarray] | None = None,
                     title: str = "") -> Path:
    """Rows: images; columns: input (HxWx3 in [0,1]) | each run's disparity (HxW, magma) | GT depth."""
    n = len(images)
    if n == 0:
        raise ValueError("plot_qualitative: no images")
    for k, v in preds.items():
        if len(v) != n:
            raise ValueError(f"plot_qualitative: {k!r} has {len(v)} predictions for {n} images")
    plt = _plt()
    ncol = 1 + len(preds) + (1 if gts is not None else 0)
    fig, axes = plt.subplots(n, ncol, figsize=(3.2 * ncol, 1.3 * n + 0.6), squeeze=False)
    for i in range(n):
        axes[i, 0].imshow(np.clip(images[i], 0, 1))
        for j, (label, ps) in enumerate(preds.items(), start=1):
            axes[i, j].imshow(_disp_vis(ps[i]), cmap="magma", vmin=0, vmax=1)
            if i == 0:
                axes[i, j].set_title(label, fontsize=8)
        if gts is not None:
            g = np.asarray(gts[i], dtype=np.float64)
            inv = np.where(g > 0, 1.0 / np.maximum(g, 1e-6), 0.0)
            axes[i, -1].imshow(_disp_vis(inv), cmap="magma", vmin=0, vmax=1)
            if i == 0:
                axes[i, -1].set_title("GT (inverse depth)", fontsize=8)
        if i == 0:
            axes[i, 0].set_title("input", fontsize=8)
    for ax in axes.ravel():
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=9)
    return save_figure(fig, out)


def pca_rgb(features: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Project C x H x W feature maps onto the first 3 principal components of all their pixels
    together and min-max scale each component to [0, 1]: returns H x W x 3 images."""
    if not features:
        raise ValueError("pca_rgb: no feature maps")
    c = features[0].shape[0]
    flat = []
    for f in features:
        f = np.asarray(f, dtype=np.float64)
        if f.ndim != 3 or f.shape[0] != c:
            raise ValueError(f"pca_rgb: feature maps must be C x H x W with equal C, got {f.shape}")
        flat.append(f.reshape(c, -1).T)
    x = np.concatenate(flat, 0)
    mu = x.mean(0, keepdims=True)
    _, _, vt = np.linalg.svd(x - mu, full_matrices=False)
    k = min(3, vt.shape[0])
    proj = (x - mu) @ vt[:k].T
    if k < 3:
        proj = np.concatenate([proj, np.zeros((proj.shape[0], 3 - k))], 1)
    lo, hi = proj.min(0, keepdims=True), proj.max(0, keepdims=True)
    proj = (proj - lo) / np.maximum(hi - lo, 1e-12)
    out, i = [], 0
    for f in features:
        h, w = f.shape[1:]
        out.append(proj[i:i + h * w].reshape(h, w, 3))
        i += h * w
    return out


def plot_features(images: Sequence[np.ndarray], features: Sequence[np.ndarray], confidences: Sequence[np.ndarray],
                  out: str | os.PathLike, labels: Sequence[str] = ("reference t", "query t'")) -> Path:
    """Fig. 10: per frame (rows): image | PCA of the feature map | confidence map (jet: red = high)."""
    if not (len(images) == len(features) == len(confidences)):
        raise ValueError("plot_features: images, features and confidences must have the same length")
    rgbs = pca_rgb(features)
    plt = _plt()
    n = len(images)
    fig, axes = plt.subplots(n, 3, figsize=(10, 1.6 * n + 0.6), squeeze=False)
    for i in range(n):
        axes[i, 0].imshow(np.clip(images[i], 0, 1))
        axes[i, 1].imshow(rgbs[i])
        axes[i, 2].imshow(np.asarray(confidences[i]).squeeze(), cmap="jet", vmin=0, vmax=1)
        axes[i, 0].set_ylabel(labels[i] if i < len(labels) else "")
    for j, t in enumerate(("image", "feature map (PCA)", "confidence")):
        axes[0, j].set_title(t, fontsize=9)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    return save_figure(fig, out)


# ----------------------------------------------------------------------------- the scale-alignment monitor
MONITOR_PANELS = (
    ("abs_rel", "validation Abs Rel (median scaled)", None),
    ("align_std", "alignment std across pairs", ("net_align_std", "ref_align_std")),
    ("trans_err", "translation error vs depth-scaled GT", ("net_trans_err", "ref_trans_err")),
    ("ref_worse_frac", "pairs the refinement made worse", None),
    ("damping", "damping lambda (Eq. 10)", None),
)


def read_monitor_log(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The ``mon/*`` columns of a run's log.csv as arrays over the monitored steps (NaN where empty)."""
    import csv

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: log.csv not found")
    with open(p, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("mon/abs_rel")]
    if not rows:
        raise ValueError(f"{p}: no scale-monitor rows (train.monitor_every was 0?)")
    keys = [k for k in rows[0] if k.startswith("mon/")]

    def num(v: str | None) -> float:
        try:
            return float(v) if v not in (None, "") else math.nan
        except ValueError:
            return math.nan

    out = {"step": np.array([num(r["step"]) for r in rows])}
    for k in keys:
        out[k[4:]] = np.array([num(r.get(k)) for r in rows])
    return out


def plot_monitor(groups: Mapping[str, Sequence[Mapping[str, np.ndarray]]], out: str | os.PathLike,
                 title: str = "") -> Path:
    """Curves of the scale-alignment monitor against step: one colour per group (e.g. Md2-18,
    Md2-18 + SA4Depth), a thin line per seed and a thick one for the mean over seeds; pose panels
    draw the pose net's value solid and the refined pose's dashed."""
    plt = _plt()
    ncols = 3
    nrows = -(-len(MONITOR_PANELS) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.0 * ncols, 3.8 * nrows), squeeze=False)
    axes = axes.ravel()
    for ax in axes[len(MONITOR_PANELS):]:
        ax.set_visible(False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (key, label, pair) in zip(axes, MONITOR_PANELS):
        for gi, (name, runs) in enumerate(groups.items()):
            c = colours[gi % len(colours)]
            series = [(f"{name}, pose net", pair[0], "-"),
                      (f"{name}, refined", pair[1], "--")] if pair else [(name, key, "-")]
            for lab, col, ls in series:
                curves = [(r["step"], r[col]) for r in runs if col in r and np.isfinite(r[col]).any()]
                if not curves:
                    continue
                for st, v in curves:
                    ax.plot(st, v, ls, color=c, lw=0.6, alpha=0.35)
                n = min(len(st) for st, _ in curves)
                mean = np.nanmean(np.stack([v[:n] for _, v in curves]), axis=0)
                ax.plot(curves[0][0][:n], mean, ls, color=c, lw=2.0, label=f"{lab} (n={len(curves)})")
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("step")
        if key == "damping":
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return save_figure(fig, out)
