"""Small, strict readers for the on-disk formats of ``docs/DATA_LAYOUTS.md``.

Every reader raises ``FileNotFoundError`` (missing file) or ``ValueError`` (malformed content)
with the offending file, and the line number where there is one, in the message. The CLI turns
both into a one-line error.

Formats and their sources:

- images: 8-bit RGB PNG/JPEG read with PIL (Monodepth2's ``pil_loader`` converts to RGB);
- depth PNG: uint16, ``depth_m = value / 256``, ``0`` = invalid (KITTI depth benchmark devkit);
- calibration: KITTI ``key: v1 v2 ...`` text (KITTI raw devkit ``readCalibration``; odometry
  ``calib.txt`` uses the same ``P2: ...`` form);
- poses: KITTI odometry format, one camera-to-world 3x4 row-major matrix per line (12 numbers),
  as ``evo.tools.file_interface.read_kitti_poses_file`` reads it;
- OXTS: 30 whitespace-separated numbers per file (KITTI raw devkit ``dataformat.txt``);
- velodyne: float32 ``N x 4`` (x, y, z, reflectance) binary (KITTI raw devkit);
- timestamps: ``YYYY-MM-DD HH:MM:SS.fffffffff`` (KITTI raw) or seconds (odometry ``times.txt``).
"""
from __future__ import annotations

import datetime as _dt
import functools
import os
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image, UnidentifiedImageError

__all__ = [
    "read_image",
    "read_depth_png",
    "write_depth_png",
    "read_calib_file",
    "read_poses_file",
    "read_oxts_file",
    "read_velodyne",
    "read_kitti_timestamps",
    "read_seconds_file",
    "read_split_file",
    "read_cam_txt",
    "atomic_save_npz",
]

PathLike = str | os.PathLike

# OXTS field indices (KITTI raw devkit, dataformat.txt)
OXTS_LAT, OXTS_LON, OXTS_ALT, OXTS_ROLL, OXTS_PITCH, OXTS_YAW = 0, 1, 2, 3, 4, 5
OXTS_VF, OXTS_VL, OXTS_VU = 8, 9, 10


def _require(path: Path, what: str) -> None:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {what} not found")


def read_image(path: PathLike) -> Image.Image:
    """Open an 8-bit image as a loaded RGB ``PIL.Image`` (Monodepth2 ``pil_loader``)."""
    path = Path(path)
    _require(path, "image")
    try:
        with Image.open(path) as im:
            im.load()
            return im.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ValueError(f"{path}: unreadable or corrupt image ({e})") from None


def _read_single_channel_png(path: PathLike, what: str) -> np.ndarray:
    """Raw values of a single-channel PNG; a missing, corrupt or multi-channel file names the file."""
    path = Path(path)
    _require(path, what)
    try:
        with Image.open(path) as im:
            im.load()
            arr = np.asarray(im)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ValueError(f"{path}: unreadable or corrupt {what} ({e})") from None
    if arr.ndim != 2:
        raise ValueError(f"{path}: {what} must be single-channel, got shape {arr.shape}")
    return arr


def read_depth_png(path: PathLike) -> np.ndarray:
    """uint16 PNG -> float32 metres, ``value / 256``, 0 = invalid (KITTI depth devkit)."""
    arr = _read_single_channel_png(path, "depth PNG")
    if arr.dtype not in (np.uint16, np.int32, np.uint8):
        raise ValueError(f"{path}: depth PNG must be 16-bit, got dtype {arr.dtype}")
    return arr.astype(np.float32) / 256.0


def read_uint16_png(path: PathLike, what: str = "16-bit PNG") -> np.ndarray:
    """Raw uint16 values of a single-channel PNG (used for Cityscapes disparity)."""
    return _read_single_channel_png(path, what).astype(np.float64)


def write_depth_png(path: PathLike, depth_m: np.ndarray) -> None:
    """Inverse of :func:`read_depth_png` (used by test fixtures and caches)."""
    v = np.clip(np.round(np.asarray(depth_m, np.float64) * 256.0), 0, 65535).astype(np.uint16)
    Image.fromarray(v).save(path)


@functools.lru_cache(maxsize=256)
def _read_calib_cached(path: str) -> dict[str, np.ndarray]:
    p = Path(path)
    _require(p, "calibration file")
    out: dict[str, np.ndarray] = {}
    with open(p) as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            if ":" not in line:
                raise ValueError(f"{p}:{lineno}: malformed calibration line (no 'key:'): {line[:60]!r}")
            key, value = line.split(":", 1)
            key = key.strip()
            if key == "calib_time":  # KITTI raw: a date, not numbers
                continue
            try:
                out[key] = np.array([float(x) for x in value.split()], dtype=np.float64)
            except ValueError:
                raise ValueError(f"{p}:{lineno}: malformed calibration line for {key!r}: "
                                 f"non-numeric value {value.strip()[:60]!r}") from None
    return out


def read_calib_file(path: PathLike) -> dict[str, np.ndarray]:
    """KITTI calibration text -> ``{key: float64 array}`` (``calib_time`` is skipped)."""
    return {k: v.copy() for k, v in _read_calib_cached(str(Path(path))).items()}


def calib_matrix(calib: dict[str, np.ndarray], key: str, shape: tuple[int, ...], path: PathLike) -> np.ndarray:
    """Fetch ``calib[key]`` reshaped to ``shape`` or raise naming the file and key."""
    if key not in calib:
        raise ValueError(f"{path}: calibration key {key!r} missing (have: {', '.join(sorted(calib))})")
    v = calib[key]
    if v.size != int(np.prod(shape)):
        raise ValueError(f"{path}: calibration key {key!r} has {v.size} numbers, expected {int(np.prod(shape))}")
    return v.reshape(shape)


