"""Where every part of the real datasets comes from: official archives, split lists, checksums.

Recorded as data, read from the public sources themselves:

* KITTI raw: the 66 archives (5 calibration zips + 61 synced drives) of Monodepth2's
  ``splits/kitti_archives_to_download.txt`` (nianticlabs/monodepth2), all on KITTI's S3 bucket
  ``https://s3.eu-central-1.amazonaws.com/avg-kitti/raw_data/``. Improved ground truth:
  ``data_depth_annotated.zip`` of the KITTI depth benchmark (same bucket).
* Split lists: Monodepth2's ``splits/{eigen_zhou,eigen,eigen_benchmark}`` and ManyDepth's
  ``splits/{cityscapes,cityscapes_preprocessed}``, pinned to a commit so that the SHA-256 below
  (computed here from those exact files) stays valid.
* KITTI odometry: ``data_odometry_{color,calib,poses}.zip`` (same bucket).
* Cityscapes: ``leftImg8bit_sequence_trainvaltest.zip``, ``camera_trainvaltest.zip``,
  ``disparity_trainvaltest.zip`` (login required; the file-handling URLs need a session cookie).
* NYUv2: the labelled ``nyu_depth_v2_labeled.mat`` + ``splits.mat`` (654 test indices) and the
  raw sequences; MonoIndoor++ trains on the raw sequences as preprocessed by MonoIndoor / P2Net.
* Virtual KITTI 2: ``vkitti_2.0.3_{rgb,depth}.tar``, ``vkitti_2.0.3_textgt.tar.gz`` (NAVER LABS).

Sizes are given only where a public source states them (Monodepth2's README: odometry colour
65 GB; the Cityscapes download page: 324 GB and 2 MB).

Checksums: only the split lists carry SHA-256 digests (computed from the pinned commits).
Neither KITTI, Cityscapes, NYU nor NAVER LABS publishes digests for their archives, so those are
``None`` and the downloader verifies nothing but the byte count; no digest is invented.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Source", "KITTI_S3", "KITTI_RAW_DRIVES", "kitti_raw_drive_source", "kitti_calib_source",
           "kitti_archive_urls", "KITTI_SPLIT_SOURCES", "KITTI_DEPTH_ANNOTATED", "KITTI_ODOMETRY_SOURCES",
           "CITYSCAPES_SOURCES", "CITYSCAPES_SPLIT_SOURCES", "CITYSCAPES_TRIPLETS", "NYU_SOURCES",
           "VKITTI2_SOURCES", "MONODEPTH2_COMMIT", "MANYDEPTH_COMMIT", "kitti_depth_annotated_remap"]

KITTI_S3 = "https://s3.eu-central-1.amazonaws.com/avg-kitti"
KITTI_RAW_PAGE = "https://www.cvlibs.net/datasets/kitti/raw_data.php"
KITTI_DEPTH_PAGE = "https://www.cvlibs.net/datasets/kitti/eval_depth.php?benchmark=depth_prediction"
KITTI_ODOM_PAGE = "https://www.cvlibs.net/datasets/kitti/eval_odometry.php"
MONODEPTH2_COMMIT = "b676244e5a1ca55564eb5d16ab521a48f823af31"  # nianticlabs/monodepth2, Jan 2022
MANYDEPTH_COMMIT = "a36212bda725438c0b96ce0793a92f9c148914bf"   # nianticlabs/manydepth, Jan 2022
_MD2_RAW = f"https://raw.githubusercontent.com/nianticlabs/monodepth2/{MONODEPTH2_COMMIT}/splits"
_MANY_RAW = f"https://raw.githubusercontent.com/nianticlabs/manydepth/{MANYDEPTH_COMMIT}/splits"


@dataclass(frozen=True)
class Source:
    """One thing to fetch (or make) for a dataset part.

    ``kind``: ``archive`` (download, then extract under the dataset root), ``file`` (download to
    ``dest`` under the splits directory), ``manual`` (no direct URL: login or third-party
    preprocessing; ``note`` says what to do) or ``derived`` (made locally by ``sa4depth prepare``
    from parts already present; ``note`` names the flag).
    """

    name: str
    kind: str
    url: str | None = None
    page: str | None = None
    sha256: str | None = None
    md5: str | None = None
    size: str | None = None
    dest: str | None = None
    strip_prefixes: tuple[str, ...] = ()
    remap: str | None = None
    note: str = ""
    login: bool = False

    def describe(self) -> str:
        """One line for the report: what to get and from where."""
        bits = [self.name]
        if self.size:
            bits.append(f"({self.size})")
        if self.url:
            bits.append(f"<- {self.url}")
        elif self.page:
            bits.append(f"<- {self.page}")
        if self.login:
            bits.append("[login required]")
        if self.kind in ("archive", "file"):
            bits.append("[sha256 " + self.sha256[:12] + "...]" if self.sha256 else "[no published checksum]")
        if self.note:
            bits.append("- " + self.note)
        return " ".join(bits)


# ----------------------------------------------------------------------------- KITTI raw
# date -> drive numbers, exactly the 61 drives of Monodepth2's kitti_archives_to_download.txt
KITTI_RAW_DRIVES: dict[str, tuple[int, ...]] = {
    "2011_09_26": (1, 2, 5, 9, 11, 13, 14, 15, 17, 18, 19, 20, 22, 23, 27, 28, 29, 32, 35, 36, 39, 46, 48, 51,
                   52, 56, 57, 59, 60, 61, 64, 70, 79, 84, 86, 87, 91, 93, 95, 96, 101, 104, 106, 113, 117),
    "2011_09_28": (1, 2),
    "2011_09_29": (4, 26, 71),
    "2011_09_30": (16, 18, 20, 27, 28, 33, 34),
    "2011_10_03": (27, 34, 42, 47),
}


def kitti_calib_source(date: str) -> Source:
    return Source(name=f"{date}_calib.zip", kind="archive", url=f"{KITTI_S3}/raw_data/{date}_calib.zip",
                  page=KITTI_RAW_PAGE)


def kitti_raw_drive_source(drive: str) -> Source:
    """``drive`` = ``2011_09_26_drive_0001`` (with or without ``_sync``)."""
    drive = drive.removesuffix("_sync")
    return Source(name=f"{drive}_sync.zip", kind="archive", url=f"{KITTI_S3}/raw_data/{drive}/{drive}_sync.zip",
                  page=KITTI_RAW_PAGE)


def kitti_archive_urls() -> list[str]:
    """The 66 URLs of Monodepth2's kitti_archives_to_download.txt, in its order."""
    out = []
    for date, drives in KITTI_RAW_DRIVES.items():
        out.append(kitti_calib_source(date).url)
        out += [kitti_raw_drive_source(f"{date}_drive_{d:04d}").url for d in drives]
    return out


