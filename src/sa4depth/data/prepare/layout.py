"""Layout checks of the real datasets: every missing part is named with its official source.

Each ``check_<dataset>`` walks the files the loaders of ``sa4depth.data`` will open (the layouts
of ``docs/DATA_LAYOUTS.md``) and returns a :class:`LayoutReport` made of :class:`Part` entries;
a part is missing when any of its files is missing or a count differs from the official one
(the split sizes of Monodepth2 / ManyDepth, the KITTI odometry sequence lengths, the Virtual
KITTI 2 scene lengths). Nothing is read beyond what is needed to decide (file existence, line
counts, the ``keys`` of a ``gt_depths.npz``), so a check of the full KITTI raw set (~120k
images) takes seconds.
"""
from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

from .sources import (CITYSCAPES_SOURCES, CITYSCAPES_SPLIT_COUNTS, CITYSCAPES_SPLIT_SOURCES, CITYSCAPES_TRIPLETS,
                      KITTI_DEPTH_ANNOTATED, KITTI_ODOMETRY_FRAMES, KITTI_ODOMETRY_SOURCES, KITTI_RAW_DRIVES,
                      KITTI_SPLIT_COUNTS, KITTI_SPLIT_SOURCES, NYU_SOURCES, NYU_TEST_COUNT, VKITTI2_FRAMES,
                      VKITTI2_SOURCES, Source, kitti_calib_source, kitti_raw_drive_source)

__all__ = ["Part", "LayoutReport", "DATASETS", "check_dataset", "check_kitti", "check_kitti_odom",
           "check_cityscapes", "check_nyu", "check_vkitti2", "GT_SPLITS"]

MAX_EXAMPLES = 3
# evaluation splits whose gt_depths.npz `prepare --export-gt` writes, per dataset
GT_SPLITS = {"kitti": ("eigen", "eigen_benchmark"), "cityscapes": ("cityscapes",), "nyu": ("nyu",)}


@dataclass
class Part:
    """One required piece of a dataset (a split file, a drive, the improved GT...)."""

    key: str
    description: str
    sources: list[Source]
    problems: list[str] = field(default_factory=list)
    n_missing: int = 0
    derived_split: str | None = None  # a gt_depths.npz that `--export-gt` can make

    @property
    def ok(self) -> bool:
        return not self.problems

    def missing(self, what: str | os.PathLike) -> None:
        """Record one missing file (keeps the first few as examples, counts all)."""
        self.n_missing += 1
        if self.n_missing <= MAX_EXAMPLES:
            self.problems.append(f"missing {what}")
        elif self.n_missing == MAX_EXAMPLES + 1:
            self.problems.append("...")

    def fail(self, message: str) -> None:
        self.problems.append(message)


@dataclass
class LayoutReport:
    dataset: str
    root: Path
    splits_dir: Path | None
    parts: list[Part]
    info: dict = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return all(p.ok for p in self.parts)

    @property
    def missing(self) -> list[Part]:
        return [p for p in self.parts if not p.ok]

    def format(self) -> str:
        """Human-readable report: a header, then every missing part with its sources."""
        n_ok = sum(p.ok for p in self.parts)
        head = f"{self.dataset}: root {self.root}"
        if self.splits_dir is not None:
            head += f", splits {self.splits_dir}"
        lines = [head]
        for k, v in self.info.items():
            lines.append(f"  {k}: {v}")
        lines.append(f"  {n_ok}/{len(self.parts)} parts complete")
        for p in self.missing:
            extra = f" ({p.n_missing} files missing)" if p.n_missing > MAX_EXAMPLES else ""
            lines.append(f"  MISSING {p.key}: {p.description}{extra}")
            for pr in p.problems:
                lines.append(f"      {pr}")
            for s in p.sources:
                lines.append(f"      get: {s.describe()}")
        lines.append(f"{self.dataset}: " + ("COMPLETE" if self.complete else
                                            f"INCOMPLETE ({len(self.missing)} parts missing)"))
        return "\n".join(lines)


