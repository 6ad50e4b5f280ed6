"""Small, strict readers for the on-disk formats of ``docs/DATA_LAYOUTS.md``.

Every reader raises ``FileNotFoundError`` (missing file) or ``ValueError`` (malformed content)
with the offending file, and the line number where there is one, in the message. The CLI turns
both into a one-line error. Binary junk in a text file, non-finite numbers, a rotation that is not
one, a 16-bit PNG where an 8-bit image is expected (or the reverse) are malformed content too.

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
import math
import os
import struct
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
from PIL import Image, UnidentifiedImageError

__all__ = [
    "read_image",
    "read_image_size",
    "read_depth_png",
    "read_calib_file",
    "read_poses_file",
    "read_oxts_file",
    "read_numbers",
    "read_velodyne",
    "read_kitti_timestamps",
    "read_seconds_file",
    "read_split_file",
    "read_cam_txt",
    "text_lines",
    "read_single_channel_png",
    "require_16bit",
]

PathLike = str | os.PathLike

# OXTS field indices (KITTI raw devkit, dataformat.txt)
OXTS_LAT, OXTS_LON, OXTS_ALT, OXTS_ROLL, OXTS_PITCH, OXTS_YAW = 0, 1, 2, 3, 4, 5
OXTS_VF, OXTS_VL, OXTS_VU = 8, 9, 10


def file_stamp(path: PathLike) -> tuple[int, int]:
    """(mtime_ns, size) of a file, (-1, -1) if it does not exist: part of every parse cache's key,
    so that a file rewritten in place is parsed again instead of serving stale content."""
    try:
        st = os.stat(path)
    except OSError:
        return -1, -1
    return st.st_mtime_ns, st.st_size


def _require(path: Path, what: str) -> None:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {what} not found")


# what PIL raises on a corrupt / truncated / foreign image file (struct.error and IndexError come
# from some truncated headers, DecompressionBombError from absurd sizes in a corrupt header)
_PIL_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError,
               struct.error, Image.DecompressionBombError)

# modes of 8-bit colour / grey images that ``convert("RGB")`` maps faithfully; 16/32-bit and float
# modes ("I;16", "I", "F", ...) are depth / disparity maps: converting them clips at 255
_RGB_SOURCE_MODES = {"RGB", "RGBA", "RGBX", "RGBa", "L", "LA", "La", "P", "PA", "1", "CMYK", "YCbCr", "LAB", "HSV"}


def text_lines(path: Path, what: str) -> list[str]:
    """Lines of a text file; binary junk (not UTF-8) is a ``ValueError`` naming the file."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")  # (a byte-order mark from a Windows editor is dropped)
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: {what} is not a text file (undecodable byte at offset {e.start})") from None
    if "\x00" in text:
        raise ValueError(f"{path}: {what} is not a text file (NUL byte at offset {text.index(chr(0))})")
    return text.splitlines()


def read_numbers(path: PathLike, what: str, n: int, commas: bool = False, layout: str = "") -> np.ndarray:
    """A small text file of exactly ``n`` finite numbers (whitespace-separated; also commas with
    ``commas``) as float64; a ``ValueError`` naming the file and what is wrong, ``layout`` (e.g.
    ``" 'fx fy cx cy'"``) added to the count's message."""
    p = Path(path)
    _require(p, what)
    text = " ".join(text_lines(p, what))
    words = (text.replace(",", " ") if commas else text).split()
    try:
        v = np.array([float(x) for x in words], dtype=np.float64)
    except ValueError:
        raise ValueError(f"{p}: malformed {what}: non-numeric value") from None
    if v.size != n:
        raise ValueError(f"{p}: malformed {what}: expected {n} numbers{layout}, got {v.size}")
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{p}: malformed {what}: NaN or inf")
    return v