# split name -> (file, expected lines, sha256 of the pinned file)
KITTI_SPLIT_SOURCES: dict[str, Source] = {
    f"{split}/{fname}": Source(
        name=f"monodepth2 splits/{split}/{fname}", kind="file", url=f"{_MD2_RAW}/{split}/{fname}",
        page="https://github.com/nianticlabs/monodepth2/tree/master/splits", sha256=digest,
        dest=f"{split}/{fname}", note=f"{n} lines")
    for split, fname, n, digest in (
        ("eigen_zhou", "train_files.txt", 39810, "00173a231642151c4693274e701ddd4cae7916520a757c7a94eae8e1173f7b0c"),
        ("eigen_zhou", "val_files.txt", 4424, "64a868b8d2c66c3979a2d74c22ea2e9146850d5b9f5786ed8e5f92201ba1ad04"),
        ("eigen", "test_files.txt", 697, "e226d4ca16e0e6e9695435014347dcf973588531330536fd8a68d298ef091a6b"),
        ("eigen_benchmark", "test_files.txt", 652, "d56e5e509e6960a01fb93795f85028ac6e4a82ad40e64b6e968988e4db95b9be"),
    )
}
KITTI_SPLIT_COUNTS = {"eigen_zhou/train_files.txt": 39810, "eigen_zhou/val_files.txt": 4424,
                      "eigen/test_files.txt": 697, "eigen_benchmark/test_files.txt": 652}