# ----------------------------------------------------------------------------- helpers
def _split_lines(path: Path) -> list[tuple[int, list[str]]]:
    out = []
    with open(path) as f:
        for ln, line in enumerate(f, 1):
            fields = line.split()
            if fields:
                out.append((ln, fields))
    return out


def _split_part(splits_dir: Path, rel: str, source: Source, expected: int | None, check_counts: bool,
                what: str) -> tuple[Part, list[tuple[int, list[str]]] | None]:
    """A split-file part; returns the parsed lines when the file exists."""
    p = Part(f"splits/{rel}", what, [source])
    path = splits_dir / rel
    if not path.is_file():
        p.missing(path)
        return p, None
    lines = _split_lines(path)
    if check_counts and expected is not None and len(lines) != expected:
        p.fail(f"{path} has {len(lines)} lines, expected {expected} (the official list; --skip-counts for a subset)")
    if not lines:
        p.fail(f"{path} lists no samples")
    return p, lines


def _gt_part(splits_dir: Path, split: str, n_expected: int | None) -> Part:
    """``<splits_dir>/<split>/gt_depths.npz`` (Monodepth2's location) with one map per test line."""
    path = splits_dir / split / "gt_depths.npz"
    src = Source(name=f"{split}/gt_depths.npz", kind="derived",
                 note=f"made from the files above by `sa4depth prepare ... --export-gt` (sa4depth.data.export_gt_depths)")
    p = Part(f"gt/{split}", f"ground-truth depth maps of the {split} test split", [src], derived_split=split)
    if not path.is_file():
        p.missing(path)
        return p
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
        if "data.npy" not in names:
            p.fail(f"{path}: no array 'data' (not a Monodepth2-style gt_depths.npz)")
        elif n_expected is not None and "keys.npy" in names:
            import numpy as np

            with np.load(path) as npz:
                n = len(npz["keys"])
            if n != n_expected:
                p.fail(f"{path} holds {n} maps but the test split lists {n_expected}; re-export with --export-gt")
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        p.fail(f"{path}: unreadable ({e}); re-export with --export-gt")
    return p


def _count_files(d: Path, suffixes: Sequence[str]) -> int:
    try:
        with os.scandir(d) as it:
            return sum(1 for e in it if e.is_file() and e.name.endswith(tuple(suffixes)))
    except FileNotFoundError:
        return 0


def _count_lines(path: Path) -> int:
    with open(path) as f:
        return sum(1 for line in f if line.strip())


def _detect_ext(candidates: Iterable[Callable[[str], Path]], default: str = ".png") -> str:
    """The image extension (``.png`` / ``.jpg``) the first referenced image exists with."""
    for make in candidates:
        for ext in (".png", ".jpg"):
            if make(ext).is_file():
                return ext
        break
    return default


