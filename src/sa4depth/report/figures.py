"""Paper figures drawn from result files and arrays (matplotlib, Agg). Never imports torch.

- Fig. 1 analogue: per-image median-scaling factors (``per_image[i].ratio`` of ``sa4depth evaluate
  depth`` JSONs) for several runs; the spread is the Table II "Scale Std".
- Figs. 3-5 analogue: input | predicted disparity per run | GT depth, one row per image.
- Fig. 6 analogue: top views (x-z plane, as KITTI's plots) of the trajectories ``sa4depth evaluate
  odometry`` writes (KITTI pose files under ``<eval>_traj/``, GT from the pose file named in the
  JSON's provenance), one axes per sequence, GT and every method overlaid after the same Sim(3)
  (7-DoF Umeyama) alignment as the evaluation.
- Fig. 10 analogue: feature maps as RGB of their first three principal components (PCA fitted on both
  frames jointly, so equal colours mean equal features, as the paper's Fig. 10) and confidence maps
  with a colour bar.

Every figure carries a footer naming its data, scale and seeds (``data: synthetic, scale: smoke,
seeds: 0``), read from the result files / run directories it was drawn from (:func:`source_caption`).
"""
from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from sa4depth.files import atomic_path

__all__ = ["per_image_ratios", "plot_scale_factors", "montage", "odometry_plots", "plot_qualitative",
           "pca_rgb", "plot_features", "save_figure", "read_monitor_log", "plot_monitor", "source_info",
           "source_caption", "align_sim3", "odometry_trajectories", "plot_trajectories", "ledger_rows",
           "plot_ledger"]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, out: str | os.PathLike, dpi: int = 120, unique: bool = False) -> Path:
    """Save atomically (``<stem>.tmp<suffix>`` + rename: the format follows the suffix; ``unique``: a
    per-process temporary name, for writers that may run at once) and close."""
    out = Path(out)
    with atomic_path(out, keep_suffix=True, unique=unique) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
        _plt().close(fig)
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


# ----------------------------------------------------------------------------- what a figure was drawn from
_RUN_PATH = re.compile(r"(?:^|/)(?P<data>[^/]+)/(?P<scale>[^/]+)/(?P<exp>[^/]+)/seed(?P<seed>\d+)(?:/|$)")


def source_info(path: str | os.PathLike) -> dict[str, object]:
    """``{"data", "scale", "seed"}`` of a result JSON (its provenance: ``config.meta`` and ``seed``) or
    a run directory / file in one (``config.yaml``); the path layout
    ``<data>/<scale>/<experiment>/seed<N>`` (:mod:`sa4depth.pipeline`) fills what is missing."""
    p = Path(path)
    cfg: dict = {}
    seed = None
    try:
        if p.is_file() and p.suffix == ".json":
            obj = _load(p)
            prov = obj.get("provenance") if isinstance(obj.get("provenance"), dict) else {}
            cfg = prov.get("config") if isinstance(prov.get("config"), dict) else {}
            seed = prov.get("seed")
        else:
            d = p if p.is_dir() else p.parent
            if (d / "config.yaml").is_file():
                import yaml

                cfg = yaml.safe_load((d / "config.yaml").read_text()) or {}
    except (OSError, ValueError):
        cfg = {}
    meta = cfg.get("meta") if isinstance(cfg.get("meta"), dict) else {}
    info: dict[str, object] = {"data": meta.get("data"), "scale": meta.get("scale"),
                               "seed": seed if seed is not None else cfg.get("seed")}
    m = _RUN_PATH.search(p.absolute().as_posix())
    if m:
        info["data"] = info["data"] or m["data"]
        info["scale"] = info["scale"] or m["scale"]
        if info["seed"] is None:
            info["seed"] = int(m["seed"])
    return info


def source_caption(paths: Sequence[str | os.PathLike]) -> str:
    """``data: synthetic, scale: smoke, seeds: 0`` over the files / run directories a figure reads
    (several values are listed; ``?`` where none could be read)."""
    from sa4depth.report.tables import data_caption

    infos = [source_info(p) for p in paths]

    def uniq(key: str) -> list:
        return list(dict.fromkeys(i[key] for i in infos if i.get(key) is not None))

    data = ", ".join(map(str, uniq("data"))) or "?"
    scale = ", ".join(map(str, uniq("scale"))) or "?"
    seeds = sorted(uniq("seed"), key=lambda x: (not str(x).isdigit(), int(x) if str(x).isdigit() else 0, str(x)))
    return data_caption(data, scale, seeds or ["?"])


