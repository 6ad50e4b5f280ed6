"""One module per CLI verb (see sa4depth.cli)."""
from __future__ import annotations

import argparse


def thread_count(text: str) -> int:
    """argparse ``type`` of ``--threads``: a whole number >= 1, or 0 for torch's default (the
    workflow passes its ``threads`` config, where 0 means that, straight through)."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of threads") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"{n} threads: must be >= 1 (or 0 = torch's default)")
    return n
