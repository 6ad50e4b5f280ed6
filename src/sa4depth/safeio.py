"""Readers for files that may come from anyone: no file ever runs code when it is loaded.

``np.load(allow_pickle=True)`` and ``torch.load(weights_only=False)`` execute whatever a pickle
says. The data this project reads only ever needs numpy arrays (Monodepth2's ``gt_depths.npz``
stores an *object* array of differently sized maps, which numpy pickles) and torch tensors plus
plain containers. So:

* :func:`load_npy` / :func:`load_npz` read ``.npy`` / ``.npz`` without pickle; an object array's
  pickle is read by an unpickler that can build numpy arrays and dtypes and nothing else.
* :func:`torch_load` is ``torch.load(weights_only=True)`` with numpy's array reconstruction
  allow-listed (training checkpoints hold numpy's RNG state: a ``uint32`` array).

Every error is a :class:`ValueError` that names the file.
"""
from __future__ import annotations

import io
import os
import pickle
import re
import zipfile
from pathlib import Path
from typing import IO, Any, Iterable

import numpy as np

__all__ = ["load_npy", "load_npz", "npz_names", "torch_load", "load_json_object"]

# (module, name) pairs a numpy object-array pickle needs; numpy 1.x writes numpy.core, 2.x numpy._core
_NUMPY_GLOBALS = {(m, n) for m in ("numpy.core.multiarray", "numpy._core.multiarray")
                  for n in ("_reconstruct", "scalar")} | {("numpy", "ndarray"), ("numpy", "dtype")}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _NUMPY_GLOBALS or (module == "numpy.dtypes" and name.endswith("DType")):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only numpy arrays may be stored here")


def _read_array(fh: IO[bytes]) -> np.ndarray:
    """One ``.npy`` stream: numpy's own reader without pickle; an object array's pickle through
    :class:`_NumpyOnlyUnpickler` (numpy has no reader for that short of ``allow_pickle=True``)."""
    fmt = np.lib.format
    start = fh.tell()
    version = fmt.read_magic(fh)
    if version == (1, 0):
        _, _, dtype = fmt.read_array_header_1_0(fh)
    elif version == (2, 0):
        _, _, dtype = fmt.read_array_header_2_0(fh)
    else:  # 3.0 (utf-8 field names): no public reader of the header alone
        _, _, dtype = fmt._read_array_header(fh, version)  # noqa: SLF001
    if not dtype.hasobject:
        fh.seek(start)
        return fmt.read_array(fh, allow_pickle=False)
    arr = _NumpyOnlyUnpickler(fh, encoding="latin1").load()
    if not isinstance(arr, np.ndarray):
        raise ValueError(f"an object array was expected, the pickle holds a {type(arr).__name__}")
    return arr


def _fail(path: str | os.PathLike, what: str, e: BaseException) -> ValueError:
    return ValueError(f"{path}: cannot read {what} ({type(e).__name__}: {e})")


# numpy's header parser alone raises ValueError, SyntaxError, tokenize.TokenError...: whatever an
# untrusted file makes a reader raise is reported as the file being unreadable
_READ_ERRORS = (Exception,)


def load_npy(path: str | os.PathLike) -> np.ndarray:
    """A ``.npy`` file's array; never runs code."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            return _read_array(fh)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: file not found") from None
    except _READ_ERRORS as e:
        raise _fail(path, "a .npy array", e) from None


def load_npz(path: str | os.PathLike, keys: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """The arrays of a ``.npz`` file (only ``keys`` when given; a missing key is left out), by name."""
    path = Path(path)
    want = None if keys is None else set(keys)
    out: dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(path) as z:
            for member in z.namelist():
                if not member.endswith(".npy"):
                    continue
                name = member[:-4]
                if want is not None and name not in want:
                    continue
                out[name] = _read_array(io.BytesIO(z.read(member)))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: file not found") from None
    except _READ_ERRORS as e:
        raise _fail(path, "a .npz archive", e) from None
    return out


def npz_names(path: str | os.PathLike) -> list[str]:
    """The array names of a ``.npz`` file, without reading any array."""
    try:
        with zipfile.ZipFile(path) as z:
            return [m[:-4] for m in z.namelist() if m.endswith(".npy")]
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: file not found") from None
    except _READ_ERRORS as e:
        raise _fail(path, "a .npz archive", e) from None


def torch_load(path: str | os.PathLike, map_location: Any = "cpu") -> Any:
    """``torch.load(weights_only=True)`` plus numpy arrays (RNG state): tensors and plain data only."""
    import torch

    dtypes = {type(np.dtype(t)) for t in ("u1", "u4", "i4", "i8", "f4", "f8", "?")}
    allowed = [np.ndarray, np.dtype, *sorted(dtypes, key=str)]
    recon = getattr(getattr(np, "_core", np.core), "multiarray")._reconstruct  # type: ignore[attr-defined]
    allowed.append(recon)
    with torch.serialization.safe_globals(allowed):
        try:
            return torch.load(path, map_location=map_location, weights_only=True)
        except pickle.UnpicklingError as e:
            raise pickle.UnpicklingError(_weights_only_cause(str(e))) from None


def _weights_only_cause(msg: str) -> str:
    """torch's weights-only refusal is a page that advises loading with ``weights_only=False``; the
    line that matters: the global it refused, else the unpickler's own complaint."""
    m = re.search(r"GLOBAL ([\w.]+)", msg)
    if m:
        return f"refusing to load {m.group(1)}: only tensors, numpy arrays and plain data may be stored here"
    tail = msg.split("WeightsUnpickler error:", 1)[1] if "WeightsUnpickler error:" in msg else ""
    cause = next((ln.strip() for ln in tail.splitlines() if ln.strip()), "")
    if cause.startswith("Check the documentation"):
        cause = ""
    return f"not a torch file of tensors and plain data ({cause or 'unreadable pickle'})"


def load_json_object(path: str | os.PathLike, what: str = "JSON") -> dict:
    """A JSON file whose top level is an object (e.g. a run's ``done.json``); a ValueError naming the
    file when it is not valid JSON or not an object."""
    import json

    try:
        with open(path) as fh:
            obj = json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not a {what} object ({e})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: not a {what} object (top level is {type(obj).__name__})")
    return obj
