"""NYUv2 labelled-set converter (src/sa4depth/data/prepare/nyu_convert.py) on a tiny fabricated
``nyu_depth_v2_labeled.mat`` (HDF5, MATLAB v7.3 axis order) and a v5 ``splits.mat``."""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
from PIL import Image

from sa4depth.cli import main
from sa4depth.data.io import read_depth_png
from sa4depth.data.prepare import check_dataset
from sa4depth.data.prepare.nyu_convert import NYU_TOOLBOX_INTRINSICS, convert_nyu_labeled, read_nyu_test_indices

N, H, W = 5, 6, 8  # H != W so that a transposition error changes the shape


def _fabricate(tmp: Path, test_ndxs=(4, 1, 5)) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    """MATLAB-order arrays (H, W, 3, N) / (H, W, N) written as HDF5 does: axes reversed."""
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, size=(N, H, W, 3), dtype=np.uint8)       # (N, H, W, C) in our terms
    deps = rng.uniform(0.5, 9.5, size=(N, H, W)).astype(np.float32)
    deps[0, 0, 0] = np.nan
    deps[0, 0, 1] = 0.0
    mat = tmp / "nyu_depth_v2_labeled.mat"
    with h5py.File(mat, "w") as f:
        f["images"] = imgs.transpose(0, 3, 2, 1)   # (N, 3, W, H), as h5py reads the real file
        f["depths"] = deps.transpose(0, 2, 1)      # (N, W, H)
        f["labels"] = np.zeros((N, W, H), np.uint16)
    sm = tmp / "splits.mat"
    scipy.io.savemat(sm, {"testNdxs": np.array(test_ndxs, dtype=np.float64).reshape(-1, 1),
                          "trainNdxs": np.array([2, 3], dtype=np.float64).reshape(-1, 1)})
    return mat, sm, imgs, deps


def test_convert_values_and_layout(tmp_path):
    mat, sm, imgs, deps = _fabricate(tmp_path)
    root = tmp_path / "nyu"
    ids = convert_nyu_labeled(mat, sm, root)
    assert ids == ["00000", "00001", "00002"]
    assert (tmp_path / "splits" / "nyu" / "test_files.txt").read_text() == "00000\n00001\n00002\n"
    for k, i in enumerate((3, 0, 4)):  # testNdxs 4, 1, 5 are 1-based
        rgb = np.asarray(Image.open(root / "test" / f"{k:05d}_rgb.png"))
        np.testing.assert_array_equal(rgb, imgs[i])
        d = read_depth_png(root / "test" / f"{k:05d}_depth.png")
        assert d.shape == (H, W)
        ref = np.where(np.isfinite(deps[i]), deps[i], 0.0)
        np.testing.assert_allclose(d, ref, atol=0.5 / 256 + 1e-6)
    d0 = read_depth_png(root / "test" / "00001_depth.png")
    assert d0[0, 0] == 0.0 and d0[0, 1] == 0.0                    # NaN and 0 -> invalid
    assert [float(x) for x in (root / "intrinsics.txt").read_text().split()] == pytest.approx(NYU_TOOLBOX_INTRINSICS)
    assert not list(root.rglob("*.tmp"))
    rep = check_dataset("nyu", root, tmp_path / "splits", check_counts=False, require_gt=False)
    assert {p.key for p in rep.missing} == {"splits/nyu/train_files.txt"}   # the test part is complete
    # the loaders read the result: NyuTestDataset through the factory
    from sa4depth.config import load_config
    from sa4depth.data import build_dataset

    cfg = load_config(data="synthetic", scale="tiny", overrides={
        "data.dataset": "nyu", "data.roots": {"nyu": str(root)}, "data.splits_dir": str(tmp_path / "splits")})
    ds = build_dataset(cfg, "test")
    s = ds[2]
    assert len(ds) == 3 and s["key"] == "00002"
    np.testing.assert_allclose(s["depth_gt"][0].numpy(), deps[4], atol=0.5 / 256 + 1e-6)
    np.testing.assert_allclose(s[("K", 0)][0, 0].item(), NYU_TOOLBOX_INTRINSICS[0] / W * cfg.data.width, rtol=1e-5)


