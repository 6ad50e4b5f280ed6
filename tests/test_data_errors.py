"""Bad input must give errors that name the offending file (and line)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import fabricate as F  # noqa: E402

from sa4depth.config import load_config  # noqa: E402
from sa4depth.data import build_dataset, export_gt_depths  # noqa: E402
from sa4depth.data.io import read_calib_file, read_poses_file  # noqa: E402


@pytest.fixture
def drv(tmp_path):
    F.fabricate_driving(tmp_path / "driving", frames=4)
    cfg = load_config(data="synthetic", scale="tiny", overrides=F.overrides_for(tmp_path, "kitti"))
    return tmp_path / "driving", cfg


def _folder(root):
    return root / "kitti_raw" / "2000_01_01" / "2000_01_01_drive_0001_sync"


def test_missing_image_names_split_line(drv):
    root, cfg = drv
    img = _folder(root) / "image_03" / "data" / "0000000002.png"
    img.unlink()
    with pytest.raises(FileNotFoundError) as e:
        build_dataset(cfg, "train")
    msg = str(e.value)
    assert "train_files.txt:2" in msg and str(img) in msg


def test_split_line_pointing_nowhere(drv):
    root, cfg = drv
    sf = root / "splits" / "eigen_zhou" / "train_files.txt"
    sf.write_text(sf.read_text() + "2000_01_01/no_such_drive 1 l\n")
    with pytest.raises(FileNotFoundError, match=r"train_files.txt:\d+: drive folder .*no_such_drive"):
        build_dataset(cfg, "train")
    sf.write_text("2000_01_01/2000_01_01_drive_0001_sync one l\n")
    with pytest.raises(ValueError, match=r"train_files.txt:1: frame index 'one'"):
        build_dataset(cfg, "train")


def test_corrupt_image_names_file(drv):
    root, cfg = drv
    img = _folder(root) / "image_02" / "data" / "0000000001.png"
    img.write_bytes(b"not a png at all")
    ds = build_dataset(cfg, "train")
    with pytest.raises(ValueError, match=r"0000000001\.png: unreadable or corrupt image"):
        ds[0]


def test_malformed_calib_line(drv):
    root, cfg = drv
    p = root / "kitti_raw" / "2000_01_01" / "calib_cam_to_cam.txt"
    lines = p.read_text().splitlines()
    lines[3] = "K_00: 1 2 three"
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"calib_cam_to_cam.txt:4: malformed calibration line for 'K_00'"):
        read_calib_file(p)
    lines[3] = "garbage without colon"
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"calib_cam_to_cam.txt:4: malformed calibration line"):
        build_dataset(cfg, "train")[0]


def test_missing_calib_key(drv):
    root, cfg = drv
    p = root / "kitti_raw" / "2000_01_01" / "calib_cam_to_cam.txt"
    p.write_text("\n".join(x for x in p.read_text().splitlines() if not x.startswith("P_rect_02")) + "\n")
    with pytest.raises(ValueError, match=r"calib_cam_to_cam.txt: calibration key 'P_rect_02' missing"):
        build_dataset(cfg, "train")[0]


def test_malformed_pose_file(drv):
    root, cfg = drv
    p = _folder(root) / "poses_cam_02.txt"
    lines = p.read_text().splitlines()
    lines[2] = " ".join(lines[2].split()[:11])
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"poses_cam_02.txt:3: malformed pose line: expected 12 numbers, got 11"):
        read_poses_file(p)
    with pytest.raises(ValueError, match=r"poses_cam_02.txt:3"):
        build_dataset(cfg, "train")[0]


def test_malformed_oxts_and_velodyne(drv):
    root, cfg = drv
    (_folder(root) / "poses_cam_02.txt").unlink()
    ox = _folder(root) / "oxts" / "data" / "0000000002.txt"
    ox.write_text("1 2 3\n")
    with pytest.raises(ValueError, match=r"0000000002\.txt: malformed OXTS file: expected 30 numbers, got 3"):
        build_dataset(cfg, "train")[0]
    test_drive = root / "kitti_raw" / "2000_01_01" / "2000_01_01_drive_0003_sync"
    vel = test_drive / "velodyne_points" / "data" / "0000000000.bin"
    np.zeros(5, np.float32).tofile(vel)
    with pytest.raises(ValueError, match=r"0000000000\.bin: velodyne file size 20 bytes"):
        export_gt_depths(cfg, "eigen", root / "gt.npz")
    assert not (root / "gt.npz").exists()


def test_missing_root_and_split(tmp_path):
    cfg = load_config(data="synthetic", scale="tiny", overrides=F.overrides_for(tmp_path / "nothing", "kitti"))
    with pytest.raises(FileNotFoundError, match="data root for dataset 'kitti' does not exist"):
        build_dataset(cfg, "train")
    F.fabricate_indoor(tmp_path / "x" / "indoor")
    cfg = load_config(data="synthetic", scale="tiny", overrides=F.overrides_for(tmp_path / "x", "nyu"))
    (tmp_path / "x" / "indoor" / "splits" / "nyu" / "test_files.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"split file .*nyu/test_files.txt"):
        build_dataset(cfg, "test")
