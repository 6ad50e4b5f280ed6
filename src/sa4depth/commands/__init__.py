"""One module per CLI verb (see sa4depth.cli), and the option helpers they share.

The grammar every verb follows:

* configuration: ``--data``, ``--scale``, ``--row TABLE:ROW | experiments:NAME``, ``--config FILE``
  and positional ``key=value`` overrides (:func:`sa4depth.config.add_config_args`);
* output: ``--out FILE`` for the primary output file, ``--out-dir DIR`` where a verb writes several files;
* ``--device {auto,cpu,cuda}`` (:func:`add_device_arg`, resolved by :mod:`sa4depth.device`);
* ``--threads N`` (:func:`add_threads_arg`; 0 = the Slurm allocation, else torch's default).

Old spellings stay as hidden aliases that print a one-line deprecation note (:func:`add_option`).
"""
from __future__ import annotations

import argparse
import sys


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


THREADS_HELP = ("torch CPU threads; 0 (default) = the job's allocation, $SLURM_CPUS_PER_TASK, inside a "
                "Slurm job, else torch's default (one per core)")


def add_threads_arg(p, help: str = THREADS_HELP) -> None:
    p.add_argument("--threads", type=thread_count, default=0, metavar="N", help=help)


def add_device_arg(p, default: str | None = "auto", help: str | None = None) -> None:
    from sa4depth.device import DEVICES

    p.add_argument("--device", choices=DEVICES, default=default,
                   help=help or f"torch device: auto = cuda when available, else cpu (default: {default})")


def add_option(parser, *flags: str, deprecated: tuple[str, ...] = (), **kw) -> argparse.Action:
    """``parser.add_argument(*flags, **kw)`` that also accepts the old spellings ``deprecated``: they
    parse exactly like ``flags[0]``, are not shown in ``--help`` (usage and errors name the new
    spelling) and print a one-line deprecation note on stderr."""
    action = parser.add_argument(*flags, *deprecated, **kw)
    if not deprecated:
        return action
    action.option_strings = list(flags)  # the parser still maps the old strings to this action
    new, old = flags[0], frozenset(deprecated)
    base = type(action)

    def __call__(self, parser, namespace, values, option_string=None):
        if option_string in old:
            print(f"{parser.prog}: note: {option_string} is deprecated, use {new}", file=sys.stderr)
        base.__call__(self, parser, namespace, values, option_string)

    action.__class__ = type(f"Deprecated{base.__name__}", (base,), {"__call__": __call__})
    return action
