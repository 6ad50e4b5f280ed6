"""Virtual KITTI 2 release-layout reader (src/sa4depth/data/vkitti2.py) on a fabricated tree."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import fabricate as F  # noqa: E402

from sa4depth.config import load_config  # noqa: E402
from sa4depth.data import build_dataset  # noqa: E402
from sa4depth.data.kitti import KittiRawDataset  # noqa: E402
from sa4depth.data.vkitti2 import (VKitti2Dataset, is_vkitti2_release, make_vkitti2_splits,  # noqa: E402
                                   read_vkitti2_depth, read_vkitti2_extrinsics, read_vkitti2_intrinsics)

torch.set_num_threads(2)
N = 5


@pytest.fixture(scope="module")
def vk(tmp_path_factory):
    root = tmp_path_factory.mktemp("vk") / "vkitti2"
    truth = F.fabricate_vkitti2(root, frames=N)
    make_vkitti2_splits(root, root.parent / "splits")
    return root, truth


def cfg_for(root: Path, **over):
    ov = {"data.dataset": "vkitti2", "data.roots": {"vkitti2": str(root)},
          "data.splits_dir": str(root.parent / "splits")}
    ov.update(over)
    return load_config(data="synthetic", scale="tiny", overrides=ov)


def test_splits_written(vk):
    root, _ = vk
    sp = root.parent / "splits" / "vkitti2"
    train = (sp / "train_files.txt").read_text().split("\n")[:-1]
    assert train == [f"Scene01/clone {i}" for i in range(1, N - 1)]        # frames -1/+1 exist
    assert (sp / "val_files.txt").read_text().split("\n")[:-1] == [f"Scene02/clone {i}" for i in range(1, N - 1)]
    assert len((sp / "test_files.txt").read_text().split()) == 2 * N       # every frame of Scene02
    assert is_vkitti2_release(root) and not is_vkitti2_release(sp)


def test_factory_picks_reader(vk, tmp_path):
    root, _ = vk
    cfg = cfg_for(root)
    ds = build_dataset(cfg, "train")
    assert isinstance(ds, VKitti2Dataset) and (len(ds), len(build_dataset(cfg, "val"))) == (N - 2, N - 2)
    test = build_dataset(cfg, "test")
    assert len(test) == N and test.frame_ids == [0] and not test.is_train
    with pytest.raises(ValueError, match="no LiDAR"):
        build_dataset(cfg, "train", load_lidar=True)
    # the synthetic data (KITTI-raw layout) keeps the KITTI-raw reader
    F.fabricate_driving(tmp_path / "driving")
    ov = F.overrides_for(tmp_path, "vkitti2")
    syn = build_dataset(load_config(data="synthetic", scale="tiny", overrides=ov), "train")
    assert isinstance(syn, KittiRawDataset)


def test_sample_pose_convention_K_and_depth(vk):
    root, truth = vk
    cfg = cfg_for(root, **{"data.flip": False, "data.color_aug": False})
    H, W = cfg.data.height, cfg.data.width
    ds = build_dataset(cfg, "train")
    fx, fy, cx, cy = truth["Scene01/clone"]["K"]
    Twc = truth["Scene01/clone"]["Twc"]
    rng = np.random.default_rng(0)
    Xw = np.vstack([rng.uniform(-5, 5, (3, 7)), np.ones((1, 7))])
    for i in range(len(ds)):
        s = ds[i]
        frame = i + 1
        assert s["key"] == f"Scene01/clone {frame}"
        for sc in range(len(cfg.model.scales)):
            K = s[("K", sc)].double().numpy()
            w, h = W // 2 ** sc, H // 2 ** sc
            np.testing.assert_allclose(K[:3, :3], [[fx / 64 * w, 0, cx / 64 * w], [0, fy / 20 * h, cy / 20 * h],
                                                   [0, 0, 1]], rtol=1e-5)
            np.testing.assert_allclose(s[("inv_K", sc)].double().numpy() @ K, np.eye(4), atol=1e-5)
            assert s[("color", 0, sc)].shape == (3, h, w)
        X0 = np.linalg.inv(Twc[frame]) @ Xw                      # frame-0 (target) camera points
        for f in (-1, 1):
            P = s[("pose_gt", f)].double().numpy()
            Xf = np.linalg.inv(Twc[frame + f]) @ Xw               # the same points seen from frame f
            np.testing.assert_allclose(P @ X0, Xf, atol=1e-4)
            np.testing.assert_allclose(float(s[("trans_norm_gt", f)]), np.linalg.norm(P[:3, 3]), rtol=1e-5)
            assert float(s[("trans_norm_gt", f)]) > 0.5          # the camera moves ~1 m per frame
        d = s["depth_gt"][0].numpy()
        cm = truth["Scene01/clone"]["depth_cm"][frame].astype(np.float64)
        assert d.shape == (20, 64)
        valid = (cm > 0) & (cm < 65535)
        np.testing.assert_allclose(d[valid], cm[valid] / 100.0, rtol=1e-6)
        assert np.all(d[~valid] == 0) and (~valid).sum() > 0     # sky + zero pixels are invalid


def test_readers_match_truth(vk):
    root, truth = vk
    E = read_vkitti2_extrinsics(root / "Scene02" / "clone" / "extrinsic.txt")
    assert len(E) == 2 * N
    np.testing.assert_allclose(E[(3, 0)], np.linalg.inv(truth["Scene02/clone"]["Twc"][3]), atol=1e-8)
    # camera 1 sits F.VKITTI2_STEREO to the right: its world-to-camera shifts x by -baseline
    np.testing.assert_allclose((E[(3, 1)] @ np.linalg.inv(E[(3, 0)]))[:3, 3], [-F.VKITTI2_STEREO, 0, 0], atol=1e-8)
    assert read_vkitti2_intrinsics(root / "Scene02" / "clone" / "intrinsic.txt")[(0, 1)] == pytest.approx(
        truth["Scene02/clone"]["K"])
    d = read_vkitti2_depth(root / "Scene02" / "clone" / "frames" / "depth" / "Camera_0" / "depth_00000.png")
    assert d.dtype == np.float32 and d.max() < 80.0 and d[0, 0] == 0.0


def _tree(tmp_path):
    root = tmp_path / "vk"
    F.fabricate_vkitti2(root, scenes=("Scene01",), frames=4)
    return root


def test_errors_name_the_file(tmp_path):
    root = _tree(tmp_path)
    ext = root / "Scene01" / "clone" / "extrinsic.txt"
    lines = ext.read_text().split("\n")
    ext.write_text("\n".join([lines[0], lines[1], lines[2] + " 7"] + lines[3:]))
    with pytest.raises(ValueError, match=r"extrinsic\.txt:3: expected 18 numbers"):
        read_vkitti2_extrinsics(ext)
    ext.write_text("\n".join(lines[1:]))
    with pytest.raises(ValueError, match=r"extrinsic\.txt:1: expected the header"):
        read_vkitti2_extrinsics(ext)
    ext.write_text("\n".join(lines[:3]) + "\n")  # only frame 0: poses of frames 1.. are missing
    sp = tmp_path / "split.txt"
    sp.write_text("Scene01/clone 1\n")
    cfg = dict(height=32, width=96, frame_ids=[0, -1, 1], num_scales=4, is_train=False)
    ds = VKitti2Dataset(root, sp, **cfg)
    with pytest.raises(ValueError, match=r"extrinsic\.txt: no row for frame 1, camera 0"):
        ds[0]
    sp.write_text("Scene01/clone 1\nScene01/clone 3\n")
    with pytest.raises(FileNotFoundError, match=r"split\.txt:2: image .*rgb_00004\.jpg \(frame 3\+1\)"):
        VKitti2Dataset(root, sp, **cfg)
    sp.write_text("Scene1/clone 1\n")
    with pytest.raises(ValueError, match=r"split\.txt:1: sequence 'Scene1/clone' is not"):
        VKitti2Dataset(root, sp, **cfg)
    sp.write_text("Scene01/clone x\n")
    with pytest.raises(ValueError, match=r"split\.txt:1: frame 'x' is not an integer"):
        VKitti2Dataset(root, sp, **cfg)
    bad = root / "Scene01" / "clone" / "frames" / "depth" / "Camera_0" / "depth_00001.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"depth_00001\.png: unreadable or corrupt"):
        read_vkitti2_depth(bad)


def test_split_generator_errors(tmp_path):
    root = _tree(tmp_path)
    with pytest.raises(ValueError, match=r"val_scenes \['Scene02'\] are not in"):
        make_vkitti2_splits(root, tmp_path / "splits")
    with pytest.raises(FileNotFoundError, match="variation 'fog' of Scene01 not found"):
        make_vkitti2_splits(root, tmp_path / "splits", variations=("fog",), val_scenes=("Scene01",))
    with pytest.raises(ValueError, match="train split would be empty"):
        make_vkitti2_splits(root, tmp_path / "splits", val_scenes=("Scene01",))
    with pytest.raises(FileNotFoundError, match="not a Virtual KITTI 2 release layout"):
        make_vkitti2_splits(tmp_path / "splits", tmp_path / "s2")
