"""NYUv2 labelled test set: ``nyu_depth_v2_labeled.mat`` + ``splits.mat`` -> the PNG layout.

Sources of the formats (NYU Depth V2 page, https://cs.nyu.edu/~silberman/datasets/nyu_depth_v2.html,
and the toolbox's README):

- ``nyu_depth_v2_labeled.mat`` is a MATLAB v7.3 file, i.e. HDF5. MATLAB stores arrays
  column-major, so h5py sees every array with its axes reversed: ``images`` (MATLAB
  480x640x3x1449, uint8) reads as ``(1449, 3, 640, 480)`` = (N, C, W, H) and ``depths``
  (480x640x1449, float metres, in-painted) as ``(1449, 640, 480)`` = (N, W, H). Image ``i``
  (0-based) is ``images[i].transpose(2, 1, 0)`` -> (H, W, 3) and its depth ``depths[i].T``.
- ``splits.mat`` is a MATLAB v5 file with ``trainNdxs`` (795) and ``testNdxs`` (654),
  **1-based** indices into the 1449 labelled images.

Output (docs/DATA_LAYOUTS.md): ``<root>/test/<k:05d>_rgb.png`` (8-bit RGB, 640x480) and
``<root>/test/<k:05d>_depth.png`` (uint16, ``metres * 256``, 0 = invalid), where ``k`` is the
position in ``testNdxs`` (ours: ``00000`` is the first test image, ``00653`` the last), and
``<splits_dir>/nyu/test_files.txt`` listing the ids. When ``<root>/intrinsics.txt`` does not
exist it is written with the toolbox's colour-camera intrinsics at 640x480 (``fx 518.857901
fy 519.469611 cx 325.582449 cy 253.736166``, ``camera_params.m``); an existing one is kept.
Every file is written to ``.tmp`` then renamed, and the split list last, so an interrupted run
never leaves a split list that points at missing images.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from sa4depth.files import atomic_open, write_text_atomic

__all__ = ["convert_nyu_labeled", "read_nyu_test_indices", "NYU_TOOLBOX_INTRINSICS"]

# NYU toolbox camera_params.m: RGB intrinsics (pixels at 640 x 480)
NYU_TOOLBOX_INTRINSICS = (5.1885790117450188e02, 5.1946961112127485e02, 3.2558244941119034e02,
                          2.5373616633400465e02)


def read_nyu_test_indices(splits_mat: str | os.PathLike, n_images: int | None = None) -> np.ndarray:
    """0-based test indices from ``splits.mat`` (``testNdxs``, 1-based, MATLAB v5)."""
    import scipy.io

    p = Path(splits_mat)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: NYU splits.mat not found")
    try:
        m = scipy.io.loadmat(str(p))
    except (ValueError, OSError, TypeError, RuntimeError) as e:  # v7.3 files raise a RuntimeError subclass
        raise ValueError(f"{p}: not a readable MATLAB v5 .mat file ({e})") from None
    if "testNdxs" not in m:
        have = ", ".join(k for k in m if not k.startswith("__"))
        raise ValueError(f"{p}: key 'testNdxs' missing (have: {have or 'nothing'})")
    raw = np.asarray(m["testNdxs"]).reshape(-1)
    if raw.size == 0 or not np.all(np.isfinite(raw.astype(np.float64))) or np.any(raw != np.round(raw)):
        raise ValueError(f"{p}: testNdxs must be a non-empty list of integers")
    idx = raw.astype(np.int64) - 1
    if idx.min() < 0:
        raise ValueError(f"{p}: testNdxs contains {int(raw.min())}; indices are 1-based (>= 1)")
    if n_images is not None and idx.max() >= n_images:
        raise ValueError(f"{p}: testNdxs contains {int(idx.max()) + 1} but the labelled set has {n_images} images")
    if len(np.unique(idx)) != len(idx):
        raise ValueError(f"{p}: testNdxs contains duplicate indices")
    return idx


def _save_png(arr: np.ndarray, path: Path) -> None:
    with atomic_open(path, "wb") as fh:
        Image.fromarray(arr).save(fh, format="PNG")


def convert_nyu_labeled(mat_path: str | os.PathLike, splits_mat: str | os.PathLike, out_root: str | os.PathLike,
                        splits_dir: str | os.PathLike | None = None, *, progress: bool = False,
                        log: Callable[[str], None] | None = None) -> list[str]:
    """Write the NYUv2 test images of ``mat_path`` selected by ``splits_mat`` under ``out_root``.

    ``out_root`` is the NYU dataset root (``data.roots.nyu``); the split list goes to
    ``<splits_dir>/nyu/test_files.txt`` (default ``<out_root>/../splits``, where the loaders
    look when ``data.splits_dir`` has none). Returns the ids written. Depths are clipped to
    the uint16 range of ``metres * 256`` (255.99 m, far beyond NYU's 10 m); non-finite or
    non-positive depths become 0 (invalid).
    """
    import h5py

    mat_path, out_root = Path(mat_path), Path(out_root)
    splits_dir = Path(splits_dir) if splits_dir is not None else out_root.parent / "splits"
    if not mat_path.is_file():
        raise FileNotFoundError(f"{mat_path}: nyu_depth_v2_labeled.mat not found")
    try:
        fh = h5py.File(mat_path, "r")
    except OSError as e:
        raise ValueError(f"{mat_path}: not an HDF5 (MATLAB v7.3) file ({e})") from None
    ids: list[str] = []
    with fh:
        for key in ("images", "depths"):
            if key not in fh:
                raise ValueError(f"{mat_path}: dataset {key!r} missing (have: {', '.join(fh.keys())})")
        images, depths = fh["images"], fh["depths"]
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"{mat_path}: 'images' has shape {images.shape}, expected (N, 3, W, H) "
                             "(MATLAB H x W x 3 x N, axes reversed by HDF5)")
        n, _, w, h = images.shape
        if depths.shape != (n, w, h):
            raise ValueError(f"{mat_path}: 'depths' has shape {depths.shape}, expected {(n, w, h)} to match 'images'")
        test = read_nyu_test_indices(splits_mat, n)
        out = out_root / "test"
        out.mkdir(parents=True, exist_ok=True)
        it = enumerate(test)
        if progress:
            from tqdm import tqdm
            it = tqdm(it, total=len(test), desc="NYUv2 test images")
        for k, i in it:
            rgb = np.ascontiguousarray(np.asarray(images[int(i)]).transpose(2, 1, 0))
            if rgb.dtype != np.uint8:
                raise ValueError(f"{mat_path}: 'images' must be uint8, got {rgb.dtype}")
            d = np.asarray(depths[int(i)], dtype=np.float64).T
            d = np.where(np.isfinite(d) & (d > 0), d, 0.0)
            dpng = np.clip(np.round(d * 256.0), 0, 65535).astype(np.uint16)
            ident = f"{k:05d}"
            _save_png(rgb, out / f"{ident}_rgb.png")
            _save_png(dpng, out / f"{ident}_depth.png")
            ids.append(ident)
    intr = out_root / "intrinsics.txt"
    if not intr.is_file():
        write_text_atomic(intr, " ".join(f"{v:.6f}" for v in NYU_TOOLBOX_INTRINSICS) + "\n")
        if log:
            log(f"wrote {intr} (NYU toolbox RGB intrinsics at 640x480)")
    write_text_atomic(splits_dir / "nyu" / "test_files.txt", "".join(f"{i}\n" for i in ids))
    if log:
        log(f"converted {len(ids)} NYUv2 test images -> {out}, list {splits_dir / 'nyu' / 'test_files.txt'}")
    return ids
