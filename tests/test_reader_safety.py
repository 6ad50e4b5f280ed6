"""Reader safety: bad input gives a clear error naming the file (and line / key where there is
one), never a traceback from deep inside numpy / PIL / evo, never a silent wrong result, never
exit status 0 on failure.

One class per fixed bug (split line without its side, image size vs intrinsics, ``stats`` exit
status, non-rigid trajectories, ``--relative`` pose count), then a seeded, parametrised fuzz of
every reader (random bytes, the valid file's header followed by random bytes, a valid file cut in
half, an empty file, a well-formed file of the wrong shape) and of the CLI entry points.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
import fabricate as F  # noqa: E402

from sa4depth.cli import main  # noqa: E402
from sa4depth.config import load_config  # noqa: E402
from sa4depth.data import build_dataset  # noqa: E402
from sa4depth.data.io import read_poses_file  # noqa: E402
from sa4depth.data.kitti import read_kitti_split  # noqa: E402
from sa4depth.evaluate.odometry import chain_relative_poses, read_kitti_poses, write_kitti_poses  # noqa: E402

#: what the readers raise (``ConfigError`` subclasses ``ValueError``); the CLI turns them into
#: a one-line error with exit status 2
CLEAR = (ValueError, FileNotFoundError)


def expect_clear(fn, path, *more: str) -> BaseException:
    """``fn()`` raises a CLEAR exception whose message holds ``path`` (and each of ``more``)."""
    with pytest.raises(CLEAR) as e:
        fn()
    msg = str(e.value)
    assert str(path) in msg, f"message does not name {path}: {msg!r}"
    assert not isinstance(e.value, UnicodeDecodeError), msg
    for m in more:
        assert m in msg, f"{m!r} not in {msg!r}"
    return e.value


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    """``sa4depth ARGV`` in-process: an exception escaping ``main`` (a traceback for a user) fails
    the test; returns (exit status, stdout, stderr)."""
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def _rz(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])


def _curve(n: int) -> np.ndarray:
    """Camera-to-world poses along a curve (yawing 3 deg / frame about y, 1 m / frame forward):
    Umeyama-alignable, unlike a straight line."""
    c, s = np.cos(np.radians(3.0)), np.sin(np.radians(3.0))
    M = np.array([[c, 0, s, 0], [0, 1, 0, 0.02], [-s, 0, c, 1.0], [0, 0, 0, 1]])
    return chain_relative_poses(np.tile(np.linalg.inv(M), (n - 1, 1, 1)))


@pytest.fixture
def drv(tmp_path):
    F.fabricate_driving(tmp_path / "driving", frames=4)
    cfg = load_config(data="synthetic", scale="tiny", overrides=F.overrides_for(tmp_path, "kitti"))
    return tmp_path / "driving", cfg


def _cfg(tmp_path, dataset, **over):
    ov = F.overrides_for(tmp_path, dataset)
    ov.update(over)
    return load_config(data="synthetic", scale="tiny", overrides=ov)


# ============================================================================ 1. split line sides
class TestKittiSplitLineNeedsSide:
    """KITTI (Monodepth2) split lines are ``folder frame side``; a line without its side used to
    default silently to the left camera."""

    def test_two_fields_rejected_with_file_and_line(self, drv):
        root, cfg = drv
        sf = root / "splits" / "eigen_zhou" / "train_files.txt"
        lines = sf.read_text().splitlines()
        lines.insert(1, " ".join(lines[0].split()[:2]))  # "<folder> <frame>", no side
        sf.write_text("\n".join(lines) + "\n")
        expect_clear(lambda: build_dataset(cfg, "train"), f"{sf}:2", "expected 3 fields", "folder frame side",
                     "got 2")
        expect_clear(lambda: read_kitti_split(sf, root / "kitti_raw", ".png", [0], check=False), f"{sf}:2")
        sf.write_text(lines[0] + " extra\n")
        expect_clear(lambda: build_dataset(cfg, "train"), f"{sf}:1", "got 4")

    def test_test_split_too(self, drv, capsys):
        root, cfg = drv
        sf = root / "splits" / "eigen" / "test_files.txt"
        sf.write_text("".join(" ".join(ln.split()[:2]) + "\n" for ln in sf.read_text().splitlines()))
        expect_clear(lambda: build_dataset(cfg, "test", eval_split="eigen"), f"{sf}:1", "folder frame side")

    def test_nyu_two_field_format_still_accepted(self, tmp_path):
        # NYU training lines are "<scene> <frame>" by format (DATA_LAYOUTS.md): two fields are right there
        F.fabricate_indoor(tmp_path / "indoor")
        ds = build_dataset(_cfg(tmp_path, "nyu"), "train")
        assert len(ds) > 0 and ds[0]["key"].count(" ") == 1


# ============================================================================ 2. image size vs K
class TestImageSizeMatchesIntrinsics:
    """Pixel intrinsics belong to one image size: KITTI raw's ``P_rect_0k`` to ``S_rect_0k``, the
    odometry ``P2`` / VKITTI2 / NYU / Cityscapes intrinsics to the stored images. A frame of another
    size is an error naming the file, its size and the expected one (it used to be resized and
    paired with the intrinsics of the other size)."""

    def test_kitti_raw_image_of_other_size(self, drv):
        root, cfg = drv
        drive = root / "kitti_raw" / "2000_01_01" / "2000_01_01_drive_0001_sync"
        img = drive / "image_02" / "data" / "0000000002.png"  # frame +1 of sample 0 ("drive_0001 1 l")
        Image.new("RGB", (48, 24), (90, 120, 30)).save(img)
        ds = build_dataset(cfg, "train")
        expect_clear(lambda: ds[0], img, "48x24", "64x32", "S_rect_02", "calib_cam_to_cam.txt")
        # with the data cache, the same check (the cached entry is only written after it)
        ds = build_dataset(_cfg(root.parent, "kitti", **{"data.cache_dir": str(root.parent / "cache")}), "train")
        expect_clear(lambda: ds[0], img, "48x24")
        # Monodepth2's fixed, normalised K is meant for every image size: no check then
        ds = build_dataset(_cfg(root.parent, "kitti", **{"data.kitti_fixed_K": True}), "train")
        assert ds[0][("color", 1, 0)].shape[-2:] == (cfg.data.height, cfg.data.width)

    def test_kitti_odometry_inconsistent_sizes_in_sequence(self, tmp_path):
        F.fabricate_driving(tmp_path / "driving", frames=4)
        cfg = _cfg(tmp_path, "kitti_odom")
        seq = tmp_path / "driving" / "kitti_odom" / "sequences" / "00" / "image_2"
        bad = seq / "000003.png"
        Image.new("RGB", (60, 30)).save(bad)
        ds = build_dataset(cfg, "train")
        k = next(i for i, (s, fr) in enumerate(ds.items) if s == "00" and fr + 1 == 3)
        expect_clear(lambda: ds[k], bad, "60x30", "64x32", "000000.png")

    def test_unreadable_first_image_names_it(self, tmp_path):
        F.fabricate_driving(tmp_path / "driving", frames=4)
        cfg = _cfg(tmp_path, "kitti_odom")
        first = tmp_path / "driving" / "kitti_odom" / "sequences" / "00" / "image_2" / "000000.png"
        first.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(40)))
        ds = build_dataset(cfg, "train")
        expect_clear(lambda: ds[0], first, "corrupt")

    def test_vkitti2_release_intrinsics_with_downscaled_images(self, tmp_path):
        from sa4depth.data.vkitti2 import make_vkitti2_splits

        root = tmp_path / "vkitti2"
        F.fabricate_vkitti2(root, frames=4)
        make_vkitti2_splits(root, tmp_path / "splits")
        cfg = load_config(data="synthetic", scale="tiny", overrides={
            "data.dataset": "vkitti2", "data.roots": {"vkitti2": str(root)},
            "data.splits_dir": str(tmp_path / "splits")})
        base = root / "Scene01" / "clone"
        # a neighbour frame of another size than the target frame K is normalised by
        nb = base / "frames" / "rgb" / "Camera_0" / "rgb_00002.jpg"
        Image.new("RGB", (32, 10)).save(nb)
        ds = build_dataset(cfg, "train")
        expect_clear(lambda: ds[0], nb, "32x10", "64x20")
        # intrinsic.txt of the full-size release (1242 x 375 pixels) with the 64 x 20 images
        intr = base / "intrinsic.txt"
        lines = intr.read_text().splitlines()
        intr.write_text("\n".join([lines[0]] + [" ".join(ln.split()[:2] + [str(v) for v in F.VKITTI2_K])
                                                for ln in lines[1:]]) + "\n")
        expect_clear(lambda: build_dataset(cfg, "train")[0], intr, "principal point", "64x20")

    def test_nyu_neighbour_of_other_size(self, tmp_path):
        F.fabricate_indoor(tmp_path / "indoor")
        ds = build_dataset(_cfg(tmp_path, "nyu"), "train")
        bad = Path(ds.describe(0).frames[1].path)
        Image.new("RGB", (10, 10)).save(bad)
        expect_clear(lambda: ds[0], bad, "10x10")

    def test_depth_png_in_place_of_an_image(self, drv):
        root, cfg = drv
        img = root / "kitti_raw" / "2000_01_01" / "2000_01_01_drive_0001_sync" / "image_02" / "data" / "0000000001.png"
        Image.fromarray(np.full((32, 64), 3000, np.uint16)).save(img)  # PIL would clip it to 255 grey
        ds = build_dataset(cfg, "train")
        expect_clear(lambda: ds[0], img, "not an 8-bit")


# ============================================================================ 3. stats exit status
class TestStatsExitStatus:
    """``sa4depth stats`` exited 0 when every split was broken (with the default ``--dataset all``)."""

    def _roots(self, tmp_path, kitti_root):
        missing = tmp_path / "missing"
        return ("data.roots={kitti: %s, kitti_odom: %s, cityscapes: %s, nyu: %s, vkitti2: %s}"
                % (kitti_root, missing / "o", missing / "c", missing / "n", missing / "v"))

    def test_every_split_broken_exits_nonzero_and_says_which(self, drv, capsys):
        root, _ = drv
        sp = root / "splits"
        for f in sorted(sp.rglob("*_files.txt")):
            f.write_text("2000_01_01/2000_01_01_drive_0001_sync 1\n")  # no side: every split breaks
        rc, out, err = run_cli(["stats", "--scale", "tiny", self._roots(root.parent, root / "kitti_raw"),
                                f"data.splits_dir={sp}"], capsys)
        assert rc != 0
        assert "no split could be counted" in err
        for label in ("train", "val", "test:eigen", "test:eigen_benchmark", "test:video"):
            assert f"kitti {label}:" in err
        assert "folder frame side" in err and "Traceback" not in err

    def test_no_dataset_root_exits_nonzero(self, tmp_path, capsys):
        rc, _, err = run_cli(["stats", "--scale", "tiny", self._roots(tmp_path, tmp_path / "nothing"),
                              f"data.splits_dir={tmp_path}"], capsys)
        assert rc != 0 and "root" in err

    def test_partly_broken_counts_the_rest_and_lists_the_broken(self, drv, capsys):
        root, _ = drv
        sp = root / "splits"
        bad = sp / "video" / "test_files.txt"
        bad.write_bytes(bytes(range(128, 256)))
        rc, out, err = run_cli(["stats", "--scale", "tiny", self._roots(root.parent, root / "kitti_raw"),
                                f"data.splits_dir={sp}"], capsys)
        assert rc == 0
        assert "kitti test:video:" in err and str(bad) in err and "1 split(s) could not be counted" in err
        rows = {tuple(ln.split()[:2]): ln.split()[2] for ln in out.splitlines()[1:]}
        assert rows[("kitti", "train")] == "2"


# ============================================================================ 4. non-rigid trajectories
class TestTrajectoryValidation:
    """A trajectory line whose 3x3 block is not a rotation used to end in evo's
    ``LieAlgebraException`` without the file or the line."""

    def test_scaled_rotation_named_with_file_and_line(self, tmp_path, capsys):
        gt = _curve(12)
        bad = gt.copy()
        bad[5, :3, :3] *= 2.0
        g, e = tmp_path / "gt.txt", tmp_path / "est.txt"
        write_kitti_poses(g, gt)
        write_kitti_poses(e, bad)
        expect_clear(lambda: read_kitti_poses(e), f"{e}:6:", "not orthonormal")
        rc, out, err = run_cli(["evaluate", "odometry", "--pred-poses", e, "--gt-poses", g, "--out",
                                tmp_path / "o.json"], capsys)
        assert rc == 2 and f"{e}:6:" in err and "Traceback" not in err and "SO(3)" not in err
        assert not (tmp_path / "o.json").exists()

    def test_reflection_and_gt_side(self, tmp_path, capsys):
        gt = _curve(8)
        refl = gt.copy()
        refl[2, :3, 0] *= -1.0  # orthonormal, det -1
        p = tmp_path / "refl.txt"
        write_kitti_poses(p, refl)
        expect_clear(lambda: read_kitti_poses(p), f"{p}:3:", "det -1")
        # the GT file is validated the same way
        e = tmp_path / "est.txt"
        write_kitti_poses(e, gt)
        rc, _, err = run_cli(["evaluate", "odometry", "--pred-poses", e, "--gt-poses", p, "--out",
                              tmp_path / "o.json"], capsys)
        assert rc == 2 and f"{p}:3:" in err

    def test_dataset_pose_files_too(self, tmp_path):
        p = tmp_path / "poses_cam_02.txt"
        T = _curve(4)
        T[3, :3, :3] = np.diag([1.0, 1.0, 1.5])
        p.write_text("\n".join(" ".join(f"{v:.9e}" for v in M[:3].ravel()) for M in T) + "\n")
        expect_clear(lambda: read_poses_file(p), f"{p}:4", "not orthonormal")

    def test_low_precision_file_accepted_and_evo_safe(self, tmp_path, capsys):
        gt = _curve(12)
        g, e = tmp_path / "gt.txt", tmp_path / "est.txt"
        write_kitti_poses(g, gt)
        e.write_text("".join(" ".join(f"{v:.4f}" for v in T[:3].ravel()) + "\n" for T in gt))  # 4 decimals
        est = read_kitti_poses(e)
        R = est[:, :3, :3]
        assert np.abs(np.swapaxes(R, 1, 2) @ R - np.eye(3)).max() < 1e-9   # projected onto SO(3)
        assert np.abs(est - gt).max() < 1e-3
        rc, _, err = run_cli(["evaluate", "odometry", "--pred-poses", e, "--gt-poses", g, "--out",
                              tmp_path / "o.json"], capsys)
        assert rc == 0, err


# ============================================================================ 5. --relative pose count
class TestRelativePoseCount:
    """N poses have N-1 relative motions; with ``--relative`` the mismatch message counted the
    chained trajectory (N+1 for a file of N relative poses) as the file's number of poses."""

    def _files(self, tmp_path, n_gt, n_rel):
        gt = _curve(n_gt)
        rel = np.linalg.inv(gt[1:]) @ gt[:-1]  # T_{i+1<-i}
        if n_rel > n_gt - 1:
            rel = np.concatenate([rel, rel[-1:].repeat(n_rel - (n_gt - 1), 0)])
        g, r = tmp_path / "gt.txt", tmp_path / "rel.txt"
        write_kitti_poses(g, gt)
        write_kitti_poses(r, rel[:n_rel])
        return g, r

    def test_counts_in_report_agree(self, tmp_path, capsys):
        g, r = self._files(tmp_path, 6, 5)
        out_json = tmp_path / "o.json"
        rc, out, err = run_cli(["evaluate", "odometry", "--relative", "--pred-poses", r, "--gt-poses", g,
                                "--out", out_json], capsys)
        assert rc == 0, err
        assert "6 poses, 5 relative motions (chained from relative poses)" in out
        res = json.loads(out_json.read_text())["sequences"]["rel"]
        assert (res["num_frames"], res["num_motions"], res["pred_format"]) == (6, 5, "relative")
        assert res["ate_rmse"] < 1e-6  # the relative poses of the GT chain back to the GT

    def test_mismatch_message_counts_the_file(self, tmp_path, capsys):
        g, r = self._files(tmp_path, 6, 6)   # one relative pose too many
        rc, _, err = run_cli(["evaluate", "odometry", "--relative", "--pred-poses", r, "--gt-poses", g,
                              "--out", tmp_path / "o.json"], capsys)
        assert rc == 2
        assert f"{r}: 6 relative poses but {g} has 6 poses (--relative needs 5" in err
        g, r = self._files(tmp_path, 6, 4)   # one too few
        rc, _, err = run_cli(["evaluate", "odometry", "--relative", "--pred-poses", r, "--gt-poses", g,
                              "--out", tmp_path / "o.json"], capsys)
        assert rc == 2 and f"{r}: 4 relative poses" in err

    def test_absolute_input_labelled_as_such(self, tmp_path, capsys):
        gt = _curve(5)
        g, e = tmp_path / "gt.txt", tmp_path / "est.txt"
        write_kitti_poses(g, gt)
        write_kitti_poses(e, gt)
        rc, out, _ = run_cli(["evaluate", "odometry", "--pred-poses", e, "--gt-poses", g, "--out",
                              tmp_path / "o.json"], capsys)
        assert rc == 0 and "5 poses, 4 relative motions\n" in out
        res = json.loads((tmp_path / "o.json").read_text())["sequences"]["est"]
        assert (res["num_frames"], res["num_motions"], res["pred_format"]) == (5, 4, "absolute")


