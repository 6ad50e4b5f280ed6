"""``sa4depth prepare``: check a dataset, optionally fetch what is missing, export the GT.

Order of work (:func:`prepare`): check the layout; with ``download=True`` fetch every source of
every missing part that has a direct URL (split lists into the splits directory, archives into
``archive_dir`` then extracted under the root), extract login-only archives the user has put in
``archive_dir`` by hand, and check again; with ``export_gt=True`` write the evaluation
``gt_depths.npz`` files through :func:`sa4depth.data.export_gt_depths` -- only once every other
part is complete, so no GT is ever exported from partial data. The returned report is the final
check; the caller exits non-zero unless it is complete.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from .download import download, extract
from .layout import GT_SPLITS, LayoutReport, check_dataset
from .sources import REMAPS, Source

__all__ = ["prepare", "fetch_sources", "export_gt"]


def _unique_sources(report: LayoutReport) -> list[Source]:
    seen, out = set(), []
    for part in report.missing:
        for s in part.sources:
            if s.name not in seen:
                seen.add(s.name)
                out.append(s)
    return out


def fetch_sources(sources: list[Source], root: Path, splits_dir: Path | None, archive_dir: Path, *,
                  keep_archives: bool = False, progress: bool = True,
                  log: Callable[[str], None] = print) -> list[str]:
    """Download / extract ``sources``; return the lines to report for sources that need a person."""
    pending: list[str] = []
    for s in sources:
        if s.kind == "file":
            if splits_dir is None or not s.dest or not s.url:
                raise ValueError(f"source {s.name}: a split-list file needs a url, a dest and a splits directory")
            log(f"download {s.url} -> {splits_dir / s.dest}")
            download(s.url, splits_dir / s.dest, sha256=s.sha256, md5=s.md5, progress=progress)
        elif s.kind == "archive":
            arc = archive_dir / s.name
            if not arc.is_file():
                if not s.url:
                    pending.append(f"{s.name}: no direct download ({'login required, ' if s.login else ''}"
                                   f"{s.page}); put it at {arc} and run prepare again")
                    continue
                log(f"download {s.url} -> {arc}")
                download(s.url, arc, sha256=s.sha256, md5=s.md5, progress=progress)
            log(f"extract {arc} -> {root}")
            remap = REMAPS[s.remap] if s.remap else None
            n = extract(arc, root, strip_prefixes=s.strip_prefixes, remap=remap, progress=progress)
            log(f"  {n} files")
            if not keep_archives:
                arc.unlink()
        elif s.kind == "manual":
            where = s.url or s.page or ""
            pending.append(f"{s.name}: manual step ({where}) - {s.note}")
        # derived sources are handled by export_gt
    return pending


def export_gt(dataset: str, root: Path, splits_dir: Path, splits: list[str], img_ext: str | None,
              log: Callable[[str], None] = print) -> list[Path]:
    """Write ``<splits_dir>/<split>/gt_depths.npz`` for ``splits`` with the loaders' exporter."""
    from sa4depth.config import load_config
    from sa4depth.data import export_gt_depths

    ov = {"data.dataset": dataset, "data.roots": {dataset: str(root)}, "data.splits_dir": str(splits_dir)}
    if img_ext:
        ov["data.img_ext"] = img_ext
    cfg = load_config(data="real", scale=None, overrides=ov)
    out = []
    for split in splits:
        path = splits_dir / split / "gt_depths.npz"
        log(f"export GT depths of {split} -> {path}")
        out.append(export_gt_depths(cfg, split, path))
    return out