# ----------------------------------------------------------------------------- KITTI raw
def check_kitti(root: str | os.PathLike, splits_dir: str | os.PathLike, *, img_ext: str | None = None,
                check_counts: bool = True, require_gt: bool = True) -> LayoutReport:
    """KITTI raw with Monodepth2's splits: split lists, calibration, drives, improved GT, GT npz.

    Training lines (eigen_zhou train/val) need frames -1, 0, +1 of their camera (``l`` ->
    ``image_02``, ``r`` -> ``image_03``) and the drive's OXTS packets; eigen test lines need the
    image and the velodyne scan (raw-LiDAR GT, Monodepth2 ``export_gt_depth.py``);
    eigen_benchmark lines need ``proj_depth/groundtruth/image_02`` (improved GT).
    """
    root, splits_dir = Path(root), Path(splits_dir)
    parts: list[Part] = []
    lines: dict[str, list] = {}
    for rel, src in KITTI_SPLIT_SOURCES.items():
        p, ls = _split_part(splits_dir, rel, src, KITTI_SPLIT_COUNTS[rel], check_counts, "Monodepth2 split list")
        parts.append(p)
        if ls is not None:
            lines[rel] = ls

    def parse(rel: str):
        for ln, f in lines.get(rel, []):
            try:
                yield f[0], int(f[1]) if len(f) > 1 else 0, (f[2] if len(f) > 2 else "l")
            except ValueError:
                raise ValueError(f"{splits_dir / rel}:{ln}: frame index {f[1]!r} is not an integer") from None

    train = [*parse("eigen_zhou/train_files.txt"), *parse("eigen_zhou/val_files.txt")]
    eigen = list(parse("eigen/test_files.txt"))
    bench = list(parse("eigen_benchmark/test_files.txt"))
    drives = sorted({x[0] for x in (*train, *eigen, *bench)})
    if not lines:  # no split list yet: require every drive of Monodepth2's archive list
        drives = [f"{d}/{d}_drive_{n:04d}_sync" for d, ns in KITTI_RAW_DRIVES.items() for n in ns]
    if img_ext is None:
        first = (train or eigen or bench or [None])[0]
        img_ext = ".png" if first is None else _detect_ext(
            [lambda e, x=first: root / x[0] / f"image_0{3 if x[2] == 'r' else 2}" / "data" / f"{x[1]:010d}{e}"])

    dates = sorted({d.split("/")[0] for d in drives})
    for date in dates:
        p = Part(f"calib/{date}", f"calibration of {date}", [kitti_calib_source(date)])
        for name in ("calib_cam_to_cam.txt", "calib_velo_to_cam.txt", "calib_imu_to_velo.txt"):
            if not (root / date / name).is_file():
                p.missing(root / date / name)
        parts.append(p)

    drive_parts: dict[str, Part] = {}
    for d in drives:
        name = d.split("/")[-1]
        drive_parts[d] = Part(f"drive/{name}", f"KITTI raw drive {d}", [kitti_raw_drive_source(name)])
        if not (root / d).is_dir():
            drive_parts[d].missing(f"drive folder {root / d}")
    seen: set[Path] = set()

    def need(d: str, path: Path) -> None:
        if path in seen:
            return
        seen.add(path)
        if drive_parts[d].n_missing == 1 and not (root / d).is_dir():
            return  # the whole drive is missing: one message is enough
        if not path.is_file():
            drive_parts[d].missing(path)

    cam = {"l": "image_02", "r": "image_03", "2": "image_02", "3": "image_03"}
    for d, frame, side in train:
        for off in (-1, 0, 1):
            need(d, root / d / cam.get(side, "image_02") / "data" / f"{frame + off:010d}{img_ext}")
    for d in sorted({x[0] for x in train}):
        if (root / d).is_dir() and not (root / d / "oxts" / "data").is_dir():
            drive_parts[d].missing(f"{root / d / 'oxts' / 'data'} (GT motion / velocities)")
    for d, frame, side in eigen:
        need(d, root / d / cam.get(side, "image_02") / "data" / f"{frame:010d}{img_ext}")
        need(d, root / d / "velodyne_points" / "data" / f"{frame:010d}.bin")
    gt = Part("improved_gt", "KITTI depth benchmark ground truth for eigen_benchmark", [KITTI_DEPTH_ANNOTATED])
    for d, frame, side in bench:
        need(d, root / d / cam.get(side, "image_02") / "data" / f"{frame:010d}{img_ext}")
        g = root / d / "proj_depth" / "groundtruth" / "image_02" / f"{frame:010d}.png"
        if (root / d).is_dir() and not g.is_file():
            gt.missing(g)
    if "eigen_benchmark/test_files.txt" not in lines:
        gt.fail("not checkable before splits/eigen_benchmark/test_files.txt is present "
                f"(needs <date>/<drive>_sync/proj_depth/groundtruth/image_02 under {root})")
    parts += list(drive_parts.values())
    parts.append(gt)
    if require_gt:
        parts.append(_gt_part(splits_dir, "eigen", len(eigen) if eigen else None))
        parts.append(_gt_part(splits_dir, "eigen_benchmark", len(bench) if bench else None))
    info = {"image extension": img_ext, "drives": len(drives),
            "lines": ", ".join(f"{k} {len(v)}" for k, v in lines.items()) or "no split lists"}
    return LayoutReport("kitti", root, splits_dir, parts, info)


