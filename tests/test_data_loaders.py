"""Loader behaviour on fabricated data in the documented layouts (tests/fabricate.py)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
import fabricate as F  # noqa: E402

from sa4depth.config import load_config  # noqa: E402
from sa4depth.data import build_dataset, build_loader, export_gt_depths, load_test_images, read_odometry_poses  # noqa: E402
from sa4depth.data import transforms as T  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def fab(tmp_path_factory):
    root = tmp_path_factory.mktemp("fab")
    info = F.fabricate_all(root)
    return root, info


def cfg_for(root, dataset="kitti", **over):
    ov = F.overrides_for(root, dataset)
    ov.update(over)
    return load_config(data="synthetic", scale="tiny", overrides=ov)


# ----------------------------------------------------------------------------- counts, shapes, K
def test_counts_and_shapes(fab):
    root, info = fab
    cfg = cfg_for(root)
    H, W = cfg.data.height, cfg.data.width
    train, val = build_dataset(cfg, "train"), build_dataset(cfg, "val")
    assert (len(train), len(val)) == (6, 2)  # 2 drives x 4 frames, last 2 lines are val
    s = train[0]
    for f in cfg.data.frame_ids:
        for sc in range(len(cfg.model.scales)):
            for k in ("color", "color_aug"):
                x = s[(k, f, sc)]
                assert x.shape == (3, H // 2 ** sc, W // 2 ** sc) and x.dtype == torch.float32
                assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    assert s["depth_gt"].shape == (1, 32, 64)
    assert s["key"] == f"{info['driving']['folders'][0]} 1 l" and s["index"] == 0
    assert len(build_dataset(cfg, "test")) == 6


@pytest.mark.parametrize("flip", [False, True])
def test_K_scaling_per_scale(fab, flip):
    root, _ = fab
    cfg = cfg_for(root, **{"data.color_aug": False})
    ds = build_dataset(cfg, "train")
    ds.flip = flip
    H, W = cfg.data.height, cfg.data.width
    for e, i in [(e, i) for e in range(8) for i in range(len(ds))]:
        ds.set_epoch(e)
        s = ds[i]
        if s["flipped"] != flip:
            continue
        for sc in range(4):
            w, h = W // 2 ** sc, H // 2 ** sc
            cx = 0.52 * w  # fabricated calib: fx = 0.58 W0, cx = 0.52 W0, fy = 1.92 H0, cy = 0.49 H0
            if flip:
                cx = (w - 1) - cx
            K = np.array([[0.58 * w, 0, cx, 0], [0, 1.92 * h, 0.49 * h, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
            np.testing.assert_allclose(s[("K", sc)].numpy(), K, rtol=1e-5, atol=1e-4)
            np.testing.assert_allclose(s[("inv_K", sc)].numpy() @ K, np.eye(4), atol=1e-5)
        return
    pytest.fail("no sample with the wanted flip state")


def test_fixed_K_flag(fab):
    root, _ = fab
    s = build_dataset(cfg_for(root, **{"data.kitti_fixed_K": True}), "val")[0]
    np.testing.assert_allclose(s[("K", 0)][0, 2].item(), 0.5 * 96)
    np.testing.assert_allclose(s[("K", 1)][1, 1].item(), 1.92 * 16, rtol=1e-6)


# ----------------------------------------------------------------------------- augmentation
def test_color_aug_shared_across_frames_and_absent_in_color(fab):
    root, _ = fab
    cfg = cfg_for(root, **{"data.flip": False})
    ds = build_dataset(cfg, "train")
    n_aug = 0
    for i in range(len(ds)):
        s = ds[i]
        if not s["color_augmented"]:
            for f in cfg.data.frame_ids:
                assert torch.equal(s[("color", f, 0)], s[("color_aug", f, 0)])
            continue
        n_aug += 1
        rng = ds._rng(i)
        rng.random(), rng.random()
        params = T.sample_color_jitter(rng)
        for f in cfg.data.frame_ids:
            for sc in range(4):
                assert not torch.allclose(s[("color", f, sc)], s[("color_aug", f, sc)], atol=1e-3)
                expect = T.apply_color_jitter(s[("color", f, sc)], params)
                torch.testing.assert_close(s[("color_aug", f, sc)], expect, atol=1e-6, rtol=0)
        # "color" is the plain resized image
        info = ds.describe(i)
        raw = Image.open(info.frames[-1].path).convert("RGB").resize((96, 32), Image.Resampling.LANCZOS)
        torch.testing.assert_close(s[("color", -1, 0)], T.pil_to_tensor(raw))
    assert n_aug >= 1
    v = build_dataset(cfg, "val")[0]
    assert torch.equal(v[("color", 0, 0)], v[("color_aug", 0, 0)]) and not v["flipped"]


def test_color_jitter_hand_values():
    x = np.full((3, 2, 2), 0.5, np.float32)
    x[0] = 0.8
    p = T.ColorJitterParams(order=(0, 1, 2, 3), brightness=1.1, contrast=1.0, saturation=1.0, hue=0.0)
    np.testing.assert_allclose(T.apply_color_jitter(x, p), np.clip(x * 1.1, 0, 1), atol=1e-6)
    p = T.ColorJitterParams(order=(2, 0, 1, 3), brightness=1.0, contrast=1.0, saturation=0.0, hue=0.0)
    g = 0.299 * 0.8 + 0.587 * 0.5 + 0.114 * 0.5
    np.testing.assert_allclose(T.apply_color_jitter(x, p), np.full_like(x, g), atol=1e-6)
    # hue +1/3 turns pure red into pure green
    red = np.zeros((3, 1, 1), np.float32)
    red[0] = 1
    p = T.ColorJitterParams(order=(3, 0, 1, 2), brightness=1.0, contrast=1.0, saturation=1.0, hue=1 / 3)
    np.testing.assert_allclose(T.apply_color_jitter(red, p)[:, 0, 0], [0, 1, 0], atol=1e-5)


def test_flip_consistency(fab):
    root, _ = fab
    cfg = cfg_for(root, **{"data.color_aug": False})
    ds = build_dataset(cfg, "train")
    ref = build_dataset(cfg, "train")
    ref.flip = False
    found = 0
    for e, i in [(e, i) for e in range(4) for i in range(len(ds))]:
        ds.set_epoch(e)
        a, b = ds[i], ref[i]
        if not a["flipped"]:
            continue
        found += 1
        for f in cfg.data.frame_ids:
            torch.testing.assert_close(a[("color", f, 0)], b[("color", f, 0)].flip(-1))
        for f in (-1, 1):
            Ta, Tb = a[("pose_gt", f)].double(), b[("pose_gt", f)].double()
            assert abs(Tb[0, 3]) > 1e-3
            torch.testing.assert_close(Ta[:3, 3], Tb[:3, 3] * torch.tensor([-1.0, 1, 1], dtype=torch.float64))
            S = torch.diag(torch.tensor([-1.0, 1, 1, 1], dtype=torch.float64))
            torch.testing.assert_close(Ta, S @ Tb @ S)
            assert a[("trans_norm_gt", f)] == b[("trans_norm_gt", f)]
        torch.testing.assert_close(a["depth_gt"], b["depth_gt"].flip(-1))
    assert found


def _train_samples(cfg, num_workers: int, epochs: int) -> list[dict]:
    """The train loader's batches over ``epochs`` epochs (``set_epoch`` before each), one dict per sample."""
    loader = build_loader(cfg, "train", shuffle=False, num_workers=num_workers)
    samples = []
    for e in range(epochs):
        loader.dataset.set_epoch(e)
        batches = list(loader)
        assert len(batches) == 3  # 6 samples, batch 2, drop_last
        for b in batches:
            for j in range(len(b["index"])):
                samples.append({k: (v[j] if isinstance(v, (torch.Tensor, list)) else v) for k, v in b.items()})
    return samples