def _footer(fig, caption: str | None) -> None:
    """The figure's data/scale/seeds line under the axes (kept by ``bbox_inches="tight"``)."""
    if caption:
        fig.text(0.5, -0.01, caption, ha="center", va="top", fontsize=8, color="0.25")


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
                       title: str = "Per-image depth scale factors (Fig. 1)", caption: str | None = None) -> Path:
    """One line per run: the per-image scale factor normalised by its mean (so runs with different
    global scales compare), with its std in the legend (the Table II Scale Std uses the raw ratios);
    right: their histograms on shared bins (integer image counts), with a legend."""
    if not series:
        raise ValueError("plot_scale_factors: no series")
    from matplotlib.ticker import MaxNLocator

    plt = _plt()
    fig, (ax, axh) = plt.subplots(1, 2, figsize=(11, 3.6), gridspec_kw={"width_ratios": [3, 1.2]},
                                 layout="tight")
    normed = {}
    for label, vals in series.items():
        v = np.asarray(vals, dtype=np.float64)
        if v.size == 0 or not np.all(np.isfinite(v)):
            raise ValueError(f"plot_scale_factors: series {label!r} is empty or not finite")
        normed[label] = (v, v / v.mean())
    allv = np.concatenate([n for _, n in normed.values()])
    nmax = max(v.size for v, _ in normed.values())
    bins = np.histogram_bin_edges(allv, bins=min(30, max(5, nmax // 3)))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (label, (v, n)) in enumerate(normed.items()):
        c = colours[i % len(colours)]
        ax.plot(np.arange(v.size), n, marker=".", lw=0.8, color=c,
                label=f"{label} (std/mean {n.std():.3f}, raw std {v.std():.3f})")
        axh.hist(n, bins=bins, alpha=0.5, color=c, edgecolor=c, label=label)
    ax.axhline(1.0, color="0.5", lw=0.6, ls=":")
    ax.set_xlabel("test image")
    ax.set_ylabel("scale factor / mean")
    ax.set_title(title, fontsize=10)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=7)
    axh.set_xlabel("scale factor / mean")
    axh.set_ylabel("images (count)")
    axh.set_title("histogram", fontsize=10)
    axh.yaxis.set_major_locator(MaxNLocator(integer=True))
    axh.legend(fontsize=7)
    _footer(fig, caption)
    return save_figure(fig, out)


def montage(panels: Sequence[tuple[str, str | os.PathLike]], out: str | os.PathLike, title: str = "",
            ncols: int | None = None, caption: str | None = None) -> Path:
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
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.5 * ncols, 4.2 * nrows), squeeze=False, layout="none")
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (label, im) in zip(axes.ravel(), imgs):
        ax.imshow(im)
        ax.set_title(label, fontsize=9)
    if title:
        fig.suptitle(title)
    _footer(fig, caption)
    return save_figure(fig, out)


def align_sim3(gt: np.ndarray, est: np.ndarray) -> np.ndarray:
    """Camera positions (N, 3) of ``est`` (N, 4, 4) after the 7-DoF (Sim(3)) least-squares alignment
    onto ``gt``'s positions: Umeyama's method as evo implements it (``align(correct_scale=True)``)."""
    from evo.core.geometry import umeyama_alignment

    src = np.asarray(est, dtype=np.float64)[:, :3, 3]
    dst = np.asarray(gt, dtype=np.float64)[:, :3, 3]
    if src.shape != dst.shape:
        raise ValueError(f"align_sim3: {len(src)} estimated poses but {len(dst)} GT poses")
    if len(src) < 2 or ((src - src.mean(0)) ** 2).sum() / len(src) < 1e-12:
        raise ValueError("align_sim3: the estimated trajectory does not move: no alignment possible")
    R, t, s = umeyama_alignment(src.T, dst.T, with_scale=True)
    return (s * (R @ src.T)).T + t


def _resolve(p: str | os.PathLike, rel_to: Path) -> Path:
    """A path recorded in a result JSON: as written (relative to the working directory the evaluation
    ran in, the repository root), else relative to the JSON's folder."""
    q = Path(p)
    if q.is_absolute() or q.exists():
        return q
    return rel_to / q


