"""Virtual KITTI 2 (release layout) reader for the scale analysis of Table I (perfect GT).

Release layout (``vkitti_2.0.3_{rgb,depth,textgt}`` archives extracted under one root; the
format as described by the Virtual KITTI 2 README of NAVER LABS Europe and read the same way by
public readers, e.g. AIT's ``vkitti2`` -> KITTI trajectory converter, which inverts the
``extrinsic.txt`` rows to get camera-to-world poses)::

    Scene01/clone/frames/rgb/Camera_0/rgb_00000.jpg        8-bit RGB, 1242 x 375
    Scene01/clone/frames/depth/Camera_0/depth_00000.png    uint16, centimetres (1 unit = 1 cm)
    Scene01/clone/intrinsic.txt    header ``frame cameraID K[0,0] K[1,1] K[0,2] K[1,2]``, then
                                   one row ``frame cam fx fy cx cy`` (pixels) per frame and camera
    Scene01/clone/extrinsic.txt    header ``frame cameraID r1,1 r1,2 r1,3 t1 ... t3 0 0 0 1``, then
                                   one row ``frame cam`` + the 16 numbers (row-major) of the 4x4
                                   **world-to-camera** matrix per frame and camera

Camera axes are OpenCV/KITTI's (x right, y down, z forward), so ``Twc = inv(extrinsic)`` is
the camera-to-world pose of DATA_LAYOUTS.md and ``("pose_gt", f) = inv(Twc_f) @ Twc_0 =
E_f @ inv(E_0)``. ``trans_norm_gt`` is ``|t|`` of that pose (no velocities are recorded).

Depth: ``value / 100`` metres. The release clips everything beyond its far plane to the largest
uint16 (65535 = 655.35 m, the sky); **ours**: such pixels and 0 are returned as 0 (invalid), as
KITTI's GT marks missing depth, so metrics never average over the sky.

Splits (**ours**, written by :func:`make_vkitti2_splits`; VKITTI2 ships none): one
``Scene<NN>/<variation> <frame>`` per line in ``<splits_dir>/vkitti2/{train,val,test}_files.txt``;
a training line needs frames ``frame + f`` for every ``f`` of ``data.frame_ids``. Only
``Camera_0`` (the left camera) is used.
"""
from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from sa4depth.files import write_text_atomic

from .base import FrameRef, MonoDataset, SampleInfo, pose_norm_between, principal_point_check
from .io import (read_single_channel_png, require_16bit, text_lines, check_rotations, file_stamp, read_image_size,
                 read_split_file)

__all__ = ["VKitti2Dataset", "is_vkitti2_release", "read_vkitti2_extrinsics", "read_vkitti2_intrinsics",
           "read_vkitti2_depth", "read_vkitti2_split", "make_vkitti2_splits", "vkitti2_rgb_path",
           "vkitti2_depth_path", "VKITTI2_FAR_VALUE"]

VKITTI2_FAR_VALUE = 65535          # uint16 far plane of the depth PNGs (655.35 m): the sky
SCENE_RE = re.compile(r"^Scene\d\d$")
_EXTRINSIC_COLS = 18               # frame, cameraID, 16 matrix entries
_INTRINSIC_COLS = 6                # frame, cameraID, fx, fy, cx, cy


def is_vkitti2_release(root: str | os.PathLike) -> bool:
    """True when ``root`` holds ``Scene<NN>/`` folders (the release layout), False for the
    KITTI-raw layout of the synthetic driving data."""
    root = Path(root)
    return root.is_dir() and any(p.is_dir() and SCENE_RE.match(p.name) for p in root.iterdir())


def vkitti2_rgb_path(root: Path, seq: str, frame: int, camera: int = 0) -> Path:
    return Path(root) / seq / "frames" / "rgb" / f"Camera_{camera}" / f"rgb_{frame:05d}.jpg"


def vkitti2_depth_path(root: Path, seq: str, frame: int, camera: int = 0) -> Path:
    return Path(root) / seq / "frames" / "depth" / f"Camera_{camera}" / f"depth_{frame:05d}.png"