# ============================================================================ 6. fuzz every reader
def _rng(name: str, seed: int) -> np.random.Generator:
    return np.random.default_rng([seed, sum(name.encode())])


def _save_png(path: Path, arr: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, format="PNG")  # PNG whatever the name says
    return path


def _rgb(path: Path, fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (12, 16, 3), dtype=np.uint8)).save(path, format=fmt)
    return path


def _u16(shape=(12, 16)) -> np.ndarray:
    return np.random.default_rng(1).integers(1, 60000, shape).astype(np.uint16)


def _lines(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{ln}\n" for ln in lines))
    return path


def _pose_lines(T: np.ndarray) -> list[str]:
    return [" ".join(f"{v:.9e}" for v in M[:3].ravel()) for M in T]


def _npy(path: Path, arr) -> Path:
    np.save(path, arr)
    return path


def _gt_npz(path: Path, maps) -> Path:
    arr = np.empty(len(maps), dtype=object)
    for i, m in enumerate(maps):
        arr[i] = m
    np.savez(path, data=arr)
    return path


# ---- readers: name -> (file name, write valid file, read, {wrong-shape variant: writer}, cut detectable)
def _kitti_calib_valid(p: Path) -> Path:
    F.write_kitti_calib(p.parent, F.driving_calib(64, 32))
    return p


def _read_kitti_calib(p: Path):
    from sa4depth.data.kitti_geometry import KittiCalib

    return KittiCalib(p.parent)


def _read_odom_calib(p: Path):
    from sa4depth.data.io import calib_matrix, read_calib_file

    return calib_matrix(read_calib_file(p), "P2", (3, 4), p)


def _odom_calib_lines(c, p2_count=12):
    K = np.array([[40.0, 0, 32], [0, 40, 16], [0, 0, 1]])
    P = K @ np.eye(3, 4)
    return [f"P{j}: " + " ".join(f"{v:.12e}" for v in P.ravel()[: (p2_count if j == 2 else 12)]) for j in range(4)] + \
        ["Tr: " + " ".join(["0.000000000000e+00"] * 12)]


def _read_vk_split(p: Path):
    from sa4depth.data.vkitti2 import read_vkitti2_split

    return read_vkitti2_split(p, p.parent, [0], check=False)


def _read_cs_camera(p: Path):
    from sa4depth.data.cityscapes import _camera_json

    return _camera_json(p.parents[3], "city", "city_000000_000001")


def _cs_camera_valid(p: Path) -> Path:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps({"extrinsic": {"baseline": 0.209313}, "intrinsic": {"fx": 2262.5, "fy": 2265.3,
                                                                                   "u0": 1096.98, "v0": 513.137}}))
    return p


