"""Resumable HTTP downloads with checksums, and safe archive extraction (standard library only).

:func:`download` fetches ``url`` into ``dest`` through ``dest.part``: an interrupted transfer is
resumed with an HTTP ``Range: bytes=<n>-`` request (RFC 9110 Sec. 14); a server that ignores the
range (``200`` instead of ``206``) makes the transfer restart from zero. The finished file is
checked against a SHA-256 or MD5 digest when one is known, and only then renamed to ``dest``
(``os.replace``), so ``dest`` never holds a partial or corrupt file. Progress is a tqdm bar.

:func:`extract` unpacks ``.zip`` / ``.tar`` / ``.tar.gz`` archives member by member, refusing
members that would land outside the destination (absolute paths, ``..``, links), optionally
stripping leading folders (e.g. KITTI odometry's ``dataset/``) or remapping member paths (the
KITTI depth benchmark's ``train|val/<drive>/proj_depth`` into KITTI raw's
``<date>/<drive>/proj_depth``, as Monodepth2's ``export_gt_depth.py`` expects).
"""
from __future__ import annotations

import http.client
import os
import shutil
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable

from sa4depth.files import atomic_open, file_digest

__all__ = ["DownloadError", "ChecksumError", "download", "extract"]

USER_AGENT = "sa4depth-prepare/0.1 (+urllib)"


class DownloadError(OSError):
    """A transfer that could not be completed; the message names the URL and the file."""


class ChecksumError(ValueError):
    """A downloaded file whose digest differs from the published one."""


def _verify(path: Path, url: str, sha256: str | None, md5: str | None) -> None:
    for algo, want in (("sha256", sha256), ("md5", md5)):
        if want:
            got = file_digest(path, algo)
            if got.lower() != want.lower():
                raise ChecksumError(f"{path}: {algo} mismatch for {url}: expected {want.lower()}, got {got} "
                                    "(the corrupt download was removed; run again to fetch it anew)")


def _progress(total: int | None, initial: int, name: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024, desc=name,
                disable=not enabled, leave=False)


def download(url: str, dest: str | os.PathLike, *, sha256: str | None = None, md5: str | None = None,
             progress: bool = True, timeout: float = 60.0, retries: int = 3, chunk_size: int = 1 << 20,
             retry_wait: float = 2.0) -> Path:
    """Download ``url`` to ``dest`` (resumable through ``dest.part``); return ``dest``.

    An existing ``dest`` is kept when it passes the checksum (or when no checksum is known). A
    connection that drops mid-way is retried ``retries`` times, each time resuming from the bytes
    already in ``dest.part``. Raises :class:`ChecksumError` (file removed) on a digest mismatch
    and :class:`DownloadError` naming the URL when the server refuses or keeps failing.
    """
    dest = Path(dest)
    if dest.is_file():
        _verify(dest, url, sha256, md5)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    last_error: Exception | None = None
    for attempt in range(retries + 1):
        try:
            _transfer(url, part, timeout=timeout, chunk_size=chunk_size, progress=progress, name=dest.name)
            break
        except urllib.error.HTTPError as e:
            if e.code in (408, 429) or e.code >= 500:
                last_error = e
            else:
                raise DownloadError(f"{url}: HTTP {e.code} {e.reason} (while fetching {dest})") from None
        except (urllib.error.URLError, ConnectionError, TimeoutError, http.client.IncompleteRead,
                http.client.RemoteDisconnected) as e:
            last_error = e
        if attempt < retries:
            time.sleep(retry_wait * (attempt + 1))
    else:
        raise DownloadError(f"{url}: download failed after {retries + 1} attempts ({last_error}); "
                            f"{part} keeps the {part.stat().st_size if part.exists() else 0} bytes received, "
                            "run again to resume") from None
    try:
        _verify(part, url, sha256, md5)
    except ChecksumError:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, dest)
    return dest