def _read_table(path: Path, ncols: int, what: str) -> list[tuple[int, int, int, np.ndarray]]:
    """Rows ``(line number, frame, camera, values)`` of a VKITTI2 text-GT file with its header line."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: VKITTI2 {what} file not found")
    rows = []
    seen: set[tuple[int, int]] = set()
    lines = text_lines(path, f"VKITTI2 {what} file")
    header = lines[0].split() if lines else []
    if not header or header[0] != "frame":
        raise ValueError(f"{path}:1: expected the header line 'frame cameraID ...', got {' '.join(header)[:60]!r}")
    for lineno, line in enumerate(lines[1:], 2):
        s = line.split()
        if not s:
            continue
        if len(s) != ncols:
            raise ValueError(f"{path}:{lineno}: expected {ncols} numbers (frame cameraID + {ncols - 2}), got {len(s)}")
        try:
            frame, cam = int(s[0]), int(s[1])
            vals = np.array([float(x) for x in s[2:]], dtype=np.float64)
        except ValueError:
            raise ValueError(f"{path}:{lineno}: malformed {what} row: non-numeric value") from None
        if not np.all(np.isfinite(vals)):
            raise ValueError(f"{path}:{lineno}: {what} row contains non-finite numbers")
        if (frame, cam) in seen:
            raise ValueError(f"{path}:{lineno}: duplicate row for frame {frame}, camera {cam}")
        seen.add((frame, cam))
        rows.append((lineno, frame, cam, vals))
    if not rows:
        raise ValueError(f"{path}: VKITTI2 {what} file has no rows")
    return rows


def _extrinsics_cached(path: str) -> dict[tuple[int, int], np.ndarray]:
    return _extrinsics_parse(path, *file_stamp(path))  # a file rewritten in place is parsed again


@functools.lru_cache(maxsize=64)
def _extrinsics_parse(path: str, _mtime: int, _size: int) -> dict[tuple[int, int], np.ndarray]:
    p = Path(path)
    out = {}
    for ln, frame, cam, v in _read_table(p, _EXTRINSIC_COLS, "extrinsic"):
        E = v.reshape(4, 4)
        if not np.allclose(E[3], [0, 0, 0, 1], atol=1e-6):
            raise ValueError(f"{p}:{ln}: frame {frame} camera {cam}: last matrix row is {E[3].tolist()}, not 0 0 0 1")
        check_rotations(E[None, :3, :3], p, [f"{ln} (frame {frame} camera {cam})"])
        out[(frame, cam)] = E
    return out


def read_vkitti2_extrinsics(path: str | os.PathLike) -> dict[tuple[int, int], np.ndarray]:
    """``extrinsic.txt`` -> ``{(frame, camera): 4x4 world-to-camera}`` (float64)."""
    return {k: v.copy() for k, v in _extrinsics_cached(str(Path(path))).items()}


def _intrinsics_cached(path: str) -> dict[tuple[int, int], tuple[float, float, float, float]]:
    return _intrinsics_parse(path, *file_stamp(path))


@functools.lru_cache(maxsize=64)
def _intrinsics_parse(path: str, _mtime: int, _size: int) -> dict[tuple[int, int], tuple[float, float, float, float]]:
    p = Path(path)
    out = {}
    for ln, frame, cam, v in _read_table(p, _INTRINSIC_COLS, "intrinsic"):
        if v[0] <= 0 or v[1] <= 0:
            raise ValueError(f"{p}:{ln}: frame {frame} camera {cam}: focal lengths must be positive, "
                             f"got {v[:2].tolist()}")
        out[(frame, cam)] = (float(v[0]), float(v[1]), float(v[2]), float(v[3]))
    return out


def read_vkitti2_intrinsics(path: str | os.PathLike) -> dict[tuple[int, int], tuple[float, float, float, float]]:
    """``intrinsic.txt`` -> ``{(frame, camera): (fx, fy, cx, cy)}`` in pixels."""
    return dict(_intrinsics_cached(str(Path(path))))


def read_vkitti2_depth(path: str | os.PathLike) -> np.ndarray:
    """uint16 centimetre depth PNG -> float32 metres; 0 and the far value 65535 (sky) -> 0."""
    p = Path(path)
    arr = read_single_channel_png(p, "VKITTI2 depth PNG")
    require_16bit(arr, p, "VKITTI2 depth PNG")
    d = arr.astype(np.float32) / 100.0
    d[(arr <= 0) | (arr >= VKITTI2_FAR_VALUE)] = 0.0
    return d


class _VkDepth:
    """Picklable ``() -> depth`` loader."""

    def __init__(self, path: str):
        self.path = path

    def __call__(self) -> np.ndarray:
        return read_vkitti2_depth(self.path)


def _image_size(path: str) -> tuple[int, int]:
    return _image_size_parse(path, *file_stamp(path))


@functools.lru_cache(maxsize=64)
def _image_size_parse(path: str, _mtime: int, _size: int) -> tuple[int, int]:
    return read_image_size(path)


def _check_seq(seq: str, where: str) -> None:
    parts = seq.split("/")
    if len(parts) != 2 or not SCENE_RE.match(parts[0]) or not parts[1]:
        raise ValueError(f"{where}: sequence {seq!r} is not 'Scene<NN>/<variation>'")


def read_vkitti2_split(split_file: str | os.PathLike, root: str | os.PathLike, frame_ids: Sequence[int],
                       camera: int = 0, line_filter=None, check: bool = True) -> list[tuple[str, int]]:
    """Parse ``Scene<NN>/<variation> <frame>`` lines; with ``check``, every image
    ``frame + f`` must exist (``FileNotFoundError`` naming the split file, line and image)."""
    split_file, root = Path(split_file), Path(root)
    items = []
    for k, (ln, fields) in enumerate(read_split_file(split_file, 2, 2)):
        if line_filter is not None and not line_filter(k):
            continue
        seq = fields[0]
        _check_seq(seq, f"{split_file}:{ln}")
        try:
            frame = int(fields[1])
        except ValueError:
            raise ValueError(f"{split_file}:{ln}: frame {fields[1]!r} is not an integer") from None
        if check:
            if not (root / seq).is_dir():
                raise FileNotFoundError(f"{split_file}:{ln}: sequence folder {root / seq} does not exist")
            for f in frame_ids:
                p = vkitti2_rgb_path(root, seq, frame + f, camera)
                if not p.is_file():
                    raise FileNotFoundError(f"{split_file}:{ln}: image {p} (frame {frame}{f:+d}) does not exist")
        items.append((seq, frame))
    if not items:
        raise ValueError(f"{split_file}: split file lists no samples")
    return items


class VKitti2Dataset(MonoDataset):
    """Samples of the VKITTI2 release layout (see the module docstring): colour pyramids, K from
    ``intrinsic.txt`` normalised by the image size, GT poses from ``extrinsic.txt``, GT depth."""

    def __init__(self, root: str | os.PathLike, split_file: str | os.PathLike, *, camera: int = 0,
                 line_filter=None, **kw):
        super().__init__(**kw)
        self.root = Path(root)
        self.split_file = Path(split_file)
        self.camera = int(camera)
        self.items = read_vkitti2_split(self.split_file, self.root, self.frame_ids, self.camera, line_filter)

    def __len__(self) -> int:
        return len(self.items)

    def describe(self, index: int) -> SampleInfo:
        seq, frame = self.items[index]
        base = self.root / seq
        ext_path, int_path = base / "extrinsic.txt", base / "intrinsic.txt"
        ext = _extrinsics_cached(str(ext_path))
        Twc = {}
        for f in self.frame_ids:
            key = (frame + f, self.camera)
            if key not in ext:
                raise ValueError(f"{ext_path}: no row for frame {frame + f}, camera {self.camera} "
                                 f"(needed by split line {seq} {frame})")
            Twc[f] = np.linalg.inv(ext[key])
        intr = _intrinsics_cached(str(int_path))
        if (frame, self.camera) not in intr:
            raise ValueError(f"{int_path}: no row for frame {frame}, camera {self.camera}")
        fx, fy, cx, cy = intr[(frame, self.camera)]
        img0 = vkitti2_rgb_path(self.root, seq, frame, self.camera)
        w, h = _image_size(str(img0))
        principal_point_check(f"{int_path}: frame {frame} camera {self.camera}", fx, fy, cx, cy, (w, h), img0)
        # intrinsic.txt is per frame, in pixels of the stored images: every frame of the sample must
        # have the size K was normalised by
        frames = {f: FrameRef(str(vkitti2_rgb_path(self.root, seq, frame + f, self.camera)), size=(w, h),
                              size_from=f"size of {img0.name}, which {int_path.name} of frame {frame} is normalised by")
                  for f in self.frame_ids}
        K = np.eye(4)
        K[0, 0], K[0, 2] = fx / w, cx / w
        K[1, 1], K[1, 2] = fy / h, cy / h
        depth = _VkDepth(str(vkitti2_depth_path(self.root, seq, frame, self.camera)))
        return SampleInfo(key=f"{seq} {frame}", frames=frames, K_norm=K, Twc=Twc,
                          trans_norm=pose_norm_between(Twc, self.frame_ids), depth=depth)


def _sequence_frames(root: Path, seq: str, camera: int) -> int:
    """Number of consecutive frames 0..n-1 that have an image and a camera pose."""
    rgb_dir = root / seq / "frames" / "rgb" / f"Camera_{camera}"
    if not rgb_dir.is_dir():
        raise FileNotFoundError(f"{rgb_dir}: VKITTI2 image folder not found")
    ext = _extrinsics_cached(str(root / seq / "extrinsic.txt"))
    n = 0
    while vkitti2_rgb_path(root, seq, n, camera).is_file() and (n, camera) in ext:
        n += 1
    if n == 0:
        raise ValueError(f"{rgb_dir}: no frame 0 with an image and an extrinsic.txt row")
    return n


def make_vkitti2_splits(root: str | os.PathLike, out_dir: str | os.PathLike, variations: Sequence[str] = ("clone",),
                        val_scenes: Sequence[str] = ("Scene02",), frame_ids: Sequence[int] = (0, -1, 1),
                        camera: int = 0) -> dict[str, Path]:
    """Write **our** VKITTI2 splits to ``<out_dir>/vkitti2/{train,val,test}_files.txt``.

    ``out_dir`` is a splits directory (``data.splits_dir``). For every scene of ``root`` and
    every variation: the scenes in ``val_scenes`` go to ``val_files.txt`` (frames that have all
    of ``frame_ids``) and ``test_files.txt`` (every frame, for single-image depth evaluation);
    the other scenes to ``train_files.txt``. The default validation scene, Scene02 (233 of
    2,126 frames, 11 %), is our choice: the paper does not state its VKITTI2 split.
    Returns ``{name: path}``; raises when a scene or variation is missing or a split is empty.
    """
    root, out_dir = Path(root), Path(out_dir)
    if not is_vkitti2_release(root):
        raise FileNotFoundError(f"{root}: no Scene<NN>/ folders (not a Virtual KITTI 2 release layout)")
    scenes = sorted(p.name for p in root.iterdir() if p.is_dir() and SCENE_RE.match(p.name))
    unknown = [s for s in val_scenes if s not in scenes]
    if unknown:
        raise ValueError(f"val_scenes {unknown} are not in {root} (have: {', '.join(scenes)})")
    lo, hi = -min(min(frame_ids), 0), max(max(frame_ids), 0)
    lines: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for scene in scenes:
        for var in variations:
            seq = f"{scene}/{var}"
            if not (root / seq).is_dir():
                raise FileNotFoundError(f"{root / seq}: variation {var!r} of {scene} not found")
            n = _sequence_frames(root, seq, camera)
            triplets = [f"{seq} {i}" for i in range(lo, n - hi)]
            if scene in val_scenes:
                lines["val"] += triplets
                lines["test"] += [f"{seq} {i}" for i in range(n)
                                  if vkitti2_depth_path(root, seq, i, camera).is_file()]
            else:
                lines["train"] += triplets
    out = {}
    for name, ls in lines.items():
        if not ls:
            raise ValueError(f"{root}: the VKITTI2 {name} split would be empty (scenes {scenes}, "
                             f"val_scenes {list(val_scenes)}, variations {list(variations)})")
        out[name] = write_text_atomic(out_dir / "vkitti2" / f"{name}_files.txt", "".join(f"{ln}\n" for ln in ls))
    return out
