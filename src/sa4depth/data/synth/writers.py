"""Write rendered sequences in the real datasets' on-disk layouts (``docs/DATA_LAYOUTS.md``).

* driving -> ``kitti_raw/`` (KITTI raw: images 02/03, timestamps, calib files in KITTI's text
  format, OXTS, velodyne, dense GT depth, ``poses_cam_02.txt``), ``kitti_odom/`` (KITTI
  odometry) and ``splits/`` (Monodepth2 split files: eigen_zhou, eigen, eigen_benchmark, video);
* dynamic -> ``cityscapes/`` (ManyDepth training triplets, test frames with disparity and camera
  json) and ``splits/cityscapes``;
* indoor -> ``nyu/`` (training sequences, labelled-style test pairs) and ``splits/nyu``.

The whole output is first written to ``OUT.partial/`` and renamed to ``OUT`` when complete;
``OUT/.complete`` holds a JSON manifest (profile, seed, sizes, file count, content hash). A
rerun with the same settings is skipped; different settings need ``force=True``.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Callable, Iterable

import cv2
import numpy as np

from sa4depth.files import write_json_atomic

from .profiles import (
    CITYSCAPES_BASELINE,
    KITTI_K,
    NOISE_SIGMA,
    NYU_K,
    Episode,
    KittiRig,
    _K,
    add_noise,
    episode_rng,
    image_size,
    make_episode,
    noise_stream,
)

__all__ = [
    "SynthSpec",
    "write_profile",
    "manifest_path",
    "content_hash",
    "oxts_fields",
    "latlon_from_xy",
    "xy_from_latlon",
    "EARTH_RADIUS",
    "LAT0",
    "LON0",
    "DATE",
]

EARTH_RADIUS = 6378137.0        # KITTI devkit convertOxtsToPose: er
LAT0, LON0 = 49.011, 8.4169     # Karlsruhe, like KITTI
DATE = "2000_01_01"
TEST_DRIVES = 2                 # held-out KITTI raw drives (eigen / eigen_benchmark / video)
TEST_ROOMS = 2                  # held-out NYU rooms
MANIFEST = ".complete"
FORMAT_VERSION = 1
#: Second word of the SeedSequence ``[seed, EIGEN_ZHOU_SPLIT_STREAM]`` of the generator that
#: shuffles the eigen_zhou training lines and draws the validation ones (part of the data).
EIGEN_ZHOU_SPLIT_STREAM = 77


class SynthSpec(dict):
    """Sizes of one benchmark (``cfg.synth`` plus the odometry sequence names)."""

    @classmethod
    def from_config(cls, cfg) -> "SynthSpec":
        s = cfg.synth
        names = set()
        for key in ("odom_train_sequences", "odom_test_sequences"):
            for x in cfg.data[key]:
                if isinstance(x, bool) or not (isinstance(x, int) or (isinstance(x, str) and x.isdigit())):
                    raise ValueError(f"config key 'data.{key}': sequence {x!r} is not a KITTI odometry number like '09'")
                names.add(f"{int(x):02d}")
        return cls(width=int(s.width), height=int(s.height), sequences=int(s.sequences), frames=int(s.frames),
                   odom_frames=int(s.odom_frames), test_frames=int(s.test_frames), odom_sequences=sorted(names))


def manifest_path(out: str | os.PathLike) -> Path:
    return Path(out) / MANIFEST


# ----------------------------------------------------------------------------- small writers
def _png(path: Path, img: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if img.ndim == 3:
        img = img[..., ::-1]  # RGB -> BGR for OpenCV
    if not cv2.imwrite(str(path), np.ascontiguousarray(img)):
        raise OSError(f"{path}: could not write image")


def _jpg(path: Path, img: np.ndarray, quality: int = 95) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), np.ascontiguousarray(img[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality]):
        raise OSError(f"{path}: could not write image")


def _text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _fmt(a: Iterable[float], f: str = "%.6e") -> str:
    return " ".join(f % x for x in np.asarray(a, float).ravel())


def _kitti_poses(P: np.ndarray) -> str:
    """KITTI pose format: 12 numbers (row-major 3x4 of camera-to-world) per line."""
    return "".join(_fmt(T[:3, :4], "%.9e") + "\n" for T in P)


def _depth_png(depth: np.ndarray, max_depth: float = 255.0) -> np.ndarray:
    """uint16 depth * 256 (KITTI depth benchmark), 0 = invalid (sky / beyond 255 m)."""
    ok = np.isfinite(depth) & (depth > 0) & (depth < max_depth)
    return np.where(ok, np.round(np.where(ok, depth, 0) * 256.0), 0).astype(np.uint16)


def _timestamp(base: _dt.datetime, seconds: float) -> str:
    ns = int(round(seconds * 1e9))
    t = base + _dt.timedelta(microseconds=ns // 1000)
    return t.strftime("%Y-%m-%d %H:%M:%S") + f".{(t.microsecond * 1000 + ns % 1000):09d}"


# ----------------------------------------------------------------------------- OXTS
def latlon_from_xy(x: np.ndarray, y: np.ndarray, lat0: float = LAT0, lon0: float = LON0) -> tuple[np.ndarray, np.ndarray]:
    """Invert KITTI's Mercator projection (devkit ``latlonToMercator`` with ``scale =
    cos(lat0)``): world metres east/north of the start -> latitude / longitude (degrees)."""
    scale = np.cos(np.deg2rad(lat0))
    mx0 = scale * EARTH_RADIUS * np.deg2rad(lon0)
    my0 = scale * EARTH_RADIUS * np.log(np.tan(np.deg2rad(90.0 + lat0) / 2.0))
    lon = np.rad2deg((mx0 + x) / (scale * EARTH_RADIUS))
    lat = np.rad2deg(2.0 * np.arctan(np.exp((my0 + y) / (scale * EARTH_RADIUS)))) - 90.0
    return lat, lon


def xy_from_latlon(lat: np.ndarray, lon: np.ndarray, lat0: float) -> tuple[np.ndarray, np.ndarray]:
    """KITTI devkit ``latlonToMercator`` (absolute Mercator metres with ``scale = cos(lat0)``)."""
    scale = np.cos(np.deg2rad(lat0))
    mx = scale * EARTH_RADIUS * np.deg2rad(lon)
    my = scale * EARTH_RADIUS * np.log(np.tan(np.deg2rad(90.0 + np.asarray(lat)) / 2.0))
    return mx, my


def oxts_fields(ep: Episode) -> np.ndarray:
    """(N, 30) KITTI OXTS records of a driving episode: lat lon alt roll pitch yaw vn ve vf vl vu
    ax ay az af al au wx wy wz wf wl wu pos_accuracy vel_accuracy navstat numsats posmode velmode
    orimode (KITTI raw devkit readme, dataformat.txt)."""
    tr = ep.traj
    n = len(tr.times)
    lat, lon = latlon_from_xy(tr.pos[:, 0], tr.pos[:, 1])
    out = np.zeros((n, 30))
    out[:, 0], out[:, 1], out[:, 2] = lat, lon, tr.pos[:, 2] + 110.0  # altitude above sea level
    out[:, 3:6] = tr.rpy
    out[:, 6], out[:, 7] = tr.v_world[:, 1], tr.v_world[:, 0]        # vn (north = y), ve (east = x)
    out[:, 8:11] = tr.v_body                                          # vf vl vu
    out[:, 11:14] = tr.a_body                                         # ax ay az (vehicle axes)
    out[:, 14:17] = tr.a_body                                         # af al au
    out[:, 17:20] = tr.w_body                                         # wx wy wz
    out[:, 20:23] = tr.w_body                                         # wf wl wu
    # pos_accuracy [m], vel_accuracy [m/s], navstat, numsats, posmode, velmode, orimode (typical KITTI values)
    out[:, 23:30] = (0.05, 0.02, 4, 10, 5, 5, 6)
    return out


def _oxts_line(row: np.ndarray) -> str:
    head = " ".join("%.15g" % v for v in row[:25])
    return head + " " + " ".join(str(int(v)) for v in row[25:]) + "\n"


# ----------------------------------------------------------------------------- calibration
def _calib_cam_to_cam(K: np.ndarray, W: int, H: int) -> str:
    lines = ["calib_time: 01-Jan-2000 00:00:00", "corner_dist: 9.950000e-02"]
    for i in range(4):
        tx = KittiRig.CAM_TX[i]
        P = np.zeros((3, 4))
        P[:, :3] = K
        P[0, 3] = K[0, 0] * tx
        lines += [f"S_{i:02d}: {_fmt([W, H])}", f"K_{i:02d}: {_fmt(K)}", f"D_{i:02d}: {_fmt(np.zeros(5))}",
                  f"R_{i:02d}: {_fmt(np.eye(3))}", f"T_{i:02d}: {_fmt([tx, 0.0, 0.0])}",
                  f"S_rect_{i:02d}: {_fmt([W, H])}", f"R_rect_{i:02d}: {_fmt(np.eye(3))}", f"P_rect_{i:02d}: {_fmt(P)}"]
    return "\n".join(lines) + "\n"


def _calib_rt(T: np.ndarray, extra: str = "") -> str:
    return f"calib_time: 01-Jan-2000 00:00:00\nR: {_fmt(T[:3, :3])}\nT: {_fmt(T[:3, 3])}\n{extra}"


def _odom_calib(K: np.ndarray) -> str:
    lines = []
    for i in range(4):
        P = np.zeros((3, 4))
        P[:, :3] = K
        P[0, 3] = K[0, 0] * KittiRig.CAM_TX[i]
        lines.append(f"P{i}: {_fmt(P, '%.12e')}")
    lines.append(f"Tr: {_fmt(KittiRig.T_cam0_velo[:3, :4], '%.12e')}")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- profiles
def _noisy(seed: int, ep: Episode, img: np.ndarray, split: str, index: int, frame: int, cam: int = 0) -> np.ndarray:
    """8-bit noisy image; the noise generator is seeded per (seed, profile, split, sequence, frame, camera)."""
    return add_noise(img, episode_rng(seed, ep.profile, split, index, noise_stream(frame, cam)), NOISE_SIGMA)


def _n_az(width: int) -> int:
    return int(np.clip(4 * width, 512, 2048))


_Tick = Callable[[int], None] | None


def _job_kitti_drive(root: Path, seed: int, spec: dict, split: str, index: int, n_frames: int, drive: str,
                     base: _dt.datetime, tick: _Tick = None) -> int:
    """One KITTI raw drive: images 02/03, GT depth, velodyne, OXTS, timestamps, poses_cam_02."""
    ep = make_episode("driving", seed, split, index, n_frames, spec["width"], spec["height"])
    drive_dir = root / "kitti_raw" / DATE / drive
    T_cam2_cam3 = KittiRig.T_cam_cam0(2) @ np.linalg.inv(KittiRig.T_cam_cam0(3))  # cam3 -> cam2 coordinates
    ox = oxts_fields(ep)
    for i in range(ep.n_frames):
        name = f"{i:010d}"
        fl = ep.render(i)
        _png(drive_dir / "image_02" / "data" / f"{name}.png", _noisy(seed, ep, fl.image, split, index, i, 2))
        _png(drive_dir / "proj_depth" / "groundtruth" / "image_02" / f"{name}.png", _depth_png(fl.depth))
        fr = ep.render(i, T_wc=ep.poses[i] @ T_cam2_cam3)
        _png(drive_dir / "image_03" / "data" / f"{name}.png", _noisy(seed, ep, fr.image, split, index, i, 3))
        T_world_velo = ep.traj.T_world_imu[i] @ np.linalg.inv(KittiRig.T_velo_imu)
        pts = ep.lidar(i, T_world_velo, n_azimuth=_n_az(ep.width))
        p = drive_dir / "velodyne_points" / "data" / f"{name}.bin"
        p.parent.mkdir(parents=True, exist_ok=True)
        pts.astype("<f4").tofile(p)
        _text(drive_dir / "oxts" / "data" / f"{name}.txt", _oxts_line(ox[i]))
        if tick:
            tick(1)
    stamps = "".join(_timestamp(base, t) + "\n" for t in ep.times)
    for sub in ("image_02", "image_03", "oxts", "velodyne_points"):
        _text(drive_dir / sub / "timestamps.txt", stamps)
    _text(drive_dir / "poses_cam_02.txt", _kitti_poses(ep.poses_relative()))
    return ep.n_frames


def _job_odom(root: Path, seed: int, spec: dict, name: str, tick: _Tick = None) -> int:
    """One KITTI odometry sequence: image_2, calib.txt, times.txt, poses/NN.txt."""
    ep = make_episode("driving", seed, "odom", int(name), spec["odom_frames"], spec["width"], spec["height"])
    odom = root / "kitti_odom"
    sd = odom / "sequences" / name
    for i in range(ep.n_frames):
        _png(sd / "image_2" / f"{i:06d}.png", _noisy(seed, ep, ep.render(i).image, "odom", int(name), i, 2))
        if tick:
            tick(1)
    _text(sd / "calib.txt", _odom_calib(ep.K))
    _text(sd / "times.txt", "".join("%e\n" % t for t in ep.times))
    _text(odom / "poses" / f"{name}.txt", _kitti_poses(ep.poses_relative()))
    return ep.n_frames


def _driving_jobs(root: Path, seed: int, spec: dict) -> list:
    """Write the driving split files and calibration; return the rendering jobs."""
    raw = root / "kitti_raw" / DATE
    splits = root / "splits"
    jobs: list = []
    train_lines: list[str] = []
    base0 = _dt.datetime(2000, 1, 1, 12, 0, 0)
    n = spec["frames"]
    for k in range(spec["sequences"]):
        drive = f"{DATE}_drive_{k + 1:04d}_sync"
        jobs.append((_job_kitti_drive, (root, seed, spec, "train", k, n, drive, base0 + _dt.timedelta(minutes=10 * k))))
        train_lines += [f"{DATE}/{drive} {i} {side}\n" for i in range(1, n - 1) for side in ("l", "r")]
    test_lines, video_lines = [], []
    nt = spec["test_frames"] + 2
    for j in range(TEST_DRIVES):
        drive = f"{DATE}_drive_{101 + j:04d}_sync"
        jobs.append((_job_kitti_drive, (root, seed, spec, "test", j, nt, drive,
                                        base0 + _dt.timedelta(hours=2, minutes=10 * j))))
        test_lines += [f"{DATE}/{drive} {i:010d} l\n" for i in range(1, nt - 1)]
        video_lines += [f"{DATE}/{drive} {i:010d} l\n" for i in range(nt)]
    K = _K(KITTI_K, spec["width"], spec["height"])
    _text(raw / "calib_cam_to_cam.txt", _calib_cam_to_cam(K, spec["width"], spec["height"]))
    _text(raw / "calib_velo_to_cam.txt", _calib_rt(KittiRig.T_cam0_velo, "delta_f: 0 0\ndelta_c: 0 0\n"))
    _text(raw / "calib_imu_to_velo.txt", _calib_rt(KittiRig.T_velo_imu))
    # Monodepth2 eigen_zhou: shuffled training lines, ~10% (>= 1) held out for validation
    order = np.random.default_rng([seed, EIGEN_ZHOU_SPLIT_STREAM]).permutation(len(train_lines))
    n_val = max(1, len(train_lines) // 10)
    _text(splits / "eigen_zhou" / "train_files.txt", "".join(train_lines[i] for i in sorted(order[n_val:])))
    _text(splits / "eigen_zhou" / "val_files.txt", "".join(train_lines[i] for i in sorted(order[:n_val])))
    _text(splits / "eigen" / "test_files.txt", "".join(test_lines))
    _text(splits / "eigen_benchmark" / "test_files.txt", "".join(test_lines))
    _text(splits / "video" / "test_files.txt", "".join(video_lines))
    jobs += [(_job_odom, (root, seed, spec, name)) for name in spec["odom_sequences"]]
    return jobs


_CITY, _TEST_CITY = "synthcity", "synthtest"


def _job_cs_train(root: Path, seed: int, spec: dict, k: int, tick: _Tick = None) -> int:
    """One Cityscapes training sequence as ManyDepth triplets + camera files + GT poses."""
    ep = make_episode("dynamic", seed, "train", k, spec["frames"], spec["width"], spec["height"])
    cs = root / "cityscapes"
    imgs = []
    for i in range(ep.n_frames):
        imgs.append(_noisy(seed, ep, ep.render(i).image, "train", k, i))
        if tick:
            tick(1)
    K = ep.K
    cam = f"{K[0, 0]:.6f},0,{K[0, 2]:.6f},0,{K[1, 1]:.6f},{K[1, 2]:.6f},0,0,1\n"
    for i in range(1, ep.n_frames - 1):
        stem = f"{_CITY}_{k:06d}_{i:06d}"
        _jpg(cs / "train_triplets" / _CITY / f"{stem}.jpg", np.concatenate(imgs[i - 1:i + 2], axis=1))
        _text(cs / "train_triplets" / _CITY / f"{stem}_cam.txt", cam)
    _text(cs / "gt_poses" / f"{_CITY}_{k:06d}.txt", _kitti_poses(ep.poses_relative()))
    return ep.n_frames


def _job_cs_test(root: Path, seed: int, spec: dict, j: int, tick: _Tick = None) -> int:
    """One Cityscapes test sequence: 3 frames, disparity + camera json for the middle one."""
    ep = make_episode("dynamic", seed, "test", j, 3, spec["width"], spec["height"])
    cs = root / "cityscapes"
    K = ep.K
    for i in range(3):
        fr = ep.render(i)
        stem = f"{_TEST_CITY}_{j:06d}_{i:06d}"
        _png(cs / "leftImg8bit_sequence" / "test" / _TEST_CITY / f"{stem}_leftImg8bit.png", _noisy(seed, ep, fr.image, "test", j, i))
        if i == 1:  # the labelled frame: disparity (p = d * 256 + 1, 0 invalid) + camera json
            with np.errstate(divide="ignore"):
                disp = CITYSCAPES_BASELINE * K[0, 0] / fr.depth
            ok = np.isfinite(fr.depth) & (fr.depth > 0) & (disp * 256.0 + 1 < 65535)
            p = np.where(ok, np.round(np.where(ok, disp, 0) * 256.0) + 1, 0).astype(np.uint16)
            _png(cs / "disparity" / "test" / _TEST_CITY / f"{stem}_disparity.png", p)
            camj = {"extrinsic": {"baseline": CITYSCAPES_BASELINE, "pitch": 0.0, "roll": 0.0, "yaw": 0.0,
                                  "x": 1.7, "y": 0.1, "z": 1.65},
                    "intrinsic": {"fx": float(K[0, 0]), "fy": float(K[1, 1]), "u0": float(K[0, 2]), "v0": float(K[1, 2])}}
            _text(cs / "camera" / "test" / _TEST_CITY / f"{stem}_camera.json", json.dumps(camj, indent=2) + "\n")
        if tick:
            tick(1)
    _text(cs / "gt_poses" / f"{_TEST_CITY}_{j:06d}.txt", _kitti_poses(ep.poses_relative()))
    return 3


def _dynamic_jobs(root: Path, seed: int, spec: dict) -> list:
    splits = root / "splits" / "cityscapes"
    n = spec["frames"]
    lines = [f"{_CITY} {_CITY}_{k:06d}_{i:06d}\n" for k in range(spec["sequences"]) for i in range(1, n - 1)]
    _text(splits / "train_files.txt", "".join(lines))
    _text(splits / "test_files.txt", "".join(f"{_TEST_CITY} {_TEST_CITY}_{j:06d}_000001\n" for j in range(spec["test_frames"])))
    return [(_job_cs_train, (root, seed, spec, k)) for k in range(spec["sequences"])] + \
           [(_job_cs_test, (root, seed, spec, j)) for j in range(spec["test_frames"])]


_TEST_STRIDE = 10


def _job_nyu_train(root: Path, seed: int, spec: dict, k: int, tick: _Tick = None) -> int:
    ep = make_episode("indoor", seed, "train", k, spec["frames"], spec["width"], spec["height"])
    scene = root / "nyu" / "train" / f"synth_room_{k:04d}"
    for i in range(ep.n_frames):
        _jpg(scene / f"rgb_{i:05d}.jpg", _noisy(seed, ep, ep.render(i).image, "train", k, i))
        if tick:
            tick(1)
    _text(scene / "poses.txt", _kitti_poses(ep.poses_relative()))
    return ep.n_frames


def _job_nyu_test(root: Path, seed: int, spec: dict, j: int, tick: _Tick = None) -> int:
    """``test_frames`` labelled views of held-out room j (every 10th frame of a hand-held walk)."""
    nt = spec["test_frames"]
    ep = make_episode("indoor", seed, "test", j, _TEST_STRIDE * nt, spec["width"], spec["height"])
    for m, i in enumerate(range(0, ep.n_frames, _TEST_STRIDE)):
        n = j * nt + m
        fr = ep.render(i)
        _png(root / "nyu" / "test" / f"{n:05d}_rgb.png", _noisy(seed, ep, fr.image, "test", j, i))
        _png(root / "nyu" / "test" / f"{n:05d}_depth.png", _depth_png(fr.depth, max_depth=10.0 + 1e-6))
        if tick:
            tick(1)
    return nt


def _indoor_jobs(root: Path, seed: int, spec: dict) -> list:
    W, H = image_size("indoor", spec["width"], spec["height"])
    K = _K(NYU_K, W, H)
    _text(root / "nyu" / "intrinsics.txt", _fmt([K[0, 0], K[1, 1], K[0, 2], K[1, 2]], "%.6f") + "\n")
    n = spec["frames"]
    _text(root / "splits" / "nyu" / "train_files.txt",
          "".join(f"synth_room_{k:04d} {i}\n" for k in range(spec["sequences"]) for i in range(1, n - 1)))
    _text(root / "splits" / "nyu" / "test_files.txt", "".join(f"{m:05d}\n" for m in range(TEST_ROOMS * spec["test_frames"])))
    return [(_job_nyu_train, (root, seed, spec, k)) for k in range(spec["sequences"])] + \
           [(_job_nyu_test, (root, seed, spec, j)) for j in range(TEST_ROOMS)]


def _run_jobs(jobs: list, workers: int, tick: Callable[[int], None]) -> None:
    """Run rendering jobs sequentially (per-frame progress) or in ``workers`` processes."""
    if workers <= 1 or len(jobs) <= 1:
        for fn, args in jobs:
            fn(*args, tick=tick)
        return
    from concurrent.futures import ProcessPoolExecutor, as_completed

    with ProcessPoolExecutor(max_workers=workers) as ex:
        futs = [ex.submit(fn, *args) for fn, args in jobs]
        for f in as_completed(futs):
            tick(f.result())


def frame_count(profile: str, spec: SynthSpec) -> int:
    """Number of rendered frames (progress bar total)."""
    if profile == "driving":
        return spec["sequences"] * spec["frames"] + TEST_DRIVES * (spec["test_frames"] + 2) \
            + len(spec["odom_sequences"]) * spec["odom_frames"]
    if profile == "dynamic":
        return spec["sequences"] * spec["frames"] + 3 * spec["test_frames"]
    return spec["sequences"] * spec["frames"] + TEST_ROOMS * spec["test_frames"]


def content_hash(root: str | os.PathLike) -> tuple[str, int]:
    """sha256 over every file's relative path and bytes (sorted; the manifest excluded)."""
    root = Path(root)
    h = hashlib.sha256()
    n = 0
    for p in sorted(q for q in root.rglob("*") if q.is_file() and q.name != MANIFEST):
        h.update(str(p.relative_to(root)).encode() + b"\0")
        h.update(hashlib.sha256(p.read_bytes()).digest())
        n += 1
    return h.hexdigest(), n