def _jitter_size(s, frame_ids) -> float:
    """The smallest (over frames) mean |color_aug - color| of a sample, at full resolution."""
    return min((s[("color_aug", f, 0)] - s[("color", f, 0)]).abs().mean().item() for f in frame_ids)


def test_augmentation_fires_and_is_independent_of_workers(fab):
    root, _ = fab
    cfg = cfg_for(root)
    epochs = 3
    runs = {nw: _train_samples(cfg, nw, epochs) for nw in (0, 2)}
    # the same draws and the same pixels with and without worker processes
    assert len(runs[0]) == len(runs[2]) == 6 * epochs
    for a, b in zip(runs[0], runs[2]):
        assert (a["index"], a["flipped"], a["color_augmented"]) == (b["index"], b["flipped"], b["color_augmented"])
        for f in cfg.data.frame_ids:
            for k in ("color", "color_aug"):
                assert torch.equal(a[(k, f, 0)], b[(k, f, 0)]), (a["index"], k, f)
    # augmentation actually changes the images, on about half of the samples (probability 0.5):
    # visibly on every flagged sample and frame, not at all on the others
    samples = runs[0]
    flagged = [bool(s["color_augmented"]) for s in samples]
    assert 0.2 <= sum(flagged) / len(samples) <= 0.85, flagged
    for s, aug in zip(samples, flagged):
        if aug:
            assert _jitter_size(s, cfg.data.frame_ids) > 5e-3, s["index"]
        else:
            for f in cfg.data.frame_ids:
                assert torch.equal(s[("color_aug", f, 0)], s[("color", f, 0)])
    # the draws differ between epochs (set_epoch reaches the workers): not the same 6 flags each epoch
    per_epoch = [tuple(flagged[6 * e: 6 * e + 6]) for e in range(epochs)]
    assert len(set(per_epoch)) > 1, per_epoch
    # with augmentation switched off nothing changes and nothing is flagged
    off = _train_samples(cfg_for(root, **{"data.color_aug": False}), 0, epochs)
    assert not any(bool(s["color_augmented"]) for s in off)
    assert all(torch.equal(s[("color_aug", f, 0)], s[("color", f, 0)]) for s in off for f in cfg.data.frame_ids)


