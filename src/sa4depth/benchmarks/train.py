"""Training speed and memory: Md2-18 / Md2-50 at each scale, and SA4Depth's step-time overhead.

    sa4depth bench train [--layers 18 50] [--scale tiny smoke small full] [--sa4depth]
                         [--device auto|cpu|cuda] [--steps N] [--warmup N] [--threads N] [--config FILE]
                         [--out JSON] [key=value ...]

key=value overrides apply to every configuration; give them before --layers / --scale (which take
lists) or after ``--``.

Each configuration runs in a fresh child process (so peak memory is its own): the training
model of that scale (``cfg.data.height x width``, ``cfg.train.batch_size``) takes ``--warmup``
then ``--steps`` full optimiser steps (forward, losses, backward, Adam) on a random batch with
the sample layout of the loaders, so the numbers measure compute, not data loading (see
``sa4depth bench data`` for that). Reported: steps/s, images/s (= training samples/s, each
sample being a frame triplet), GFLOP per step (forward + backward, counted once after timing),
peak memory (CUDA ``max_memory_allocated`` on GPU, peak RSS of
the process on CPU), and with ``--sa4depth`` the same for ``refine.enabled=true`` and the ratio
of step times (SA4Depth / baseline).
"""
from __future__ import annotations

import sys

from sa4depth.commands import add_device_arg, add_option, add_threads_arg
from sa4depth.config import add_override_args, add_set_alias, overrides_of
from sa4depth.files import write_json_atomic


def add_arguments(p) -> None:
    p.add_argument("--layers", type=int, nargs="+", default=[18, 50], choices=[18, 50],
                   help="ResNet depths of the depth encoder to time (default: 18 50)")
    p.add_argument("--scale", nargs="+", default=["tiny", "smoke"], help="scale presets (tiny smoke small full)")
    p.add_argument("--sa4depth", action="store_true", help="also time refine.enabled=true and report the overhead")
    add_device_arg(p)
    p.add_argument("--steps", type=int, default=5, help="timed steps per configuration")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first (default 2)")
    add_threads_arg(p)
    p.add_argument("--amp", action="store_true", help="mixed precision (CUDA only)")
    p.add_argument("--data", default="synthetic", help="data preset in params/data/ (default: synthetic)")
    add_option(p, "--out", deprecated=("--json",), default=None, metavar="JSON",
               help="also write the results here (JSON, atomic)")
    add_override_args(p, after="the scale preset")
    add_set_alias(p)


def random_batch(cfg, device):
    """A batch with the loaders' keys and shapes (Monodepth2 layout), random content."""
    import numpy as np
    import torch

    B, H, W = cfg.train.batch_size, cfg.data.height, cfg.data.width
    g = torch.Generator().manual_seed(0)
    batch = {}
    for f in cfg.data.frame_ids:
        for s in range(len(cfg.model.scales)):
            img = torch.rand(B, 3, H // 2 ** s, W // 2 ** s, generator=g)
            batch[("color", f, s)] = img
            batch[("color_aug", f, s)] = img
        if f != 0:
            T = torch.eye(4).repeat(B, 1, 1)
            T[:, 2, 3] = -0.8 * f
            batch[("pose_gt", f)] = T
            batch[("trans_norm_gt", f)] = torch.full((B,), 0.8 * abs(f))
    for s in range(len(cfg.model.scales)):
        w, h = W // 2 ** s, H // 2 ** s
        K = np.array([[0.58 * w, 0, 0.5 * w, 0], [0, 1.92 * h, 0.5 * h, 0], [0, 0, 1, 0], [0, 0, 0, 1]], np.float32)
        batch[("K", s)] = torch.from_numpy(K).repeat(B, 1, 1)
        batch[("inv_K", s)] = torch.from_numpy(np.linalg.inv(K).astype(np.float32)).repeat(B, 1, 1)
    batch["depth_gt"] = 1.0 + 30 * torch.rand(B, 1, H, W, generator=g)
    return {k: v.to(device) for k, v in batch.items()}


def _measure(job: dict) -> dict:
    """Child process: time one configuration."""
    import resource
    import time

    import torch

    from sa4depth.config import load_config
    from sa4depth.train.trainer import build_train_model, make_optimizer, resolve_device

    from sa4depth.device import set_threads

    set_threads(job["threads"])
    over = [f"model.depth_layers={job['layers']}", f"train.device={job['device']}"]
    if job["sa4depth"]:
        over += ["refine.enabled=true", "loss.pose_self_sup=1.0"]
    cfg = load_config(data=job["data"], scale=job["scale"], files=job.get("config_files", []),
                      overrides=over + list(job.get("overrides", [])))
    device = resolve_device(cfg.train.device)
    torch.manual_seed(0)
    model = build_train_model(cfg).to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = make_optimizer(params, cfg.train, device)
    use_amp = job["amp"] and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    batch = random_batch(cfg, device)

    def step():
        with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=use_amp):
            loss, _ = model(batch, step=0)  # automasking as at the first optimiser step
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(job["warmup"]):
        step()
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(job["steps"]):
        step()
    sync()
    dt = (time.perf_counter() - t0) / job["steps"]
    if device.type == "cuda":
        peak_mb = torch.cuda.max_memory_allocated() / 2 ** 20
        mem_kind = "cuda_max_allocated"
    else:
        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux
        peak_mb = kb / 1024 if sys.platform != "darwin" else kb / 2 ** 20
        mem_kind = "peak_rss"
    opt.zero_grad(set_to_none=True)
    try:  # after the timing and the memory reading: neither includes this extra pass
        gflop = _step_gflop(model, batch, device, use_amp)
    except Exception as e:  # noqa: BLE001  (the timing above is kept)
        print(f"bench train: FLOPs not counted ({type(e).__name__}: {e})", file=sys.stderr)
        gflop = None
    return {"layers": job["layers"], "scale": job["scale"], "sa4depth": job["sa4depth"], "device": str(device),
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "threads": torch.get_num_threads(), "batch_size": cfg.train.batch_size,
            "height": cfg.data.height, "width": cfg.data.width, "step_s": dt, "steps_per_s": 1.0 / dt,
            "images_per_s": cfg.train.batch_size / dt, "gflop_per_step": gflop, "peak_mem_mb": peak_mb,
            "mem_kind": mem_kind,
            "amp": use_amp, "params_trained": sum(p.numel() for p in params),
            "overrides": list(job.get("overrides", []))}


