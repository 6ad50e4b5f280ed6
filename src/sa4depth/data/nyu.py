"""NYUv2-style indoor readers (MonoIndoor / P2Net preprocessing layout, see DATA_LAYOUTS.md).

Training: ``train/<scene>/rgb_<frame:05d>.jpg`` consecutive hand-held frames, split lines
``<scene> <frame>``; intrinsics ``intrinsics.txt`` (``fx fy cx cy`` in pixels of the stored
images) normalised by the stored image size; GT motion ``train/<scene>/poses.txt`` (camera-to-
world per frame); ``trans_norm_gt`` is the GT pose translation norm (no velocities indoors).
The intrinsics are in pixels of the stored images: every frame of a training sample must have the
size of its target frame (which K is normalised by), and the principal point must lie inside it
(test samples are exempt from the latter: single-image depth evaluation does not use K).
Test: ``test/<id>_rgb.png`` + ``test/<id>_depth.png`` (uint16 / 256 metres).
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np

from .base import (FrameRef, MonoDataset, SampleInfo, TestListDataset, depth_png_loader, pose_norm_between,
                   principal_point_check)
from .io import file_stamp, read_numbers, read_depth_png, read_image_size, read_poses_file, read_split_file

__all__ = ["NyuTrainDataset", "NyuTestDataset", "read_nyu_intrinsics", "load_nyu_gt_depth", "nyu_train_image"]


def read_nyu_intrinsics(path: str) -> tuple[float, float, float, float]:
    """``fx fy cx cy`` (pixels) from ``intrinsics.txt``."""
    return _read_nyu_intrinsics(str(path), file_stamp(path))


@functools.lru_cache(maxsize=8)
def _read_nyu_intrinsics(path: str, _stamp: tuple[int, int]) -> tuple[float, float, float, float]:
    v = read_numbers(path, "NYU intrinsics file", 4, commas=True, layout=" 'fx fy cx cy'")
    return float(v[0]), float(v[1]), float(v[2]), float(v[3])


def nyu_train_image(root: Path, scene: str, frame: int) -> Path:
    p = root / "train" / scene / f"rgb_{frame:05d}.jpg"
    if not p.is_file():
        alt = p.with_suffix(".png")
        if alt.is_file():
            return alt
    return p


def _image_size(path: str) -> tuple[int, int]:
    return _image_size_cached(path, file_stamp(path))


@functools.lru_cache(maxsize=64)
def _image_size_cached(path: str, _stamp: tuple[int, int]) -> tuple[int, int]:
    return read_image_size(path)


def _K_norm(root: Path, image: Path, check: bool = True) -> np.ndarray:
    fx, fy, cx, cy = read_nyu_intrinsics(str(root / "intrinsics.txt"))
    w, h = _image_size(str(image))
    if check:
        principal_point_check(root / "intrinsics.txt", fx, fy, cx, cy, (w, h), image)
    K = np.eye(4)
    K[0, 0], K[0, 2] = fx / w, cx / w
    K[1, 1], K[1, 2] = fy / h, cy / h
    return K


class NyuTrainDataset(MonoDataset):
    """Consecutive-frame samples from the NYU training scenes."""

    def __init__(self, root: str | os.PathLike, split_file: str | os.PathLike, *, line_filter=None, **kw):
        super().__init__(**kw)
        self.root = Path(root)
        self.split_file = Path(split_file)
        items = []
        for k, (ln, fields) in enumerate(read_split_file(self.split_file, 2, 3)):
            if line_filter is not None and not line_filter(k):
                continue
            scene = fields[0]
            try:
                frame = int(fields[1])
            except ValueError:
                raise ValueError(f"{self.split_file}:{ln}: frame {fields[1]!r} is not an integer") from None
            for f in self.frame_ids:
                p = nyu_train_image(self.root, scene, frame + f)
                if not p.is_file():
                    raise FileNotFoundError(f"{self.split_file}:{ln}: image {p} (frame {frame}{f:+d}) does not exist")
            items.append((scene, frame))
        if not items:
            raise ValueError(f"{self.split_file}: split file lists no samples")
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def describe(self, index: int) -> SampleInfo:
        scene, frame = self.items[index]
        img0 = nyu_train_image(self.root, scene, frame)
        size = _image_size(str(img0))
        frames = {f: FrameRef(str(nyu_train_image(self.root, scene, frame + f)), size=size,
                              size_from=f"size of {img0.name}, which intrinsics.txt is normalised by")
                  for f in self.frame_ids}
        Twc = trans = None
        pfile = self.root / "train" / scene / "poses.txt"
        if pfile.is_file():
            P = read_poses_file(pfile)
            need = [frame + f for f in self.frame_ids]
            if min(need) < 0 or max(need) >= len(P):
                raise ValueError(f"{pfile}: frames {min(need)}..{max(need)} requested but the file has {len(P)} poses")
            Twc = {f: P[frame + f] for f in self.frame_ids}
            trans = pose_norm_between(Twc, self.frame_ids)
        return SampleInfo(key=f"{scene} {frame}", frames=frames, K_norm=_K_norm(self.root, Path(frames[0].path)),
                          Twc=Twc, trans_norm=trans)


def nyu_test_paths(root: Path, ident: str) -> tuple[Path, Path]:
    return root / "test" / f"{ident}_rgb.png", root / "test" / f"{ident}_depth.png"


def load_nyu_gt_depth(root: str | os.PathLike, ident: str) -> np.ndarray:
    """GT depth of one NYU test image (uint16 / 256 metres, 0 = invalid)."""
    return read_depth_png(nyu_test_paths(Path(root), ident)[1])


class NyuTestDataset(TestListDataset):
    """The labelled NYU test images with their GT depth."""

    def _parse_split(self):
        for ln, fields in read_split_file(self.split_file, 1, 1):
            yield ln, fields[0], nyu_test_paths(self.root, fields[0])[0]

    def describe(self, index: int) -> SampleInfo:
        ident = self.items[index]
        rgb, depth = nyu_test_paths(self.root, ident)
        # single-image depth evaluation does not use K: no plausibility check of intrinsics.txt here
        return SampleInfo(key=ident, frames={0: FrameRef(str(rgb))}, K_norm=_K_norm(self.root, rgb, check=False),
                          depth=depth_png_loader(str(depth)))