KITTI_DEPTH_ANNOTATED = Source(
    name="data_depth_annotated.zip", kind="archive", url=f"{KITTI_S3}/data_depth_annotated.zip",
    page=KITTI_DEPTH_PAGE, remap="kitti_depth_annotated",
    note="improved GT (Uhrig et al.); train|val/<drive>_sync/proj_depth is moved into <date>/<drive>_sync/")


def kitti_depth_annotated_remap(name: str) -> str | None:
    """``train/2011_09_26_drive_0001_sync/proj_depth/groundtruth/image_02/x.png`` ->
    ``2011_09_26/2011_09_26_drive_0001_sync/proj_depth/groundtruth/image_02/x.png`` (the place
    Monodepth2's ``export_gt_depth.py --split eigen_benchmark`` reads); other members: skipped."""
    parts = name.split("/")
    if len(parts) < 3 or parts[0] not in ("train", "val") or "_drive_" not in parts[1] or parts[2] != "proj_depth":
        return None
    date = parts[1].split("_drive_")[0]
    return "/".join([date, *parts[1:]])


# ----------------------------------------------------------------------------- KITTI odometry
KITTI_ODOMETRY_SOURCES: dict[str, Source] = {
    "color": Source(name="data_odometry_color.zip", kind="archive", url=f"{KITTI_S3}/data_odometry_color.zip",
                    page=KITTI_ODOM_PAGE, size="65 GB", strip_prefixes=("dataset",),
                    note="sequences/NN/image_2 (and image_3)"),
    "calib": Source(name="data_odometry_calib.zip", kind="archive", url=f"{KITTI_S3}/data_odometry_calib.zip",
                    page=KITTI_ODOM_PAGE, strip_prefixes=("dataset",),
                    note="sequences/NN/calib.txt and times.txt"),
    "poses": Source(name="data_odometry_poses.zip", kind="archive", url=f"{KITTI_S3}/data_odometry_poses.zip",
                    page=KITTI_ODOM_PAGE, strip_prefixes=("dataset",),
                    note="poses/00.txt..10.txt (GT, camera-to-world of the left camera)"),
}
# frames per sequence of the KITTI odometry benchmark (images, times.txt lines, poses lines)
KITTI_ODOMETRY_FRAMES = {"00": 4541, "01": 1101, "02": 4661, "03": 801, "04": 271, "05": 2761,
                         "06": 1101, "07": 1101, "08": 4071, "09": 1591, "10": 1201}

# ----------------------------------------------------------------------------- Cityscapes
_CS_PAGE = "https://www.cityscapes-dataset.com/downloads/"
CITYSCAPES_SOURCES: dict[str, Source] = {
    "sequence": Source(name="leftImg8bit_sequence_trainvaltest.zip", kind="archive", login=True,
                       page="https://www.cityscapes-dataset.com/file-handling/?packageID=14", size="324 GB",
                       note="log in, download, put it in the archive folder; prepare extracts it"),
    "camera": Source(name="camera_trainvaltest.zip", kind="archive", login=True, page=_CS_PAGE, size="2 MB",
                     note="log in, download, put it in the archive folder; prepare extracts it"),
    "disparity": Source(name="disparity_trainvaltest.zip", kind="archive", login=True, page=_CS_PAGE,
                        note="log in, download, put it in the archive folder; prepare extracts it"),
}
CITYSCAPES_TRIPLETS = Source(
    name="train_triplets (SfMLearner preprocessing)", kind="manual",
    page="https://github.com/tinghuiz/SfMLearner/blob/master/data/prepare_train_data.py",
    note="as ManyDepth: python prepare_train_data.py --img_height 512 --img_width 1024 --dataset_dir "
         "<folder with leftImg8bit_sequence/ and camera/> --dataset_name cityscapes "
         "--dump_root <root>/train_triplets --seq_length 3 --num_threads 8 (writes 1024x384 crops)")
