"""`sa4depth prepare`: layout checks on fabricated real-layout trees, the downloader against a
local HTTP server on 127.0.0.1 (never the network), archive extraction."""
from __future__ import annotations

import hashlib
import http.server
import io
import shutil
import tarfile
import threading
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest

from fabricate import fabricate_driving, fabricate_dynamic, fabricate_indoor
from sa4depth.cli import main
from sa4depth.data.prepare import ChecksumError, DownloadError, check_dataset, download, extract, prepare
from sa4depth.data.prepare import sources as S
from sa4depth.data.prepare.layout import check_kitti

DRIVE = "2000_01_01/2000_01_01_drive_0001_sync"
TEST_DRIVE = "2000_01_01/2000_01_01_drive_0003_sync"


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """These tests must never reach the network: only 127.0.0.1 may be opened."""
    real = urllib.request.urlopen

    def guarded(req, *a, **kw):
        url = req.full_url if isinstance(req, urllib.request.Request) else str(req)
        if not url.startswith("http://127.0.0.1:"):
            raise AssertionError(f"test tried to open {url}")
        return real(req, *a, **kw)

    monkeypatch.setattr(urllib.request, "urlopen", guarded)


@pytest.fixture(scope="module")
def driving_master(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("driving")
    fabricate_driving(out, frames=5, width=32, height=16, odom_frames=6)
    return out


@pytest.fixture()
def driving(driving_master, tmp_path) -> Path:
    dst = tmp_path / "driving"
    shutil.copytree(driving_master, dst)
    return dst


def _kitti_args(d: Path, *extra: str) -> list[str]:
    return ["prepare", "kitti", "--root", str(d / "kitti_raw"), "--splits-dir", str(d / "splits"), "--quiet", *extra]


# ----------------------------------------------------------------------------- KITTI raw
def test_kitti_complete_layout_passes_and_exports_gt(driving, capsys):
    # incomplete before the export: the GT npz files are parts of their own
    assert main(_kitti_args(driving, "--skip-counts")) == 1
    assert "gt/eigen_benchmark" in capsys.readouterr().out
    assert main(_kitti_args(driving, "--skip-counts", "--export-gt")) == 0
    out = capsys.readouterr().out
    assert "kitti: COMPLETE" in out and "--skip-counts" in out
    with np.load(driving / "splits" / "eigen_benchmark" / "gt_depths.npz", allow_pickle=True) as z:
        assert len(z["data"]) == 5 and z["data"][0].shape == (16, 32)
    with np.load(driving / "splits" / "eigen" / "gt_depths.npz", allow_pickle=True) as z:
        assert len(z["keys"]) == 5
    # a stale npz (fewer maps than test lines) is reported
    sf = driving / "splits" / "eigen" / "test_files.txt"
    sf.write_text(sf.read_text() + f"{TEST_DRIVE} 0 r\n")
    rep = check_kitti(driving / "kitti_raw", driving / "splits", check_counts=False)
    bad = {p.key: p for p in rep.missing}
    assert list(bad) == ["gt/eigen"] and "holds 5 maps" in bad["gt/eigen"].problems[0]


def test_kitti_official_counts_are_checked(driving, capsys):
    rep = check_kitti(driving / "kitti_raw", driving / "splits", require_gt=False)
    bad = {p.key: " ".join(p.problems) for p in rep.missing}
    assert set(bad) == {f"splits/{k}" for k in S.KITTI_SPLIT_COUNTS}
    assert "expected 39810" in bad["splits/eigen_zhou/train_files.txt"]
    assert "expected 4424" in bad["splits/eigen_zhou/val_files.txt"]
    assert "expected 697" in bad["splits/eigen/test_files.txt"]
    assert "expected 652" in bad["splits/eigen_benchmark/test_files.txt"]
    assert main(_kitti_args(driving)) == 1  # non-zero on a subset unless --skip-counts


def test_kitti_each_missing_part_reported_with_source(driving, capsys):
    raw = driving / "kitti_raw"
    (raw / "2000_01_01" / "calib_velo_to_cam.txt").unlink()
    shutil.rmtree(raw / "2000_01_01" / "2000_01_01_drive_0002_sync")
    (raw / DRIVE / "image_03" / "data" / "0000000002.png").unlink()  # needed by line "... 1 r" (frame +1)
    (raw / TEST_DRIVE / "velodyne_points" / "data" / "0000000004.bin").unlink()
    (raw / TEST_DRIVE / "proj_depth" / "groundtruth" / "image_02" / "0000000003.png").unlink()
    (driving / "splits" / "eigen_zhou" / "val_files.txt").unlink()
    rep = check_dataset("kitti", raw, driving / "splits", check_counts=False, require_gt=False)
    bad = {p.key: p for p in rep.missing}
    assert set(bad) == {"calib/2000_01_01", "drive/2000_01_01_drive_0002_sync", "drive/2000_01_01_drive_0001_sync",
                        "drive/2000_01_01_drive_0003_sync", "improved_gt", "splits/eigen_zhou/val_files.txt"}
    assert "calib_velo_to_cam.txt" in bad["calib/2000_01_01"].problems[0]
    assert bad["calib/2000_01_01"].sources[0].url == f"{S.KITTI_S3}/raw_data/2000_01_01_calib.zip"
    assert bad["drive/2000_01_01_drive_0002_sync"].sources[0].url.endswith(
        "raw_data/2000_01_01_drive_0002/2000_01_01_drive_0002_sync.zip")
    assert bad["drive/2000_01_01_drive_0002_sync"].n_missing == 1  # one message for a whole drive
    assert "image_03/data/0000000002.png" in bad["drive/2000_01_01_drive_0001_sync"].problems[0]
    assert "velodyne_points/data/0000000004.bin" in bad["drive/2000_01_01_drive_0003_sync"].problems[0]
    assert bad["improved_gt"].sources[0].name == "data_depth_annotated.zip"
    val_src = bad["splits/eigen_zhou/val_files.txt"].sources[0]
    assert val_src.url.startswith("https://raw.githubusercontent.com/nianticlabs/monodepth2/") and val_src.sha256
    text = rep.format()
    for p in bad.values():
        assert f"MISSING {p.key}" in text
    # the CLI exits non-zero, lists every part with where to get it, and never exports from partial data
    assert main(_kitti_args(driving, "--skip-counts", "--export-gt")) == 1
    out = capsys.readouterr().out
    assert "2000_01_01_calib.zip" in out and "data_depth_annotated.zip" in out and "INCOMPLETE" in out
    assert "--export-gt skipped" in out
    assert not (driving / "splits" / "eigen" / "gt_depths.npz").exists()


def test_kitti_without_splits_requires_monodepth2_archive_list(tmp_path):
    rep = check_kitti(tmp_path / "raw", tmp_path / "splits", require_gt=False)
    drives = [p for p in rep.missing if p.key.startswith("drive/")]
    calibs = [p for p in rep.missing if p.key.startswith("calib/")]
    urls = sorted(p.sources[0].url for p in drives + calibs)
    assert len(drives) == 61 and len(calibs) == 5 and urls == sorted(S.kitti_archive_urls())


def test_kitti_img_ext_detected_and_jpeg_layout(tmp_path):
    fabricate_driving(tmp_path, frames=4, width=32, height=16, img_ext=".jpg", odom_frames=3)
    rep = check_kitti(tmp_path / "kitti_raw", tmp_path / "splits", check_counts=False, require_gt=False)
    assert rep.complete and rep.info["image extension"] == ".jpg"
    rep = check_kitti(tmp_path / "kitti_raw", tmp_path / "splits", img_ext=".png", check_counts=False,
                      require_gt=False)
    assert not rep.complete and "0000000000.png" in rep.format()


# ----------------------------------------------------------------------------- odometry
def test_kitti_odom_counts_and_missing(driving, capsys):
    odom = driving / "kitti_odom"
    args = ["prepare", "kitti_odom", "--root", str(odom), "--splits-dir", str(driving / "splits"), "--quiet",
            "--sequences", "00", "01", "09", "10"]
    assert main([*args, "--skip-counts"]) == 0
    assert main(args) == 1
    assert "the benchmark has 1591" in capsys.readouterr().out
    pf = odom / "poses" / "09.txt"
    pf.write_text("".join(pf.read_text().splitlines(keepends=True)[:-1]))
    (odom / "poses" / "10.txt").unlink()
    rep = check_dataset("kitti_odom", odom, sequences=["00", "01", "09", "10"], check_counts=False)
    bad = {p.key: p for p in rep.missing}
    assert set(bad) == {"sequence/09/image_2", "poses/10"}
    assert "counts disagree" in bad["sequence/09/image_2"].problems[0]
    assert bad["poses/10"].sources[0].name == "data_odometry_poses.zip"


# ----------------------------------------------------------------------------- Cityscapes / NYU
def test_cityscapes_layout(tmp_path):
    fabricate_dynamic(tmp_path, width=32, height=16, n_train=3, n_test=2)
    sp = tmp_path / "splits"
    lines = (sp / "cityscapes" / "train_files.txt").read_text().splitlines()
    (sp / "cityscapes" / "val_files.txt").write_text(lines[0] + "\n")
    root = tmp_path / "cityscapes"
    assert prepare("cityscapes", root, sp, check_counts=False, export=True, log=lambda s: None)[0].complete
    rep = check_dataset("cityscapes", root, sp)
    assert "expected 1525" in " ".join(p for part in rep.missing for p in part.problems)
    name = lines[1].split()[1]
    (root / "train_triplets" / "testcity" / f"{name}_cam.txt").unlink()
    next((root / "disparity" / "test").rglob("*_disparity.png")).unlink()
    rep = check_dataset("cityscapes", root, sp, check_counts=False)
    bad = {p.key: p for p in rep.missing}
    assert set(bad) == {"train_triplets", "test/disparity"}
    assert bad["test/disparity"].sources[0].login and bad["test/disparity"].sources[0].url is None
    assert "prepare_train_data.py" in bad["train_triplets"].sources[0].note


def test_nyu_layout(tmp_path):
    fabricate_indoor(tmp_path, width=32, height=24, frames=4, n_test=2)
    root, sp = tmp_path / "nyu", tmp_path / "splits"
    rep, _ = prepare("nyu", root, sp, check_counts=False, export=True, log=lambda s: None)
    assert rep.complete
    assert not check_dataset("nyu", root, sp).complete  # 2 test ids, not 654
    (root / "test" / "00001_depth.png").unlink()
    (root / "intrinsics.txt").unlink()
    bad = {p.key: p for p in check_dataset("nyu", root, sp, check_counts=False).missing}
    assert set(bad) == {"test/images", "intrinsics"}  # the exported npz itself is still fine
    assert bad["test/images"].sources[0].name == "nyu_depth_v2_labeled.mat"


# ----------------------------------------------------------------------------- VKITTI2
def _vkitti2(root: Path, n: int = 3) -> None:
    for scene in S.VKITTI2_FRAMES:
        base = root / scene / "clone"
        for sub, ext in (("rgb", "jpg"), ("depth", "png")):
            d = base / "frames" / sub / "Camera_0"
            d.mkdir(parents=True)
            for i in range(n):
                (d / f"{sub}_{i:05d}.{ext}").write_bytes(b"x")
        rows = [f"{i} {c} " + " ".join(["0"] * 16) for i in range(n) for c in (0, 1)]
        (base / "extrinsic.txt").write_text("frame cameraID r1,1 ...\n" + "\n".join(rows) + "\n")
        (base / "intrinsic.txt").write_text("frame cameraID K[0,0] K[1,1] K[0,2] K[1,2]\n")


def test_vkitti2_layout(tmp_path):
    _vkitti2(tmp_path)
    assert check_dataset("vkitti2", tmp_path, check_counts=False).complete
    assert "the release has 447" in check_dataset("vkitti2", tmp_path).format()
    (tmp_path / "Scene06" / "clone" / "frames" / "depth" / "Camera_0" / "depth_00002.png").unlink()
    shutil.rmtree(tmp_path / "Scene20" / "clone" / "frames" / "rgb")
    bad = {p.key: p for p in check_dataset("vkitti2", tmp_path, check_counts=False).missing}
    assert set(bad) == {"rgb/Scene06/clone", "rgb/Scene20/clone"}
    assert "counts disagree" in bad["rgb/Scene06/clone"].problems[0]
    assert bad["rgb/Scene20/clone"].sources[0].url.endswith("vkitti_2.0.3_rgb.tar")


# ----------------------------------------------------------------------------- downloader
class _Server:
    """A 127.0.0.1 HTTP server serving in-memory files; honours (or ignores) Range headers and can
    cut a response short to simulate a dropped connection."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.ranges: list[str | None] = []
        self.honour_range = True
        self.truncate_next = 0  # >0: the next response sends only this many bytes, then closes
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                data = outer.files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                rng = self.headers.get("Range")
                outer.ranges.append(rng)
                start = 0
                if rng and outer.honour_range:
                    start = int(rng.split("=")[1].split("-")[0])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if outer.truncate_next:
                    body, outer.truncate_next = body[:outer.truncate_next], 0
                    self.close_connection = True
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def server():
    s = _Server()
    yield s
    s.close()


def _payload(n: int = 300_000) -> bytes:
    return np.random.default_rng(0).integers(0, 256, n, dtype=np.uint8).tobytes()


def test_download_checksum_and_resume(server, tmp_path):
    data = _payload()
    server.files["/a.bin"] = data
    sha, md5 = hashlib.sha256(data).hexdigest(), hashlib.md5(data).hexdigest()
    dest = tmp_path / "a.bin"
    assert download(f"{server.url}/a.bin", dest, sha256=sha, md5=md5, progress=False) == dest
    assert dest.read_bytes() == data and not (tmp_path / "a.bin.part").exists()
    # resume after a truncated .part: only the tail is requested
    dest.unlink()
    (tmp_path / "a.bin.part").write_bytes(data[:123_456])
    server.ranges.clear()
    download(f"{server.url}/a.bin", dest, sha256=sha, progress=False, chunk_size=8192)
    assert server.ranges == ["bytes=123456-"] and dest.read_bytes() == data
    # an existing complete file is verified, not fetched again
    server.ranges.clear()
    download(f"{server.url}/a.bin", dest, sha256=sha, progress=False)
    assert server.ranges == []


def test_download_checksum_mismatch(server, tmp_path):
    data = _payload(50_000)
    server.files["/b.bin"] = data
    dest = tmp_path / "b.bin"
    with pytest.raises(ChecksumError, match="sha256 mismatch"):
        download(f"{server.url}/b.bin", dest, sha256="0" * 64, progress=False)
    assert not dest.exists() and not (tmp_path / "b.bin.part").exists()
    # a corrupt partial file is caught by the checksum after resuming
    (tmp_path / "b.bin.part").write_bytes(b"\0" * 1000)
    with pytest.raises(ChecksumError):
        download(f"{server.url}/b.bin", dest, md5=hashlib.md5(data).hexdigest(), progress=False)
    download(f"{server.url}/b.bin", dest, md5=hashlib.md5(data).hexdigest(), progress=False)
    assert dest.read_bytes() == data


def test_download_dropped_connection_and_no_range_server(server, tmp_path):
    data = _payload(200_000)
    server.files["/c.bin"] = data
    sha = hashlib.sha256(data).hexdigest()
    server.truncate_next = 70_000
    dest = download(f"{server.url}/c.bin", tmp_path / "c.bin", sha256=sha, progress=False, retry_wait=0.0)
    assert dest.read_bytes() == data and server.ranges == [None, "bytes=70000-"]
    # a server that ignores Range: the partial file is discarded and the transfer restarts
    server.honour_range = False
    (tmp_path / "d.bin.part").write_bytes(data[:5000])
    download(f"{server.url}/c.bin", tmp_path / "d.bin", sha256=sha, progress=False)
    assert (tmp_path / "d.bin").read_bytes() == data
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(f"{server.url}/missing.zip", tmp_path / "m.zip", progress=False)


# ----------------------------------------------------------------------------- extraction
def test_extract_strip_remap_and_traversal(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("dataset/poses/00.txt", "1 0 0 0 0 1 0 0 0 0 1 0\n")
        z.writestr("train/2011_09_26_drive_0001_sync/proj_depth/groundtruth/image_02/0000000005.png", b"png")
        z.writestr("devkit/readme.txt", "x")
    (tmp_path / "a.zip").write_bytes(buf.getvalue())
    assert extract(tmp_path / "a.zip", tmp_path / "o1", strip_prefixes=("dataset",), progress=False) == 3
    assert (tmp_path / "o1" / "poses" / "00.txt").is_file()
    n = extract(tmp_path / "a.zip", tmp_path / "o2", remap=S.kitti_depth_annotated_remap, progress=False)
    assert n == 1 and (tmp_path / "o2" / "2011_09_26" / "2011_09_26_drive_0001_sync" / "proj_depth" / "groundtruth"
                       / "image_02" / "0000000005.png").read_bytes() == b"png"
    with tarfile.open(tmp_path / "evil.tar.gz", "w:gz") as t:
        info = tarfile.TarInfo("../escape.txt")
        info.size = 1
        t.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(ValueError, match="outside"):
        extract(tmp_path / "evil.tar.gz", tmp_path / "o3", progress=False)
    assert not (tmp_path / "escape.txt").exists()
    (tmp_path / "bad.zip").write_bytes(b"not an archive")
    with pytest.raises(ValueError, match="not a zip or tar"):
        extract(tmp_path / "bad.zip", tmp_path / "o4", progress=False)


def test_prepare_download_end_to_end(server, tmp_path, monkeypatch, capsys):
    """kitti_odom from nothing: the three archives come from the local server, are extracted
    (``dataset/`` stripped) and the re-check passes; a login-only archive is reported instead."""
    n = 4
    zips = {"color": {}, "calib": {}, "poses": {}}
    for seq in ("09", "10"):
        for i in range(n):
            zips["color"][f"dataset/sequences/{seq}/image_2/{i:06d}.png"] = b"img"
        zips["calib"][f"dataset/sequences/{seq}/calib.txt"] = "P0: 1\nP2: 1 0 0 0 0 1 0 0 0 0 1 0\n"
        zips["calib"][f"dataset/sequences/{seq}/times.txt"] = "".join(f"{0.1 * i}\n" for i in range(n))
        zips["poses"][f"dataset/poses/{seq}.txt"] = "1 0 0 0 0 1 0 0 0 0 1 0\n" * n
    for key, members in zips.items():
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            for name, content in members.items():
                z.writestr(name, content)
        src = S.KITTI_ODOMETRY_SOURCES[key]
        server.files[f"/{src.name}"] = buf.getvalue()
        monkeypatch.setitem(S.KITTI_ODOMETRY_SOURCES, key,
                            S.Source(**{**src.__dict__, "url": f"{server.url}/{src.name}"}))
    root = tmp_path / "odom"
    args = ["prepare", "kitti_odom", "--root", str(root), "--sequences", "09", "10", "--skip-counts", "--quiet"]
    assert main(args) == 1
    assert main([*args, "--download"]) == 0
    assert (root / "sequences" / "10" / "image_2" / "000003.png").is_file()
    assert not (root / "_archives").exists() or not any((root / "_archives").iterdir())  # archives removed
    capsys.readouterr()
    # Cityscapes archives need a login: reported as manual steps, never fetched
    fabricate_dynamic(tmp_path, width=32, height=16, n_train=2, n_test=1)
    sp = tmp_path / "splits" / "cityscapes"
    (sp / "val_files.txt").write_text((sp / "train_files.txt").read_text())
    shutil.rmtree(tmp_path / "cityscapes" / "leftImg8bit_sequence")
    rep, pending = prepare("cityscapes", tmp_path / "cityscapes", tmp_path / "splits", download_missing=True,
                           check_counts=False, log=lambda s: None)
    assert not rep.complete
    assert any("leftImg8bit_sequence_trainvaltest.zip" in p and "login required" in p for p in pending)


def test_manifest_matches_monodepth2_archive_list():
    urls = S.kitti_archive_urls()
    assert len(urls) == 66 and len(set(urls)) == 66
    assert sum(u.endswith("_calib.zip") for u in urls) == 5
    assert urls[1] == "https://s3.eu-central-1.amazonaws.com/avg-kitti/raw_data/2011_09_26_drive_0001/" \
                      "2011_09_26_drive_0001_sync.zip"
    assert S.kitti_depth_annotated_remap("val/2011_10_03_drive_0047_sync/proj_depth/groundtruth/image_02/x.png") \
        == "2011_10_03/2011_10_03_drive_0047_sync/proj_depth/groundtruth/image_02/x.png"
    assert S.kitti_depth_annotated_remap("devkit/readme.txt") is None
    # every checksum recorded is a real sha256 digest, every other archive says it has none
    for s in [*S.KITTI_SPLIT_SOURCES.values(), *S.CITYSCAPES_SPLIT_SOURCES.values()]:
        assert len(s.sha256) == 64 and int(s.sha256, 16) >= 0
    for s in [*S.KITTI_ODOMETRY_SOURCES.values(), *S.VKITTI2_SOURCES.values(), S.KITTI_DEPTH_ANNOTATED]:
        assert s.sha256 is None and "no published checksum" in s.describe()


def test_to_jpeg_converts_camera_images_only(driving, capsys):
    from PIL import Image

    raw = driving / "kitti_raw"
    png = raw / DRIVE / "image_02" / "data" / "0000000001.png"
    before = np.asarray(Image.open(png), dtype=np.float64)
    gt_png = raw / TEST_DRIVE / "proj_depth" / "groundtruth" / "image_02" / "0000000001.png"
    assert main(_kitti_args(driving, "--skip-counts", "--to-jpeg", "--export-gt")) == 0
    assert "image extension: .jpg" in capsys.readouterr().out
    assert not png.exists() and gt_png.is_file()  # GT PNGs are not camera images
    assert not list(raw.glob("*/*/image_0[23]/data/*.png"))
    with Image.open(png.with_suffix(".jpg")) as im:
        assert im.format == "JPEG" and im.mode == "RGB"
        assert np.abs(np.asarray(im, dtype=np.float64) - before).mean() < 12.0
    with pytest.raises(ValueError, match="applies to kitti and kitti_odom"):
        prepare("nyu", driving, driving, to_jpeg=True, log=lambda s: None)