def _step_gflop(model, batch, device, use_amp: bool) -> float:
    """Floating-point operations of one forward + backward (torch's FlopCounterMode: convolutions,
    matrix products and attention, not elementwise ops), in GFLOP; the same on every device."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:  # one block: the counter starts from zero each time it is entered
        with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=use_amp):
            loss, _ = model(batch, step=0)
        loss.backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / 1e9


def _child(job: dict, q) -> None:
    try:
        q.put(_measure(job))
    except Exception as e:  # reported in the table instead of killing the whole benchmark
        q.put({"error": f"{type(e).__name__}: {e}", **job})


def run(args) -> int:
    import multiprocessing as mp

    from sa4depth.config import load_config

    # `--scale tiny key=value`: --scale takes a list, so it swallowed the overrides (no preset has a "=")
    overrides = overrides_of(args) + [s for s in args.scale if "=" in s]
    args.scale = [s for s in args.scale if "=" not in s]
    if not args.scale:
        raise ValueError("--scale: no scale preset given")
    for s in args.scale:  # fail fast on a bad preset name or override
        load_config(data=args.data, scale=s, files=args.config, overrides=overrides)
    if args.steps < 1:
        raise ValueError(f"--steps {args.steps}: must be >= 1")
    ctx = mp.get_context("spawn")
    results = []
    variants = [False, True] if args.sa4depth else [False]
    for scale in args.scale:
        for layers in args.layers:
            for sa in variants:
                job = dict(layers=layers, scale=scale, sa4depth=sa, device=args.device, steps=args.steps,
                           warmup=args.warmup, threads=args.threads, amp=args.amp, data=args.data,
                           config_files=list(args.config), overrides=overrides)
                q = ctx.Queue()
                p = ctx.Process(target=_child, args=(job, q))
                p.start()
                res = q.get()
                p.join()
                results.append(res)
                _print_row(res)
    for r in results:  # overhead of SA4Depth at the same scale and depth
        if r.get("sa4depth") and "error" not in r:
            base = next((b for b in results if not b.get("sa4depth") and b["scale"] == r["scale"]
                         and b["layers"] == r["layers"] and "error" not in b), None)
            if base:
                r["overhead_vs_baseline"] = r["step_s"] / base["step_s"]
                flops = r["gflop_per_step"] is not None and base["gflop_per_step"] is not None
                r["flop_ratio_vs_baseline"] = r["gflop_per_step"] / base["gflop_per_step"] if flops else None
                print(f"SA4Depth overhead, Md2-{r['layers']} {r['scale']}: x{r['overhead_vs_baseline']:.2f} step time"
                      + (f", x{r['flop_ratio_vs_baseline']:.2f} FLOPs" if flops else ""))
    if args.out:
        write_json_atomic(args.out, {"benchmark": "train", "results": results})
    return 1 if any("error" in r for r in results) else 0


def _print_row(r: dict) -> None:
    name = f"Md2-{r['layers']}{' +SA4Depth' if r.get('sa4depth') else ''}"
    if "error" in r:
        print(f"{name:18s} {r['scale']:6s} ERROR {r['error']}")
        return
    print(f"{name:18s} {r['scale']:6s} {r['width']}x{r['height']} b{r['batch_size']:<3d} {r['device']:5s} "
          f"{r['steps_per_s']:7.3f} steps/s {r['images_per_s']:7.2f} images/s "
          f"{'%7.1f' % r['gflop_per_step'] if r['gflop_per_step'] is not None else '      ?'} GFLOP/step "
          f"peak {r['peak_mem_mb']:8.0f} MB ({r['mem_kind']})", flush=True)