CITYSCAPES_SPLIT_SOURCES: dict[str, Source] = {
    "cityscapes/train_files.txt": Source(
        name="manydepth splits/cityscapes_preprocessed/train_files.txt", kind="file",
        url=f"{_MANY_RAW}/cityscapes_preprocessed/train_files.txt", dest="cityscapes/train_files.txt",
        sha256="03f66cd9ba79964a5295008e5b2fc73e8451f902785d8386a580c512ab5ae4d3", note="69731 lines"),
    "cityscapes/val_files.txt": Source(
        name="manydepth splits/cityscapes_preprocessed/val_files.txt", kind="file",
        url=f"{_MANY_RAW}/cityscapes_preprocessed/val_files.txt", dest="cityscapes/val_files.txt",
        sha256="6e640c591d886e0faa7c7f96587b1d72ae8b0778b018f6c95e6942e65e46a6ce", note="7621 lines"),
    "cityscapes/test_files.txt": Source(
        name="manydepth splits/cityscapes/test_files.txt", kind="file",
        url=f"{_MANY_RAW}/cityscapes/test_files.txt", dest="cityscapes/test_files.txt",
        sha256="e70c04ba9d091d11b4dc25de78ec8d33212081c72e641ce3c42aab1a07331daa", note="1525 lines"),
}
CITYSCAPES_SPLIT_COUNTS = {"cityscapes/train_files.txt": 69731, "cityscapes/val_files.txt": 7621,
                           "cityscapes/test_files.txt": 1525}

# ----------------------------------------------------------------------------- NYUv2
_NYU_PAGE = "https://cs.nyu.edu/~silberman/datasets/nyu_depth_v2.html"
NYU_SOURCES: dict[str, Source] = {
    "labeled": Source(name="nyu_depth_v2_labeled.mat", kind="manual",
                      url="http://horatio.cs.nyu.edu/mit/silberman/nyu_depth_v2/nyu_depth_v2_labeled.mat",
                      page=_NYU_PAGE,
                      note="the 654 test images are rows testNdxs of splits.mat; write test/<id:05d>_rgb.png and "
                           "test/<id:05d>_depth.png (uint16, metres*256) plus splits/nyu/test_files.txt"),
    "splits": Source(name="splits.mat", kind="manual",
                     url="http://horatio.cs.nyu.edu/mit/silberman/indoor_seg_sup/splits.mat", page=_NYU_PAGE,
                     note="trainNdxs (795) / testNdxs (654), 1-based"),
    "raw": Source(name="NYUv2 raw sequences (MonoIndoor / P2Net preprocessing)", kind="manual", page=_NYU_PAGE,
                  note="MonoIndoor++ trains on the raw scenes as extracted by MonoIndoor / P2Net; write "
                       "train/<scene>/rgb_<frame:05d>.jpg, intrinsics.txt (fx fy cx cy at the stored size) "
                       "and splits/nyu/train_files.txt"),
}
NYU_TEST_COUNT = 654

# ----------------------------------------------------------------------------- Virtual KITTI 2
_VK_URL = "https://download.europe.naverlabs.com//virtual_kitti_2.0.3"
_VK_PAGE = "https://europe.naverlabs.com/research/computer-vision/proxy-virtual-worlds-vkitti-2/"
VKITTI2_SOURCES: dict[str, Source] = {
    "rgb": Source(name="vkitti_2.0.3_rgb.tar", kind="archive", url=f"{_VK_URL}/vkitti_2.0.3_rgb.tar", page=_VK_PAGE,
                  strip_prefixes=("vkitti_2.0.3_rgb",), note="Scene*/<variation>/frames/rgb/Camera_{0,1}/rgb_*.jpg"),
    "depth": Source(name="vkitti_2.0.3_depth.tar", kind="archive", url=f"{_VK_URL}/vkitti_2.0.3_depth.tar",
                    page=_VK_PAGE, strip_prefixes=("vkitti_2.0.3_depth",),
                    note="Scene*/<variation>/frames/depth/Camera_{0,1}/depth_*.png (uint16 centimetres)"),
    "textgt": Source(name="vkitti_2.0.3_textgt.tar.gz", kind="archive", url=f"{_VK_URL}/vkitti_2.0.3_textgt.tar.gz",
                     page=_VK_PAGE, strip_prefixes=("vkitti_2.0.3_textgt",),
                     note="Scene*/<variation>/{intrinsic,extrinsic}.txt (camera poses, world-to-camera)"),
}
# frames per scene (identical for every variation), 2126 in all
VKITTI2_FRAMES = {"Scene01": 447, "Scene02": 233, "Scene06": 270, "Scene18": 339, "Scene20": 837}

REMAPS = {"kitti_depth_annotated": kitti_depth_annotated_remap}
