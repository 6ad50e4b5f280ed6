"""Draw a paper figure from result files (and, for the qualitative and feature figures, from the
networks of finished runs).

  sa4depth figure scale-factors --json LABEL=DEPTH_EVAL.json ... --out PNG     (Fig. 1)
  sa4depth figure qualitative   --run LABEL=RUN_DIR ... [--split S] [--num N] --out PNG  (Figs. 3-5)
  sa4depth figure trajectories  --json LABEL=ODOMETRY_EVAL.json ... --out PNG  (Fig. 6, from the
                                trajectory files the evaluation wrote: one axes per sequence)
  sa4depth figure features      --run RUN_DIR --out PNG                          (Fig. 10)
  sa4depth figure montage       --panel LABEL=PNG ... --out PNG
  sa4depth figure monitor       --run LABEL=RUN_DIR ... --out PNG                (scale-alignment monitor)

Every figure names its data, scale and seeds in a footer, read from the files / run directories it
is drawn from (``sa4depth.report.figures.source_caption``).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sa4depth.commands import add_device_arg

__all__ = ["add_arguments", "run"]


def _pairs(items: list[str], what: str) -> list[tuple[str, str]]:
    out = []
    for it in items:
        if "=" not in it:
            raise ValueError(f"{what} {it!r}: expected LABEL=PATH")
        label, path = it.split("=", 1)
        out.append((label, path))
    if not out:
        raise ValueError(f"give at least one {what} LABEL=PATH")
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="kind", metavar="KIND", required=True)
    p = sub.add_parser("scale-factors", help="Fig. 1: per-image scale factors from depth-eval JSONs")
    p.add_argument("--json", action="append", default=[], metavar="LABEL=PATH",
                   help="a depth-evaluation JSON (sa4depth evaluate depth --out) and its legend label; repeatable")
    p.add_argument("--out", required=True, help="output PNG")
    p = sub.add_parser("trajectories", help="Fig. 6: trajectories (x-z top view) of odometry-eval JSONs, "
                                            "one axes per sequence, GT and every method overlaid")
    p.add_argument("--json", action="append", default=[], metavar="LABEL=PATH",
                   help="an odometry-eval JSON (`sa4depth evaluate odometry`); its trajectory files are read")
    p.add_argument("--out", required=True, help="output PNG")
    p = sub.add_parser("montage", help="place PNGs side by side")
    p.add_argument("--panel", action="append", default=[], metavar="LABEL=PNG",
                   help="a PNG and its panel title; repeatable, placed left to right")
    p.add_argument("--title", default="", help="figure title")
    p.add_argument("--caption", default=None, help="footer line, e.g. 'data: synthetic, scale: smoke, seeds: 0'")
    p.add_argument("--out", required=True, help="output PNG")
    p = sub.add_parser("qualitative", help="Figs. 3-5: input | predicted disparity per run | GT")
    p.add_argument("--run", action="append", default=[], metavar="LABEL=RUN_DIR",
                   help="a trained run directory (or model.pt) and its row label; repeatable")
    p.add_argument("--split", default=None, help="evaluation split (default: the first run's data.eval_split)")
    p.add_argument("--num", type=int, default=3, help="number of test images (evenly spaced)")
    add_device_arg(p)
    p.add_argument("--out", required=True, help="output PNG")
    p = sub.add_parser("features", help="Fig. 10: feature PCA and confidence maps of SA4Depth's feature net")
    p.add_argument("--run", required=True, help="run directory of an SA4Depth run (refine.enabled)")
    p.add_argument("--index", type=int, default=0, help="validation sample index")
    p.add_argument("--out", required=True, help="output PNG")
    p = sub.add_parser("monitor", help="scale-alignment monitor curves (log.csv of runs) against step")
    p.add_argument("--run", action="append", default=[], metavar="LABEL=RUN_DIR",
                   help="a run directory (or its log.csv); repeat a LABEL for its seeds")
    p.add_argument("--title", default="", help="figure title")
    p.add_argument("--out", required=True, help="output PNG")


def run(args) -> int:
    from sa4depth.report import figures as F

    if args.kind == "scale-factors":
        pairs = _pairs(args.json, "--json")
        series = {label: F.per_image_ratios(p) for label, p in pairs}
        out = F.plot_scale_factors(series, args.out, caption=F.source_caption([p for _, p in pairs]))
    elif args.kind == "trajectories":
        out = _trajectories(args)
    elif args.kind == "monitor":
        groups: dict[str, list] = {}
        pairs = _pairs(args.run, "--run")
        for label, path in pairs:
            p = Path(path)
            groups.setdefault(label, []).append(F.read_monitor_log(p / "log.csv" if p.is_dir() else p))
        out = F.plot_monitor(groups, args.out, args.title, caption=F.source_caption([p for _, p in pairs]))
    elif args.kind == "montage":
        out = F.montage(_pairs(args.panel, "--panel"), args.out, title=args.title, caption=args.caption)
    elif args.kind == "qualitative":
        out = _qualitative(args)
    else:
        out = _features(args)
    print(f"wrote {out}", file=sys.stderr)
    return 0


def _trajectories(args) -> Path:
    """Fig. 6 from the trajectory files of each odometry evaluation (GT read once per sequence)."""
    import numpy as np

    from sa4depth.report import figures as F

    pairs = _pairs(args.json, "--json")
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
    return F.plot_trajectories(gts, estimates, args.out, title=title, metrics=metrics,
                               caption=F.source_caption([p for _, p in pairs]))


def _qualitative(args) -> Path:
    import numpy as np
    import torch

    from sa4depth.data import iter_gt_depths, load_test_images
    from sa4depth.models import load_depth_model
    from sa4depth.models.io import run_model_path
    from sa4depth.report.figures import plot_qualitative

    from sa4depth.device import resolve_device

    device = resolve_device(args.device)
    runs = _pairs(args.run, "--run")
    preds: dict[str, list] = {}
    images: list = []
    gts: list = []
    for k, (label, rd) in enumerate(runs):
        net, cfg = load_depth_model(run_model_path(rd), device)
        split = args.split or cfg.data.eval_split
        all_imgs = list(load_test_images(cfg, split))
        if not all_imgs:
            raise ValueError(f"{rd}: split {split!r} has no test images")
        idx = np.unique(np.linspace(0, len(all_imgs) - 1, max(1, args.num)).round().astype(int))
        sel = [all_imgs[i][0] for i in idx]
        with torch.no_grad():
            batch = torch.stack(sel).to(device)
            disp = net(batch)[("disp", 0)][:, 0].cpu().numpy()
        preds[label] = list(disp)
        if k == 0:
            images = [im.permute(1, 2, 0).numpy() for im in sel]
            all_gt = [g for _, g in iter_gt_depths(cfg, split)]
            gts = [all_gt[i] for i in idx] if len(all_gt) == len(all_imgs) else None
    from sa4depth.report.figures import source_caption

    return plot_qualitative(images, preds, args.out, gts=gts,
                            title=f"{split}: predicted disparity (normalised per image)",
                            caption=source_caption([rd for _, rd in runs]))


def _features(args) -> Path:
    import torch

    from sa4depth.data import build_dataset
    from sa4depth.models import load_model_file
    from sa4depth.models.io import run_model_path
    from sa4depth.models.feature_net import FeatureNet
    from sa4depth.report.figures import plot_features

    mp = run_model_path(args.run)
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
        raise ValueError(f"{args.run}: empty validation split")
    sample = ds[min(args.index, len(ds) - 1)]
    other = [f for f in cfg.data.frame_ids if f != 0][0]
    imgs = torch.stack([sample[("color", 0, 0)], sample[("color", other, 0)]])
    with torch.no_grad():
        feats, conf = net(imgs)
    from sa4depth.report.figures import source_caption

    return plot_features([i.permute(1, 2, 0).numpy() for i in imgs], list(feats.numpy()), list(conf[:, 0].numpy()),
                         args.out, labels=("reference t", f"query t{other:+d}"),
                         title=f"SA4Depth feature net: validation sample {min(args.index, len(ds) - 1)} (Fig. 10)",
                         caption=source_caption([args.run]))
