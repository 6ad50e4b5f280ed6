"""Where a job runs: the torch device (``auto | cpu | cuda``) and its CPU threads.

One resolver for every verb (``train``, ``evaluate``, ``bench``) and the trainer's ``train.device``.
torch is imported inside the functions so that ``sa4depth --help`` stays fast.
"""
from __future__ import annotations

import os
from typing import Mapping

__all__ = ["DEVICES", "resolve_device", "resolve_threads", "set_threads"]

#: the values of ``--device`` and ``train.device``
DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str, source: str = "--device"):
    """``auto`` -> cuda when available, else cpu; ``cuda`` without a GPU is an error naming ``source``
    (the option or config key the name came from). Returns a ``torch.device``."""
    import torch

    from sa4depth.config import ConfigError

    if name not in DEVICES:
        raise ConfigError(f"{source}={name!r}: expected auto, cpu or cuda")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{source}=cuda but no CUDA device is available (use auto or cpu)")
    return torch.device(name)


def resolve_threads(threads: int, environ: Mapping[str, str] | None = None) -> int:
    """torch CPU threads for ``--threads``: ``threads`` when > 0; 0 = the job's allocation,
    ``$SLURM_CPUS_PER_TASK`` inside a Slurm job, else 0 (torch's default: one per core)."""
    if threads > 0:
        return threads
    raw = (os.environ if environ is None else environ).get("SLURM_CPUS_PER_TASK", "").strip()
    try:
        n = int(raw)
    except ValueError:  # unset, empty or garbled: torch's default
        return 0
    return max(n, 0)


def set_threads(threads: int, environ: Mapping[str, str] | None = None) -> int:
    """Apply :func:`resolve_threads` to torch; returns the thread count torch now uses."""
    import torch

    n = resolve_threads(threads, environ)
    if n > 0:
        torch.set_num_threads(n)
    return torch.get_num_threads()