def odometry_trajectories(path: str | os.PathLike) -> dict[str, tuple[np.ndarray, np.ndarray, dict]]:
    """``{sequence: (gt (N,4,4), estimate (N,4,4), per-sequence metrics)}`` of an odometry-eval JSON.

    The estimate is the KITTI pose file ``sa4depth evaluate odometry`` wrote (``trajectories``: a
    folder ``<seq>.txt`` per sequence for ``--run``, else the ``--pred-poses`` file; ``<eval>_traj/``
    next to the JSON if the recorded path is gone); N-1 relative poses are chained from the GT's first
    pose, as the evaluation does. GT: the ``poses/<seq>.txt`` in the JSON's ``provenance.data_files``
    (or the only data file), else ``<config data.roots.kitti_odom>/poses/<seq>.txt``."""
    from sa4depth.evaluate.odometry import chain_relative_poses, read_kitti_poses

    p = Path(path)
    obj = _load(p)
    seqs = obj.get("sequences")
    if not isinstance(seqs, dict) or not seqs:
        raise ValueError(f"{p}: no 'sequences' (written by `sa4depth evaluate odometry`)")
    prov = obj.get("provenance") if isinstance(obj.get("provenance"), dict) else {}
    data_files = [str(f) for f in prov.get("data_files") or []]
    cfg = prov.get("config") if isinstance(prov.get("config"), dict) else {}
    odom_root = ((cfg.get("data") or {}).get("roots") or {}).get("kitti_odom")
    rec = obj.get("trajectories")
    cands = [_resolve(rec, p.parent)] if rec else []
    cands.append(p.parent / f"{p.stem}_traj")
    out: dict[str, tuple[np.ndarray, np.ndarray, dict]] = {}
    for seq in sorted(seqs):
        gt_file = next((f for f in data_files if Path(f).name == f"{seq}.txt" and Path(f).parent.name == "poses"),
                       data_files[0] if len(data_files) == 1 else None)
        if gt_file is None and odom_root:
            gt_file = str(Path(odom_root) / "poses" / f"{seq}.txt")
        if gt_file is None:
            raise ValueError(f"{p}: sequence {seq}: no GT pose file recorded (provenance.data_files)")
        gt = read_kitti_poses(_resolve(gt_file, p.parent))
        est_file = None
        for c in cands:
            f = c / f"{seq}.txt" if c.is_dir() else c
            if f.is_file():
                est_file = f
                break
        if est_file is None:
            raise FileNotFoundError(f"{p}: sequence {seq}: estimated trajectory not found (looked in "
                                    f"{', '.join(str(c) for c in cands)})")
        est = read_kitti_poses(est_file)
        if est.shape[0] == gt.shape[0] - 1:
            est = chain_relative_poses(est, start=gt[0])
        if est.shape[0] != gt.shape[0]:
            raise ValueError(f"{est_file}: {est.shape[0]} poses but the GT of sequence {seq} has {gt.shape[0]}")
        out[str(seq)] = (gt, est, seqs[seq] if isinstance(seqs[seq], dict) else {})
    return out