def read_image(path: PathLike) -> Image.Image:
    """Open an 8-bit image as a loaded RGB ``PIL.Image`` (Monodepth2 ``pil_loader``).

    A 16-bit / 32-bit / float image (e.g. a depth PNG in the image's place) is an error: PIL's
    ``convert("RGB")`` would clip it to 255 and return a silently wrong image."""
    path = Path(path)
    _require(path, "image")
    try:
        with Image.open(path) as im:
            mode = im.mode
            if mode not in _RGB_SOURCE_MODES:
                raise ValueError(f"{path}: not an 8-bit colour/grey image (PIL mode {mode!r}, "
                                 f"{im.size[0]}x{im.size[1]}); a depth or disparity PNG in the image's place?")
            im.load()
            out = im.convert("RGB")
    except ValueError as e:
        if str(e).startswith(str(path)):
            raise
        raise ValueError(f"{path}: unreadable or corrupt image ({e})") from None
    except _PIL_ERRORS as e:
        raise ValueError(f"{path}: unreadable or corrupt image ({type(e).__name__}: {e})") from None
    if out.size[0] == 0 or out.size[1] == 0:
        raise ValueError(f"{path}: image has zero size {out.size[0]}x{out.size[1]}")
    return out


def read_image_size(path: PathLike, what: str = "image") -> tuple[int, int]:
    """(width, height) from the image header (no decoding); errors name the file."""
    path = Path(path)
    _require(path, what)
    try:
        with Image.open(path) as im:
            w, h = im.size
    except _PIL_ERRORS as e:
        raise ValueError(f"{path}: unreadable or corrupt {what} ({type(e).__name__}: {e})") from None
    if w <= 0 or h <= 0:
        raise ValueError(f"{path}: {what} has zero size {w}x{h}")
    return int(w), int(h)


def read_single_channel_png(path: PathLike, what: str) -> np.ndarray:
    """Raw values of a single-channel PNG; a missing, corrupt or multi-channel file names the file."""
    path = Path(path)
    _require(path, what)
    try:
        with Image.open(path) as im:
            im.load()
            arr = np.asarray(im)
    except _PIL_ERRORS as e:
        raise ValueError(f"{path}: unreadable or corrupt {what} ({type(e).__name__}: {e})") from None
    if arr.ndim != 2:
        raise ValueError(f"{path}: {what} must be single-channel, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{path}: {what} is empty (shape {arr.shape})")
    return arr


def require_16bit(arr: np.ndarray, path: PathLike, what: str) -> None:
    """A 16-bit depth / disparity PNG (``arr`` as read) or a ``ValueError`` naming ``path``."""
    # int32: Pillow < 10 opened 16-bit PNGs in mode "I"; an 8-bit PNG holds at most 255 / 256 m
    # (or 255 disparity steps), i.e. it is not the format: error instead of a silently wrong map
    if arr.dtype not in (np.uint16, np.int32):
        raise ValueError(f"{path}: {what} must be a 16-bit single-channel PNG, got dtype {arr.dtype}")


def read_depth_png(path: PathLike) -> np.ndarray:
    """uint16 PNG -> float32 metres, ``value / 256``, 0 = invalid (KITTI depth devkit)."""
    arr = read_single_channel_png(path, "depth PNG")
    require_16bit(arr, path, "depth PNG")
    return arr.astype(np.float32) / 256.0


def read_uint16_png(path: PathLike, what: str = "16-bit PNG") -> np.ndarray:
    """Raw uint16 values of a single-channel PNG (used for Cityscapes disparity)."""
    arr = read_single_channel_png(path, what)
    require_16bit(arr, path, what)
    return arr.astype(np.float64)


@functools.lru_cache(maxsize=256)
def _read_calib_cached(path: str, _stamp: tuple[int, int]) -> dict[str, np.ndarray]:
    p = Path(path)
    _require(p, "calibration file")
    out: dict[str, np.ndarray] = {}
    for lineno, line in enumerate(text_lines(p, "calibration file"), 1):
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
            v = np.array([float(x) for x in value.split()], dtype=np.float64)
        except ValueError:
            raise ValueError(f"{p}:{lineno}: malformed calibration line for {key!r}: "
                             f"non-numeric value {value.strip()[:60]!r}") from None
        if not np.all(np.isfinite(v)):
            raise ValueError(f"{p}:{lineno}: calibration line for {key!r} contains NaN or inf")
        out[key] = v
    if not out:
        raise ValueError(f"{p}: calibration file has no 'key: values' lines")
    return out


def read_calib_file(path: PathLike) -> dict[str, np.ndarray]:
    """KITTI calibration text -> ``{key: float64 array}`` (``calib_time`` is skipped)."""
    return {k: v.copy() for k, v in _read_calib_cached(str(Path(path)), file_stamp(path)).items()}