def _vk_ext_lines(cols=18):
    rows = []
    for i in range(3):
        E = np.eye(4)
        E[:3, :3] = _rz(0.01 * i)
        E[2, 3] = -float(i)
        rows.append(f"{i} 0 " + " ".join(f"{v:.10g}" for v in E.ravel()[: cols - 2]))
    return ["frame cameraID r1,1 r1,2 r1,3 t1 r2,1 r2,2 r2,3 t2 r3,1 r3,2 r3,3 t3 0 0 0 1"] + rows


def _vk_int_lines(cols=6):
    return ["frame cameraID K[0,0] K[1,1] K[0,2] K[1,2]"] + \
        [f"{i} 0 " + " ".join(str(v) for v in F.VKITTI2_K[: cols - 2]) for i in range(4)]
    # (4 rows: the half-way cut falls inside a row's first numbers; with 3 rows it would leave
    # "... 620.5 1", a well-formed row with cy = 1 that no line-based reader can tell from a real one)


def _torch_save(p: Path, obj) -> Path:
    import torch

    torch.save(obj, p)
    return p


def _checkpoint_valid(p: Path) -> Path:
    import torch

    from sa4depth.train.checkpoint import save_checkpoint

    return save_checkpoint(p, {"step": 3, "weights": {"w": torch.arange(300, dtype=torch.float32)}})