def plot_trajectories(gts: Mapping[str, np.ndarray], estimates: Mapping[str, Mapping[str, np.ndarray]],
                      out: str | os.PathLike, title: str = "", caption: str | None = None,
                      metrics: Mapping[str, Mapping[str, Mapping]] | None = None) -> Path:
    """Fig. 6: one axes per sequence, top view (x right, z forward: the KITTI plots' x-z plane) of
    the GT (black, dashed) and every method's estimate, each Sim(3)-aligned onto the GT; equal
    aspect, one legend for the figure. ``estimates``: ``{method: {sequence: (N, 4, 4) poses}}``;
    ``metrics``: ``{method: {sequence: {"t_err": ..., "r_err": ...}}}`` for the axes' text."""
    if not gts:
        raise ValueError("plot_trajectories: no sequences")
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    plt = _plt()
    seqs = list(gts)
    n = len(seqs)
    ncols = min(n, 2)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 5.0 * nrows + 0.5), squeeze=False,
                             layout="tight")
    fig.get_layout_engine().set(rect=(0, 0.05, 1, 1))  # room for the legend below
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    colours = ["tab:blue", "tab:red", "tab:green", "tab:orange", "tab:purple", "tab:brown"]
    handles = [Line2D([], [], color="black", ls="--", lw=1.4, label="GT")]
    handles += [Line2D([], [], color=colours[i % len(colours)], lw=1.4, label=str(m))
                for i, m in enumerate(estimates)]
    for ax, seq in zip(axes.ravel(), seqs):
        gt = np.asarray(gts[seq], dtype=np.float64)
        ax.plot(gt[:, 0, 3], gt[:, 2, 3], "--", color="black", lw=1.4, zorder=3)
        ax.plot(gt[0, 0, 3], gt[0, 2, 3], "o", color="black", ms=5, zorder=4)
        lines = []
        for i, (m, per_seq) in enumerate(estimates.items()):
            if seq not in per_seq:
                continue
            xyz = align_sim3(gt, np.asarray(per_seq[seq], dtype=np.float64))
            ax.plot(xyz[:, 0], xyz[:, 2], "-", color=colours[i % len(colours)], lw=1.2, zorder=2)
            mm = ((metrics or {}).get(m) or {}).get(seq) or {}
            if "t_err" in mm and "r_err" in mm:
                lines.append(f"{m}: t_err {mm['t_err']:.2f}%, r_err {mm['r_err']:.2f} deg/100m")
        ax.set_aspect("equal", adjustable="datalim")
        ax.set_title(f"sequence {seq}", fontsize=10, loc="center", pad=6 + 9 * len(lines))
        ax.set_xlabel("x [m]")
        ax.set_ylabel("z [m]")
        ax.xaxis.set_major_locator(MaxNLocator(nbins=6))
        ax.yaxis.set_major_locator(MaxNLocator(nbins=6))
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        if lines:   # under the title, not over the trajectories
            ax.text(0.5, 1.01, "\n".join(lines), transform=ax.transAxes, va="bottom", ha="center", fontsize=7,
                    color="0.2")
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=9, frameon=False,
               bbox_to_anchor=(0.5, 0.0))
    if title:
        fig.suptitle(title, fontsize=11)
    _footer(fig, caption)
    return save_figure(fig, out)


def _disp_vis(d: np.ndarray) -> np.ndarray:
    """Disparity scaled to [min, 95th percentile] -> [0, 1] (Monodepth2's vmax = 95th percentile)."""
    d = np.asarray(d, dtype=np.float64)
    if not d.size:
        return d
    lo, hi = float(d.min()), float(np.percentile(d, 95))
    return np.clip((d - lo) / max(hi - lo, 1e-12), 0, 1)