def prepare(dataset: str, root: str | os.PathLike, splits_dir: str | os.PathLike | None = None, *,
            download_missing: bool = False, archive_dir: str | os.PathLike | None = None,
            keep_archives: bool = False, export: bool = False, check_counts: bool = True,
            img_ext: str | None = None, sequences: list[str] | None = None, to_jpeg: bool = False,
            nyu_mat: str | os.PathLike | None = None, nyu_splits_mat: str | os.PathLike | None = None,
            progress: bool = True, log: Callable[[str], None] = print) -> tuple[LayoutReport, list[str]]:
    """Check (and with the flags, complete) ``dataset``; return (final report, manual steps left).

    ``to_jpeg`` (KITTI raw / odometry): convert the camera PNGs to JPEG as Monodepth2 does
    (:func:`.convert.png_to_jpeg`) before checking, which then expects ``.jpg`` images.
    ``nyu_mat`` + ``nyu_splits_mat`` (NYUv2): first write the 654 labelled test images from
    ``nyu_depth_v2_labeled.mat`` / ``splits.mat`` (:func:`.nyu_convert.convert_nyu_labeled`).
    """
    root = Path(root)
    splits_dir = Path(splits_dir) if splits_dir is not None else None
    if (nyu_mat is None) != (nyu_splits_mat is None):
        raise ValueError("--convert-mat and --splits-mat go together (nyu_depth_v2_labeled.mat and splits.mat)")
    if nyu_mat is not None:
        if dataset != "nyu":
            raise ValueError(f"--convert-mat applies to nyu, not {dataset!r}")
        from .nyu_convert import convert_nyu_labeled

        convert_nyu_labeled(nyu_mat, nyu_splits_mat, root, splits_dir, progress=progress, log=log)
    if to_jpeg:
        from .convert import JPEG_PATTERNS, png_to_jpeg

        if dataset not in JPEG_PATTERNS:
            raise ValueError(f"--to-jpeg applies to kitti and kitti_odom, not {dataset!r}")
        if img_ext not in (None, ".jpg"):
            raise ValueError(f"--to-jpeg writes .jpg images; --img-ext {img_ext} contradicts it")
        img_ext = ".jpg"

    def convert() -> None:
        # before every check: PNG images that are present must not look missing
        if to_jpeg:
            n = png_to_jpeg(root, JPEG_PATTERNS[dataset], progress=progress)
            log(f"converted {n} camera PNGs to JPEG (quality 92, 4:2:0, as Monodepth2)")

    convert()
    kw = {"check_counts": check_counts}
    if dataset == "kitti":
        kw["img_ext"] = img_ext
    if dataset == "kitti_odom" and sequences:
        kw["sequences"] = list(sequences)
    report = check_dataset(dataset, root, splits_dir, **kw)
    pending: list[str] = []
    if download_missing and not report.complete:
        arc_dir = Path(archive_dir) if archive_dir is not None else root / "_archives"
        sources = [s for s in _unique_sources(report) if s.kind != "derived"]
        # split lists first: the drives to check (and fetch) follow from them
        sources.sort(key=lambda s: s.kind != "file")
        pending = fetch_sources(sources, root, splits_dir, arc_dir, keep_archives=keep_archives,
                                progress=progress, log=log)
        convert()
        report = check_dataset(dataset, root, splits_dir, **kw)
        if dataset == "kitti" and not report.complete:
            # drives named by freshly downloaded split lists: one more round
            more = [s for s in _unique_sources(report) if s.kind == "archive" and s.url]
            if more:
                pending += fetch_sources(more, root, splits_dir, arc_dir, keep_archives=keep_archives,
                                         progress=progress, log=log)
                convert()
                report = check_dataset(dataset, root, splits_dir, **kw)
    gt_missing = [p.derived_split for p in report.missing if p.derived_split]
    others_missing = [p for p in report.missing if not p.derived_split]
    if export and gt_missing:
        if others_missing:
            pending.append(f"--export-gt skipped: {len(others_missing)} other parts are missing "
                           "(ground truth is never exported from partial data)")
        else:
            ext = report.info.get("image extension") if dataset == "kitti" else None
            export_gt(dataset, root, splits_dir, [s for s in GT_SPLITS.get(dataset, ()) if s in gt_missing], ext,
                      log=log)
            report = check_dataset(dataset, root, splits_dir, **kw)
    return report, pending
