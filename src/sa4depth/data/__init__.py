"""Datasets for the on-disk layouts of ``docs/DATA_LAYOUTS.md`` (synthetic and real data alike).

Public API (imported lazily so that ``sa4depth.data.synth`` does not pull in torch):
:func:`build_dataset`, :func:`build_loader`, :func:`export_gt_depths`, :func:`load_test_images`,
:func:`read_odometry_poses` and the reader classes.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "build_dataset": "factory", "build_loader": "factory", "export_gt_depths": "factory",
    "load_test_images": "factory", "iter_gt_depths": "factory", "split_file": "factory",
    "dataset_root": "factory",
    "MonoDataset": "base", "SampleInfo": "base", "FrameRef": "base",
    "KittiRawDataset": "kitti", "KittiOdomDataset": "kitti", "read_odometry_poses": "kitti",
    "odometry_sequences": "kitti",
    "CityscapesTripletDataset": "cityscapes", "CityscapesTestDataset": "cityscapes",
    "load_cityscapes_gt_depth": "cityscapes",
    "NyuTrainDataset": "nyu", "NyuTestDataset": "nyu", "load_nyu_gt_depth": "nyu",
    "generate_depth_map": "kitti_geometry", "MONODEPTH2_KITTI_K": "kitti_geometry",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'sa4depth.data' has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{mod}"), name)


def __dir__():
    return sorted(list(globals()) + __all__)
