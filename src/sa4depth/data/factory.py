"""Dataset / loader construction from the config, GT export and test-image iteration.

``build_dataset(cfg, split)`` picks the reader from ``cfg.data.dataset``:

==========  ==========================================================================
kitti       :class:`KittiRawDataset` on ``splits/<data.split>/{train,val}_files.txt``;
            test = ``splits/<data.eval_split>/test_files.txt`` (eigen | eigen_benchmark | video)
kitti_odom  :class:`KittiOdomDataset` on ``data.odom_train_sequences`` (train / val = every
            10th triplet) or ``data.odom_test_sequences`` (test)
cityscapes  :class:`CityscapesTripletDataset` (train/val), :class:`CityscapesTestDataset` (test)
nyu         :class:`NyuTrainDataset` (train/val), :class:`NyuTestDataset` (test)
vkitti2     real Virtual KITTI 2 (the root holds ``Scene<NN>/`` folders): :class:`VKitti2Dataset`
            on ``splits/vkitti2/{train,val,test}_files.txt`` (test ignores ``data.eval_split``);
            otherwise (the synthetic driving data, KITTI-raw layout) the KITTI-raw reader with
            GT poses required
==========  ==========================================================================

Split files are looked up in ``cfg.data.splits_dir`` and, if not there, in ``<root>/../splits``
(each synthetic profile writes its own ``splits/`` beside its dataset folder). Where a dataset has
no ``val_files.txt`` (Cityscapes, NYU), ``val`` is every 10th line of ``train_files.txt`` and
``train`` the other lines. Relative roots resolve against the current directory.
"""
from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from sa4depth.files import save_npz_atomic, sha256_file

from .base import MonoDataset
from .cityscapes import (CityscapesTestDataset, CityscapesTripletDataset, load_cityscapes_gt_depth,
                         read_cityscapes_split)
from .io import read_depth_png, read_split_file
from .kitti import KittiOdomDataset, KittiRawDataset, read_kitti_split
from .kitti_geometry import generate_depth_map
from .nyu import NyuTestDataset, NyuTrainDataset, load_nyu_gt_depth
from .vkitti2 import VKitti2Dataset, is_vkitti2_release
from .transforms import pil_to_tensor, resize_pyramid

__all__ = ["build_dataset", "build_loader", "export_gt_depths", "load_test_images", "split_file",
           "dataset_root", "seed_worker", "VAL_EVERY"]

SPLITS = ("train", "val", "test")
VAL_EVERY = 10  # held-out fraction where a dataset ships no validation split


def dataset_root(cfg, name: str | None = None) -> Path:
    name = name or cfg.data.dataset
    roots = cfg.data.roots
    if name not in roots:
        raise ValueError(f"data.roots has no entry for dataset {name!r} (have: {', '.join(sorted(roots))})")
    return Path(os.path.expanduser(str(roots[name])))


def split_file(cfg, split_name: str, file_name: str, root: Path | None = None) -> Path:
    """``<splits_dir>/<split_name>/<file_name>``, else ``<root>/../splits/...``; raises naming both."""
    cands = [Path(os.path.expanduser(str(cfg.data.splits_dir))) / split_name / file_name]
    if root is not None:
        alt = root.parent / "splits" / split_name / file_name
        if os.path.abspath(alt) != os.path.abspath(cands[0]):  # the same place twice: name it once
            cands.append(alt)
    for c in cands:
        if c.is_file():
            return c
    raise FileNotFoundError(f"split file {' or '.join(str(c) for c in cands)} not found "
                            f"(data.splits_dir={cfg.data.splits_dir!r})")


def _common(cfg, split: str, **kw) -> dict:
    is_train = split == "train"
    return dict(height=cfg.data.height, width=cfg.data.width, frame_ids=list(cfg.data.frame_ids),
                num_scales=len(cfg.model.scales), is_train=is_train,
                color_aug=bool(cfg.data.color_aug), flip=bool(cfg.data.flip),
                cache_dir=cfg.data.get("cache_dir"), seed=int(cfg.get("seed", 0)), **kw)


