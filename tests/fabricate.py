"""Fabricate tiny datasets in the layouts of ``docs/DATA_LAYOUTS.md`` for loader tests.

The files are small (64 x 32 random-texture images by default) but every metadata file is
geometrically consistent: OXTS packets (Mercator, KITTI devkit convention) and
``poses_cam_02.txt`` describe the same trajectory through the calibration chain, velocities and
timestamps integrate to the travelled distance, calib files use KITTI's text format. Reusable
for checking real-data code paths (``fabricate_all(tmp_path)`` then point ``data.roots`` at it).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

ER = 6378137.0
LAT0, LON0 = 49.0, 8.4
DT = 0.1
BASELINE = 0.54


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _img(path: Path, w: int, h: int, rng: np.random.Generator) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    base = rng.integers(0, 256, size=(h // 4 + 1, w // 4 + 1, 3)).astype(np.uint8)
    im = Image.fromarray(base).resize((w, h), Image.Resampling.BILINEAR)
    if path.suffix == ".jpg":
        im.save(path, quality=95)
    else:
        im.save(path)


def _depth_png(path: Path, depth: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(np.round(depth * 256), 0, 65535).astype(np.uint16)).save(path)


def _mat(M: np.ndarray) -> str:
    return " ".join(f"{x:.12e}" for x in np.asarray(M).reshape(-1))


def _h(R, t) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = t
    return T


def _rot_z(a: float) -> np.ndarray:
    return np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1.0]])


def _rot_x(a: float) -> np.ndarray:
    return np.array([[1.0, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])


def _pose_line(T: np.ndarray) -> str:
    return _mat(T[:3, :4])


@dataclass
class DrivingCalib:
    """The calibration the fabricator writes (all transforms 4x4, metres)."""

    width: int
    height: int
    K: np.ndarray
    t2: np.ndarray = field(default_factory=lambda: np.array([0.06, 0.0, 0.0]))
    R_rect: np.ndarray = field(default_factory=lambda: _rot_x(0.01))
    T_cam0_velo: np.ndarray = field(default_factory=lambda: _h(np.array([[0, -1, 0], [0, 0, -1], [1, 0, 0.0]]),
                                                                [0.0, -0.08, -0.27]))
    T_velo_imu: np.ndarray = field(default_factory=lambda: _h(np.eye(3), [-0.81, 0.32, -0.8]))

    @property
    def t3(self) -> np.ndarray:
        return self.t2 - np.array([BASELINE, 0, 0])

    def T_cam_imu(self, cam: int) -> np.ndarray:
        t = self.t2 if cam == 2 else self.t3
        return _h(np.eye(3), t) @ _h(self.R_rect, np.zeros(3)) @ self.T_cam0_velo @ self.T_velo_imu

    def P(self, cam: int) -> np.ndarray:
        t = self.t2 if cam == 2 else self.t3
        return self.K @ np.hstack([np.eye(3), t[:, None]])


def driving_calib(width: int, height: int) -> DrivingCalib:
    K = np.array([[0.58 * width, 0, 0.52 * width], [0, 1.92 * height, 0.49 * height], [0, 0, 1.0]])
    return DrivingCalib(width, height, K)


def write_kitti_calib(date_dir: Path, c: DrivingCalib) -> None:
    lines = ["calib_time: 01-Jan-2000 00:00:00", "corner_dist: 9.950000e-02"]
    for k in range(4):
        cam = 2 if k in (0, 2) else 3
        lines += [f"S_0{k}: {c.width} {c.height}", f"K_0{k}: {_mat(c.K)}", f"D_0{k}: 0 0 0 0 0",
                  f"R_0{k}: {_mat(np.eye(3))}", f"T_0{k}: 0 0 0", f"S_rect_0{k}: {c.width} {c.height}",
                  f"R_rect_0{k}: {_mat(c.R_rect)}", f"P_rect_0{k}: {_mat(c.P(cam) if k >= 2 else c.K @ np.eye(3, 4))}"]
    _write(date_dir / "calib_cam_to_cam.txt", "\n".join(lines) + "\n")
    _write(date_dir / "calib_velo_to_cam.txt",
           f"calib_time: 01-Jan-2000 00:00:00\nR: {_mat(c.T_cam0_velo[:3, :3])}\nT: {_mat(c.T_cam0_velo[:3, 3])}\n"
           "delta_f: 0 0\ndelta_c: 0 0\n")
    _write(date_dir / "calib_imu_to_velo.txt",
           f"calib_time: 01-Jan-2000 00:00:00\nR: {_mat(c.T_velo_imu[:3, :3])}\nT: {_mat(c.T_velo_imu[:3, 3])}\n")


def _stamp(t: float) -> str:
    whole = int(math.floor(t))
    frac = int(round((t - whole) * 1e9))
    h, m, s = whole // 3600, (whole // 60) % 60, whole % 60
    return f"2000-01-01 {h:02d}:{m:02d}:{s:02d}.{frac:09d}"


def drive_trajectory(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(positions (n,2) Mercator metres, yaw (n,), speed (n,)): speed varies, gentle curve."""
    rng = np.random.default_rng(seed)
    speed = 8.0 + 4.0 * rng.random() + 0.6 * np.arange(n)
    yaw = 0.3 + 0.03 * np.arange(n) * (1 if seed % 2 else -1)
    pos = np.zeros((n, 2))
    for i in range(1, n):
        d = 0.5 * (speed[i - 1] + speed[i]) * DT
        a = 0.5 * (yaw[i - 1] + yaw[i])
        pos[i] = pos[i - 1] + d * np.array([math.cos(a), math.sin(a)])
    return pos, yaw, speed


