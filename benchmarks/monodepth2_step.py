"""Our Md2-18 training step beside Monodepth2's own, timed in one process (benchmarks/README.md).

    python benchmarks/monodepth2_step.py --md2-src DIR [--rounds 5] [--steps 3] [--threads 1]
                                         [--scale smoke] [--profile] [--out JSON]

DIR is a checkout of nianticlabs/monodepth2 (not part of this project; nothing of it is copied
here). Its networks import torchvision, which does not load beside this project's pinned CPU torch,
so run this from an environment with torch 2.14.1 + torchvision 0.29.1 and this package installed
(``pip install torch==2.14.1 torchvision==0.29.1 six && pip install -e .``).

Three steps on the same random batch (the loaders' layout, ``sa4depth.benchmarks.train.random_batch``),
interleaved in blocks of ``--steps`` for ``--rounds`` rounds, medians reported:

- ``monodepth2``: its ``Trainer.process_batch`` (4 scales, automasking, min reprojection) and its
  Adam step, built by its own ``Trainer`` from options matching our scale preset (random init);
- ``ours``: ``SelfSupModel`` forward, backward and fused Adam, as ``sa4depth train`` runs it past
  ``loss.automask_after`` (automasking on, like Monodepth2's; ``sa4depth bench train`` times step 0,
  before it);
- ``ours_pool_ssim``: the same with SSIM's local means from ``avg_pool2d`` (Monodepth2's
  formulation, this project's until the depthwise convolution replaced it), the "before" figure.

With ``--profile`` it also records the share of our step's CPU time spent in convolutions
(torch.profiler, self time of ``*convolution*`` ops), the part both codes compute identically.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import types


def _import_monodepth2(src: str):
    """Monodepth2's Trainer with the imports it needs only for logging and datasets stubbed."""
    sys.modules.setdefault("IPython", types.SimpleNamespace(embed=lambda *a, **k: None))
    tbx = types.ModuleType("tensorboardX")

    class _Writer:
        def __init__(self, *a, **k):
            pass

        def add_scalar(self, *a, **k):
            pass

    tbx.SummaryWriter = _Writer
    sys.modules.setdefault("tensorboardX", tbx)
    import PIL.Image

    if not hasattr(PIL.Image, "ANTIALIAS"):  # removed in Pillow 10; its datasets module reads it
        PIL.Image.ANTIALIAS = PIL.Image.LANCZOS
    sys.path.insert(0, src)
    from options import MonodepthOptions  # noqa: E402  (monodepth2's)
    from trainer import Trainer  # noqa: E402

    return MonodepthOptions, Trainer


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _reference_ssim(x, y):
    import torch
    import torch.nn.functional as F

    import sa4depth.losses as L

    c = x.shape[1]
    stats = F.pad(torch.cat([x, y, x * x, y * y, x * y], dim=1), (1, 1, 1, 1), mode="reflect")
    mu_x, mu_y, e_xx, e_yy, e_xy = F.avg_pool2d(stats, 3, 1).split(c, dim=1)
    sigma_x, sigma_y, sigma_xy = e_xx - mu_x * mu_x, e_yy - mu_y * mu_y, e_xy - mu_x * mu_y
    n = (2 * mu_x * mu_y + L.SSIM_C1) * (2 * sigma_xy + L.SSIM_C2)
    d = (mu_x * mu_x + mu_y * mu_y + L.SSIM_C1) * (sigma_x + sigma_y + L.SSIM_C2)
    return torch.clamp((1 - n / d) / 2, 0, 1)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--md2-src", required=True, help="checkout of nianticlabs/monodepth2")
    ap.add_argument("--scale", default="smoke")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    if not os.path.isfile(os.path.join(args.md2_src, "trainer.py")):
        raise SystemExit(f"--md2-src {args.md2_src}: no trainer.py there (expected a monodepth2 checkout)")

    import torch

    import sa4depth.losses as L
    from sa4depth.benchmarks.train import random_batch
    from sa4depth.config import load_config
    from sa4depth.device import set_threads
    from sa4depth.train.trainer import build_train_model, make_optimizer

    set_threads(args.threads)
    load_before = os.getloadavg()[0]  # another job on the machine shows here
    cfg = load_config(data="synthetic", scale=args.scale, overrides=["model.depth_layers=18", "train.device=cpu"])
    MonodepthOptions, Trainer = _import_monodepth2(args.md2_src)
    log_dir = os.path.join(os.environ.get("TMPDIR", "/tmp"), "md2_bench_log")
    argv_md2 = ["--height", str(cfg.data.height), "--width", str(cfg.data.width),
                "--batch_size", str(cfg.train.batch_size), "--num_layers", "18", "--no_cuda",
                "--weights_init", "scratch", "--data_path", args.md2_src, "--log_dir", log_dir,
                "--num_workers", "0", "--scales", *[str(s) for s in cfg.model.scales]]
    saved, sys.argv = sys.argv, ["monodepth2"] + argv_md2
    try:
        opts = MonodepthOptions().parse()
    finally:
        sys.argv = saved
    torch.manual_seed(0)
    md2 = Trainer(opts)
    md2.set_train()

    batch = random_batch(cfg, "cpu")
    torch.manual_seed(0)
    ours = build_train_model(cfg).train()
    params = [p for p in ours.parameters() if p.requires_grad]
    opt = make_optimizer(params, cfg.train, torch.device("cpu"))
    new_ssim = L.ssim

    def step_ours():
        loss, _ = ours(batch, step=10 ** 6)  # automasking on, as after automask_after
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def step_ours_pool():
        L.ssim = _reference_ssim
        try:
            step_ours()
        finally:
            L.ssim = new_ssim

    def step_md2():
        _, losses = md2.process_batch(dict(batch))
        md2.model_optimizer.zero_grad()
        losses["loss"].backward()
        md2.model_optimizer.step()

    variants = {"monodepth2": step_md2, "ours": step_ours, "ours_pool_ssim": step_ours_pool}
    for f in variants.values():
        f()
        f()
    times = {k: [] for k in variants}
    for _ in range(args.rounds):
        for k, f in variants.items():
            t0 = time.perf_counter()
            for _ in range(args.steps):
                f()
            times[k].append((time.perf_counter() - t0) / args.steps)
    med = {k: statistics.median(v) for k, v in times.items()}
    out = {
        "benchmark": "monodepth2_step", "scale": args.scale, "threads": torch.get_num_threads(),
        "torch": torch.__version__, "cpu": _cpu_name(), "loadavg_before": load_before,
        "height": cfg.data.height, "width": cfg.data.width, "batch_size": cfg.train.batch_size,
        "rounds": args.rounds, "steps_per_round": args.steps, "step_s": times, "median_step_s": med,
        "ratio_ours_over_monodepth2": med["ours"] / med["monodepth2"],
        "ratio_ours_pool_ssim_over_monodepth2": med["ours_pool_ssim"] / med["monodepth2"],
        "params_trained": {"monodepth2": sum(p.numel() for p in md2.parameters_to_train),
                           "ours": sum(p.numel() for p in params)},
    }
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(args.steps):
                step_ours()
        ev = prof.key_averages()
        total = sum(e.self_cpu_time_total for e in ev)
        conv = sum(e.self_cpu_time_total for e in ev if "convolution" in e.key)
        out["ours_conv_share"] = conv / total
        out["ours_top_ops"] = [{"op": e.key, "self_ms_per_step": e.self_cpu_time_total / 1e3 / args.steps}
                               for e in sorted(ev, key=lambda e: -e.self_cpu_time_total)[:15]]
    for k, v in med.items():
        print(f"{k:16s} {v:.3f} s/step  ({', '.join(f'{x:.3f}' for x in times[k])})")
    print(f"ours / monodepth2 = {out['ratio_ours_over_monodepth2']:.3f}; "
          f"with avg_pool SSIM {out['ratio_ours_pool_ssim_over_monodepth2']:.3f}")
    if "ours_conv_share" in out:
        print(f"convolutions: {100 * out['ours_conv_share']:.0f} % of our step's CPU time")
    if args.out:
        from sa4depth.files import write_json_atomic

        write_json_atomic(args.out, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