def test_existing_intrinsics_kept_and_explicit_splits_dir(tmp_path):
    mat, sm, _, _ = _fabricate(tmp_path, test_ndxs=(2,))
    root = tmp_path / "nyu"
    root.mkdir()
    (root / "intrinsics.txt").write_text("1 2 3 4\n")
    convert_nyu_labeled(mat, sm, root, tmp_path / "sp")
    assert (root / "intrinsics.txt").read_text() == "1 2 3 4\n"
    assert (tmp_path / "sp" / "nyu" / "test_files.txt").read_text() == "00000\n"


def test_cli_convert_then_check(tmp_path, capsys):
    mat, sm, _, _ = _fabricate(tmp_path)
    root, sp = tmp_path / "nyu", tmp_path / "splits"
    args = ["prepare", "nyu", "--root", str(root), "--splits-dir", str(sp), "--quiet", "--skip-counts"]
    # the test part is complete; training sequences are still missing -> status 1, not an error
    assert main(args + ["--convert-mat", str(mat), "--splits-mat", str(sm)]) == 1
    out = capsys.readouterr().out
    assert "MISSING test/images" not in out and "MISSING splits/nyu/test_files.txt" not in out
    assert "MISSING splits/nyu/train_files.txt" in out
    assert (root / "test" / "00002_depth.png").is_file()
    assert main(args + ["--convert-mat", str(mat)]) == 2                 # needs --splits-mat
    assert "go together" in capsys.readouterr().err
    assert main(["prepare", "kitti", "--root", str(root), "--splits-dir", str(sp), "--quiet",
                 "--convert-mat", str(mat), "--splits-mat", str(sm)]) == 2


def test_errors_name_the_file(tmp_path):
    mat, sm, _, _ = _fabricate(tmp_path)
    out = tmp_path / "out"
    bad = tmp_path / "bad.mat"
    with h5py.File(bad, "w") as f:
        f["images"] = np.zeros((2, 3, 4, 3), np.uint8)
    with pytest.raises(ValueError, match=r"bad\.mat: dataset 'depths' missing"):
        convert_nyu_labeled(bad, sm, out)
    with h5py.File(bad, "w") as f:
        f["images"] = np.zeros((2, 3, 4, 3), np.uint8)
        f["depths"] = np.zeros((2, 3, 4), np.float32)
    with pytest.raises(ValueError, match=r"bad\.mat: 'depths' has shape \(2, 3, 4\), expected \(2, 4, 3\)"):
        convert_nyu_labeled(bad, sm, out)
    bad.write_bytes(b"MATLAB 5.0 not hdf5")
    with pytest.raises(ValueError, match=r"bad\.mat: not an HDF5"):
        convert_nyu_labeled(bad, sm, out)
    with pytest.raises(FileNotFoundError, match="nyu_depth_v2_labeled.mat not found"):
        convert_nyu_labeled(tmp_path / "nope.mat", sm, out)
    s2 = tmp_path / "s2.mat"
    scipy.io.savemat(s2, {"trainNdxs": np.array([[1.0]])})
    with pytest.raises(ValueError, match=r"s2\.mat: key 'testNdxs' missing \(have: trainNdxs\)"):
        read_nyu_test_indices(s2)
    scipy.io.savemat(s2, {"testNdxs": np.array([[1.0], [9.0]])})
    with pytest.raises(ValueError, match=r"s2\.mat: testNdxs contains 9 but the labelled set has 5 images"):
        convert_nyu_labeled(mat, s2, out)
    with h5py.File(s2, "w") as f:  # a v7.3 (HDF5) splits.mat is not what the release ships
        f["testNdxs"] = np.ones((1, 3))
    with pytest.raises(ValueError, match=r"s2\.mat: not a readable MATLAB v5"):
        read_nyu_test_indices(s2)
    scipy.io.savemat(s2, {"testNdxs": np.array([[0.0]])})
    with pytest.raises(ValueError, match="1-based"):
        read_nyu_test_indices(s2)
    assert not (out / "test").exists() or not list((out / "test").iterdir())
    assert not (tmp_path / "splits").exists()