# ----------------------------------------------------------------------------- GT motion
def test_pose_gt_convention_and_trans_norm(fab):
    root, info = fab
    cfg = cfg_for(root, **{"data.flip": False})
    ds = build_dataset(cfg, "train")
    calib = info["driving"]["calib"]
    T32 = np.eye(4)
    T32[:3, 3] = calib.t3 - calib.t2
    for i in range(len(ds)):
        folder, frame, side = ds.items[i]
        truth = info["driving"]["truth"][folder]
        s = ds[i]
        for f in (-1, 1):
            Tf0 = np.linalg.inv(truth["Twc2"][frame + f]) @ truth["Twc2"][frame]
            if side == "r":
                Tf0 = T32 @ Tf0 @ np.linalg.inv(T32)
            np.testing.assert_allclose(s[("pose_gt", f)].numpy(), Tf0, atol=1e-5)
            v = truth["speed"]
            lo = min(frame, frame + f)
            assert s[("trans_norm_gt", f)].item() == pytest.approx(0.5 * (v[lo] + v[lo + 1]) * truth["dt"], rel=1e-6)


def test_pose_from_oxts_matches_pose_file(tmp_path):
    F.fabricate_driving(tmp_path / "driving", frames=4)
    cfg = cfg_for(tmp_path, **{"data.flip": False, "data.color_aug": False})
    with_file = [build_dataset(cfg, "train")[i] for i in range(2)]
    for d in (tmp_path / "driving" / "kitti_raw" / "2000_01_01").glob("*_sync"):
        (d / "poses_cam_02.txt").unlink()
    from_oxts = [build_dataset(cfg, "train")[i] for i in range(2)]
    for a, b in zip(with_file, from_oxts):
        for f in (-1, 1):
            np.testing.assert_allclose(a[("pose_gt", f)].numpy(), b[("pose_gt", f)].numpy(), atol=1e-4)