@functools.lru_cache(maxsize=128)
def _read_poses_cached(path: str) -> np.ndarray:
    p = Path(path)
    _require(p, "pose file")
    rows = []
    with open(p) as f:
        for lineno, line in enumerate(f, 1):
            s = line.split()
            if not s:
                continue
            if len(s) != 12:
                raise ValueError(f"{p}:{lineno}: malformed pose line: expected 12 numbers, got {len(s)}")
            try:
                rows.append([float(x) for x in s])
            except ValueError:
                raise ValueError(f"{p}:{lineno}: malformed pose line: non-numeric value") from None
    if not rows:
        raise ValueError(f"{p}: pose file is empty")
    n = len(rows)
    T = np.tile(np.eye(4), (n, 1, 1))
    T[:, :3, :4] = np.asarray(rows).reshape(n, 3, 4)
    if not np.all(np.isfinite(T)):
        raise ValueError(f"{p}: pose file contains non-finite numbers")
    return T


def read_poses_file(path: PathLike) -> np.ndarray:
    """KITTI pose file -> ``(N, 4, 4)`` float64 camera-to-world matrices."""
    return _read_poses_cached(str(Path(path))).copy()


def read_oxts_file(path: PathLike) -> np.ndarray:
    """One OXTS packet (30 numbers, KITTI devkit ``dataformat.txt``) -> float64 array."""
    p = Path(path)
    _require(p, "OXTS file")
    with open(p) as f:
        s = f.read().split()
    try:
        v = np.array([float(x) for x in s], dtype=np.float64)
    except ValueError:
        raise ValueError(f"{p}: malformed OXTS file: non-numeric value") from None
    if v.size != 30:
        raise ValueError(f"{p}: malformed OXTS file: expected 30 numbers, got {v.size}")
    return v


def read_velodyne(path: PathLike) -> np.ndarray:
    """Velodyne scan -> ``(N, 4)`` float32 (x, y, z, reflectance) in the velodyne frame."""
    p = Path(path)
    _require(p, "velodyne scan")
    raw = np.fromfile(p, dtype=np.float32)
    if raw.size % 4:
        raise ValueError(f"{p}: velodyne file size {raw.size * 4} bytes is not a multiple of 16 (N x 4 float32)")
    return raw.reshape(-1, 4)


def _read_time_lines(path: str, what: str, parse, expected: str) -> np.ndarray:
    """Non-empty lines of a time file -> float64 seconds; a bad line names the file and line."""
    p = Path(path)
    _require(p, what)
    out = []
    with open(p) as f:
        for lineno, line in enumerate(f, 1):
            s = line.strip()
            if not s:
                continue
            try:
                out.append(parse(s))
            except ValueError:
                raise ValueError(f"{p}:{lineno}: malformed time {s!r} (expected {expected})") from None
    return np.asarray(out, dtype=np.float64)


def _parse_kitti_timestamp(s: str) -> float:
    date, clock = s.split(" ")
    hms, frac = (clock.split(".") + ["0"])[:2]
    t = _dt.datetime.strptime(f"{date} {hms}", "%Y-%m-%d %H:%M:%S").replace(tzinfo=_dt.timezone.utc)
    return t.timestamp() + float("0." + frac)


@functools.lru_cache(maxsize=256)
def _read_kitti_ts_cached(path: str) -> np.ndarray:
    return _read_time_lines(path, "timestamps file", _parse_kitti_timestamp, "'YYYY-MM-DD HH:MM:SS.fffffffff'")


def read_kitti_timestamps(path: PathLike) -> np.ndarray:
    """KITTI raw ``timestamps.txt`` -> seconds (float64, UTC epoch)."""
    return _read_kitti_ts_cached(str(Path(path))).copy()


@functools.lru_cache(maxsize=64)
def _read_seconds_cached(path: str) -> np.ndarray:
    return _read_time_lines(path, "times file", float, "seconds")


def read_seconds_file(path: PathLike) -> np.ndarray:
    """KITTI odometry ``times.txt`` (one float of seconds per line)."""
    return _read_seconds_cached(str(Path(path))).copy()


def read_split_file(path: PathLike, min_fields: int = 1, max_fields: int = 3) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(line_number, fields)`` of a Monodepth2-style split file, skipping blank lines."""
    p = Path(path)
    _require(p, "split file")
    with open(p) as f:
        for lineno, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            if not (min_fields <= len(fields) <= max_fields):
                raise ValueError(f"{p}:{lineno}: expected {min_fields}..{max_fields} fields, "
                                 f"got {len(fields)}: {line.strip()!r}")
            yield lineno, fields


def read_cam_txt(path: PathLike) -> np.ndarray:
    """SfMLearner/ManyDepth Cityscapes ``_cam.txt``: ``fx,0,cx,0,fy,cy,0,0,1`` -> 3x3 pixels."""
    p = Path(path)
    _require(p, "camera file")
    txt = open(p).read().replace(",", " ").split()
    try:
        v = np.array([float(x) for x in txt], dtype=np.float64)
    except ValueError:
        raise ValueError(f"{p}: malformed camera file: non-numeric value") from None
    if v.size != 9:
        raise ValueError(f"{p}: malformed camera file: expected 9 numbers, got {v.size}")
    return v.reshape(3, 3)


def atomic_save_npz(path: PathLike, **arrays) -> Path:
    """``np.savez_compressed`` to ``path.tmp`` then ``os.replace`` (atomic result file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)
    os.replace(tmp, path)
    return path
