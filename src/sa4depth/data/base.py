"""The shared ``MonoDataset``: sampling, resizing, augmentation, intrinsics and GT motion.

A reader subclass only has to list its samples and :meth:`MonoDataset.describe` one of them
(which files make its frames, its normalised K, its camera-to-world poses, ...). Everything
else follows Monodepth2's ``MonoDataset.__getitem__``:

- ``("color", f, s)``: un-augmented image of frame ``f`` at scale ``s`` (3 x H/2^s x W/2^s, [0,1]);
- ``("color_aug", f, s)``: the colour-jittered version (one jitter draw per sample, applied with
  probability 0.5 when training with ``color_aug``; otherwise identical to ``color``);
- horizontal flip with probability 0.5 when training with ``flip``, applied to every frame; the
  intrinsics, GT poses and GT depth are mirrored with it;
- ``("K", s)``, ``("inv_K", s)``: 4x4 pixel intrinsics at scale s;
- ``("pose_gt", f)`` = ``inv(Twc_f) @ Twc_0`` (maps frame-0 camera points into frame f);
- ``("trans_norm_gt", f)``: |t| between frame 0 and f (velocity * time for driving data);
- ``"depth_gt"`` (1 x Hgt x Wgt metres, 0 = invalid), ``"lidar_depth"`` (1 x H x W, optional);
- ``"index"``, ``"key"``.

Randomness: a sample's flip / jitter draws come from ``numpy.random.default_rng((seed, epoch,
index))``, so they do not depend on the number of workers; call :meth:`set_epoch` each epoch.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image

from sa4depth.files import atomic_open

from . import transforms as T
from .io import read_depth_png, read_image

__all__ = ["FrameRef", "SampleInfo", "MonoDataset", "TestListDataset"]


@dataclass(frozen=True)
class FrameRef:
    """Where the pixels of one frame are: a file, or slice ``part`` of ``nparts`` side-by-side
    frames in one file (Cityscapes/SfMLearner triplets), optionally cropped to the top
    ``keep_top`` fraction of the rows (ManyDepth's Cityscapes test crop).

    ``size`` (width, height of the whole file), when set, is the size the sample's pixel
    intrinsics were normalised with (``size_from`` says where it comes from): a file of another
    size is an error instead of being resized against intrinsics of the wrong size."""

    path: str
    part: int = 0
    nparts: int = 1
    keep_top: float = 1.0
    size: tuple[int, int] | None = None
    size_from: str = ""


@dataclass
class SampleInfo:
    """Everything needed to build one sample; produced lazily by ``describe``."""

    key: str
    frames: dict[int, FrameRef]
    K_norm: np.ndarray                               # 4x4, row 0 / width, row 1 / height
    Twc: dict[int, np.ndarray] | None = None         # camera-to-world per frame id
    trans_norm: dict[int, float] | None = None       # |t_{f<-0}| per frame id f != 0
    depth: Any = None                                # callable () -> HxW float32 metres, or None
    lidar: Any = None                                # callable (width, height) -> HxW float32, or None
    extra: dict = field(default_factory=dict)


class MonoDataset(torch.utils.data.Dataset):
    """Base class; see the module docstring for the sample format."""

    def __init__(self, *, height: int, width: int, frame_ids: Sequence[int], num_scales: int,
                 is_train: bool, color_aug: bool = True, flip: bool = True,
                 cache_dir: str | os.PathLike | None = None, load_depth: bool = True,
                 load_lidar: bool = False, seed: int | None = 0):
        super().__init__()
        if 0 not in frame_ids:
            raise ValueError(f"data.frame_ids {list(frame_ids)} must contain 0 (the target frame)")
        if height % 2 ** (num_scales - 1) or width % 2 ** (num_scales - 1):
            raise ValueError(f"image size {width}x{height} is not divisible by 2^{num_scales - 1} "
                             f"(model.scales has {num_scales} scales)")
        self.height, self.width = int(height), int(width)
        self.frame_ids = [int(f) for f in frame_ids]
        self.num_scales = int(num_scales)
        self.is_train = bool(is_train)
        self.color_aug = bool(color_aug)
        self.flip = bool(flip)
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.load_depth = bool(load_depth)
        self.load_lidar = bool(load_lidar)
        self.seed = seed
        self.epoch = 0

    # ------------------------------------------------------------------ subclass API
    def __len__(self) -> int:  # pragma: no cover - overridden
        raise TypeError(f"{type(self).__name__} must define __len__")

    def describe(self, index: int) -> SampleInfo:  # pragma: no cover - overridden
        raise TypeError(f"{type(self).__name__} must define describe()")

    # ------------------------------------------------------------------ helpers
    def set_epoch(self, epoch: int) -> None:
        """Change the augmentation draws (like ``DistributedSampler.set_epoch``)."""
        self.epoch = int(epoch)

    def _rng(self, index: int) -> np.random.Generator:
        if self.seed is None:
            return np.random.default_rng()
        return np.random.default_rng([int(self.seed), self.epoch, int(index)])

    def _cache_path(self, ref: FrameRef) -> Path:
        st = os.stat(ref.path)
        checked = f"|checked{ref.size[0]}x{ref.size[1]}" if ref.size is not None else ""
        h = hashlib.sha1(f"{os.path.abspath(ref.path)}|{ref.part}/{ref.nparts}|{ref.keep_top}|"
                         f"{st.st_size}|{st.st_mtime_ns}|{self.width}x{self.height}{checked}".encode()).hexdigest()
        return self.cache_dir / h[:2] / f"{h}.npy"  # type: ignore[operator]

    def load_frame(self, ref: FrameRef) -> Image.Image:
        """The frame's pixels; with ``cache_dir``, resized to (H, W) and cached as uint8 ``.npy``
        (no image decoding on later reads; a corrupt entry is rebuilt)."""
        if self.cache_dir is not None:
            if not os.path.isfile(ref.path):
                raise FileNotFoundError(f"{ref.path}: image not found")
            cp = self._cache_path(ref)  # a cached entry was size-checked when it was written
            if cp.is_file():
                try:
                    arr = np.load(cp, allow_pickle=False)
                    if arr.shape == (self.height, self.width, 3) and arr.dtype == np.uint8:
                        return Image.fromarray(arr)
                except (OSError, ValueError):
                    pass
        im = read_image(ref.path)
        check_frame_size(ref, im.size)
        if ref.nparts > 1:
            w, h = im.size
            if w % ref.nparts:
                raise ValueError(f"{ref.path}: width {w} is not divisible into {ref.nparts} frames")
            fw = w // ref.nparts
            im = im.crop((ref.part * fw, 0, (ref.part + 1) * fw, h))
        if ref.keep_top < 1.0:
            w, h = im.size
            im = im.crop((0, 0, w, int(round(h * ref.keep_top))))
        if self.cache_dir is not None:
            im = im.resize((self.width, self.height), T.LANCZOS)
            with atomic_open(cp, "wb", unique=True) as fh:  # loader workers may write the same file
                np.save(fh, np.asarray(im, dtype=np.uint8), allow_pickle=False)
        return im

    # ------------------------------------------------------------------ sample
    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        info = self.describe(index)
        rng = self._rng(index)
        # always draw in the same order so a sample's draws do not depend on the switches
        r_aug, r_flip = rng.random(), rng.random()
        params = T.sample_color_jitter(rng)
        do_color_aug = self.is_train and self.color_aug and r_aug > 0.5
        do_flip = self.is_train and self.flip and r_flip > 0.5
        jitter = params if do_color_aug else None

        out: dict[Any, Any] = {"index": int(index), "key": info.key}
        for f in self.frame_ids:
            if f not in info.frames:
                raise ValueError(f"sample {info.key!r}: no image for frame id {f}")
        pyramids = {f: T.resize_pyramid(self.load_frame(info.frames[f]), self.height, self.width, self.num_scales)
                    for f in self.frame_ids}
        for s in range(self.num_scales):
            imgs = np.stack([T.pil_to_array(pyramids[f][s]) for f in self.frame_ids])  # F,3,h,w
            if do_flip:
                imgs = np.ascontiguousarray(imgs[..., ::-1])
            aug = T.apply_color_jitter(imgs, jitter) if jitter is not None else imgs
            for i, f in enumerate(self.frame_ids):
                out[("color", f, s)] = torch.from_numpy(imgs[i].copy())
                out[("color_aug", f, s)] = torch.from_numpy(np.ascontiguousarray(aug[i]))

        for s in range(self.num_scales):
            w, h = self.width // 2 ** s, self.height // 2 ** s
            K = T.scaled_K(info.K_norm, w, h)
            if do_flip:
                K = T.flip_K(K, w)
            out[("K", s)] = torch.from_numpy(K.astype(np.float32))
            out[("inv_K", s)] = torch.from_numpy(np.linalg.inv(K).astype(np.float32))

        if info.Twc is not None:
            for f in self.frame_ids:
                if f == 0:
                    continue
                Tf0 = np.linalg.inv(info.Twc[f]) @ info.Twc[0]
                if do_flip:
                    Tf0 = T.mirror_pose(Tf0)
                out[("pose_gt", f)] = torch.from_numpy(Tf0.astype(np.float32))
        if info.trans_norm is not None:
            for f in self.frame_ids:
                if f != 0:
                    out[("trans_norm_gt", f)] = torch.tensor(float(info.trans_norm[f]), dtype=torch.float32)

        if self.load_depth and info.depth is not None:
            d = np.asarray(info.depth(), np.float32)
            if do_flip:
                d = d[:, ::-1]
            out["depth_gt"] = torch.from_numpy(np.ascontiguousarray(d))[None]
        if self.load_lidar:
            if info.lidar is None:
                raise ValueError(f"sample {info.key!r}: lidar_depth requested but this dataset has no LiDAR")
            d = np.asarray(info.lidar(self.width, self.height), np.float32)
            if do_flip:
                d = d[:, ::-1]
            out["lidar_depth"] = torch.from_numpy(np.ascontiguousarray(d))[None]
        out["flipped"] = bool(do_flip)
        out["color_augmented"] = bool(do_color_aug)
        return out


class TestListDataset(MonoDataset):
    """Single test frames listed in a split file (Cityscapes, NYU): ``items`` holds one entry per
    line, built by :meth:`_parse_split`, which yields ``(line_no, item, image_path)``. A line whose
    image does not exist fails with the split file, the line and the image named."""

    def __init__(self, root: str | os.PathLike, split_file: str | os.PathLike, **kw):
        kw["frame_ids"] = [0]
        kw["is_train"] = False
        super().__init__(**kw)
        self.root = Path(root)
        self.split_file = Path(split_file)
        self.items: list = []
        for ln, item, img in self._parse_split():
            if not img.is_file():
                raise FileNotFoundError(f"{self.split_file}:{ln}: test image {img} does not exist")
            self.items.append(item)
        if not self.items:
            raise ValueError(f"{self.split_file}: split file lists no samples")

    def _parse_split(self):  # pragma: no cover - overridden
        raise TypeError(f"{type(self).__name__} must define _parse_split()")

    def __len__(self) -> int:
        return len(self.items)


def check_frame_size(ref: FrameRef, size: tuple[int, int]) -> None:
    """``ValueError`` naming the file, its size and the expected one when ``ref.size`` is set and
    differs (the intrinsics are in pixels of ``ref.size``)."""
    if ref.size is not None and tuple(size) != tuple(ref.size):
        w, h = size
        W, H = ref.size
        src = f" ({ref.size_from})" if ref.size_from else ""
        raise ValueError(f"{ref.path}: image is {w}x{h} but {W}x{H} is expected{src}: the intrinsics are "
                         f"in pixels of {W}x{H}, so resizing this image would pair it with wrong intrinsics")


def principal_point_check(path, fx: float, fy: float, cx: float, cy: float, size: tuple[int, int],
                          image) -> None:
    """Pixel intrinsics normalised by an image's size must plausibly belong to that size: positive
    focal lengths and the principal point inside the image (e.g. intrinsics of the full-size
    release with downscaled images fail here)."""
    w, h = size
    if not (fx > 0 and fy > 0):
        raise ValueError(f"{path}: focal lengths fx={fx:g}, fy={fy:g} must be > 0")
    if not (0 < cx < w and 0 < cy < h):
        raise ValueError(f"{path}: principal point ({cx:g}, {cy:g}) lies outside the {w}x{h} image {image}: "
                         "the intrinsics are for another image size")


def pose_norm_between(Twc: dict[int, np.ndarray], frame_ids: Sequence[int]) -> dict[int, float]:
    """|t| of ``inv(Twc_f) @ Twc_0`` per frame id (used where no velocity is recorded)."""
    return {f: float(np.linalg.norm((np.linalg.inv(Twc[f]) @ Twc[0])[:3, 3])) for f in frame_ids if f != 0}


def depth_png_loader(path: str):
    """Picklable ``() -> depth`` closure for a uint16/256 depth PNG."""
    return _DepthPng(path)


class _DepthPng:
    def __init__(self, path: str):
        self.path = path

    def __call__(self) -> np.ndarray:
        return read_depth_png(self.path)
