"""Monodepth2's optional PNG -> JPEG conversion of the KITTI camera images.

Monodepth2 (README, "KITTI training data") trains on JPEGs made from KITTI's PNGs with
ImageMagick ``convert -quality 92 -sampling-factor 2x2,1x1,1x1`` (4:2:0 chroma subsampling),
deleting the PNGs. :func:`png_to_jpeg` does the same with Pillow's libjpeg encoder at the same
quality and subsampling -- equivalent settings, not guaranteed bit-identical to ImageMagick's
output. Only camera images are touched (``image_0[23]/data`` of KITTI raw, ``image_[23]`` of
odometry): the 16-bit ground-truth PNGs of ``proj_depth`` must stay PNG.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

from sa4depth.files import atomic_path

__all__ = ["png_to_jpeg", "JPEG_PATTERNS", "MONODEPTH2_JPEG_QUALITY"]

MONODEPTH2_JPEG_QUALITY = 92
JPEG_PATTERNS = {
    "kitti": ("*/*_sync/image_02/data/*.png", "*/*_sync/image_03/data/*.png"),
    "kitti_odom": ("sequences/*/image_2/*.png", "sequences/*/image_3/*.png"),
}


def _convert_one(png: Path, quality: int) -> None:
    from PIL import Image

    jpg = png.with_suffix(".jpg")
    with atomic_path(jpg) as tmp, Image.open(png) as im:
        if im.mode != "RGB":
            raise ValueError(f"{png}: expected an 8-bit RGB camera image, got mode {im.mode}")
        im.save(tmp, format="JPEG", quality=quality, subsampling=2)  # 2 = 4:2:0 (2x2,1x1,1x1)
    png.unlink()


def png_to_jpeg(root: str | os.PathLike, patterns: Sequence[str], *, quality: int = MONODEPTH2_JPEG_QUALITY,
                workers: int = 8, progress: bool = True) -> int:
    """Convert the PNGs matching ``patterns`` under ``root`` to JPEG (PNG deleted); return the count."""
    from tqdm import tqdm

    root = Path(root)
    files = sorted({p for pat in patterns for p in root.glob(pat)})
    if not files:
        return 0
    with tqdm(total=len(files), desc="png->jpg", unit="img", disable=not progress, leave=False) as bar:
        if workers <= 1:
            for p in files:
                _convert_one(p, quality)
                bar.update()
        else:
            with ThreadPoolExecutor(workers) as ex:
                for _ in ex.map(lambda p: _convert_one(p, quality), files):
                    bar.update()
    return len(files)