def calib_matrix(calib: dict[str, np.ndarray], key: str, shape: tuple[int, ...], path: PathLike) -> np.ndarray:
    """Fetch ``calib[key]`` reshaped to ``shape`` or raise naming the file and key."""
    if key not in calib:
        raise ValueError(f"{path}: calibration key {key!r} missing (have: {', '.join(sorted(calib))})")
    v = calib[key]
    if v.size != int(np.prod(shape)):
        raise ValueError(f"{path}: calibration key {key!r} has {v.size} numbers, expected {int(np.prod(shape))}")
    return v.reshape(shape)


#: largest accepted deviation of a pose file's rotation block from a rotation: max |R^T R - I| and
#: |det R - 1| (text files round; KITTI's GT has 7 significant digits, i.e. ~1e-7)
ROTATION_TOL = 1e-3


def rotation_defect(R: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(max |R^T R - I|, det R) per matrix of a (..., 3, 3) stack."""
    R = np.asarray(R, dtype=np.float64)
    orth = np.abs(np.swapaxes(R, -1, -2) @ R - np.eye(3)).max(axis=(-2, -1))
    return orth, np.linalg.det(R)


def check_rotations(R: np.ndarray, where, line_numbers=None, tol: float = ROTATION_TOL) -> None:
    """Raise ``ValueError`` naming ``where`` (a file) and the line of the first (..., 3, 3) block
    that is not a rotation (orthonormal within ``tol``, det +1)."""
    orth, det = rotation_defect(R)
    bad = np.nonzero((orth > tol) | (np.abs(det - 1.0) > tol) | ~np.isfinite(orth) | ~np.isfinite(det))[0]
    if bad.size:
        i = int(bad[0])
        ln = line_numbers[i] if line_numbers is not None else i + 1
        what = ("a reflection (det -1)" if det[i] < 0 else f"not orthonormal (max |R^T R - I| = {orth[i]:.3g}, "
                f"det {det[i]:.6g})")
        raise ValueError(f"{where}:{ln}: rotation block is {what}; a pose must be a rigid motion "
                         f"(tolerance {tol:g}){f', {bad.size} such lines' if bad.size > 1 else ''}")


def parse_kitti_poses(path: PathLike, lines: Iterable[str], comments: bool = False
                      ) -> tuple[np.ndarray, list[int]]:
    """KITTI pose lines (12 finite numbers: the top 3x4 of a 4x4 matrix) -> ``(N, 4, 4)`` float64 and
    the line number of each pose. Blank lines (and ``#`` comments with ``comments``) are skipped;
    errors name ``path:line``; every rotation block is checked (:func:`check_rotations`)."""
    p = Path(path)
    rows, numbers = [], []
    for lineno, line in enumerate(lines, 1):
        s = line.split()
        if not s or (comments and s[0].startswith("#")):
            continue
        if len(s) != 12:
            raise ValueError(f"{p}:{lineno}: malformed pose line: expected 12 numbers, got {len(s)}")
        try:
            v = [float(x) for x in s]
        except ValueError:
            raise ValueError(f"{p}:{lineno}: malformed pose line: non-numeric value") from None
        if not all(math.isfinite(x) for x in v):
            raise ValueError(f"{p}:{lineno}: malformed pose line: NaN or inf")
        rows.append(v)
        numbers.append(lineno)
    if not rows:
        raise ValueError(f"{p}: pose file is empty")
    n = len(rows)
    T = np.tile(np.eye(4), (n, 1, 1))
    T[:, :3, :4] = np.asarray(rows).reshape(n, 3, 4)
    check_rotations(T[:, :3, :3], p, numbers)
    return T, numbers


@functools.lru_cache(maxsize=128)
def _read_poses_cached(path: str, _stamp: tuple[int, int]) -> np.ndarray:
    p = Path(path)
    _require(p, "pose file")
    return parse_kitti_poses(p, text_lines(p, "pose file"))[0]


def read_poses_file(path: PathLike) -> np.ndarray:
    """KITTI pose file -> ``(N, 4, 4)`` float64 camera-to-world matrices."""
    return _read_poses_cached(str(Path(path)), file_stamp(path)).copy()


def read_oxts_file(path: PathLike) -> np.ndarray:
    """One OXTS packet (30 numbers, KITTI devkit ``dataformat.txt``) -> float64 array."""
    return read_numbers(path, "OXTS file", 30)


def read_velodyne(path: PathLike) -> np.ndarray:
    """Velodyne scan -> ``(N, 4)`` float32 (x, y, z, reflectance) in the velodyne frame."""
    p = Path(path)
    _require(p, "velodyne scan")
    size = p.stat().st_size
    if size % 16:
        raise ValueError(f"{p}: velodyne file size {size} bytes is not a multiple of 16 (N x 4 float32)")
    if size == 0:
        raise ValueError(f"{p}: velodyne file is empty (no points)")
    raw = np.fromfile(p, dtype=np.float32).reshape(-1, 4)
    if not np.all(np.isfinite(raw)):
        raise ValueError(f"{p}: velodyne file holds NaN or inf (not an N x 4 float32 scan?)")
    return raw


def _read_time_lines(path: str, what: str, parse, expected: str) -> np.ndarray:
    """Non-empty lines of a time file -> float64 seconds; a bad line names the file and line."""
    p = Path(path)
    _require(p, what)
    out = []
    for lineno, line in enumerate(text_lines(p, what), 1):
        s = line.strip()
        if not s:
            continue
        try:
            t = parse(s)
        except (ValueError, OverflowError):
            raise ValueError(f"{p}:{lineno}: malformed time {s[:60]!r} (expected {expected})") from None
        if not math.isfinite(t):
            raise ValueError(f"{p}:{lineno}: malformed time {s[:60]!r}: NaN or inf")
        out.append(t)
    if not out:
        raise ValueError(f"{p}: {what} is empty")
    return np.asarray(out, dtype=np.float64)


def _parse_kitti_timestamp(s: str) -> float:
    date, clock = s.split(" ")
    hms, frac = (clock.split(".") + ["0"])[:2]
    t = _dt.datetime.strptime(f"{date} {hms}", "%Y-%m-%d %H:%M:%S").replace(tzinfo=_dt.timezone.utc)
    return t.timestamp() + float("0." + frac)


@functools.lru_cache(maxsize=256)
def _read_kitti_ts_cached(path: str, _stamp: tuple[int, int]) -> np.ndarray:
    return _read_time_lines(path, "timestamps file", _parse_kitti_timestamp, "'YYYY-MM-DD HH:MM:SS.fffffffff'")


def read_kitti_timestamps(path: PathLike) -> np.ndarray:
    """KITTI raw ``timestamps.txt`` -> seconds (float64, UTC epoch)."""
    return _read_kitti_ts_cached(str(Path(path)), file_stamp(path)).copy()


@functools.lru_cache(maxsize=64)
def _read_seconds_cached(path: str, _stamp: tuple[int, int]) -> np.ndarray:
    return _read_time_lines(path, "times file", float, "seconds")


def read_seconds_file(path: PathLike) -> np.ndarray:
    """KITTI odometry ``times.txt`` (one float of seconds per line)."""
    return _read_seconds_cached(str(Path(path)), file_stamp(path)).copy()


def read_split_file(path: PathLike, min_fields: int = 1, max_fields: int = 3,
                    form: str | None = None) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(line_number, fields)`` of a Monodepth2-style split file, skipping blank lines.

    ``form`` (e.g. ``"folder frame side"``) is quoted in the error for a line with the wrong
    number of fields."""
    p = Path(path)
    _require(p, "split file")
    for lineno, line in enumerate(text_lines(p, "split file"), 1):
        fields = line.split()
        if not fields:
            continue
        if not (min_fields <= len(fields) <= max_fields):
            n = f"{min_fields}" if min_fields == max_fields else f"{min_fields}..{max_fields}"
            shape = f" {form!r}" if form else ""
            raise ValueError(f"{p}:{lineno}: expected {n} fields{shape}, got {len(fields)}: {line.strip()[:120]!r}")
        yield lineno, fields


def read_cam_txt(path: PathLike) -> np.ndarray:
    """SfMLearner/ManyDepth Cityscapes ``_cam.txt``: ``fx,0,cx,0,fy,cy,0,0,1`` -> 3x3 pixels."""
    p = Path(path)
    K = read_numbers(p, "camera file", 9, commas=True).reshape(3, 3)
    if K[0, 0] <= 0 or K[1, 1] <= 0:
        raise ValueError(f"{p}: malformed camera file: focal lengths fx={K[0, 0]:g}, fy={K[1, 1]:g} must be > 0")
    return K