def plot_qualitative(images: Sequence[np.ndarray], preds: Mapping[str, Sequence[np.ndarray]],
                     out: str | os.PathLike, gts: Sequence[np.ndarray] | None = None,
                     title: str = "", caption: str | None = None) -> Path:
    """Rows: images; columns: input (HxWx3 in [0,1]) | each run's disparity (HxW, magma) | GT depth."""
    n = len(images)
    if n == 0:
        raise ValueError("plot_qualitative: no images")
    for k, v in preds.items():
        if len(v) != n:
            raise ValueError(f"plot_qualitative: {k!r} has {len(v)} predictions for {n} images")
    plt = _plt()
    ncol = 1 + len(preds) + (1 if gts is not None else 0)
    fig, axes = plt.subplots(n, ncol, figsize=(3.2 * ncol, 1.3 * n + 0.6), squeeze=False, layout="none")
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
    _footer(fig, caption)
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
                  out: str | os.PathLike, labels: Sequence[str] = ("reference t", "query t'"),
                  caption: str | None = None, title: str = "") -> Path:
    """Fig. 10: per frame (rows): image | PCA of the feature map | confidence map (jet, 0..1: red =
    high), with one colour bar for the confidence column."""
    if not (len(images) == len(features) == len(confidences)):
        raise ValueError("plot_features: images, features and confidences must have the same length")
    rgbs = pca_rgb(features)
    plt = _plt()
    n = len(images)
    h, w = np.asarray(images[0]).shape[:2]
    panel_w = 3.0   # inches per panel; rows as high as the images (plus titles), no empty bands
    fig, axes = plt.subplots(n, 3, figsize=(3 * panel_w + 1.0, n * (panel_w * h / max(w, 1) + 0.3) + 0.8),
                             squeeze=False, layout="constrained")
    im = None
    for i in range(n):
        axes[i, 0].imshow(np.clip(images[i], 0, 1))
        axes[i, 1].imshow(rgbs[i])
        im = axes[i, 2].imshow(np.asarray(confidences[i]).squeeze(), cmap="jet", vmin=0, vmax=1)
        axes[i, 0].set_ylabel(labels[i] if i < len(labels) else "")
    for j, t in enumerate(("image", "feature map (PCA)", "confidence")):
        axes[0, j].set_title(t, fontsize=9)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    cb = fig.colorbar(im, ax=list(axes[:, 2]), fraction=0.04, pad=0.02, aspect=12 * n)
    cb.set_label("confidence", fontsize=8)
    cb.set_ticks([0.0, 0.25, 0.5, 0.75, 1.0])
    cb.ax.tick_params(labelsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    _footer(fig, caption)
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


def curve_summary(groups: Mapping[str, Sequence[Mapping[str, np.ndarray]]], key: str = "abs_rel",
                  window: int = 200) -> dict:
    """Per group (its seeds): the mean over seeds of monitor column ``key`` at each step that every
    seed logged, and the least-squares slope of that mean curve in consecutive ``window``-step
    windows [0, w], [w, 2w], ... (per step; a knee is where it flattens). Seeds with different
    monitor steps are compared on the steps they share."""
    if window <= 0:
        raise ValueError(f"window={window!r}: a positive number of steps")
    out = {}
    for name, runs in groups.items():
        curves = [(r["step"], r[key]) for r in runs if key in r]
        if not curves:
            raise ValueError(f"{name}: no monitor column {key!r} in its runs")
        common = sorted(set.intersection(*(set(st[np.isfinite(v)].tolist()) for st, v in curves)))
        if not common:
            raise ValueError(f"{name}: its runs share no monitored step with a value of {key!r}")
        # the last finite value of a step (a resumed run may log a step twice)
        per_seed = np.stack([np.array([v[np.flatnonzero((st == s) & np.isfinite(v))[-1]] for s in common])
                             for st, v in curves])
        mean = per_seed.mean(axis=0)
        steps = np.array(common)
        slopes = []
        for lo in range(0, int(steps.max()), window):
            sel = (steps >= lo) & (steps <= lo + window)
            if sel.sum() >= 2:
                slopes.append({"from": lo, "to": lo + window,
                               "slope_per_step": float(np.polyfit(steps[sel], mean[sel], 1)[0])})
        out[name] = {"seeds": len(curves), "key": key, "steps": [int(x) for x in steps],
                     "mean": [float(x) for x in mean], "per_seed": per_seed.tolist(), "slopes": slopes}
    return out


def plot_monitor(groups: Mapping[str, Sequence[Mapping[str, np.ndarray]]], out: str | os.PathLike,
                 title: str = "", caption: str | None = None) -> Path:
    """Curves of the scale-alignment monitor against step: one colour per group (e.g. Md2-18,
    Md2-18 + SA4Depth), a thin line per seed and a thick one for the mean over seeds; pose panels
    draw the pose net's value solid and the refined pose's dashed."""
    plt = _plt()
    ncols = 3
    nrows = -(-len(MONITOR_PANELS) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.0 * ncols, 3.8 * nrows), squeeze=False, layout="tight")
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
        if not ax.lines:  # e.g. the refinement's panels for baseline runs only
            ax.text(0.5, 0.5, "not logged by these runs", ha="center", va="center", transform=ax.transAxes,
                    fontsize=9, color="0.4")
            ax.set_xticks([])
            ax.set_yticks([])
            continue
        if key == "damping":
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=11)
    _footer(fig, caption)
    return save_figure(fig, out)


