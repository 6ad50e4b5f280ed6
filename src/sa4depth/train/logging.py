"""Training logs: ``log.csv`` (one row per logged step) and TensorBoard (``tb/``).

On resume the CSV keeps only the rows up to the checkpoint's step (rows written after the last
checkpoint by a killed run are dropped, so the log has no duplicate steps) and TensorBoard is
opened with ``purge_step`` for the same reason.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Mapping

from sa4depth.files import atomic_open

__all__ = ["CSVLog", "TBLog"]


class CSVLog:
    """Append-only CSV with a fixed header: ``step, epoch, <loss columns...>, lr, time``.

    The columns are those of the first row written; a later row with a new column rewrites the
    file with a widened header (earlier rows get an empty cell), so columns never shift.
    """

    def __init__(self, path: str | os.PathLike, resume_step: int | None = None):
        self.path = Path(path)
        self.fields: list[str] | None = None
        if resume_step is not None and self.path.is_file():
            with open(self.path, newline="") as f:
                reader = csv.DictReader(f)
                self.fields = list(reader.fieldnames or []) or None
                rows = [r for r in reader if r.get("step") and int(r["step"]) <= resume_step]
            if self.fields:
                self._rewrite(rows)
        elif self.path.exists():
            self.path.unlink()

    def write(self, row: Mapping[str, float | int | str]) -> None:
        if self.fields is None:
            self.fields = list(row)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "w", newline="") as f:
                csv.DictWriter(f, fieldnames=self.fields).writeheader()
        extra = [k for k in row if k not in self.fields]
        if extra:  # a statistic that appears late (e.g. a solver fallback): widen the header
            self._widen(extra)
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, fieldnames=self.fields).writerow({k: row.get(k, "") for k in self.fields})
            f.flush()

    def _widen(self, extra: list[str]) -> None:
        assert self.fields is not None
        with open(self.path, newline="") as f:
            rows = list(csv.DictReader(f))
        # keep "lr" and "time" last, as in a row built by the trainer
        tail = [k for k in ("lr", "time") if k in self.fields]
        self.fields = [k for k in self.fields if k not in tail] + extra + tail
        self._rewrite(rows)

    def _rewrite(self, rows: list[dict]) -> None:
        """Replace the file atomically by ``rows`` under the current header."""
        assert self.fields is not None
        with atomic_open(self.path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=self.fields)
            w.writeheader()
            w.writerows(rows)


class TBLog:
    """Thin TensorBoard SummaryWriter wrapper (scalars only)."""

    def __init__(self, logdir: str | os.PathLike, purge_step: int | None = None):
        from torch.utils.tensorboard import SummaryWriter  # tensorboard: a declared dependency

        self.writer = SummaryWriter(log_dir=str(logdir), purge_step=purge_step)

    def write(self, step: int, scalars: Mapping[str, float]) -> None:
        if self.writer is None:  # closed
            return
        for k, v in scalars.items():
            self.writer.add_scalar(k, v, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.flush()
            self.writer.close()
            self.writer = None