def build_dataset(cfg, split: str, *, load_depth: bool = True, load_lidar: bool = False,
                  eval_split: str | None = None) -> MonoDataset:
    """The dataset for ``split`` in {train, val, test} of ``cfg.data.dataset``.

    ``load_lidar`` adds ``lidar_depth`` (KITTI raw only); ``eval_split`` overrides
    ``cfg.data.eval_split`` for ``test``.
    """
    if split not in SPLITS:
        raise ValueError(f"split {split!r} is not one of {', '.join(SPLITS)}")
    name = cfg.data.dataset
    root = dataset_root(cfg, name)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: data root for dataset {name!r} does not exist "
                                f"(data.roots.{name}; generate it with `sa4depth synth` or point it at real data)")
    if load_lidar and name not in ("kitti", "vkitti2"):
        raise ValueError(f"lidar_depth is only available for KITTI raw, not data.dataset={name!r}")
    common = _common(cfg, split, load_depth=load_depth, load_lidar=load_lidar)
    ev = eval_split or cfg.data.eval_split

    if name == "vkitti2" and is_vkitti2_release(root):
        if load_lidar:
            raise ValueError(f"lidar_depth: Virtual KITTI 2 ({root}) has no LiDAR scans")
        if split == "test":
            common.update(frame_ids=[0], is_train=False)
        return VKitti2Dataset(root, split_file(cfg, "vkitti2", f"{split}_files.txt", root), **common)
    if name in ("kitti", "vkitti2"):
        if split == "test":
            if ev not in ("eigen", "eigen_benchmark", "video"):
                raise ValueError(f"data.eval_split={ev!r} is not a KITTI raw test split (eigen, eigen_benchmark, video)")
            common.update(frame_ids=[0], is_train=False)
            src = {"eigen": "velodyne", "eigen_benchmark": "png", "video": "auto"}[ev]
            return KittiRawDataset(root, split_file(cfg, ev, "test_files.txt", root), img_ext=cfg.data.img_ext,
                                   fixed_K=cfg.data.kitti_fixed_K, depth_source=src, **common)
        return KittiRawDataset(root, split_file(cfg, cfg.data.split, f"{split}_files.txt", root),
                               img_ext=cfg.data.img_ext, fixed_K=cfg.data.kitti_fixed_K,
                               require_poses=(name == "vkitti2"), **common)
    if name == "kitti_odom":
        seqs = cfg.data.odom_test_sequences if split == "test" else cfg.data.odom_train_sequences
        if split == "test":
            common.update(is_train=False)
        return KittiOdomDataset(root, list(seqs), img_ext=cfg.data.img_ext, subset=split, val_every=VAL_EVERY, **common)
    if name == "cityscapes":
        if split == "test":
            common.pop("frame_ids"), common.pop("is_train")
            return CityscapesTestDataset(root, split_file(cfg, "cityscapes", "test_files.txt", root), **common)
        sf, filt = _train_val_file(cfg, "cityscapes", split, root)
        return CityscapesTripletDataset(root, sf, line_filter=filt, **common)
    if name == "nyu":
        if split == "test":
            common.pop("frame_ids"), common.pop("is_train")
            return NyuTestDataset(root, split_file(cfg, "nyu", "test_files.txt", root), **common)
        sf, filt = _train_val_file(cfg, "nyu", split, root)
        return NyuTrainDataset(root, sf, line_filter=filt, **common)
    raise ValueError(f"data.dataset={name!r} is not supported")


def _train_val_file(cfg, split_name: str, split: str, root: Path):
    """(split file, line filter): the split's own file, or held-out lines of train_files.txt."""
    try:
        val = split_file(cfg, split_name, "val_files.txt", root)
    except FileNotFoundError:
        val = None
    if val is not None:
        return (val if split == "val" else split_file(cfg, split_name, "train_files.txt", root)), None
    sf = split_file(cfg, split_name, "train_files.txt", root)
    return sf, (_HeldOut(True) if split == "val" else _HeldOut(False))


class _HeldOut:
    """Picklable line filter: every ``VAL_EVERY``-th line is validation."""

    def __init__(self, val: bool):
        self.val = val

    def __call__(self, k: int) -> bool:
        return (k % VAL_EVERY == 0) == self.val


def seed_worker(worker_id: int) -> None:
    """Seed numpy / random in a DataLoader worker from torch's per-worker seed (PyTorch
    reproducibility notes). The sample augmentations themselves use per-index generators."""
    s = torch.initial_seed() % 2 ** 32
    np.random.seed(s)
    random.seed(s)


def build_loader(cfg, split: str, shuffle: bool | None = None, distributed: bool = False,
                 seed: int | None = None, batch_size: int | None = None, num_workers: int | None = None,
                 dataset: MonoDataset | None = None, **dataset_kw) -> torch.utils.data.DataLoader:
    """DataLoader over :func:`build_dataset` (Monodepth2: shuffle + ``drop_last`` for train).

    ``distributed`` uses a ``DistributedSampler`` (call ``loader.sampler.set_epoch(e)`` and
    ``loader.dataset.set_epoch(e)`` each epoch). ``seed`` defaults to ``cfg.seed``.
    """
    ds = dataset if dataset is not None else build_dataset(cfg, split, **dataset_kw)
    seed = int(cfg.get("seed", 0)) if seed is None else int(seed)
    ds.seed = seed
    is_train = split == "train"
    shuffle = is_train if shuffle is None else bool(shuffle)
    bs = int(batch_size or (cfg.train.batch_size if split != "test" else cfg.eval.batch_size))
    nw = int(cfg.data.num_workers if num_workers is None else num_workers)
    g = torch.Generator()
    g.manual_seed(seed)
    sampler = None
    if distributed:
        sampler = torch.utils.data.distributed.DistributedSampler(ds, shuffle=shuffle, seed=seed, drop_last=is_train)
        shuffle = False
    if is_train and len(ds) < bs:
        raise ValueError(f"{split} split has {len(ds)} samples, fewer than batch size {bs} (drop_last would "
                         "give no batch); lower train.batch_size or generate more data")
    return torch.utils.data.DataLoader(ds, batch_size=bs, shuffle=shuffle, sampler=sampler, num_workers=nw,
                                       pin_memory=torch.cuda.is_available(), drop_last=is_train,
                                       worker_init_fn=seed_worker, generator=g,
                                       persistent_workers=False)