def test_lidar_depth(fab):
    root, info = fab
    cfg = cfg_for(root, **{"data.flip": False})
    ds = build_dataset(cfg, "val", load_lidar=True)
    s = ds[0]
    L = s["lidar_depth"]
    assert L.shape == (1, 32, 96)
    valid = L[L > 0]
    assert valid.numel() > 20 and float(valid.min()) > 1.0 and float(valid.max()) < 40.0
    # by hand: camera-z of each velodyne point at pixel round(u * 96 / 64), round(v * 32 / 32)
    folder, frame, _ = ds.items[0]
    velo = np.fromfile(root / "driving" / "kitti_raw" / folder / "velodyne_points" / "data" / f"{frame:010d}.bin",
                       np.float32).reshape(-1, 4)
    c = info["driving"]["calib"]
    R_rect = np.eye(4)
    R_rect[:3, :3] = c.R_rect
    P = c.P(2) @ R_rect @ c.T_cam0_velo
    hits = 0
    for x in velo[:80]:
        p = P @ np.r_[x[:3].astype(np.float64), 1.0]
        u, v = int(np.round(p[0] / p[2] * 96 / 64)), int(np.round(p[1] / p[2]))
        if 0 <= u < 96 and 0 <= v < 32:
            assert 0 < L[0, v, u] <= p[2] + 1e-4  # nearest point per pixel
            hits += abs(L[0, v, u].item() - p[2]) < 1e-4
    assert hits >= 5


# ----------------------------------------------------------------------------- other datasets
def test_odometry(fab):
    root, _ = fab
    cfg = cfg_for(root, "kitti_odom")
    tr, va, te = (build_dataset(cfg, s) for s in ("train", "val", "test"))
    assert len(tr) + len(va) == 2 * 6  # sequences 00, 01 exist (8 frames: 6 triplets each)
    assert len(te) == 2 * 6
    P = read_odometry_poses(root / "driving" / "kitti_odom", "01")
    assert P.shape == (8, 4, 4)
    s = build_dataset(cfg_for(root, "kitti_odom", **{"data.flip": False}), "test")[0]
    np.testing.assert_allclose(s[("pose_gt", 1)][:3, 3].numpy(), [-0.01, 0, -3.0], atol=1e-5)  # seq 09: 3 m/frame
    cfg_none = cfg_for(root, "kitti_odom", **{"data.odom_train_sequences": ["05", "06"]})
    with pytest.raises(FileNotFoundError, match="none of the sequences"):
        build_dataset(cfg_none, "train")


def test_cityscapes_triplets_and_test(fab):
    root, info = fab
    cfg = cfg_for(root, "cityscapes", **{"data.flip": False, "data.color_aug": False})
    ds = build_dataset(cfg, "train")
    s = ds[0]
    name = ds.items[0][1]
    im = Image.open(root / "dynamic" / "cityscapes" / "train_triplets" / "testcity" / f"{name}.jpg").convert("RGB")
    left = im.crop((0, 0, 64, 32)).resize((96, 32), Image.Resampling.LANCZOS)
    torch.testing.assert_close(s[("color", -1, 0)], T.pil_to_tensor(left))
    K = s[("K", 0)].numpy()
    np.testing.assert_allclose([K[0, 0], K[1, 1]], [0.6 * 96, 1.2 * 32], rtol=1e-5)
    assert s[("trans_norm_gt", 1)].item() == pytest.approx(0.8)
    te = build_dataset(cfg, "test")
    assert te[0]["depth_gt"].shape == (1, 64, 128)
    imgs = list(load_test_images(cfg, "cityscapes"))
    assert len(imgs) == 2 and imgs[0][0].shape == (3, 32, 96)


