"""``sa4depth bench synth``: rendering speed of the procedural benchmark on this machine.

For each requested scale preset and profile, renders ``--frames`` frames of one training
episode at the preset's ``synth.width x synth.height`` (the profile's own image size) and
reports frames per second (wall clock and process CPU time), plus the velodyne scan rate for
the driving profile. ``--out JSON`` also writes the rows (atomically).
"""
from __future__ import annotations

import os
import platform
import time

from sa4depth.commands import add_option
from sa4depth.files import write_json_atomic

PROFILES = ("driving", "dynamic", "indoor")


def add_arguments(p) -> None:
    p.add_argument("--scale", nargs="+", default=["tiny", "smoke"], help="scale presets to measure (default: tiny smoke)")
    p.add_argument("--profile", nargs="+", default=list(PROFILES), choices=PROFILES, help="profiles (default: all)")
    p.add_argument("--frames", type=int, default=5, help="frames rendered per measurement (default 5)")
    p.add_argument("--seed", type=int, default=0, help="episode seed (default 0)")
    add_option(p, "--out", deprecated=("--json",), default=None, metavar="JSON",
               help="also write the results to this JSON file")


def measure(profile: str, width: int, height: int, frames: int, seed: int = 0) -> dict:
    """Render ``frames`` frames (after one warm-up frame) and time them."""
    import numpy as np

    from sa4depth.data.synth.profiles import KittiRig, make_episode
    from sa4depth.data.synth.writers import _n_az

    ep = make_episode(profile, seed, "train", 0, frames + 1, width, height)
    ep.render(0)
    w0, c0 = time.perf_counter(), time.process_time()
    for i in range(1, frames + 1):
        ep.render(i)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    row = {"profile": profile, "width": ep.width, "height": ep.height, "frames": frames,
           "fps_wall": frames / wall, "ms_per_frame_wall": 1000 * wall / frames, "ms_per_frame_cpu": 1000 * cpu / frames}
    if profile == "driving":
        n_az = _n_az(ep.width)
        w0 = time.perf_counter()
        for i in range(1, frames + 1):
            ep.lidar(i, ep.traj.T_world_imu[i] @ np.linalg.inv(KittiRig.T_velo_imu), n_azimuth=n_az)
        row["lidar_ms_per_scan"] = 1000 * (time.perf_counter() - w0) / frames
        row["lidar_rays"] = 64 * n_az
    return row


def run(args) -> int:
    from sa4depth.config import load_config

    if args.frames < 1:
        raise ValueError(f"--frames {args.frames}: must be >= 1")
    rows = []
    for scale in args.scale:
        cfg = load_config(data="synthetic", scale=scale)
        for prof in args.profile:
            r = measure(prof, cfg.synth.width, cfg.synth.height, args.frames, args.seed)
            r["scale"] = scale
            rows.append(r)
            lid = f"  lidar {r['lidar_ms_per_scan']:.0f} ms/scan" if "lidar_ms_per_scan" in r else ""
            print(f"{scale:6s} {prof:8s} {r['width']:5d}x{r['height']:<4d} {r['fps_wall']:7.2f} fps  "
                  f"{r['ms_per_frame_wall']:8.1f} ms/frame wall  {r['ms_per_frame_cpu']:8.1f} ms/frame cpu{lid}", flush=True)
    if args.out:
        meta = {"machine": platform.node(), "cpus": os.cpu_count(), "python": platform.python_version()}
        write_json_atomic(args.out, {"benchmark": "synth", "meta": meta, "rows": rows})
    return 0