def arc_trajectory(n: int, radius: float, angle: float) -> np.ndarray:
    """n camera-to-world 4x4 poses along a circular arc of ``radius`` metres turning through ``angle``
    radians in the x-z plane (KITTI camera axes), identity rotations: a GT trajectory for the
    odometry metrics."""
    th = np.linspace(0, angle, n)
    T = np.tile(np.eye(4), (n, 1, 1))
    T[:, 0, 3] = radius * np.sin(th)
    T[:, 2, 3] = radius * (1 - np.cos(th))
    return T


def write_drive(root: Path, folder: str, n: int, c: DrivingCalib, seed: int, img_ext: str = ".png") -> dict:
    """One KITTI raw drive with images, OXTS, velodyne, GT depth PNG and poses_cam_02.txt."""
    rng = np.random.default_rng(seed)
    d = root / folder
    pos, yaw, speed = drive_trajectory(n, seed)
    scale = math.cos(LAT0 * math.pi / 180)
    mx0 = scale * LON0 * math.pi * ER / 180
    my0 = scale * ER * math.log(math.tan((90 + LAT0) * math.pi / 360))
    stamps = [_stamp(i * DT) for i in range(n)]
    Twc2 = []
    for i in range(n):
        mx, my = mx0 + pos[i, 0], my0 + pos[i, 1]
        lon = mx * 180 / (scale * math.pi * ER)
        lat = 360 / math.pi * math.atan(math.exp(my / (scale * ER))) - 90
        alt = 110.0
        f = np.zeros(30)
        f[:6] = [lat, lon, alt, 0.0, 0.0, yaw[i]]
        f[8], f[9], f[10] = speed[i], 0.0, 0.0
        f[23:30] = [4, 10, 4, 4, 5, 0, 0]  # accuracy / satellite / mode fields
        _write(d / "oxts" / "data" / f"{i:010d}.txt", " ".join(f"{x:.15g}" for x in f) + "\n")
        T_w_imu = _h(_rot_z(yaw[i]), [mx, my, alt])
        Twc2.append(T_w_imu @ np.linalg.inv(c.T_cam_imu(2)))
        for cam in (2, 3):
            _img(d / f"image_0{cam}" / "data" / f"{i:010d}{img_ext}", c.width, c.height, rng)
        pts = np.stack([rng.uniform(2, 30, 400), rng.uniform(-8, 8, 400), rng.uniform(-1.6, 1.0, 400),
                        rng.uniform(0, 1, 400)], 1).astype(np.float32)
        (d / "velodyne_points" / "data").mkdir(parents=True, exist_ok=True)
        pts.tofile(d / "velodyne_points" / "data" / f"{i:010d}.bin")
        _depth_png(d / "proj_depth" / "groundtruth" / "image_02" / f"{i:010d}.png",
                   rng.uniform(1, 60, (c.height, c.width)) * (rng.random((c.height, c.width)) > 0.3))
    for sub in ("image_02", "image_03", "oxts", "velodyne_points"):
        _write(d / sub / "timestamps.txt", "\n".join(stamps) + "\n")
    _write(d / "poses_cam_02.txt", "\n".join(_pose_line(T) for T in Twc2) + "\n")
    return {"Twc2": np.array(Twc2), "speed": speed, "dt": DT}