# ----------------------------------------------------------------------------- KITTI odometry
def check_kitti_odom(root: str | os.PathLike, splits_dir: str | os.PathLike | None = None, *,
                     sequences: Sequence[str] = tuple(f"{i:02d}" for i in range(11)),
                     check_counts: bool = True, **_) -> LayoutReport:
    """KITTI odometry sequences (00-08 train, 09/10 eval): image_2, calib.txt (P2), times.txt,
    poses/NN.txt, with images == times == poses lines (== the official length)."""
    root = Path(root)
    parts: list[Part] = []
    for seq in sequences:
        sd = root / "sequences" / seq
        img = Part(f"sequence/{seq}/image_2", f"left colour images of sequence {seq}", [KITTI_ODOMETRY_SOURCES["color"]])
        cal = Part(f"sequence/{seq}/calib", f"calib.txt and times.txt of sequence {seq}", [KITTI_ODOMETRY_SOURCES["calib"]])
        pos = Part(f"poses/{seq}", f"ground-truth poses of sequence {seq}", [KITTI_ODOMETRY_SOURCES["poses"]])
        n_img = _count_files(sd / "image_2", (".png", ".jpg"))
        if n_img == 0:
            img.missing(sd / "image_2")
        counts = {"images": n_img}
        if not (sd / "calib.txt").is_file():
            cal.missing(sd / "calib.txt")
        elif "P2:" not in (sd / "calib.txt").read_text():
            cal.fail(f"{sd / 'calib.txt'} has no P2 entry")
        if not (sd / "times.txt").is_file():
            cal.missing(sd / "times.txt")
        else:
            counts["times.txt lines"] = _count_lines(sd / "times.txt")
        pf = root / "poses" / f"{seq}.txt"
        if not pf.is_file():
            pos.missing(pf)
        else:
            counts["poses lines"] = _count_lines(pf)
        if n_img and len(set(counts.values())) > 1:
            img.fail(f"sequence {seq}: counts disagree: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        official = KITTI_ODOMETRY_FRAMES.get(seq)
        if check_counts and n_img and official is not None and n_img != official:
            img.fail(f"sequence {seq} has {n_img} images, the benchmark has {official} (--skip-counts for a subset)")
        parts += [img, cal, pos]
    return LayoutReport("kitti_odom", root, None, parts, {"sequences": " ".join(sequences)})


# ----------------------------------------------------------------------------- Cityscapes
def check_cityscapes(root: str | os.PathLike, splits_dir: str | os.PathLike, *, check_counts: bool = True,
                     require_gt: bool = True, **_) -> LayoutReport:
    """Cityscapes as ManyDepth uses it: preprocessed training triplets, raw test frames with
    disparity and camera files, ManyDepth's split lists and the exported GT npz."""
    root, splits_dir = Path(root), Path(splits_dir)
    parts: list[Part] = []
    lines = {}
    for rel, src in CITYSCAPES_SPLIT_SOURCES.items():
        p, ls = _split_part(splits_dir, rel, src, CITYSCAPES_SPLIT_COUNTS[rel], check_counts,
                            "ManyDepth split list")
        parts.append(p)
        if ls is not None:
            lines[rel] = ls
    trip = Part("train_triplets", "preprocessed training triplets (3 frames side by side) + _cam.txt",
                [CITYSCAPES_TRIPLETS, CITYSCAPES_SOURCES["sequence"], CITYSCAPES_SOURCES["camera"]])
    for rel in ("cityscapes/train_files.txt", "cityscapes/val_files.txt"):
        for ln, f in lines.get(rel, []):
            if len(f) != 2:
                raise ValueError(f"{splits_dir / rel}:{ln}: expected '<city> <name>', got {' '.join(f)!r}")
            base = root / "train_triplets" / f[0] / f[1]
            for path in (base.with_name(f[1] + ".jpg"), base.with_name(f[1] + "_cam.txt")):
                if not path.is_file():
                    trip.missing(path)
    if "cityscapes/train_files.txt" not in lines and not (root / "train_triplets").is_dir():
        trip.missing(root / "train_triplets")
    test_parts = {
        "sequence": Part("test/leftImg8bit_sequence", "test frames", [CITYSCAPES_SOURCES["sequence"]]),
        "disparity": Part("test/disparity", "test disparity maps (GT)", [CITYSCAPES_SOURCES["disparity"]]),
        "camera": Part("test/camera", "test camera files (baseline, intrinsics)", [CITYSCAPES_SOURCES["camera"]]),
    }
    test = lines.get("cityscapes/test_files.txt", [])
    for ln, f in test:
        if len(f) != 2:
            raise ValueError(f"{splits_dir / 'cityscapes/test_files.txt'}:{ln}: expected '<city> <name>'")
        city, name = f
        for key, folder, suffix in (("sequence", "leftImg8bit_sequence", "_leftImg8bit.png"),
                                    ("disparity", "disparity", "_disparity.png"), ("camera", "camera", "_camera.json")):
            path = root / folder / "test" / city / f"{name}{suffix}"
            if not path.is_file():
                test_parts[key].missing(path)
    if not test:
        for key, folder in (("sequence", "leftImg8bit_sequence"), ("disparity", "disparity"), ("camera", "camera")):
            if not (root / folder / "test").is_dir():
                test_parts[key].missing(root / folder / "test")
    parts += [trip, *test_parts.values()]
    if require_gt:
        parts.append(_gt_part(splits_dir, "cityscapes", len(test) if test else None))
    info = {"lines": ", ".join(f"{k} {len(v)}" for k, v in lines.items()) or "no split lists"}
    return LayoutReport("cityscapes", root, splits_dir, parts, info)


# ----------------------------------------------------------------------------- NYUv2
def check_nyu(root: str | os.PathLike, splits_dir: str | os.PathLike, *, check_counts: bool = True,
              require_gt: bool = True, **_) -> LayoutReport:
    """NYUv2 as MonoIndoor++: raw training sequences (split ``<scene> <frame>``, frames +-1),
    ``intrinsics.txt`` and the 654 labelled test images as PNG pairs."""
    root, splits_dir = Path(root), Path(splits_dir)
    parts: list[Part] = []
    test_src = [NYU_SOURCES["labeled"], NYU_SOURCES["splits"]]
    tsplit, test = _split_part(splits_dir, "nyu/test_files.txt", NYU_SOURCES["splits"], NYU_TEST_COUNT, check_counts,
                               "the 654 labelled test images (ids)")
    trsplit, train = _split_part(splits_dir, "nyu/train_files.txt", NYU_SOURCES["raw"], None, check_counts,
                                 "training frames '<scene> <frame>'")
    parts += [tsplit, trsplit]
    timg = Part("test/images", "labelled test RGB + depth PNGs", test_src)
    for ln, f in test or []:
        for suffix in ("_rgb.png", "_depth.png"):
            path = root / "test" / f"{f[0]}{suffix}"
            if not path.is_file():
                timg.missing(path)
    intr = Part("intrinsics", "intrinsics.txt (fx fy cx cy in pixels of the stored images)", [NYU_SOURCES["raw"]])
    if not (root / "intrinsics.txt").is_file():
        intr.missing(root / "intrinsics.txt")
    trimg = Part("train/images", "raw training sequences", [NYU_SOURCES["raw"]])
    for ln, f in train or []:
        if len(f) < 2:
            raise ValueError(f"{splits_dir / 'nyu/train_files.txt'}:{ln}: expected '<scene> <frame>'")
        try:
            frame = int(f[1])
        except ValueError:
            raise ValueError(f"{splits_dir / 'nyu/train_files.txt'}:{ln}: frame {f[1]!r} is not an integer") from None
        for off in (-1, 0, 1):
            jpg = root / "train" / f[0] / f"rgb_{frame + off:05d}.jpg"
            if not jpg.is_file() and not jpg.with_suffix(".png").is_file():
                trimg.missing(jpg)
    parts += [timg, intr, trimg]
    if require_gt:
        parts.append(_gt_part(splits_dir, "nyu", len(test) if test else None))
    return LayoutReport("nyu", root, splits_dir, parts,
                        {"lines": f"test {len(test or [])}, train {len(train or [])}"})


# ----------------------------------------------------------------------------- Virtual KITTI 2
def check_vkitti2(root: str | os.PathLike, splits_dir: str | os.PathLike | None = None, *,
                  variations: Sequence[str] = ("clone",), check_counts: bool = True, **_) -> LayoutReport:
    """Virtual KITTI 2 as released: per scene and variation, Camera_0 RGB frames, depth PNGs and
    the text GT (``extrinsic.txt`` rows of camera 0 = one pose per frame)."""
    root = Path(root)
    parts: list[Part] = []
    for scene, official in VKITTI2_FRAMES.items():
        for var in variations:
            base = root / scene / var
            rgb = Part(f"rgb/{scene}/{var}", f"RGB frames of {scene}/{var}", [VKITTI2_SOURCES["rgb"]])
            dep = Part(f"depth/{scene}/{var}", f"depth maps of {scene}/{var}", [VKITTI2_SOURCES["depth"]])
            txt = Part(f"textgt/{scene}/{var}", f"camera poses and intrinsics of {scene}/{var}",
                       [VKITTI2_SOURCES["textgt"]])
            n_rgb = _count_files(base / "frames" / "rgb" / "Camera_0", (".jpg",))
            n_dep = _count_files(base / "frames" / "depth" / "Camera_0", (".png",))
            if not n_rgb:
                rgb.missing(base / "frames" / "rgb" / "Camera_0")
            if not n_dep:
                dep.missing(base / "frames" / "depth" / "Camera_0")
            n_pose = None
            for name in ("extrinsic.txt", "intrinsic.txt"):
                if not (base / name).is_file():
                    txt.missing(base / name)
            if (base / "extrinsic.txt").is_file():
                with open(base / "extrinsic.txt") as f:
                    rows = [line.split() for line in f if line.strip()]
                n_pose = sum(1 for r in rows[1:] if len(r) >= 2 and r[1] == "0")
            counts = {k: v for k, v in (("rgb", n_rgb), ("depth", n_dep), ("camera-0 poses", n_pose)) if v}
            if len(set(counts.values())) > 1:
                rgb.fail(f"{scene}/{var}: counts disagree: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
            if check_counts and n_rgb and n_rgb != official:
                rgb.fail(f"{scene}/{var} has {n_rgb} frames, the release has {official} (--skip-counts for a subset)")
            parts += [rgb, dep, txt]
    return LayoutReport("vkitti2", root, None, parts, {"variations": " ".join(variations)})


DATASETS: dict[str, Callable[..., LayoutReport]] = {
    "kitti": check_kitti, "kitti_odom": check_kitti_odom, "cityscapes": check_cityscapes,
    "nyu": check_nyu, "vkitti2": check_vkitti2,
}


def check_dataset(name: str, root: str | os.PathLike, splits_dir: str | os.PathLike | None = None,
                  **kw) -> LayoutReport:
    """Dispatch to ``check_<name>``; unknown names raise ``ValueError`` listing the valid ones."""
    if name not in DATASETS:
        raise ValueError(f"dataset {name!r} is not one of {', '.join(DATASETS)}")
    if splits_dir is None and name in ("kitti", "cityscapes", "nyu"):
        raise ValueError(f"dataset {name!r} needs a splits directory")
    return DATASETS[name](root, splits_dir, **kw)
