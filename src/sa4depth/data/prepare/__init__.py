"""Real-data preparation: layout checks, official sources, a resumable downloader.

``sa4depth prepare {kitti,kitti_odom,cityscapes,nyu,vkitti2} --root DIR`` is built on:

* :mod:`.sources`  -- the official archives, split lists (pinned, with SHA-256) and sizes;
* :mod:`.layout`   -- ``check_<dataset>`` returning a :class:`LayoutReport` of :class:`Part` s;
* :mod:`.download` -- :func:`download` (HTTP range resume, checksum) and :func:`extract`;
* :mod:`.convert`  -- :func:`png_to_jpeg`: Monodepth2's optional PNG -> JPEG conversion;
* :mod:`.runner`   -- :func:`prepare`: check, fetch, re-check, export the GT ``.npz``.

Pure standard library + numpy/tqdm: importing this package does not import torch.
"""
from __future__ import annotations

from .convert import png_to_jpeg
from .download import ChecksumError, DownloadError, download, extract
from .layout import DATASETS, LayoutReport, Part, check_dataset
from .runner import prepare
from .sources import Source, kitti_archive_urls

__all__ = ["ChecksumError", "DownloadError", "download", "extract", "DATASETS", "LayoutReport",
           "Part", "check_dataset", "prepare", "Source", "kitti_archive_urls", "png_to_jpeg"]