# ------------------------------------------------------------------------- evaluation helpers
def _eval_dataset_name(split_name: str) -> str:
    if split_name in ("eigen", "eigen_benchmark", "video"):
        return "kitti"
    if split_name in ("cityscapes", "nyu"):
        return split_name
    raise ValueError(f"evaluation split {split_name!r} is not one of eigen, eigen_benchmark, video, cityscapes, nyu")


def iter_gt_depths(cfg, split_name: str) -> Iterator[tuple[str, np.ndarray]]:
    """(key, GT depth HxW float32 metres) for each test line of ``split_name``."""
    ds_name = _eval_dataset_name(split_name)
    root = dataset_root(cfg, ds_name if ds_name != "kitti" else "kitti")
    if ds_name == "kitti":
        sf = split_file(cfg, split_name, "test_files.txt", root)
        for folder, frame, side in read_kitti_split(sf, root, cfg.data.img_ext, [0]):
            cam = 3 if side == "r" else 2
            if split_name == "eigen_benchmark":
                p = root / folder / "proj_depth" / "groundtruth" / f"image_0{cam}" / f"{frame:010d}.png"
                yield f"{folder} {frame} {side}", read_depth_png(p)
            else:  # Monodepth2 export_gt_depths: velodyne x as depth (vel_depth=True), camera 2
                velo = root / folder / "velodyne_points" / "data" / f"{frame:010d}.bin"
                yield f"{folder} {frame} {side}", generate_depth_map(root / folder.split("/")[0], velo, 2,
                                                                     vel_depth=True)
    elif ds_name == "cityscapes":
        sf = split_file(cfg, "cityscapes", "test_files.txt", root)
        for _, city, name in read_cityscapes_split(sf):
            yield f"{city} {name}", load_cityscapes_gt_depth(root, city, name)
    else:
        sf = split_file(cfg, "nyu", "test_files.txt", root)
        for _, fields in read_split_file(sf, 1, 1):
            yield fields[0], load_nyu_gt_depth(root, fields[0])


def export_gt_depths(cfg, split_name: str, out_npz: str | os.PathLike) -> Path:
    """Write Monodepth2-style ``gt_depths.npz`` (key ``data``: object array of HxW float32).

    ``eigen``: projected velodyne (Monodepth2 ``export_gt_depths.py``); ``eigen_benchmark``:
    ``proj_depth/groundtruth`` PNGs; ``cityscapes``: disparity -> depth; ``nyu``: depth PNGs.
    Also stores ``keys`` (the split lines) and ``split_sha256`` (of the split's test_files.txt),
    so a cached file is checked against the split it was exported from. Written atomically.
    """
    sf = split_file(cfg, split_name, "test_files.txt", dataset_root(cfg, _eval_dataset_name(split_name)))
    split_sha = sha256_file(sf)
    keys, depths = [], []
    for k, d in iter_gt_depths(cfg, split_name):
        keys.append(k)
        depths.append(d.astype(np.float32))
    if not depths:
        raise ValueError(f"split {split_name!r}: no test images")
    arr = np.empty(len(depths), dtype=object)
    for i, d in enumerate(depths):
        arr[i] = d
    return save_npz_atomic(out_npz, data=arr, keys=np.array(keys), split_sha256=np.array(split_sha))


def load_test_images(cfg, split_name: str | None = None, resize: bool = True) -> Iterator[tuple[torch.Tensor, str]]:
    """Yield (image float32 3 x H x W in [0, 1], key) for the test lines of ``split_name``
    (default ``cfg.data.eval_split``), resized with Lanczos to (data.height, data.width) as
    Monodepth2's evaluation does. Cityscapes images are cropped to their top 75 % first
    (ManyDepth), so only the GT still needs the crop."""
    split_name = split_name or cfg.data.eval_split
    ds_name = _eval_dataset_name(split_name)
    overrides = dict(cfg.to_dict())
    overrides["data"] = dict(overrides["data"], dataset=ds_name, cache_dir=None)
    from ..config import Config
    c = Config(overrides)
    ds = build_dataset(c, "test", load_depth=False, eval_split=split_name if ds_name == "kitti" else None)
    for i in range(len(ds)):
        info = ds.describe(i)
        im = ds.load_frame(info.frames[0])
        if resize:
            im = resize_pyramid(im, ds.height, ds.width, 1)[0]
        yield pil_to_tensor(im), info.key