def _model_valid(p: Path) -> Path:
    import torch

    from sa4depth.models.io import save_model_file

    return save_model_file(p, {"model": {"name": "x"}}, {"depth": {"w": torch.arange(300, dtype=torch.float32)}})


def _load(modname: str, fn: str):
    def call(p, *a, **kw):
        import importlib

        return getattr(importlib.import_module(modname), fn)(p, *a, **kw)
    return call


_T = _curve(3)
_NOT_16BIT = {"rgb": lambda p: _rgb(p), "8bit_grey": lambda p: _save_png(p, _u16().astype(np.uint8))}

READERS: dict[str, tuple] = {
    # images and PNG maps
    "rgb_png": ("im.png", lambda p: _rgb(p), _load("sa4depth.data.io", "read_image"),
                {"16bit_grey": lambda p: _save_png(p, _u16())}, True),
    "rgb_jpg": ("im.jpg", lambda p: _rgb(p, "JPEG"), _load("sa4depth.data.io", "read_image"),
                {"16bit_png_as_jpg": lambda p: _save_png(p, _u16())}, True),
    "kitti_depth_png": ("depth.png", lambda p: _save_png(p, _u16()), _load("sa4depth.data.io", "read_depth_png"),
                        _NOT_16BIT, True),
    "cityscapes_disparity_png": ("disp.png", lambda p: _save_png(p, _u16()),
                                 lambda p: _load("sa4depth.data.io", "read_uint16_png")(p, "disparity PNG"),
                                 _NOT_16BIT, True),
    "vkitti2_depth_png": ("depth_00000.png", lambda p: _save_png(p, _u16()),
                          _load("sa4depth.data.vkitti2", "read_vkitti2_depth"),
                          _NOT_16BIT, True),
    "velodyne_bin": ("0000000000.bin",
                     # 3 points = 48 bytes: the half-way cut is no multiple of 16
                     lambda p: (np.arange(12, dtype=np.float32).reshape(3, 4).tofile(p), p)[1],
                     _load("sa4depth.data.io", "read_velodyne"),
                     {"5_floats": lambda p: (np.ones(5, np.float32).tofile(p), p)[1]}, True),
    # split files
    "kitti_split": ("test_files.txt", lambda p: _lines(p, [f"2011_09_26/2011_09_26_drive_0002_sync {i:010d} l"
                                                          for i in (69, 70, 71)]),
                    lambda p: read_kitti_split(p, p.parent, ".png", [0], check=False),
                    {"two_fields": lambda p: _lines(p, ["2011_09_26/2011_09_26_drive_0002_sync 69"])}, True),
    "cityscapes_split": ("test_files.txt", lambda p: _lines(p, [f"aachen aachen_000000_{i:06d}" for i in range(3)]),
                         _load("sa4depth.data.cityscapes", "read_cityscapes_split"),
                         {"three_fields": lambda p: _lines(p, ["aachen aachen_000000_000001 l"])},
                         False),  # a line cut inside the name is a valid (shorter) name
    "vkitti2_split": ("test_files.txt", lambda p: _lines(p, [f"Scene01/clone {i}" for i in (10, 11, 12)]),
                      _read_vk_split, {"one_field": lambda p: _lines(p, ["Scene01/clone"])}, True),
    # poses / trajectories
    "gt_pose_file": ("poses_cam_02.txt", lambda p: _lines(p, _pose_lines(_T)),
                     _load("sa4depth.data.io", "read_poses_file"),
                     {"11_numbers": lambda p: _lines(p, [" ".join(["1"] * 11)]),
                      "non_rigid": lambda p: _lines(p, _pose_lines(_T * np.array([2.0, 2, 2, 1])[:, None]))}, True),
    "trajectory_file": ("09.txt", lambda p: _lines(p, _pose_lines(_T)), read_kitti_poses,
                        {"11_numbers": lambda p: _lines(p, [" ".join(["1"] * 11)]),
                         "non_rigid": lambda p: _lines(p, _pose_lines(_T * np.array([2.0, 2, 2, 1])[:, None]))}, True),
    # calibration and metadata text
    "kitti_raw_calib": ("calib_cam_to_cam.txt", _kitti_calib_valid, _read_kitti_calib,
                        {"p_rect_11_numbers": lambda p: (_kitti_calib_valid(p), _lines(p, [
                            ln if not ln.startswith("P_rect_02") else " ".join(ln.split()[:12])
                            for ln in p.read_text().splitlines()]))[1]}, True),
    "odometry_calib": ("calib.txt", lambda p: _lines(p, _odom_calib_lines(None)), _read_odom_calib,
                       {"p2_9_numbers": lambda p: _lines(p, _odom_calib_lines(None, 9))}, True),
    "oxts_packet": ("0000000000.txt", lambda p: _lines(p, [" ".join(f"{0.5 + i:.6f}" for i in range(30))]),
                    _load("sa4depth.data.io", "read_oxts_file"),
                    {"29_numbers": lambda p: _lines(p, [" ".join(["1.0"] * 29)])}, True),
    "kitti_timestamps": ("timestamps.txt", lambda p: _lines(p, [f"2011-09-26 13:02:25.{i:09d}" for i in range(3)]),
                         _load("sa4depth.data.io", "read_kitti_timestamps"),
                         {"seconds": lambda p: _lines(p, ["0.1", "0.2"])}, True),
    "odometry_times": ("times.txt", lambda p: _lines(p, [f"{i * 0.1:.6e}" for i in range(3)]),
                       _load("sa4depth.data.io", "read_seconds_file"),
                       {"two_per_line": lambda p: _lines(p, ["0.0 0.1"])},
                       False),  # a cut "1.000000e-01" reads "1.00000": a valid shorter file
    "cityscapes_cam_txt": ("x_cam.txt", lambda p: _lines(p, ["225.0,0.0,208.0,0.0,227.0,64.0,0.0,0.0,1.0"]),
                           _load("sa4depth.data.io", "read_cam_txt"),
                           {"6_numbers": lambda p: _lines(p, ["225.0,0.0,208.0,0.0,227.0,64.0"])}, True),
    "nyu_intrinsics": ("intrinsics.txt", lambda p: _lines(p, ["518.857901 519.469611 325.582449 253.736166"]),
                       lambda p: _load("sa4depth.data.nyu", "read_nyu_intrinsics")(str(p)),
                       {"3_numbers": lambda p: _lines(p, ["518.857901 519.469611 325.582449"])}, True),
    "vkitti2_extrinsic": ("extrinsic.txt", lambda p: _lines(p, _vk_ext_lines()),
                          _load("sa4depth.data.vkitti2", "read_vkitti2_extrinsics"),
                          {"17_columns": lambda p: _lines(p, _vk_ext_lines(17))}, True),
    "vkitti2_intrinsic": ("intrinsic.txt", lambda p: _lines(p, _vk_int_lines()),
                          _load("sa4depth.data.vkitti2", "read_vkitti2_intrinsics"),
                          {"5_columns": lambda p: _lines(p, _vk_int_lines(5))}, True),
    "cityscapes_camera_json": ("camera/test/city/city_000000_000001_camera.json", _cs_camera_valid, _read_cs_camera,
                               {"json_list": lambda p: (p.parent.mkdir(parents=True, exist_ok=True),
                                                        p.write_text("[1, 2, 3]"), p)[2]}, True),
    # evaluation inputs, checkpoints, models, configs (readers owned elsewhere)
    "predictions_npy": ("disps.npy", lambda p: _npy(p, np.full((2, 6, 8), 0.5, np.float32)),
                        _load("sa4depth.evaluate.depth", "load_predictions"),
                        {"1d": lambda p: _npy(p, np.ones(7, np.float32))}, True),
    "predictions_npz": ("disps.npz", lambda p: (np.savez(p, data=np.full((2, 6, 8), 0.5, np.float32)), p)[1],
                        _load("sa4depth.evaluate.depth", "load_predictions"),
                        {"1d": lambda p: (np.savez(p, data=np.ones(7)), p)[1]}, True),
    "gt_depths_npz": ("gt_depths.npz", lambda p: _gt_npz(p, [np.full((6, 8), 5.0, np.float32)] * 2),
                      _load("sa4depth.evaluate.depth", "load_gt_depths"),
                      {"1d_maps": lambda p: _gt_npz(p, [np.ones(5)] * 2)}, True),
    "checkpoint": ("checkpoint.pt", _checkpoint_valid, _load("sa4depth.train.checkpoint", "load_checkpoint"),
                   {"a_list": lambda p: _torch_save(p, [1, 2, 3])}, True),
    "model_file": ("model.pt", _model_valid, _load("sa4depth.models.io", "read_model_file"),
                   {"no_format": lambda p: _torch_save(p, {"config": {}, "state_dicts": {}})}, True),
    "config_yaml": ("cfg.yaml", lambda p: _lines(p, ["train:", "  lr: 0.0001", "  batch_size: 12", "data:",
                                                     "  dataset: kitti", "  frame_ids: [0, -1, 1]"]),
                    _load("sa4depth.config", "load_yaml"),
                    {"top_level_list": lambda p: _lines(p, ["- a", "- b"])},
                    False),  # a mapping cut after a line is a valid, smaller mapping
}