def _transfer(url: str, part: Path, *, timeout: float, chunk_size: int, progress: bool, name: str) -> None:
    """Append the missing bytes of ``url`` to ``part`` (Range request when ``part`` is non-empty)."""
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": USER_AGENT}
    if have:
        headers["Range"] = f"bytes={have}-"
    req = urllib.request.Request(url, headers=headers)
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:
            # range not satisfiable: the .part is already complete (or longer than the file)
            total = _content_range_total(e.headers.get("Content-Range"))
            if total is not None and total == have:
                return
            part.unlink()  # inconsistent partial file: start over on the next attempt
            raise ConnectionError(f"{url}: server rejected resume at byte {have}; restarting") from None
        raise
    with resp:
        status = getattr(resp, "status", 200)
        if have and status == 200:
            have = 0  # server ignored the Range header: restart from scratch
            mode = "wb"
        elif status == 206:
            start = _content_range_start(resp.headers.get("Content-Range"))
            if start is not None and start != have:
                raise DownloadError(f"{url}: server resumed at byte {start}, expected {have}")
            mode = "ab"
        else:
            mode = "wb"
        length = resp.headers.get("Content-Length")
        total = have + int(length) if length is not None and length.isdigit() else None
        received = 0
        with open(part, mode) as f, _progress(total, have, name, progress) as bar:
            while True:
                block = resp.read(chunk_size)
                if not block:
                    break
                f.write(block)
                received += len(block)
                bar.update(len(block))
        if length is not None and length.isdigit() and received != int(length):
            raise http.client.IncompleteRead(b"", int(length) - received)


def _content_range_start(value: str | None) -> int | None:
    # "bytes 100-199/200"
    if not value or not value.startswith("bytes "):
        return None
    try:
        return int(value[6:].split("-", 1)[0])
    except ValueError:
        return None


def _content_range_total(value: str | None) -> int | None:
    # "bytes */200"
    if not value or "/" not in value:
        return None
    tail = value.rsplit("/", 1)[1]
    return int(tail) if tail.isdigit() else None


# ----------------------------------------------------------------------------- extraction
def _safe_target(dest: Path, rel: str, archive: Path) -> Path:
    p = PurePosixPath(rel)
    if p.is_absolute() or ".." in p.parts:
        raise ValueError(f"{archive}: member {rel!r} would be written outside {dest}; refusing to extract")
    return dest.joinpath(*p.parts)


def _strip(name: str, prefixes: Iterable[str]) -> str:
    for pre in prefixes:
        pre = pre.rstrip("/") + "/"
        if name.startswith(pre):
            return name[len(pre):]
    return name


def extract(archive: str | os.PathLike, dest: str | os.PathLike, *, strip_prefixes: Iterable[str] = (),
            remap: Callable[[str], str | None] | None = None, progress: bool = True) -> int:
    """Extract the regular files of ``archive`` (zip / tar / tar.gz) under ``dest``; return their count.

    Each member name first loses the first matching entry of ``strip_prefixes``, then goes
    through ``remap`` (``None`` = skip the member). Files are written through a ``.tmp`` name and
    renamed, so an interrupted extraction never leaves a truncated file under its final name.
    """
    from tqdm import tqdm

    archive, dest = Path(archive), Path(dest)
    strip_prefixes = tuple(strip_prefixes)
    dest.mkdir(parents=True, exist_ok=True)

    def target(name: str) -> Path | None:
        rel = _strip(name, strip_prefixes)
        if remap is not None:
            rel = remap(rel)
            if rel is None:
                return None
        return _safe_target(dest, rel, archive) if rel else None

    def write(src, out: Path) -> None:
        with atomic_open(out, "wb") as f:
            shutil.copyfileobj(src, f, 1 << 20)

    count = 0
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            infos = [i for i in z.infolist() if not i.is_dir()]
            for info in tqdm(infos, desc=f"extract {archive.name}", unit="file", disable=not progress, leave=False):
                out = target(info.filename)
                if out is None:
                    continue
                with z.open(info) as src:
                    write(src, out)
                count += 1
        return count
    if tarfile.is_tarfile(archive):
        with tarfile.open(archive) as t:
            for m in tqdm(t, desc=f"extract {archive.name}", unit="file", disable=not progress, leave=False):
                if m.isdir():
                    continue
                if not m.isfile():
                    raise ValueError(f"{archive}: member {m.name!r} is a link or device; refusing to extract")
                out = target(m.name)
                if out is None:
                    continue
                src = t.extractfile(m)
                if src is None:
                    raise ValueError(f"{archive}: cannot read member {m.name!r}")
                with src:
                    write(src, out)
                count += 1
        return count
    raise ValueError(f"{archive}: not a zip or tar archive (cannot extract)")