def write_odometry(root: Path, seqs: list[str], n: int, c: DrivingCalib, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for k, seq in enumerate(seqs):
        sd = root / "sequences" / seq
        for i in range(n):
            _img(sd / "image_2" / f"{i:06d}.png", c.width, c.height, rng)
        Ps = [c.K @ np.eye(3, 4), c.K @ np.hstack([np.eye(3), [[-BASELINE], [0], [0]]]), c.P(2), c.P(3)]
        _write(sd / "calib.txt", "".join(f"P{j}: {_mat(P)}\n" for j, P in enumerate(Ps))
               + f"Tr: {_mat(c.T_cam0_velo[:3, :4])}\n")
        _write(sd / "times.txt", "".join(f"{i * DT:.6e}\n" for i in range(n)))
        poses = [_h(_rot_z(0.0) @ np.eye(3), [0.01 * i, 0.0, 1.0 * i * (1 + k)]) for i in range(n)]
        _write(root / "poses" / f"{seq}.txt", "\n".join(_pose_line(T) for T in poses) + "\n")


def fabricate_driving(out: Path, *, width: int = 64, height: int = 32, frames: int = 6, img_ext: str = ".png",
                      odom_frames: int = 8) -> dict:
    """``out/kitti_raw``, ``out/kitti_odom``, ``out/splits``: 2 training drives, 1 test drive."""
    c = driving_calib(width, height)
    raw = out / "kitti_raw"
    date = "2000_01_01"
    write_kitti_calib(raw / date, c)
    truth = {}
    folders = [f"{date}/{date}_drive_{k:04d}_sync" for k in (1, 2, 3)]
    for k, folder in enumerate(folders):
        truth[folder] = write_drive(raw, folder, frames, c, seed=k + 1, img_ext=img_ext)
    sp = out / "splits"
    train = [f"{folders[k]} {i} {'l' if i % 2 else 'r'}" for k in (0, 1) for i in range(1, frames - 1)]
    _write(sp / "eigen_zhou" / "train_files.txt", "\n".join(train[:-2]) + "\n")
    _write(sp / "eigen_zhou" / "val_files.txt", "\n".join(train[-2:]) + "\n")
    test = [f"{folders[2]} {i} l" for i in range(frames)]
    for s in ("eigen", "eigen_benchmark", "video"):
        _write(sp / s / "test_files.txt", "\n".join(test) + "\n")
    write_odometry(out / "kitti_odom", ["00", "01", "09", "10"], odom_frames, c, seed=7)
    return {"calib": c, "truth": truth, "folders": folders}


def fabricate_dynamic(out: Path, *, width: int = 64, height: int = 32, n_train: int = 4, n_test: int = 2) -> dict:
    rng = np.random.default_rng(11)
    cs = out / "cityscapes"
    city = "testcity"
    K = np.array([[0.6 * width, 0, 0.5 * width], [0, 1.2 * height, 0.5 * height], [0, 0, 1.0]])
    names = [f"{city}_000000_{f:06d}" for f in range(1, n_train + 1)]
    for name in names:
        _img(cs / "train_triplets" / city / f"{name}.jpg", 3 * width, height, rng)
        _write(cs / "train_triplets" / city / f"{name}_cam.txt",
               f"{K[0, 0]},0.0,{K[0, 2]},0.0,{K[1, 1]},{K[1, 2]},0.0,0.0,1.0\n")
    poses = [_h(np.eye(3), [0.0, 0.0, 0.8 * i]) for i in range(n_train + 2)]
    _write(cs / "gt_poses" / f"{city}_000000.txt", "\n".join(_pose_line(T) for T in poses) + "\n")
    test = [f"{city}_000001_{f:06d}" for f in range(n_test)]
    H, W = 2 * height, 2 * width
    for name in test:
        _img(cs / "leftImg8bit_sequence" / "test" / city / f"{name}_leftImg8bit.png", W, H, rng)
        disp = rng.uniform(1, 60, (H, W))
        raw = np.where(rng.random((H, W)) > 0.2, np.round(disp * 256 + 1), 0).astype(np.uint16)
        p = cs / "disparity" / "test" / city / f"{name}_disparity.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(raw).save(p)
        _write(cs / "camera" / "test" / city / f"{name}_camera.json",
               json.dumps({"extrinsic": {"baseline": 0.209313}, "intrinsic": {"fx": 1.1 * W, "fy": 1.1 * W,
                                                                               "u0": W / 2, "v0": H / 2}}))
    sp = out / "splits" / "cityscapes"
    _write(sp / "train_files.txt", "".join(f"{city} {n}\n" for n in names))
    _write(sp / "test_files.txt", "".join(f"{city} {n}\n" for n in test))
    return {"K": K, "names": names, "test": test}


def fabricate_indoor(out: Path, *, width: int = 64, height: int = 48, frames: int = 5, n_test: int = 3) -> dict:
    rng = np.random.default_rng(13)
    nyu = out / "nyu"
    scene = "room_0001"
    for i in range(frames):
        _img(nyu / "train" / scene / f"rgb_{i:05d}.jpg", width, height, rng)
    poses = [_h(_rot_z(0.02 * i), [0.02 * i, 0.0, 0.01 * i]) for i in range(frames)]
    _write(nyu / "train" / scene / "poses.txt", "\n".join(_pose_line(T) for T in poses) + "\n")
    fx = 0.9 * width
    _write(nyu / "intrinsics.txt", f"{fx} {fx} {width / 2} {height / 2}\n")
    ids = [f"{i:05d}" for i in range(n_test)]
    for ident in ids:
        _img(nyu / "test" / f"{ident}_rgb.png", width, height, rng)
        _depth_png(nyu / "test" / f"{ident}_depth.png", rng.uniform(0.5, 10, (height, width)))
    sp = out / "splits" / "nyu"
    _write(sp / "train_files.txt", "".join(f"{scene} {i}\n" for i in range(1, frames - 1)))
    _write(sp / "test_files.txt", "".join(f"{i}\n" for i in ids))
    return {"poses": np.array(poses), "ids": ids}


def fabricate_all(root: Path, **kw) -> dict:
    """``root/driving``, ``root/dynamic``, ``root/indoor`` like ``sa4depth synth`` writes them."""
    return {"driving": fabricate_driving(root / "driving", **kw), "dynamic": fabricate_dynamic(root / "dynamic"),
            "indoor": fabricate_indoor(root / "indoor")}


def overrides_for(root: Path, dataset: str = "kitti") -> dict:
    """Config overrides (a mapping for ``load_config(overrides=...)``) pointing every
    ``data.roots`` entry at a fabricated tree."""
    r = Path(root)
    roots = {"kitti": r / "driving" / "kitti_raw", "kitti_odom": r / "driving" / "kitti_odom",
             "cityscapes": r / "dynamic" / "cityscapes", "nyu": r / "indoor" / "nyu",
             "vkitti2": r / "driving" / "kitti_raw"}
    return {"data.dataset": dataset, "data.splits_dir": str(r / "driving" / "splits"),
            "data.roots": {k: str(v) for k, v in roots.items()},
            "data.odom_train_sequences": ["00", "01"]}  # the odometry sequences fabricated here


# ----------------------------------------------------------------------------- Virtual KITTI 2 (release layout)
VKITTI2_K = (725.0087, 725.0087, 620.5, 187.0)  # intrinsic.txt values of the release at 1242 x 375
VKITTI2_STEREO = 0.532725                       # Camera_1 lies this far right of Camera_0 (release)


def fabricate_vkitti2(out: Path, *, scenes: tuple[str, ...] = ("Scene01", "Scene02"),
                      variations: tuple[str, ...] = ("clone",), frames: int = 5, width: int = 64,
                      height: int = 20, seed: int = 3) -> dict:
    """The Virtual KITTI 2 release layout (``Scene<NN>/<variation>/frames/{rgb,depth}/Camera_{0,1}``,
    ``intrinsic.txt``, ``extrinsic.txt`` with world-to-camera rows and their header lines).

    The camera drives forward along a gentle curve; its intrinsics are the release's scaled to
    ``width x height``. Depth PNGs are uint16 centimetres with the top rows at the far value
    65535 (sky). Returns ``{"<scene>/<variation>": {"Twc": (n,4,4) camera-0-to-world,
    "K": (fx, fy, cx, cy), "depth_cm": [uint16 arrays of camera 0]}}``.
    """
    rng = np.random.default_rng(seed)
    sx, sy = width / 1242.0, height / 375.0
    K = (VKITTI2_K[0] * sx, VKITTI2_K[1] * sy, VKITTI2_K[2] * sx, VKITTI2_K[3] * sy)
    truth = {}
    for si, scene in enumerate(scenes):
        for var in variations:
            base = out / scene / var
            Twc0, ext_rows, int_rows, depths = [], [], [], []
            for i in range(frames):
                yaw = 0.02 * i * (si + 1)
                T = _h(_rot_x(0.01 * i) @ np.array([[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0],
                                                    [-np.sin(yaw), 0, np.cos(yaw)]]),
                       [0.1 * i, -1.5 + 0.01 * i, 10.0 + (0.8 + 0.2 * si) * i])
                Twc0.append(T)
                for cam in (0, 1):
                    Tc = T @ _h(np.eye(3), [VKITTI2_STEREO * cam, 0.0, 0.0])
                    E = np.linalg.inv(Tc)
                    ext_rows.append(f"{i} {cam} " + " ".join(f"{x:.10g}" for x in E.reshape(-1)))
                    int_rows.append(f"{i} {cam} " + " ".join(f"{x:.10g}" for x in K))
                    _img(base / "frames" / "rgb" / f"Camera_{cam}" / f"rgb_{i:05d}.jpg", width, height, rng)
                    d = rng.integers(100, 8000, size=(height, width)).astype(np.uint16)
                    d[: height // 4] = 65535
                    d[-1, :3] = 0
                    dpath = base / "frames" / "depth" / f"Camera_{cam}" / f"depth_{i:05d}.png"
                    dpath.parent.mkdir(parents=True, exist_ok=True)
                    Image.fromarray(d).save(dpath)
                    if cam == 0:
                        depths.append(d)
            _write(base / "extrinsic.txt", "frame cameraID r1,1 r1,2 r1,3 t1 r2,1 r2,2 r2,3 t2 r3,1 r3,2 r3,3 t3 "
                   "0 0 0 1\n" + "\n".join(ext_rows) + "\n")
            _write(base / "intrinsic.txt", "frame cameraID K[0,0] K[1,1] K[0,2] K[1,2]\n" + "\n".join(int_rows) + "\n")
            truth[f"{scene}/{var}"] = {"Twc": np.array(Twc0), "K": K, "depth_cm": depths}
    return truth
