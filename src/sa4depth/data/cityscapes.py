"""Cityscapes readers: preprocessed training triplets and raw test images with disparity GT.

Training (SfMLearner / ManyDepth ``CityscapesPreprocessedDataset``): each
``train_triplets/<city>/<name>.jpg`` holds frames [t-1, t, t+1] side by side (W*3 x H);
``<name>_cam.txt`` holds ``fx,0,cx,0,fy,cy,0,0,1`` in pixels of ONE frame, normalised here by the
single-frame width and height. GT motion (synthetic extra): ``gt_poses/<city>_<seq>.txt``, one
camera-to-world line per frame number (line index = the ``<frame>`` field of the name).

Test (ManyDepth ``CityscapesEvalDataset`` + its evaluation): raw ``leftImg8bit_sequence`` test
images; GT depth = baseline * fx / disparity with ``disparity = (p - 1) / 256`` for ``p > 0``
(Cityscapes ``disparity`` PNG convention); ManyDepth crops the bottom 25 % (ego-car hood) of the
input image inside its loader: :func:`cityscapes_test_ref` does the same (``keep_top=0.75``) and
the GT returned by :func:`load_cityscapes_gt_depth` is full size (the evaluator crops it).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .base import FrameRef, MonoDataset, SampleInfo, TestListDataset, pose_norm_between, principal_point_check
from .io import read_cam_txt, read_image_size, read_poses_file, read_split_file, read_uint16_png

__all__ = ["CityscapesTripletDataset", "CityscapesTestDataset", "load_cityscapes_gt_depth",
           "cityscapes_test_ref", "read_cityscapes_split"]

CITYSCAPES_TEST_KEEP_TOP = 0.75  # ManyDepth: drop the bottom 25 % (ego-car hood)


def _parse_name(name: str, where: str) -> tuple[str, int]:
    """``<city>_<seq:06d>_<frame:06d>`` -> (``<city>_<seq>``, frame)."""
    parts = name.rsplit("_", 1)
    if len(parts) != 2 or not parts[1].isdigit():
        raise ValueError(f"{where}: name {name!r} is not of the form <city>_<seq>_<frame>")
    return parts[0], int(parts[1])


def read_cityscapes_split(split_file: Path) -> list[tuple[int, str, str]]:
    """``<city> <name>`` lines -> [(line_number, city, name)]; an empty file is an error."""
    out = [(ln, f[0], f[1]) for ln, f in read_split_file(split_file, 2, 2, form="city name")]
    if not out:
        raise ValueError(f"{split_file}: split file lists no samples")
    return out


class CityscapesTripletDataset(MonoDataset):
    """Preprocessed Cityscapes training triplets (frame ids must be within {-1, 0, 1})."""

    def __init__(self, root: str | os.PathLike, split_file: str | os.PathLike, *, img_ext: str = ".jpg",
                 line_filter=None, **kw):
        super().__init__(**kw)
        bad = [f for f in self.frame_ids if f not in (-1, 0, 1)]
        if bad:
            raise ValueError(f"data.frame_ids {self.frame_ids}: Cityscapes triplets only hold frames -1, 0, 1")
        self.root = Path(root)
        self.split_file = Path(split_file)
        self.img_ext = img_ext
        items = []
        for k, (ln, city, name) in enumerate(read_cityscapes_split(self.split_file)):
            if line_filter is not None and not line_filter(k):
                continue
            img = self._image(city, name)
            if not img.is_file():
                raise FileNotFoundError(f"{self.split_file}:{ln}: triplet image {img} does not exist")
            items.append((city, name))
        if not items:
            raise ValueError(f"{self.split_file}: split file lists no samples")
        self.items = items

    def _image(self, city: str, name: str) -> Path:
        p = self.root / "train_triplets" / city / f"{name}{self.img_ext}"
        if not p.is_file():  # the preprocessing writes .jpg; accept .png too
            alt = p.with_suffix(".png" if self.img_ext == ".jpg" else ".jpg")
            if alt.is_file():
                return alt
        return p

    def __len__(self) -> int:
        return len(self.items)

    def describe(self, index: int) -> SampleInfo:
        city, name = self.items[index]
        img = self._image(city, name)
        cam = self.root / "train_triplets" / city / f"{name}_cam.txt"
        K3 = read_cam_txt(cam)
        w3, h = read_image_size(img, "triplet image")
        if w3 % 3:
            raise ValueError(f"{img}: width {w3} is not divisible into 3 frames")
        principal_point_check(cam, K3[0, 0], K3[1, 1], K3[0, 2], K3[1, 2], (w3 // 3, h),
                              f"{img} (one of its 3 frames)")
        frames = {f: FrameRef(str(img), part=f + 1, nparts=3, size=(w3, h),
                              size_from=f"the size {cam.name} was normalised by") for f in self.frame_ids}
        K = np.eye(4)
        K[:3, :3] = K3
        K[0, :] /= w3 / 3.0
        K[1, :] /= h
        Twc = trans = None
        seq, frame = _parse_name(name, str(self.split_file))
        pfile = self.root / "gt_poses" / f"{seq}.txt"
        if pfile.is_file():
            P = read_poses_file(pfile)
            if not (0 <= frame - 1 and frame + 1 < len(P)):
                raise ValueError(f"{pfile}: frames {frame - 1}..{frame + 1} requested but the file has {len(P)} poses")
            Twc = {f: P[frame + f] for f in self.frame_ids}
            trans = pose_norm_between(Twc, self.frame_ids)
        return SampleInfo(key=f"{city} {name}", frames=frames, K_norm=K, Twc=Twc, trans_norm=trans)


def _camera_json(root: Path, city: str, name: str) -> tuple[float, float, float, float, float]:
    p = root / "camera" / "test" / city / f"{name}_camera.json"
    if not p.is_file():
        raise FileNotFoundError(f"{p}: camera json not found")
    try:
        d = json.loads(p.read_text())
        ex, it = d["extrinsic"], d["intrinsic"]
        return float(ex["baseline"]), float(it["fx"]), float(it["fy"]), float(it["u0"]), float(it["v0"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{p}: malformed camera json ({type(e).__name__}: {e})") from None


def load_cityscapes_gt_depth(root: str | os.PathLike, city: str, name: str) -> np.ndarray:
    """Full-size GT depth (metres, 0 = invalid) from the disparity PNG and camera json."""
    root = Path(root)
    p = root / "disparity" / "test" / city / f"{name}_disparity.png"
    raw = read_uint16_png(p, "disparity PNG")
    baseline, fx, _, _, _ = _camera_json(root, city, name)
    disp = np.where(raw > 0, (raw - 1.0) / 256.0, 0.0)
    depth = np.where(disp > 0, baseline * fx / np.maximum(disp, 1e-12), 0.0)
    return depth.astype(np.float32)


def cityscapes_test_image(root: Path, city: str, name: str) -> Path:
    return root / "leftImg8bit_sequence" / "test" / city / f"{name}_leftImg8bit.png"


def cityscapes_test_ref(root: Path, city: str, name: str) -> FrameRef:
    return FrameRef(str(cityscapes_test_image(root, city, name)), keep_top=CITYSCAPES_TEST_KEEP_TOP)


class CityscapesTestDataset(TestListDataset):
    """Single test frames (cropped like ManyDepth), K from the camera json, full-size GT depth."""

    def _parse_split(self):
        for ln, city, name in read_cityscapes_split(self.split_file):
            yield ln, (city, name), cityscapes_test_image(self.root, city, name)

    def describe(self, index: int) -> SampleInfo:
        city, name = self.items[index]
        ref = cityscapes_test_ref(self.root, city, name)
        cam_json = self.root / "camera" / "test" / city / f"{name}_camera.json"
        _, fx, fy, u0, v0 = _camera_json(self.root, city, name)
        w, h = read_image_size(ref.path, "test image")  # (no principal-point check: evaluation does not use K)
        ref = FrameRef(ref.path, keep_top=ref.keep_top, size=(w, h),
                       size_from=f"the size {cam_json.name} was normalised by")
        hc = int(round(h * ref.keep_top))
        K = np.eye(4)
        K[0, 0], K[0, 2] = fx / w, u0 / w
        K[1, 1], K[1, 2] = fy / hc, v0 / hc  # the crop removes rows at the bottom: v0 unchanged
        return SampleInfo(key=f"{city} {name}", frames={0: ref}, K_norm=K,
                          depth=_CsDepth(str(self.root), city, name))


class _CsDepth:
    def __init__(self, root: str, city: str, name: str):
        self.root, self.city, self.name = root, city, name

    def __call__(self) -> np.ndarray:
        return load_cityscapes_gt_depth(self.root, self.city, self.name)
