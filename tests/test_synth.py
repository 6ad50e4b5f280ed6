"""Tests of the procedural synthetic benchmark (sa4depth.data.synth, `sa4depth synth`).

The tiny data of the three profiles is written once per module (odometry reduced to the
sequences 00, 09, 10 through ``data.odom_train_sequences`` to keep CI fast).
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sa4depth.config import load_config
from sa4depth.data.synth import NOISE_SIGMA, make_episode, render_sequence
from sa4depth.data.synth.profiles import add_noise, episode_rng
from sa4depth.data.synth.writers import SynthSpec, write_profile, xy_from_latlon

torch.set_num_threads(2)

SEED = 3


@pytest.fixture(scope="module")
def cfg():
    return load_config(data="synthetic", scale="tiny", overrides={"data.odom_train_sequences": ["00"]})


@pytest.fixture(scope="module")
def spec(cfg):
    return SynthSpec.from_config(cfg)


@pytest.fixture(scope="module")
def data(tmp_path_factory, spec):
    root = tmp_path_factory.mktemp("synth")
    out = {}
    for prof in ("driving", "dynamic", "indoor"):
        man = write_profile(prof, root / prof, spec, seed=SEED, progress=False, workers=2)
        assert not man.get("skipped")
        out[prof] = root / prof
    return out


# ----------------------------------------------------------------------------- warping helpers
def _warp(src: np.ndarray, depth_t: np.ndarray, T_s_t: np.ndarray, K: np.ndarray):
    """Inverse-warp ``src`` into the target view (torch grid_sample, bilinear, pixel centres at
    integer coordinates = align_corners=True). Returns (warped (H,W,3), u_s, v_s, z_s)."""
    H, W = depth_t.shape
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    d = np.where(np.isfinite(depth_t), depth_t, 1.0)
    X = np.linalg.inv(K) @ np.stack([u.ravel(), v.ravel(), np.ones(H * W)]) * d.ravel()
    Xs = T_s_t[:3, :3] @ X + T_s_t[:3, 3:]
    p = K @ Xs
    z = p[2]
    us, vs = p[0] / z, p[1] / z
    grid = torch.from_numpy(np.stack([2 * us / (W - 1) - 1, 2 * vs / (H - 1) - 1], -1).reshape(1, H, W, 2)).float()
    img = torch.from_numpy(np.ascontiguousarray(src.transpose(2, 0, 1)))[None].float()
    out = F.grid_sample(img, grid, mode="bilinear", padding_mode="border", align_corners=True)[0].numpy().transpose(1, 2, 0)
    return out, us.reshape(H, W), vs.reshape(H, W), z.reshape(H, W)


def _covisible(depth_t, depth_s, dyn_t, dyn_s, us, vs, zs, tol=0.03):
    """Static, non-sky target pixels visible in the source: in front, inside, the projected
    depth agrees with all four source depths around the sample point within ``tol``, and not
    within one pixel of a target depth discontinuity (anti-aliased silhouette pixels mix two
    surfaces, so no single depth warps them)."""
    H, W = depth_t.shape
    ok = np.isfinite(depth_t) & ~dyn_t & (zs > 0.1) & (us >= 0) & (us <= W - 1.001) & (vs >= 0) & (vs <= H - 1.001)
    ld = np.log(np.where(np.isfinite(depth_t), depth_t, 1e4))
    jump = np.zeros((H, W), bool)
    jump[:, 1:] |= np.abs(np.diff(ld, axis=1)) > 0.05
    jump[:, :-1] |= np.abs(np.diff(ld, axis=1)) > 0.05
    jump[1:] |= np.abs(np.diff(ld, axis=0)) > 0.05
    jump[:-1] |= np.abs(np.diff(ld, axis=0)) > 0.05
    ok &= ~jump
    u0 = np.clip(np.floor(us).astype(int), 0, W - 2)
    v0 = np.clip(np.floor(vs).astype(int), 0, H - 2)
    for dv in (0, 1):
        for du in (0, 1):
            ds = depth_s[v0 + dv, u0 + du]
            ok &= np.isfinite(ds) & (np.abs(ds - zs) < tol * zs) & ~dyn_s[v0 + dv, u0 + du]
    return ok


@pytest.mark.parametrize("profile,gap", [("driving", 1), ("dynamic", 1), ("indoor", 4)])
def test_photometric_self_consistency(profile, gap):
    """Warping a source frame into the target with GT depth + GT pose reproduces the target on
    co-visible static pixels; a wrong pose (translation x1.5) gives a clearly larger error."""
    r = render_sequence(profile, n_frames=2 * gap + 1, width=160, height=48, seed=SEED, frames=[0, gap, 2 * gap])
    K, P, imgs, D, dyn = r["K"], r["poses"], r["images"], r["depth"], r["dynamic"]
    maes, wrong = [], []
    for t, s in ((1, 0), (1, 2)):
        T = np.linalg.inv(P[s]) @ P[t]                   # T_{s<-t}
        warped, us, vs, zs = _warp(imgs[s], D[t], T, K)
        mask = _covisible(D[t], D[s], dyn[t], dyn[s], us, vs, zs)
        assert mask.mean() > 0.3, f"{profile}: only {mask.mean():.2f} of the pixels co-visible"
        maes.append(np.abs(warped - imgs[t])[mask].mean())
        Tw = T.copy()
        Tw[:3, 3] *= 1.5
        ww, us2, vs2, zs2 = _warp(imgs[s], D[t], Tw, K)
        H, W = D[t].shape
        m2 = mask & (zs2 > 0.1) & (us2 >= 0) & (us2 <= W - 1) & (vs2 >= 0) & (vs2 <= H - 1)
        wrong.append(np.abs(ww - imgs[t])[m2].mean())
    mae, bad = float(np.mean(maes)), float(np.mean(wrong))
    print(f"{profile}: MAE {mae:.4f} (GT pose) vs {bad:.4f} (translation x1.5), noise sigma {NOISE_SIGMA:.4f}")
    assert mae < 0.6 * NOISE_SIGMA, f"{profile}: GT-warp MAE {mae:.4f} too large (noise sigma {NOISE_SIGMA:.4f})"
    assert bad > 2.0 * mae, f"{profile}: wrong pose not detectable (MAE {bad:.4f} vs {mae:.4f})"


def test_dynamic_objects_move_and_are_masked():
    r = render_sequence("dynamic", n_frames=12, width=160, height=48, seed=SEED, frames=[0, 11])
    assert r["dynamic"].any(), "no moving object visible"
    ep = r["episode"]
    sc0, sc1 = ep.scene_at(0), ep.scene_at(11)
    moved = np.linalg.norm(sc1.box_c - sc0.box_c, axis=1)
    assert (moved[sc0.box_dyn] > 0.5).all() and (moved[~sc0.box_dyn] == 0).all()


# ----------------------------------------------------------------------------- driving files
def _read_rt(path: Path) -> dict:
    out = {}
    for line in path.read_text().splitlines():
        k, v = line.split(":", 1)
        try:
            out[k] = np.array([float(x) for x in v.split()])
        except ValueError:
            pass
    return out


def _poses(path: Path) -> np.ndarray:
    a = np.loadtxt(path, ndmin=2).reshape(-1, 3, 4)
    T = np.tile(np.eye(4), (len(a), 1, 1))
    T[:, :3, :4] = a
    return T


def _rx(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _ry(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _rz(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def _oxts_poses(oxts: np.ndarray) -> np.ndarray:
    """KITTI devkit convertOxtsToPose: Mercator translation, R = Rz(yaw) Ry(pitch) Rx(roll),
    normalised by the first pose."""
    scale_lat = oxts[0, 0]
    mx, my = xy_from_latlon(oxts[:, 0], oxts[:, 1], scale_lat)
    T = np.tile(np.eye(4), (len(oxts), 1, 1))
    for i, o in enumerate(oxts):
        T[i, :3, :3] = _rz(o[5]) @ _ry(o[4]) @ _rx(o[3])
        T[i, :3, 3] = (mx[i], my[i], o[2])
    return np.linalg.inv(T[0]) @ T


def _drives(root: Path) -> list[Path]:
    return sorted((root / "kitti_raw" / "2000_01_01").glob("*_sync"))


def test_kitti_pose_velocity_timestamps(data):
    root = data["driving"]
    date = root / "kitti_raw" / "2000_01_01"
    cc = _read_rt(date / "calib_cam_to_cam.txt")
    vc = _read_rt(date / "calib_velo_to_cam.txt")
    iv = _read_rt(date / "calib_imu_to_velo.txt")

    def rt(R, t):
        T = np.eye(4)
        T[:3, :3] = R.reshape(3, 3)
        T[:3, 3] = t
        return T

    P2 = cc["P_rect_02"].reshape(3, 4)
    T_c2_c0 = rt(np.eye(3), [P2[0, 3] / P2[0, 0], 0, 0])
    R_rect = rt(cc["R_rect_00"], [0, 0, 0])
    T_c2_imu = T_c2_c0 @ R_rect @ rt(vc["R"], vc["T"]) @ rt(iv["R"], iv["T"])
    assert abs(cc["S_rect_02"][0] - 160) < 1e-9 and abs(cc["S_rect_02"][1] - 48) < 1e-9
    for drive in _drives(root):
        stamps = (drive / "oxts" / "timestamps.txt").read_text().splitlines()
        secs = np.array([float(s.split()[1].split(":")[2]) + 60 * float(s.split()[1].split(":")[1]) for s in stamps])
        np.testing.assert_allclose(np.diff(secs), 0.1, atol=1e-6)
        assert stamps == (drive / "image_02" / "timestamps.txt").read_text().splitlines()
        oxts = np.stack([np.loadtxt(f) for f in sorted((drive / "oxts" / "data").glob("*.txt"))])
        assert oxts.shape[1] == 30
        T_imu = _oxts_poses(oxts)
        # |GT translation between frames| == |v| * dt (OXTS velocities and timestamps)
        step_imu = np.linalg.norm(np.diff(T_imu[:, :3, 3], axis=0), axis=1)
        v_dt = np.linalg.norm(oxts[:-1, 8:11], axis=1) * np.diff(secs)
        np.testing.assert_allclose(step_imu, v_dt, rtol=1e-6)
        assert ((v_dt / 0.1 >= 4.99) & (v_dt / 0.1 <= 15.01)).all()
        # OXTS poses == poses_cam_02 up to the calibration transform
        P = _poses(drive / "poses_cam_02.txt")
        P_from_oxts = T_c2_imu @ T_imu @ np.linalg.inv(T_c2_imu)
        np.testing.assert_allclose(P, P_from_oxts, atol=1e-5)
        step_cam = np.linalg.norm(np.diff(P[:, :3, 3], axis=0), axis=1)
        np.testing.assert_allclose(step_cam, v_dt, rtol=0.02)  # camera lever arm on curves
        # camera 1.65 m above the road: z-depth of the ground at image row v is fy * h / (v - cy)
        gt = cv2.imread(str(drive / "proj_depth" / "groundtruth" / "image_02" / "0000000000.png"), cv2.IMREAD_UNCHANGED)
        H, W = gt.shape
        z = gt[H - 1, W // 2 - 8:W // 2 + 8] / 256.0
        h = z * (H - 1 - P2[1, 2]) / P2[1, 1]
        assert abs(np.median(h) - 1.65) < 0.05, h


def test_velodyne_agrees_with_depth(data):
    root = data["driving"]
    date = root / "kitti_raw" / "2000_01_01"
    cc = _read_rt(date / "calib_cam_to_cam.txt")
    vc = _read_rt(date / "calib_velo_to_cam.txt")
    drive = _drives(root)[0]
    pts = np.fromfile(drive / "velodyne_points" / "data" / "0000000000.bin", dtype=np.float32).reshape(-1, 4)
    assert len(pts) > 1000
    T = np.eye(4)
    T[:3, :3] = vc["R"].reshape(3, 3)
    T[:3, 3] = vc["T"]
    P2 = cc["P_rect_02"].reshape(3, 4)
    R_rect = np.eye(4)
    R_rect[:3, :3] = cc["R_rect_00"].reshape(3, 3)
    X = P2 @ R_rect @ T @ np.c_[pts[:, :3], np.ones(len(pts))].T   # monodepth2 generate_depth_map
    z = X[2]
    front = (pts[:, 0] > 0) & (z > 1)
    u, v = np.round(X[0, front] / z[front]).astype(int), np.round(X[1, front] / z[front]).astype(int)
    gt = cv2.imread(str(drive / "proj_depth" / "groundtruth" / "image_02" / "0000000000.png"), cv2.IMREAD_UNCHANGED)
    assert gt.dtype == np.uint16
    inb = (u >= 0) & (u < gt.shape[1]) & (v >= 0) & (v < gt.shape[0])
    g = gt[v[inb], u[inb]] / 256.0
    ok = g > 0
    rel = np.abs(g[ok] - z[front][inb][ok]) / z[front][inb][ok]
    assert ok.sum() > 200 and np.median(rel) < 0.02, np.median(rel)


def _lines(p: Path) -> list[list[str]]:
    return [ln.split() for ln in p.read_text().splitlines() if ln.strip()]


def test_split_files_point_at_existing_files(data):
    root = data["driving"]
    raw = root / "kitti_raw"
    for split, ctx in (("eigen_zhou/train_files.txt", 1), ("eigen_zhou/val_files.txt", 1), ("eigen/test_files.txt", 0),
                       ("eigen_benchmark/test_files.txt", 0), ("video/test_files.txt", 0)):
        lines = _lines(root / "splits" / split)
        assert lines, split
        for folder, frame, side in lines:
            cam = {"l": "image_02", "r": "image_03"}[side]
            for off in range(-ctx, ctx + 1):
                f = raw / folder / cam / "data" / f"{int(frame) + off:010d}.png"
                assert f.is_file(), f"{split}: {f} missing"
            if split.startswith("eigen/"):
                assert (raw / folder / "velodyne_points" / "data" / f"{int(frame):010d}.bin").is_file()
            if split.startswith("eigen_benchmark"):
                assert (raw / folder / "proj_depth" / "groundtruth" / "image_02" / f"{int(frame):010d}.png").is_file()
    train_drives = {ln[0] for ln in _lines(root / "splits" / "eigen_zhou/train_files.txt")}
    test_drives = {ln[0] for ln in _lines(root / "splits" / "eigen/test_files.txt")}
    assert not train_drives & test_drives
    cs = data["dynamic"] / "cityscapes"
    for city, stem in _lines(data["dynamic"] / "splits" / "cityscapes" / "train_files.txt"):
        img = cv2.imread(str(cs / "train_triplets" / city / f"{stem}.jpg"))
        assert img is not None and img.shape == (48, 3 * 160, 3)
        fx, _, cx, _, fy, cy, *_ = map(float, (cs / "train_triplets" / city / f"{stem}_cam.txt").read_text().split(","))
        assert 0 < cx < 160 and 0 < cy < 48 and fx > 0 and fy > 0
    for city, stem in _lines(data["dynamic"] / "splits" / "cityscapes" / "test_files.txt"):
        assert (cs / "leftImg8bit_sequence" / "test" / city / f"{stem}_leftImg8bit.png").is_file()
        disp = cv2.imread(str(cs / "disparity" / "test" / city / f"{stem}_disparity.png"), cv2.IMREAD_UNCHANGED)
        cam = json.loads((cs / "camera" / "test" / city / f"{stem}_camera.json").read_text())
        assert disp.dtype == np.uint16 and disp.shape == (80, 160)
        d = (disp[disp > 0].astype(float) - 1) / 256.0
        depth = cam["extrinsic"]["baseline"] * cam["intrinsic"]["fx"] / d[d > 0]
        assert depth.min() > 0.5 and np.median(depth) < 200
    nyu = data["indoor"] / "nyu"
    for scene, frame in _lines(data["indoor"] / "splits" / "nyu" / "train_files.txt"):
        for off in (-1, 0, 1):
            assert (nyu / "train" / scene / f"rgb_{int(frame) + off:05d}.jpg").is_file()
    for (name,) in _lines(data["indoor"] / "splits" / "nyu" / "test_files.txt"):
        dep = cv2.imread(str(nyu / "test" / f"{name}_depth.png"), cv2.IMREAD_UNCHANGED)
        assert dep.dtype == np.uint16 and 0 < dep.max() / 256.0 <= 10.0
        assert (nyu / "test" / f"{name}_rgb.png").is_file()
    fx, fy, cx, cy = np.loadtxt(nyu / "intrinsics.txt")
    assert fx > 0 and fy > 0 and 0 < cx < 80 and 0 < cy < 60


def test_odometry_poses_load_with_evo(data, spec, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    import matplotlib

    matplotlib.use("Agg")
    from evo.tools import file_interface

    odom = data["driving"] / "kitti_odom"
    assert sorted(p.name for p in (odom / "sequences").iterdir()) == ["00", "09", "10"]
    for name in ("00", "09", "10"):
        traj = file_interface.read_kitti_poses_file(str(odom / "poses" / f"{name}.txt"))
        assert traj.num_poses == spec["odom_frames"]
        ep = make_episode("driving", SEED, "odom", int(name), spec["odom_frames"], spec["width"], spec["height"])
        times = np.loadtxt(odom / "sequences" / name / "times.txt")
        expected = float((ep.traj.speed[:-1] * np.diff(times)).sum())
        assert abs(traj.path_length - expected) < 0.01 * expected, (traj.path_length, expected)
        calib = _read_rt(odom / "sequences" / name / "calib.txt")
        assert set(calib) == {"P0", "P1", "P2", "P3", "Tr"}
        assert len(list((odom / "sequences" / name / "image_2").glob("*.png"))) == spec["odom_frames"]


def test_determinism(data, spec, tmp_path):
    # same seed -> the same bytes (re-render an image and a depth map of the written benchmark)
    root = data["driving"]
    ep = make_episode("driving", SEED, "train", 0, spec["frames"], spec["width"], spec["height"])
    fr = ep.render(2)
    noisy = add_noise(fr.image, episode_rng(SEED, "driving", "train", 0, 1000 + 2 + 100000 * 2))
    ok, buf = cv2.imencode(".png", noisy[..., ::-1])
    drive = _drives(root)[0]
    assert buf.tobytes() == (drive / "image_02" / "data" / "0000000002.png").read_bytes()
    # a whole small profile twice with the same seed -> the same content hash; another seed differs
    small = SynthSpec(spec, sequences=1, frames=3, test_frames=1)
    a = write_profile("indoor", tmp_path / "a", small, seed=5, progress=False)
    b = write_profile("indoor", tmp_path / "b", small, seed=5, progress=False)
    c = write_profile("indoor", tmp_path / "c", small, seed=6, progress=False)
    assert a["sha256"] == b["sha256"] and a["files"] == b["files"]
    ia = cv2.imread(str(tmp_path / "a" / "nyu" / "train" / "synth_room_0000" / "rgb_00001.jpg"))
    ic = cv2.imread(str(tmp_path / "c" / "nyu" / "train" / "synth_room_0000" / "rgb_00001.jpg"))
    assert np.abs(ia.astype(int) - ic.astype(int)).mean() > 5
    # rerun over a complete output is skipped; different settings need force
    assert write_profile("indoor", tmp_path / "a", small, seed=5, progress=False)["skipped"]
    with pytest.raises(ValueError, match="force"):
        write_profile("indoor", tmp_path / "a", small, seed=7, progress=False)
    assert not (tmp_path / "a.partial").exists()


def test_stored_ids_and_seed_constants_are_pinned():
    """The hit kinds, material ids and seed offsets are part of the rendered bytes: renaming is
    fine, renumbering is not (it would silently change every benchmark)."""
    from sa4depth.data.synth import profiles, scene, writers

    assert [(h.name, int(h)) for h in scene.Hit] == [
        ("SKY", 0), ("GROUND", 1), ("BOX", 2), ("CYLINDER", 3), ("SPHERE", 4), ("ROOM", 5)]
    assert [m.name for m in scene.Material] == [
        "SKY", "ROAD", "SIDEWALK", "FACADE", "CAR", "POLE", "TRUNK", "FOLIAGE", "PERSON", "WALL", "FLOOR",
        "CEILING", "FURNITURE", "GRASS"]
    assert [int(m) for m in scene.Material] == list(range(14))
    assert [(f.name, int(f)) for f in scene.RoomFace] == [("WALL", 0), ("FLOOR", 1), ("CEILING", 2)]
    assert (scene.RENDER_SEED_STRIDE, scene.GROUND_SEED, scene.BOX_SEED, scene.BOX_SEED_STRIDE,
            scene.CYLINDER_SEED, scene.CYLINDER_SEED_STRIDE, scene.SPHERE_SEED, scene.SPHERE_SEED_STRIDE,
            scene.ROOM_SEED, scene.ROOM_FACE_SEED_STRIDE, scene.ROOM_AXIS_SEED_STRIDE, scene.OCTAVE_SEED_STRIDE,
            scene.COLOUR_NOISE_SEED, scene.COLOUR_NOISE_SHIFT, scene.MOVER_ID_OFFSET) == (
        1000003, 11, 101, 13, 50021, 17, 90001, 19, 70001, 3, 5, 7919, 3, 17.3, 1_000_000)
    assert profiles.noise_stream(2, 2) == 1000 + 2 + 100000 * 2 and profiles.SCENE_STREAM == 0
    assert profiles.TEXTURE_SEED_MODULUS == 100000 and writers.EIGEN_ZHOU_SPLIT_STREAM == 77


def test_cli_rejects_bad_profile(capsys):
    from sa4depth.cli import main

    with pytest.raises(SystemExit):
        main(["synth", "--profile", "mars"])
    with pytest.raises(ValueError, match="profile"):
        make_episode("mars", 0, "train", 0, 3, 32, 32)
