"""Depth-net inference speed (SA4Depth Table VI, FPS column).

Times ``depth_net(img)`` (encoder + decoder, all scales, as Monodepth2's forward) on a random
(B, 3, H, W) input under ``torch.no_grad`` in eval mode, after ``--warmup`` untimed passes; each
timed pass is bracketed by ``torch.cuda.synchronize()`` on CUDA. Reports the median and
p10 / p90 latency per batch and FPS = B / median latency. SA4Depth leaves the depth net unchanged,
so inference speed does not depend on whether the weights were trained with it.
"""
from __future__ import annotations

import argparse
import platform
import time

from sa4depth.commands import add_device_arg, add_threads_arg

__all__ = ["add_arguments", "run", "time_depth_net"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--layers", type=int, default=18, choices=[18, 50], help="ResNet depth of the depth encoder")
    p.add_argument("--height", type=int, default=192, help="input height in pixels (default 192, the paper's)")
    p.add_argument("--width", type=int, default=640, help="input width in pixels (default 640, the paper's)")
    p.add_argument("--batch", type=int, default=1, help="images per forward pass (default 1); FPS = batch / latency")
    add_device_arg(p)
    p.add_argument("--warmup", type=int, default=10, help="untimed passes first (default 10)")
    p.add_argument("--repeats", type=int, default=50, help="timed passes; the median latency is reported (default 50)")
    add_threads_arg(p)
    p.add_argument("--run", default=None, help="run directory / model.pt: time its depth net (layers from its config)")
    p.add_argument("--out", default=None, metavar="JSON", help="also write the result JSON here (atomic)")


def time_depth_net(net, height: int, width: int, batch: int, device: str, warmup: int, repeats: int) -> dict:
    """Latency statistics (seconds) of ``net`` on a random input; see module docstring."""
    import numpy as np
    import torch

    if repeats < 1 or warmup < 0 or batch < 1:
        raise ValueError(f"need repeats >= 1, warmup >= 0, batch >= 1 (got {repeats}, {warmup}, {batch})")
    if height % 32 or width % 32:
        raise ValueError(f"--height/--width must be multiples of 32 (got {height}x{width})")
    net = net.eval().to(device)
    x = torch.rand(batch, 3, height, width, device=device)
    cuda = str(device).startswith("cuda")

    def sync():
        if cuda:
            torch.cuda.synchronize()

    times = []
    with torch.no_grad():
        for _ in range(warmup):
            net(x)
        sync()
        for _ in range(repeats):
            sync()
            t0 = time.perf_counter()
            net(x)
            sync()
            times.append(time.perf_counter() - t0)
    t = np.asarray(times)
    med = float(np.median(t))
    return {"latency_median_s": med, "latency_p10_s": float(np.percentile(t, 10)),
            "latency_p90_s": float(np.percentile(t, 90)), "latency_mean_s": float(t.mean()),
            "fps": batch / med, "repeats": repeats, "warmup": warmup}


def run(args) -> int:
    import torch

    from sa4depth.evaluate.provenance import git_info, to_jsonable
    from sa4depth.files import write_json_atomic

    from sa4depth.device import resolve_device, set_threads

    device = str(resolve_device(args.device))
    set_threads(args.threads)
    layers = args.layers
    if args.run:
        from sa4depth.models.io import run_model_path
        from sa4depth.models import load_depth_model

        net, cfg = load_depth_model(run_model_path(args.run), device=device)
        layers = int(cfg.model.depth_layers)
        source = str(args.run)
    else:
        from sa4depth.models import DepthNet

        torch.manual_seed(0)
        net = DepthNet(num_layers=layers)
        source = "random init"
    res = time_depth_net(net, args.height, args.width, args.batch, device, args.warmup, args.repeats)
    dev_name = torch.cuda.get_device_name(0) if device.startswith("cuda") else platform.processor() or platform.machine()
    out = {"benchmark": "infer", "model": f"Md2-{layers} depth net", "weights": source, "layers": layers,
           "height": args.height, "width": args.width, "batch": args.batch, "device": device,
           "device_name": dev_name, "torch": torch.__version__, "threads": torch.get_num_threads(),
           "git": git_info(), **res}
    print(f"depth net ResNet-{layers} {args.height}x{args.width} batch {args.batch} on {device} ({dev_name}): "
          f"{res['fps']:.1f} FPS  median {res['latency_median_s'] * 1e3:.2f} ms "
          f"(p10 {res['latency_p10_s'] * 1e3:.2f}, p90 {res['latency_p90_s'] * 1e3:.2f})")
    if args.out:
        print(f"-> wrote {write_json_atomic(args.out, to_jsonable(out), allow_nan=False)}")
    return 0