def write_profile(profile: str, out: str | os.PathLike, spec: SynthSpec, seed: int = 0, force: bool = False,
                  progress: bool = True, workers: int = 1) -> dict:
    """Render ``profile`` into ``out``; returns the manifest (also written to ``out/.complete``).

    ``workers > 1`` renders independent sequences in that many processes (same bytes).

    Skips the work when ``out/.complete`` records the same profile, seed and sizes."""
    from tqdm import tqdm

    if profile not in ("driving", "dynamic", "indoor"):
        raise ValueError(f"synth: unknown profile {profile!r} (driving | dynamic | indoor)")
    out = Path(out)
    want = {"format": FORMAT_VERSION, "profile": profile, "seed": int(seed), "spec": dict(spec), "noise_sigma": NOISE_SIGMA}
    mp = manifest_path(out)
    if mp.is_file() and not force:
        try:
            have = json.loads(mp.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(f"{mp}: unreadable manifest ({e}); rerun with --force") from None
        if all(have.get(k) == v for k, v in want.items()):
            have["skipped"] = True
            return have
        raise ValueError(f"{out}: holds a different synthetic benchmark ({mp}: profile={have.get('profile')}, "
                         f"seed={have.get('seed')}, spec={have.get('spec')}); use --force to overwrite")
    if out.exists() and not mp.is_file() and (not out.is_dir() or any(out.iterdir())):
        # synth renders into OUT.partial and renames it, so an OUT without a manifest is not ours:
        # never delete it, --force or not
        raise ValueError(f"{out}: exists and was not written by sa4depth synth (no {MANIFEST} manifest); "
                         f"it is left alone: choose another --out or remove it yourself")
    tmp = out.with_name(out.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    t0 = time.time()
    total = frame_count(profile, spec)
    jobs = {"driving": _driving_jobs, "dynamic": _dynamic_jobs, "indoor": _indoor_jobs}[profile](tmp, int(seed), dict(spec))
    with tqdm(total=total, desc=f"synth {profile}", unit="frame", disable=not progress) as bar:
        _run_jobs(jobs, workers, bar.update)
    digest, n = content_hash(tmp)
    man = dict(want, files=n, sha256=digest, frames=total, seconds=round(time.time() - t0, 2))
    write_json_atomic(tmp / MANIFEST, man)
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    return man
