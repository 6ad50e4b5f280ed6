"""The paper figures as a library: result files / run directories in, one PNG out.

``sa4depth figure KIND`` only parses its options and calls these; each takes plain paths and
labels (``pairs``: ``(label, path)`` in legend order) and returns the written PNG's path. Drawing
lives in :mod:`sa4depth.report.figures` (matplotlib, never torch); here the inputs are gathered:
result JSONs and trajectory files are read, and for :func:`qualitative_figure` and
:func:`features_figure` the networks of finished runs are loaded and run (torch imported inside).
Every figure's footer names the data, scale and seeds of its sources
(:func:`sa4depth.report.figures.source_caption`). A montage of finished PNGs is
:func:`sa4depth.report.figures.montage` itself.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

__all__ = ["scale_factors_figure", "trajectories_figure", "monitor_figure", "qualitative_figure", "features_figure",
           "ledger_figure"]

Pairs = Sequence[tuple[str, "str | os.PathLike"]]


def scale_factors_figure(pairs: Pairs, out: str | os.PathLike) -> Path:
    """Fig. 1: per-image median-scaling factors of depth-evaluation JSONs (``sa4depth evaluate depth``)."""
    from sa4depth.report import figures as F

    series = {label: F.per_image_ratios(p) for label, p in pairs}
    return F.plot_scale_factors(series, out, caption=F.source_caption([p for _, p in pairs]))


def trajectories_figure(pairs: Pairs, out: str | os.PathLike) -> Path:
    """Fig. 6 from the trajectory files of each odometry-evaluation JSON: one axes per sequence, GT
    (read once per sequence; it must agree between evaluations) and every method overlaid."""
    import numpy as np

    from sa4depth.report import figures as F

    gts: dict[str, np.ndarray] = {}
    estimates: dict[str, dict[str, np.ndarray]] = {}
    metrics: dict[str, dict[str, dict]] = {}
    for label, p in pairs:
        for seq, (gt, est, m) in F.odometry_trajectories(p).items():
            if seq in gts and (gts[seq].shape != gt.shape or not np.allclose(gts[seq], gt, atol=1e-6)):
                raise ValueError(f"{p}: the GT of sequence {seq} differs from that of the other evaluations")
            gts.setdefault(seq, gt)
            estimates.setdefault(label, {})[seq] = est
            metrics.setdefault(label, {})[seq] = m
    gts = dict(sorted(gts.items()))
    title = (f"KITTI Odometry sequence{'s' if len(gts) > 1 else ''} {', '.join(gts)}: trajectories "
             "(top view, 7-DoF Sim(3)-aligned to GT) (Fig. 6)")
    return F.plot_trajectories(gts, estimates, out, title=title, metrics=metrics,
                               caption=F.source_caption([p for _, p in pairs]))


def monitor_figure(pairs: Pairs, out: str | os.PathLike, title: str = "",
                   summary: str | os.PathLike | None = None, window: int = 200) -> Path:
    """Scale-alignment monitor curves against step from run directories (or their log.csv); the
    runs of a repeated label (its seeds) are drawn together. ``summary``: also write a JSON of each
    label's mean validation Abs Rel curve and its slope per ``window`` steps
    (:func:`sa4depth.report.figures.curve_summary`), with the source files and the git commit."""
    from sa4depth.report import figures as F

    groups: dict[str, list] = {}
    sources: dict[str, list] = {}
    for label, path in pairs:
        p = Path(path)
        log = p / "log.csv" if p.is_dir() else p
        groups.setdefault(label, []).append(F.read_monitor_log(log))
        sources.setdefault(label, []).append(str(log))
    if summary is not None:
        from sa4depth.evaluate.provenance import git_info
        from sa4depth.files import write_json_atomic

        curves = F.curve_summary(groups, window=window)
        for label, rec in curves.items():
            rec["sources"] = sources[label]
        write_json_atomic(summary, {"curves": curves, "window": window, "git": git_info()})
    return F.plot_monitor(groups, out, title, caption=F.source_caption([p for _, p in pairs]))


def qualitative_figure(runs: Pairs, out: str | os.PathLike, split: str | None = None, num: int = 3,
                       device: str = "auto") -> Path:
    """Figs. 3-5: input | predicted disparity of each run's depth net | GT, for ``num`` evenly spaced
    test images of ``split`` (default: the first run's ``data.eval_split``)."""
    import numpy as np
    import torch

    from sa4depth.data import iter_gt_depths, load_test_images
    from sa4depth.device import resolve_device
    from sa4depth.models import load_depth_model
    from sa4depth.models.io import run_model_path
    from sa4depth.report.figures import plot_qualitative, source_caption

    device = resolve_device(device)
    preds: dict[str, list] = {}
    images: list = []
    gts: list | None = []
    split_used = split
    loaded: dict[tuple[str, str], list] = {}  # runs that read the same data and split share one load
    for k, (label, rd) in enumerate(runs):
        net, cfg = load_depth_model(run_model_path(rd), device)
        split_used = split or cfg.data.eval_split
        key = (split_used, json.dumps(cfg.to_dict()["data"], sort_keys=True, default=str))
        if key not in loaded:
            loaded[key] = list(load_test_images(cfg, split_used))
        all_imgs = loaded[key]
        if not all_imgs:
            raise ValueError(f"{rd}: split {split_used!r} has no test images")
        idx = np.unique(np.linspace(0, len(all_imgs) - 1, max(1, num)).round().astype(int))
        sel = [all_imgs[i][0] for i in idx]
        with torch.no_grad():
            batch = torch.stack(sel).to(device)
            disp = net(batch)[("disp", 0)][:, 0].cpu().numpy()
        preds[label] = list(disp)
        if k == 0:
            images = [im.permute(1, 2, 0).numpy() for im in sel]
            all_gt = [g for _, g in iter_gt_depths(cfg, split_used)]
            gts = [all_gt[i] for i in idx] if len(all_gt) == len(all_imgs) else None
    return plot_qualitative(images, preds, out, gts=gts,
                            title=f"{split_used}: predicted disparity (normalised per image)",
                            caption=source_caption([rd for _, rd in runs]))


def features_figure(run: str | os.PathLike, out: str | os.PathLike, index: int = 0) -> Path:
    """Fig. 10: feature PCA and confidence maps of an SA4Depth run's learned feature net on validation
    sample ``index`` (reference frame and its first non-zero neighbour)."""
    import torch

    from sa4depth.data import build_dataset
    from sa4depth.models import load_model_file
    from sa4depth.models.feature_net import FeatureNet
    from sa4depth.models.io import run_model_path
    from sa4depth.report.figures import plot_features, source_caption

    mp = run_model_path(run)
    cfg, modules = load_model_file(mp)
    sd = None
    for name, state in (modules.get("extra") or {}).items():
        keys = [k for k in state if k.endswith("feature_head.weight")]
        if keys:
            prefix = keys[0][: -len("feature_head.weight")]
            sd = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
            break
    if sd is None:
        raise ValueError(f"{mp}: no learned feature net stored (needs an SA4Depth run with refine.features=learned; "
                         f"stored: {sorted((modules.get('extra') or {}).keys())})")
    net = FeatureNet.from_config(cfg.refine, load_weights=False)
    try:
        net.load_state_dict(sd)
    except RuntimeError as e:
        raise ValueError(f"{mp}: feature-net weights do not match the stored config: {e}") from None
    net.eval()
    ds = build_dataset(cfg, "val")
    if not len(ds):
        raise ValueError(f"{run}: empty validation split")
    sample = ds[min(index, len(ds) - 1)]
    other = [f for f in cfg.data.frame_ids if f != 0][0]
    imgs = torch.stack([sample[("color", 0, 0)], sample[("color", other, 0)]])
    with torch.no_grad():
        feats, conf = net(imgs)
    return plot_features([i.permute(1, 2, 0).numpy() for i in imgs], list(feats.numpy()), list(conf[:, 0].numpy()),
                         out, labels=("reference t", f"query t{other:+d}"),
                         title=f"SA4Depth feature net: validation sample {min(index, len(ds) - 1)} (Fig. 10)",
                         caption=source_caption([run]))


def ledger_figure(ledger_json: str | os.PathLike, out: str | os.PathLike) -> Path:
    """The comparisons of a claims ledger (``claims.json`` of ``sa4depth claims``) as a forest plot
    (:func:`sa4depth.report.claims.write_ledger_figure`)."""
    from sa4depth.report.claims import write_ledger_figure

    p = Path(ledger_json)
    try:
        ledger = json.loads(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise FileNotFoundError(f"{p}: cannot read the ledger ({e.strerror or e})") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{p}: not valid JSON ({e})") from None
    if not isinstance(ledger, dict) or not isinstance(ledger.get("claims"), list):
        raise ValueError(f"{p}: not a claims ledger (no 'claims' list; write one with `sa4depth claims`)")
    for c in ledger["claims"]:
        for key in ("id", "data", "scale", "seeds", "comparisons"):
            if key not in c:
                raise ValueError(f"{p}: claim {c.get('id', '?')!r} has no {key!r}")
        for m in c["comparisons"]:
            for key in ("metric", "b_values", "mean_diff"):
                if key not in m:
                    raise ValueError(f"{p}: claim {c['id']!r}: a comparison has no {key!r}")
    return write_ledger_figure(ledger, out)
