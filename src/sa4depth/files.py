"""Shared file helpers: atomic writes, file hashes, YAML dumps, flattening of nested configs.

Atomic writes go to a temporary file beside the target (``<name>.tmp``; ``<stem>.tmp<suffix>``
with ``keep_suffix`` for writers that infer the format from the extension, e.g. matplotlib;
``<name>.<pid>.tmp`` with ``unique`` where several processes may write the same file) and are
then renamed over it with ``os.replace``: a kill during a write leaves the previous file intact,
never a truncated one. No fsync (left to the OS). A write that raises removes its temporary file.
The parent folder is created unless ``mkdir=False``.

Readers of untrusted files are in :mod:`sa4depth.safeio`. Standard library only at import time:
PyYAML, numpy and torch are imported by the helpers that write their formats.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import IO, Any, Callable, Iterable, Iterator, Mapping

__all__ = [
    "atomic_path", "atomic_open", "write_text_atomic", "write_json_atomic", "save_npz_atomic",
    "torch_save_atomic", "copy_atomic", "file_digest", "sha256_file", "hash_files", "dump_yaml", "flatten",
]

PathLike = str | os.PathLike


@contextlib.contextmanager
def atomic_path(path: PathLike, *, keep_suffix: bool = False, unique: bool = False,
                mkdir: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block ends without an error it is renamed to
    ``path`` (``os.replace``), when it raises it is removed. See the module doc for the names."""
    path = Path(path)
    if mkdir:
        path.parent.mkdir(parents=True, exist_ok=True)
    tag = f".{os.getpid()}.tmp" if unique else ".tmp"
    tmp = path.with_name(path.stem + tag + path.suffix if keep_suffix else path.name + tag)
    try:
        yield tmp
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    os.replace(tmp, path)


@contextlib.contextmanager
def atomic_open(path: PathLike, mode: str = "w", *, encoding: str | None = None, newline: str | None = None,
                unique: bool = False, mkdir: bool = True) -> Iterator[IO]:
    """``open(mode)`` on a temporary file that replaces ``path`` once the block ends (:func:`atomic_path`)."""
    with atomic_path(path, unique=unique, mkdir=mkdir) as tmp:
        with open(tmp, mode, encoding=encoding, newline=newline) as f:
            yield f


def write_text_atomic(path: PathLike, text: str, *, encoding: str | None = None, newline: str | None = None,
                      mkdir: bool = True, unique: bool = False) -> Path:
    """Write ``text`` to ``path`` atomically (``encoding=None``: the locale's, as ``open``).
    ``unique``: a per-process temporary name, for files that two jobs may write at once."""
    with atomic_open(path, "w", encoding=encoding, newline=newline, mkdir=mkdir, unique=unique) as f:
        f.write(text)
    return Path(path)


def write_json_atomic(path: PathLike, obj: Any, *, indent: int | None = 2, sort_keys: bool = False,
                      allow_nan: bool = True, default: Callable[[Any], Any] | None = None,
                      trailing_newline: bool = True, encoding: str | None = None, unique: bool = False) -> Path:
    """``json.dumps(obj, ...)`` (+ ``"\\n"`` unless ``trailing_newline=False``) written atomically.

    The text is built before the file is opened, so an object that cannot be encoded leaves no file.
    """
    text = json.dumps(obj, indent=indent, sort_keys=sort_keys, allow_nan=allow_nan, default=default)
    return write_text_atomic(path, text + "\n" if trailing_newline else text, encoding=encoding, unique=unique)


def save_npz_atomic(path: PathLike, /, **arrays: Any) -> Path:
    """``np.savez_compressed`` into ``path`` (the name is kept as given: no ``.npz`` is appended)."""
    import numpy as np

    with atomic_open(path, "wb") as f:
        np.savez_compressed(f, **arrays)
    return Path(path)


def torch_save_atomic(path: PathLike, obj: Any) -> Path:
    """``torch.save(obj)`` into ``path`` atomically."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)


def copy_atomic(src: PathLike, dst: PathLike, *, unique: bool = False) -> Path:
    """Copy ``src``'s bytes to ``dst`` atomically (``shutil.copyfile``: contents only, no metadata)."""
    with atomic_path(dst, unique=unique) as tmp:
        shutil.copyfile(src, tmp)
    return Path(dst)


def file_digest(path: PathLike, algo: str = "sha256", chunk_size: int = 1 << 20) -> str:
    """Hex digest of a file's bytes (``sha256``, ``md5``, any :func:`hashlib.new` name), read in chunks."""
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk_size), b""):
            h.update(block)
    return h.hexdigest()


def sha256_file(path: PathLike) -> str:
    """sha256 (hex) of a file's bytes."""
    return file_digest(path, "sha256")


def hash_files(paths: Iterable[PathLike]) -> str | None:
    """sha256 over the given files, in sorted path order; each file contributes its name and bytes.

    Returns None for an empty list. A missing file is an error naming it.
    """
    paths = sorted({str(p) for p in paths})
    if not paths:
        return None
    h = hashlib.sha256()
    for p in paths:
        if not os.path.isfile(p):
            raise FileNotFoundError(f"{p}: data file to hash not found")
        h.update(os.path.basename(p).encode() + b"\0")
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def dump_yaml(obj: Any, *, default_flow_style: bool | None = False, width: int | None = None) -> str:
    """``yaml.safe_dump`` of plain data (dicts, lists, scalars) in insertion order (``sort_keys=False``).

    ``default_flow_style=None`` writes lists of scalars inline (``[0, -1, 1]``), as run configs do."""
    import yaml

    return yaml.safe_dump(obj, sort_keys=False, default_flow_style=default_flow_style, width=width)


def flatten(d: Mapping[str, Any], prefix: str = "", leaf: Callable[[str], bool] | None = None) -> dict[str, Any]:
    """Nested mapping -> ``{dotted key: value}``; a mapping whose dotted key satisfies ``leaf`` is kept
    whole (a free-form mapping such as ``data.roots``, not a section)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and not (leaf is not None and leaf(key)):
            out.update(flatten(v, key + ".", leaf))
        else:
            out[key] = v
    return out
