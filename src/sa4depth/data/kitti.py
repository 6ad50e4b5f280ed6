"""KITTI raw (Monodepth2 splits) and KITTI odometry readers.

KITTI raw (Monodepth2 ``KITTIRAWDataset``): split lines ``folder frame side`` (all three fields
required: a line without its side is an error naming the file and line, not a silent ``l``);
side ``l`` -> ``image_02``, ``r`` -> ``image_03``; images
``<folder>/image_0k/data/<frame:010d><img_ext>``.
Intrinsics: by default ``P_rect_0k`` of the date's ``calib_cam_to_cam.txt`` normalised by the
rectified image size ``S_rect_0k`` (exact for every drive and for the synthetic data, whose
image size differs from KITTI's). ``P_rect_0k`` is in pixels of ``S_rect_0k``, so an image of
another size is an error naming the file, its size and ``S_rect_0k`` (resizing it would pair it
with wrong intrinsics). ``fixed_K=True`` uses Monodepth2's constant
:data:`~sa4depth.data.kitti_geometry.MONODEPTH2_KITTI_K` instead, to reproduce Monodepth2
exactly on real KITTI (Monodepth2 resizes every drive's images against that one average K;
no size check then).

GT motion: ``<folder>/poses_cam_02.txt`` (camera-to-world of image_02 per frame) when present,
else the OXTS packets converted with the devkit's ``convertOxtsToPose`` and the calib chain
IMU -> velodyne -> camera 0 -> rectified camera k. For the right camera the motion is
conjugated with the stereo offset from ``P_rect_02``/``P_rect_03``. ``trans_norm_gt`` is the
distance driven between the two frames from the OXTS speeds ``|(vf, vl, vu)|`` and the OXTS
timestamps (trapezoid rule over the frames in between; PackNet's velocity supervision signal).

KITTI odometry (Monodepth2 ``KITTIOdomDataset``): ``sequences/NN/image_2/<i:06d>.png``,
``calib.txt`` ``P2``, ``poses/NN.txt``; triplets never cross a sequence boundary. ``P2`` is in
pixels of the sequence's images (``calib.txt`` states no size): K is normalised by the size of the
sequence's first image, and a frame of another size is an error.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from .base import FrameRef, MonoDataset, SampleInfo, depth_png_loader, pose_norm_between, principal_point_check
from .io import (calib_matrix, file_stamp, read_calib_file, read_image_size, read_kitti_timestamps,
                 read_oxts_file, read_poses_file, read_seconds_file, read_split_file)
from .kitti_geometry import (MONODEPTH2_KITTI_K, generate_depth_map, load_kitti_calib, mercator_scale,
                             oxts_speed, oxts_to_pose)

__all__ = ["KittiRawDataset", "KittiOdomDataset", "read_odometry_poses", "read_kitti_split", "odometry_sequences"]

SIDE_TO_CAM = {"l": 2, "r": 3, "2": 2, "3": 3}


def read_kitti_split(split_file: Path, root: Path, img_ext: str, frame_ids: Sequence[int],
                     check: bool = True) -> list[tuple[str, int, str]]:
    """Parse ``folder frame side`` lines (exactly three fields, as Monodepth2's KITTI splits);
    check that every needed image exists.

    A line with another number of fields raises ``ValueError``, a line pointing nowhere
    ``FileNotFoundError``, both naming the split file and the line number (and the missing image).
    """
    out = []
    for lineno, fields in read_split_file(split_file, 3, 3, form="folder frame side"):
        folder = fields[0]
        try:
            frame = int(fields[1])
        except ValueError:
            raise ValueError(f"{split_file}:{lineno}: frame index {fields[1]!r} is not an integer") from None
        if frame < 0:
            raise ValueError(f"{split_file}:{lineno}: frame index {frame} is negative")
        side = fields[2]
        if side not in SIDE_TO_CAM:
            raise ValueError(f"{split_file}:{lineno}: side {side!r} is not one of l, r")
        if check:
            if not (root / folder).is_dir():
                raise FileNotFoundError(f"{split_file}:{lineno}: drive folder {root / folder} does not exist")
            for f in frame_ids:
                p = kitti_image_path(root, folder, frame + f, side, img_ext)
                if not os.path.isfile(p):
                    raise FileNotFoundError(f"{split_file}:{lineno}: image {p} (frame {frame}{f:+d}) does not exist")
        out.append((folder, frame, side))
    if not out:
        raise ValueError(f"{split_file}: split file lists no samples")
    return out


def kitti_image_path(root: Path, folder: str, frame: int, side: str, img_ext: str) -> Path:
    return root / folder / f"image_0{SIDE_TO_CAM[side]}" / "data" / f"{frame:010d}{img_ext}"


@functools.lru_cache(maxsize=256)
def _oxts_scale(oxts_dir: str) -> float:
    """Mercator scale from the first OXTS packet of the drive (devkit ``latToScale(lat0)``)."""
    d = Path(oxts_dir) / "data"
    first = d / f"{0:010d}.txt"
    if not first.is_file():
        names = sorted(p.name for p in d.glob("*.txt"))
        if not names:
            raise FileNotFoundError(f"{d}: no OXTS packets")
        first = d / names[0]
    return mercator_scale(read_oxts_file(first)[0])


class _Velo:
    """Picklable loader of a velodyne-projected depth map."""

    def __init__(self, calib_dir: str, velo_path: str, cam: int, vel_depth: bool = False, index_offset: int = -1):
        self.calib_dir, self.velo_path, self.cam, self.vel_depth = calib_dir, velo_path, cam, vel_depth
        self.index_offset = index_offset

    def __call__(self, width: int | None = None, height: int | None = None) -> np.ndarray:
        size = (width, height) if width is not None else None
        return generate_depth_map(self.calib_dir, self.velo_path, self.cam, size, self.vel_depth, self.index_offset)


class KittiRawDataset(MonoDataset):
    """KITTI raw drives read through Monodepth2-style split files (also the synthetic driving data).

    ``depth_source``: ``auto`` (``proj_depth/groundtruth`` PNG if present, else velodyne),
    ``png``, ``velodyne``, or ``none``.
    """

    def __init__(self, root: str | os.PathLike, split_file: str | os.PathLike, *, img_ext: str = ".png",
                 fixed_K: bool = False, depth_source: str = "auto", require_poses: bool = False, **kw):
        super().__init__(**kw)
        self.root = Path(root)
        self.split_file = Path(split_file)
        self.img_ext = img_ext
        self.fixed_K = bool(fixed_K)
        if depth_source not in ("auto", "png", "velodyne", "none"):
            raise ValueError(f"depth_source {depth_source!r} is not one of auto, png, velodyne, none")
        self.depth_source = depth_source
        if not self.root.is_dir():
            raise FileNotFoundError(f"{self.root}: KITTI raw root does not exist (set data.roots)")
        self.items = read_kitti_split(self.split_file, self.root, img_ext, self.frame_ids)
        if not self.items:
            raise ValueError(f"{self.split_file}: split file lists no samples")
        self.require_poses = require_poses
        first = self.items[0][0]
        self.has_pose = (self.root / first / "poses_cam_02.txt").is_file() or (self.root / first / "oxts").is_dir()
        if require_poses and not self.has_pose:
            raise FileNotFoundError(f"{self.root / first}: neither poses_cam_02.txt nor oxts/ found (GT poses needed)")

    def __len__(self) -> int:
        return len(self.items)

    # ---------------------------------------------------------------- geometry
    def calib_dir(self, folder: str) -> Path:
        return self.root / folder.split("/")[0]

    def _camera_poses(self, folder: str, frames: Sequence[int], cam: int) -> dict[int, np.ndarray]:
        """Camera-to-world of rectified camera ``cam`` for absolute frame indices."""
        calib = load_kitti_calib(str(self.calib_dir(folder)))
        drive = self.root / folder
        pfile = drive / "poses_cam_02.txt"
        if pfile.is_file():
            P = read_poses_file(pfile)
            for fr in frames:
                if not 0 <= fr < len(P):
                    raise ValueError(f"{pfile}: frame {fr} requested but the file has {len(P)} poses")
            Twc2 = {fr: P[fr] for fr in frames}
            if cam == 2:
                return Twc2
            T_32 = calib.T_cam_rect0(3) @ np.linalg.inv(calib.T_cam_rect0(2))  # cam-2 -> cam-3 points
            return {fr: T @ np.linalg.inv(T_32) for fr, T in Twc2.items()}
        oxts = drive / "oxts"
        if not oxts.is_dir():
            raise FileNotFoundError(f"{drive}: neither poses_cam_02.txt nor oxts/ found (GT poses needed)")
        scale = _oxts_scale(str(oxts))
        T_imu_cam = np.linalg.inv(calib.T_cam_imu(cam))
        return {fr: oxts_to_pose(read_oxts_file(oxts / "data" / f"{fr:010d}.txt"), scale) @ T_imu_cam
                for fr in frames}

    def _trans_norms(self, folder: str, frame: int, Twc: dict[int, np.ndarray] | None) -> dict[int, float] | None:
        oxts = self.root / folder / "oxts"
        if not oxts.is_dir():
            return pose_norm_between(Twc, self.frame_ids) if Twc is not None else None
        ts = read_kitti_timestamps(oxts / "timestamps.txt")
        out = {}
        for f in self.frame_ids:
            if f == 0:
                continue
            lo, hi = sorted((frame, frame + f))
            if hi >= len(ts):
                raise ValueError(f"{oxts / 'timestamps.txt'}: frame {hi} requested but the file has {len(ts)} lines")
            v = np.array([oxts_speed(read_oxts_file(oxts / "data" / f"{i:010d}.txt")) for i in range(lo, hi + 1)])
            dt = np.abs(np.diff(ts[lo:hi + 1]))
            out[f] = float(np.sum(0.5 * (v[1:] + v[:-1]) * dt))
        return out

    def K_norm(self, folder: str, cam: int) -> np.ndarray:
        if self.fixed_K:
            return MONODEPTH2_KITTI_K.copy()
        return load_kitti_calib(str(self.calib_dir(folder))).K_normalised(cam)

    def expected_size(self, folder: str, cam: int) -> tuple[tuple[int, int] | None, str]:
        """(size the intrinsics belong to, where it comes from); ``None`` with ``fixed_K``."""
        if self.fixed_K:
            return None, ""
        calib = load_kitti_calib(str(self.calib_dir(folder)))
        return calib.im_size[cam], f"S_rect_0{cam} of {calib.dir / 'calib_cam_to_cam.txt'}"

    def describe(self, index: int) -> SampleInfo:
        folder, frame, side = self.items[index]
        cam = SIDE_TO_CAM[side]
        size, size_from = self.expected_size(folder, cam)
        frames = {f: FrameRef(str(kitti_image_path(self.root, folder, frame + f, side, self.img_ext)),
                              size=size, size_from=size_from)
                  for f in self.frame_ids}
        Twc = None
        if self.has_pose:
            Tabs = self._camera_poses(folder, [frame + f for f in self.frame_ids], cam)
            Twc = {f: Tabs[frame + f] for f in self.frame_ids}
        trans = self._trans_norms(folder, frame, Twc) if len(self.frame_ids) > 1 else None
        drive = self.root / folder
        depth = None
        png = drive / "proj_depth" / "groundtruth" / f"image_0{cam}" / f"{frame:010d}.png"
        velo = drive / "velodyne_points" / "data" / f"{frame:010d}.bin"
        if self.load_depth and self.depth_source != "none":
            if self.depth_source in ("auto", "png") and png.is_file():
                depth = depth_png_loader(str(png))
            elif self.depth_source in ("auto", "velodyne") and velo.is_file():
                # eigen test GT stores the velodyne x as depth (Monodepth2 export_gt_depths.py)
                depth = _Velo(str(self.calib_dir(folder)), str(velo), cam, self.depth_source == "velodyne")
            elif self.depth_source != "auto":
                raise FileNotFoundError(f"{png if self.depth_source == 'png' else velo}: GT depth not found")
        # lidar_depth: camera z at pixel round(u) of the network grid (no Monodepth2 -1 offset)
        lidar = _Velo(str(self.calib_dir(folder)), str(velo), cam, index_offset=0) if self.load_lidar else None
        if self.load_lidar and not velo.is_file():
            raise FileNotFoundError(f"{velo}: velodyne scan not found (needed for lidar_depth)")
        return SampleInfo(key=f"{folder} {frame} {side}", frames=frames, K_norm=self.K_norm(folder, cam),
                          Twc=Twc, trans_norm=trans, depth=depth, lidar=lidar)


# ------------------------------------------------------------------------- odometry
def read_odometry_poses(root: str | os.PathLike, seq: str | int) -> np.ndarray:
    """``poses/NN.txt`` of a KITTI odometry root -> (N, 4, 4) camera-to-world of image_2."""
    return read_poses_file(Path(root) / "poses" / f"{int(seq):02d}.txt")


def odometry_sequences(root: str | os.PathLike, wanted: Sequence[str]) -> list[str]:
    """The requested sequences that exist on disk (``sequences/NN/image_2``)."""
    root = Path(root)
    return [f"{int(s):02d}" for s in wanted if (root / "sequences" / f"{int(s):02d}" / "image_2").is_dir()]


def _odom_K_norm(seq_dir: str, cam: int, img_ext: str) -> tuple[np.ndarray, tuple[int, int], str]:
    """(normalised K, the image size it was normalised by, where that size comes from)."""
    stamps = (file_stamp(Path(seq_dir) / "calib.txt"),
              file_stamp(Path(seq_dir) / f"image_{cam}" / f"{0:06d}{img_ext}"))
    return _odom_K_norm_cached(seq_dir, cam, img_ext, stamps)


@functools.lru_cache(maxsize=64)
def _odom_K_norm_cached(seq_dir: str, cam: int, img_ext: str, _stamps) -> tuple[np.ndarray, tuple[int, int], str]:
    calib_path = Path(seq_dir) / "calib.txt"
    P = calib_matrix(read_calib_file(calib_path), f"P{cam}", (3, 4), calib_path)
    first = Path(seq_dir) / f"image_{cam}" / f"{0:06d}{img_ext}"
    if not first.is_file():
        raise FileNotFoundError(f"{first}: first image of the sequence not found (needed for the image size)")
    w, h = read_image_size(first)
    principal_point_check(f"{calib_path}: P{cam}", P[0, 0], P[1, 1], P[0, 2], P[1, 2], (w, h), first)
    K = np.eye(4)
    K[:3, :3] = P[:, :3]
    K[0, :] /= w
    K[1, :] /= h
    return K, (w, h), f"size of the sequence's first image {first.name}, which P{cam} of calib.txt is normalised by"


class KittiOdomDataset(MonoDataset):
    """KITTI odometry sequences: every frame whose neighbours ``frame + f`` exist.

    ``split`` ``train``/``val`` take the training sequences (val = every 10th triplet, which
    train then excludes, unless ``val_every=0``); ``test`` takes the test sequences.
    """

    def __init__(self, root: str | os.PathLike, sequences: Sequence[str], *, img_ext: str = ".png",
                 subset: str = "all", val_every: int = 10, **kw):
        super().__init__(**kw)
        self.root = Path(root)
        self.img_ext = img_ext
        if not (self.root / "sequences").is_dir():
            raise FileNotFoundError(f"{self.root / 'sequences'}: KITTI odometry root has no sequences/ folder")
        self.sequences = odometry_sequences(self.root, sequences)
        if not self.sequences:
            raise FileNotFoundError(f"{self.root / 'sequences'}: none of the sequences {list(sequences)} exists")
        lo, hi = min(self.frame_ids), max(self.frame_ids)
        items = []
        for seq in self.sequences:
            n = len(read_seconds_file(self.root / "sequences" / seq / "times.txt"))
            img_dir = self.root / "sequences" / seq / "image_2"
            for i in range(-lo, n - hi):
                items.append((seq, i))
            last = img_dir / f"{n - 1:06d}{img_ext}"
            if not last.is_file():
                raise FileNotFoundError(f"{last}: image listed by times.txt ({n} frames) does not exist")
        if subset in ("train", "val") and val_every > 0:
            keep = (lambda k: k % val_every == 0) if subset == "val" else (lambda k: k % val_every != 0)
            items = [it for k, it in enumerate(items) if keep(k)]
        self.items = items
        if not self.items:
            raise ValueError(f"{self.root}: sequences {self.sequences} give no samples for frame ids {self.frame_ids}")

    def __len__(self) -> int:
        return len(self.items)

    def describe(self, index: int) -> SampleInfo:
        seq, i = self.items[index]
        sdir = self.root / "sequences" / seq
        K, size, size_from = _odom_K_norm(str(sdir), 2, self.img_ext)
        frames = {f: FrameRef(str(sdir / "image_2" / f"{i + f:06d}{self.img_ext}"), size=size, size_from=size_from)
                  for f in self.frame_ids}
        Twc = trans = None
        pfile = self.root / "poses" / f"{seq}.txt"
        if pfile.is_file():
            P = read_poses_file(pfile)
            if i + max(self.frame_ids) >= len(P):
                raise ValueError(f"{pfile}: frame {i + max(self.frame_ids)} requested but the file has {len(P)} poses")
            Twc = {f: P[i + f] for f in self.frame_ids}
            trans = pose_norm_between(Twc, self.frame_ids)
        return SampleInfo(key=f"{seq} {i} l", frames=frames, K_norm=K.copy(), Twc=Twc, trans_norm=trans)