#: inputs a reader may legitimately accept (documented format behaviour, not a bug)
ACCEPTED = {
    ("config_yaml", "empty"): "an empty YAML layer is an empty mapping (load_yaml returns {})",
}

#: readers in files owned by other work in progress (evaluate/depth.py, train/checkpoint.py,
#: models/io.py, config.py): a failure there is expected-to-fail here, not fixed here
OTHERS = {"predictions_npy", "predictions_npz", "gt_depths_npz", "checkpoint", "model_file", "config_yaml"}
#: (reader, kind) cases that fail in those files at the time of writing (see the report)
OTHERS_FAILING: dict[tuple[str, str], str] = {}  # (reader, kind) -> known failure: none left

KINDS = ["empty", "random-0", "random-1", "random-2", "header+random-0", "header+random-1", "truncated"]


def _corrupt(path: Path, kind: str, name: str, valid: bytes) -> None:
    if kind == "empty":
        path.write_bytes(b"")
    elif kind.startswith("random-"):
        r = _rng(name, int(kind.split("-")[1]))
        path.write_bytes(r.integers(0, 256, int(r.integers(1, 2048)), dtype=np.uint8).tobytes())
    elif kind.startswith("header+random-"):
        r = _rng(name, 10 + int(kind.split("-")[1]))
        head = valid[: max(1, min(32, len(valid) // 2))]
        path.write_bytes(head + r.integers(0, 256, int(r.integers(1, 512)), dtype=np.uint8).tobytes())
    elif kind == "truncated":
        path.write_bytes(valid[: len(valid) // 2])
    else:
        raise AssertionError(kind)


def _cases():
    for name, (_fname, _mk, _rd, wrong, cut_ok) in READERS.items():
        kinds = list(KINDS) + [f"wrong:{w}" for w in wrong]
        for kind in kinds:
            marks = []
            if kind == "truncated" and not cut_ok:
                marks.append(pytest.mark.skip(reason="format cannot tell a cut file from a shorter valid one"))
            why = OTHERS_FAILING.get((name, kind))
            if why:
                marks.append(pytest.mark.xfail(strict=False, reason=why))
            yield pytest.param(name, kind, id=f"{name}-{kind}", marks=marks)


@pytest.mark.parametrize("name,kind", list(_cases()))
def test_reader_rejects_bad_input(name, kind, tmp_path):
    fname, make_valid, read, wrong, _ = READERS[name]
    path = tmp_path / fname
    path.parent.mkdir(parents=True, exist_ok=True)
    make_valid(path)
    read(path)  # the valid file reads
    valid = path.read_bytes()
    if kind.startswith("wrong:"):
        path.unlink()
        wrong[kind[6:]](path)
    else:
        _corrupt(path, kind, name, valid)
    if (name, kind) in ACCEPTED:
        try:
            read(path)
        except CLEAR as e:
            assert str(path) in str(e)
        return
    expect_clear(lambda: read(path), path)


@pytest.mark.parametrize("name", sorted(READERS))
def test_reader_missing_file(name, tmp_path):
    fname, _mk, read, _w, _c = READERS[name]
    path = tmp_path / fname
    path.parent.mkdir(parents=True, exist_ok=True)
    expect_clear(lambda: read(path), path)


# ---- CLI entry points: exit status != 0, a one-line error naming the file, no traceback
CLI_KINDS = ["empty", "random-0", "header+random-0", "header+random-1", "header+random-2", "truncated", "wrong"]


def _bad_file(path: Path, kind: str, make_valid, wrong) -> Path:
    make_valid(path)
    valid = path.read_bytes()
    if kind == "wrong":
        path.unlink()
        wrong(path)
    else:
        _corrupt(path, kind, path.name, valid)
    return path


def _assert_cli_error(rc: int, err: str, path: Path) -> None:
    assert rc != 0
    assert "Traceback" not in err
    assert str(path) in err, err


@pytest.mark.parametrize("kind", [pytest.param(k, marks=[pytest.mark.xfail(strict=False, reason=OTHERS_FAILING[
    ("cli_depth_pred", k)])] if ("cli_depth_pred", k) in OTHERS_FAILING else []) for k in CLI_KINDS])
def test_cli_evaluate_depth_bad_predictions(kind, tmp_path, capsys):
    gt = _gt_npz(tmp_path / "gt_depths.npz", [np.full((6, 8), 5.0, np.float32)] * 2)
    pred = _bad_file(tmp_path / "pred.npy", kind, lambda p: _npy(p, np.full((2, 6, 8), 0.5, np.float32)),
                     lambda p: _npy(p, np.ones(7, np.float32)))
    rc, _, err = run_cli(["evaluate", "depth", "--pred", pred, "--gt", gt, "--split", "eigen",
                          "--out", tmp_path / "o.json"], capsys)
    _assert_cli_error(rc, err, pred)
    assert not (tmp_path / "o.json").exists()


@pytest.mark.parametrize("which", ["pred", "gt"])
@pytest.mark.parametrize("kind", CLI_KINDS + ["non_rigid"])
def test_cli_evaluate_odometry_bad_trajectory(which, kind, tmp_path, capsys):
    good = _curve(6)
    g, e = tmp_path / "gt.txt", tmp_path / "est.txt"
    write_kitti_poses(g, good)
    write_kitti_poses(e, good)
    target = e if which == "pred" else g
    if kind == "non_rigid":
        bad = good.copy()
        bad[3, :3, :3] *= 1.5
        write_kitti_poses(target, bad)
    else:
        _bad_file(target, kind, lambda p: write_kitti_poses(p, good), lambda p: _lines(p, [" ".join(["1"] * 11)]))
    rc, _, err = run_cli(["evaluate", "odometry", "--pred-poses", e, "--gt-poses", g, "--out", tmp_path / "o.json"],
                         capsys)
    _assert_cli_error(rc, err, target)


@pytest.mark.parametrize("kind", CLI_KINDS)
def test_cli_stats_broken_splits(kind, tmp_path, capsys):
    raw = tmp_path / "kitti_raw"
    raw.mkdir()
    sp = tmp_path / "splits"
    files = [sp / "eigen_zhou" / "train_files.txt", sp / "eigen_zhou" / "val_files.txt"] + \
        [sp / s / "test_files.txt" for s in ("eigen", "eigen_benchmark", "video")]
    for f in files:
        f.parent.mkdir(parents=True, exist_ok=True)
        _bad_file(f, kind, lambda p: _lines(p, [f"2000_01_01/2000_01_01_drive_0001_sync {i} l" for i in (1, 2, 3)]),
                  lambda p: _lines(p, ["2000_01_01/2000_01_01_drive_0001_sync 1"]))
    missing = tmp_path / "missing"
    rc, _, err = run_cli(["stats", "--scale", "tiny",
                          f"data.roots={{kitti: {raw}, kitti_odom: {missing}, cityscapes: {missing}, nyu: {missing}}}",
                          f"data.splits_dir={sp}"], capsys)
    assert rc != 0 and "Traceback" not in err and "no split could be counted" in err
    for f in files:
        assert str(f) in err, err