def ledger_rows(ledger: Mapping) -> list[dict]:
    """One row per comparison of a claims ledger (``claims.json``), in the ledger's order, for a forest
    plot on one axis: the mean paired difference and its 95 % and family intervals, turned towards the
    paper's claim (positive = the direction the paper claims: b - a where it claims a < b) and divided
    by |mean of b| (so metrics of different units share the axis, in % of the compared row). A
    comparison whose b mean is 0 or not finite cannot be scaled and is left out."""
    rows = []
    for c in (*ledger.get("claims", []), *ledger.get("pending", [])):  # a pending claim: its answered comparisons
        for m in c.get("comparisons") or []:
            b = [float(v) for v in m.get("b_values", [])]
            bmean = sum(b) / len(b) if b else math.nan
            if not math.isfinite(bmean) or bmean == 0:
                continue
            sign = -1.0 if m.get("better") == "lower" else 1.0
            scale = 100.0 * sign / abs(bmean)

            def conv(iv):
                return sorted((iv[0] * scale, iv[1] * scale)) if iv else None

            label = m.get("label") or (f"{m['metric']}: {m['a']} vs {m['b']}" if "a" in m and "b" in m else m["metric"])
            rows.append({"claim": c["id"], "verdict": c.get("verdict", "pending"), "label": label,
                         "outcome": m.get("outcome"), "n": m.get("n", len(b)),
                         "x": float(m["mean_diff"]) * scale, "ci95": conv(m.get("ci95")),
                         "ci_family": conv(m.get("ci_family"))})
    return rows


def plot_ledger(ledger: Mapping, out: str | os.PathLike, title: str = "", caption: str | None = None,
                unique: bool = False, clip: float = 150.0) -> Path:
    """The ledger's comparisons as a forest plot (:func:`ledger_rows`): a dot at the mean paired
    difference towards the paper's claim, a thick bar for the Bonferroni family interval the verdict
    uses and a thin one for the 95 % interval; green where the comparison supports the claim, red
    where it opposes it, grey where it is unclear; the axis ends at +-``clip`` % (a triangle marks an
    interval going on beyond it). Pending claims are named in the title; their answered comparisons are
    plotted with the verdict 'pending'."""
    plt = _plt()
    rows = ledger_rows(ledger)
    colour = {"supports": "tab:green", "opposes": "tab:red"}
    fig, ax = plt.subplots(figsize=(12.0, 1.2 + 0.32 * max(1, len(rows))), layout="tight")
    ys = list(range(len(rows)))[::-1]
    reach = max([abs(v) for r in rows for v in (r["x"], *(r["ci_family"] or ()), *(r["ci95"] or ()))] or [1.0])
    lim = min(reach, clip) * 1.05

    def clipped(iv):
        return [max(-lim, min(lim, v)) for v in iv]

    for y, r in zip(ys, rows):
        c = colour.get(r["outcome"], "0.45")
        if r["ci95"]:
            ax.plot(clipped(r["ci95"]), [y, y], color=c, lw=1.0)
        if r["ci_family"]:
            ax.plot(clipped(r["ci_family"]), [y, y], color=c, lw=3.0, alpha=0.45, solid_capstyle="butt")
            for v, mk in ((r["ci_family"][0], "<"), (r["ci_family"][1], ">")):
                if abs(v) > lim:  # the interval goes on beyond the axis
                    ax.plot([math.copysign(lim, v)], [y], mk, color=c, ms=5)
        if abs(r["x"]) <= lim:
            ax.plot([r["x"]], [y], "o", color=c, ms=5)
    ax.set_xlim(-lim, lim)
    ax.axvline(0.0, color="0.2", lw=0.8)
    ax.set_yticks(ys)
    ax.set_yticklabels([f"{r['claim']} ({r['verdict']}): {r['label']} (n={r['n']})" for r in rows], fontsize=8)
    ax.set_xlabel("mean paired difference towards the paper's claim, % of the compared row's mean\n"
                  "(thick: the family interval the verdict uses; thin: 95 %; green supports, red opposes, grey unclear; "
                  "a triangle: the interval goes on beyond the axis)",
                  fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    if not rows:
        ax.text(0.5, 0.5, "no claim computed yet", ha="center", va="center", transform=ax.transAxes, color="0.4")
    pending = [p["id"] + (f" ({len(p['comparisons'])} of {p.get('n_comparisons', '?')} comparisons shown)"
                          if p.get("comparisons") else "") for p in ledger.get("pending", [])]
    if pending:
        ax.set_title(("" if not title else title + "\n") + f"pending: {', '.join(pending)}", fontsize=9)
    elif title:
        ax.set_title(title, fontsize=10)
    _footer(fig, caption)
    return save_figure(fig, out, unique=unique)