def test_nyu(fab):
    root, info = fab
    cfg = cfg_for(root, "nyu", **{"data.flip": False})
    s = build_dataset(cfg, "train")[0]
    P = info["indoor"]["poses"]
    frame = int(s["key"].split()[1])
    np.testing.assert_allclose(s[("pose_gt", 1)].numpy(), np.linalg.inv(P[frame + 1]) @ P[frame], atol=1e-6)
    assert s[("K", 0)][0, 0].item() == pytest.approx(0.9 * 96)
    t = build_dataset(cfg, "test")[0]
    assert t["depth_gt"].shape == (1, 48, 64) and float(t["depth_gt"].max()) <= 10.0 + 1e-3


# ----------------------------------------------------------------------------- GT export
def test_export_gt_depths(fab, tmp_path):
    root, info = fab
    cfg = cfg_for(root)
    out = export_gt_depths(cfg, "eigen_benchmark", tmp_path / "gt.npz")
    gt = np.load(out, allow_pickle=True)["data"]
    assert gt.dtype == object and len(gt) == 6 and gt[0].shape == (32, 64)
    folder = info["driving"]["folders"][2]
    png = np.asarray(Image.open(root / "driving" / "kitti_raw" / folder / "proj_depth" / "groundtruth" / "image_02"
                                / "0000000000.png"), np.float32) / 256
    np.testing.assert_array_equal(gt[0], png)
    # eigen: velodyne projected with the calib; check one point by hand
    velo = np.fromfile(root / "driving" / "kitti_raw" / folder / "velodyne_points" / "data" / "0000000000.bin",
                       np.float32).reshape(-1, 4)
    e = np.load(export_gt_depths(cfg, "eigen", tmp_path / "gte.npz"), allow_pickle=True)["data"][0]
    c = info["driving"]["calib"]
    R_rect = np.eye(4)
    R_rect[:3, :3] = c.R_rect
    P = c.P(2) @ R_rect @ c.T_cam0_velo
    hits = 0
    for x in velo[:50]:
        p = P @ np.r_[x[:3].astype(np.float64), 1.0]
        u, v = int(np.round(p[0] / p[2])) - 1, int(np.round(p[1] / p[2])) - 1
        if 0 <= u < 64 and 0 <= v < 32:
            assert e[v, u] <= x[0] + 1e-4  # nearest point per pixel, depth = velodyne x
            hits += e[v, u] == pytest.approx(x[0], abs=1e-4)
    assert hits >= 5
    cs = np.load(export_gt_depths(cfg_for(root, "cityscapes"), "cityscapes", tmp_path / "c.npz"), allow_pickle=True)
    raw = np.asarray(Image.open(root / "dynamic" / "cityscapes" / "disparity" / "test" / "testcity" /
                                f"{info['dynamic']['test'][0]}_disparity.png"), np.float64)
    m = raw > 1
    np.testing.assert_allclose(cs["data"][0][m], 0.209313 * 1.1 * 128 / ((raw[m] - 1) / 256), rtol=1e-5)
    assert np.all(cs["data"][0][raw == 0] == 0)


def test_cache_gives_same_pixels(fab, tmp_path):
    root, _ = fab
    a = build_dataset(cfg_for(root), "train")
    b = build_dataset(cfg_for(root, **{"data.cache_dir": str(tmp_path / "cache")}), "train")
    for _ in range(2):  # fill, then read
        sa, sb = a[1], b[1]
        for f in (-1, 0, 1):
            torch.testing.assert_close(sa[("color_aug", f, 0)], sb[("color_aug", f, 0)])
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == 3


def test_stats_command(fab, capsys):
    from sa4depth.cli import main

    root, _ = fab
    ov = F.overrides_for(root)
    r = ov["data.roots"]
    roots = "{" + ", ".join(f"{k}: {v}" for k, v in r.items()) + "}"
    rc = main(["stats", "--scale", "tiny", "--dataset", "kitti_odom", f"data.roots={roots}",
               f"data.splits_dir={ov['data.splits_dir']}", "data.odom_train_sequences=['00','01']"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "train:seq00" in out and "test:seq10" in out
    rows = {tuple(line.split()[:2]): line.split()[2] for line in out.splitlines()[1:]}
    assert rows[("kitti_odom", "train:seq01")] == "8" and rows[("kitti_odom", "test")] == "12"
