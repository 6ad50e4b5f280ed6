"""Paper tables from result files: reproduced value beside the paper's value and the difference.

Input: the table spec (``params/tables/<table>.yaml``, see :mod:`sa4depth.report.plan`) and the
evaluation JSONs written by ``sa4depth evaluate`` / ``sa4depth bench infer`` (each has a ``metrics``
dict plus ``config``, ``git``, ``data_hash``, ``device``). Output: ``<table>.csv``, ``.md``, ``.tex``
and ``.json`` (the last is a DVC metrics file). Mean +/- sample std (ddof=1) over seeds when there is
more than one. Never imports torch.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from sa4depth.report.plan import (Column, Row, TableSpec, eval_id, metrics_path, row_status, run_dir)

__all__ = ["Cell", "RowResult", "TableResult", "build_table", "write_table", "to_markdown", "to_latex",
           "to_csv", "to_json", "lookup", "scale_note", "MissingResults", "provenance_of",
           "summarize", "write_summary"]


class MissingResults(FileNotFoundError):
    """A row that should have run has no result file; the message lists the files."""


@dataclass
class Cell:
    values: list[float] = field(default_factory=list)
    paper: Any = None

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float | None:
        v = [x for x in self.values if x is not None and not math.isnan(x)]
        return sum(v) / len(v) if v else None

    @property
    def std(self) -> float | None:
        v = [x for x in self.values if x is not None and not math.isnan(x)]
        if len(v) < 2:
            return None
        m = sum(v) / len(v)
        return math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1))

    @property
    def diff(self) -> float | None:
        if self.mean is None or not _is_num(self.paper):
            return None
        return self.mean - float(self.paper)


@dataclass
class RowResult:
    row: Row
    status: str
    cells: dict[str, Cell]
    seeds: list[int] = field(default_factory=list)
    ran: dict[str, str] = field(default_factory=dict)   # show_config key -> value of the run
    missing: list[str] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)


@dataclass
class TableResult:
    spec: TableSpec
    data: str
    scale: str
    seeds: list[int]
    rows: list[RowResult]

    @property
    def header(self) -> list[str]:
        lines = [f"{self.spec.title} -- reproduced beside the paper ({self.spec.reference})",
                 scale_note(self.data, self.scale, len(self.seeds))]
        if self.spec.paper_values != "available":
            lines.append(f"Paper values: {self.spec.paper_values} ({self.spec.paper_note or ''})".rstrip(" ()"))
        lines.append("Cells: reproduced (mean +/- std over seeds) | paper | diff = reproduced - paper. "
                     "Cited rows carry the paper's numbers and their reference.")
        return lines


def scale_note(data: str, scale: str, n_seeds: int) -> str:
    seeds = f"{n_seeds} seed{'s' if n_seeds != 1 else ''}"
    if data == "synthetic":
        warn = {"tiny": "a test scale: these numbers mean nothing",
                "smoke": "a CPU smoke scale: numbers are not comparable with the paper's",
                "small": "a reduced scale: numbers are not comparable with the paper's",
                "full": "the paper's scale, but procedural data: not comparable with the paper's datasets"}
        return (f"Ran on SYNTHETIC data (the procedural benchmark, not the paper's datasets) at scale={scale} "
                f"({warn.get(scale, 'non-paper scale')}), {seeds}.")
    if scale != "full":
        return f"Ran on the real datasets at scale={scale} (reduced; not the paper's setting), {seeds}."
    return f"Ran on the real datasets at the paper's scale (full), {seeds}."


def _is_num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and not math.isnan(float(x))


def lookup(obj: Mapping[str, Any], dotted: str) -> Any:
    """``lookup(d, "metrics.abs_rel")``; KeyError if absent. Keys may contain no dots."""
    node: Any = obj
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise KeyError(dotted)
        node = node[part]
    return node


def _read_json(path: Path) -> dict:
    try:
        with open(path) as f:
            obj = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON: {e}") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: top level must be an object")
    return obj


def _value(obj: Mapping[str, Any], col: Column, path: Path) -> float:
    for p in col.json_paths():
        try:
            v = lookup(obj, p)
        except KeyError:
            continue
        if v is None:
            return float("nan")
        if not _is_num(v) and not (isinstance(v, float) and math.isnan(v)):
            raise ValueError(f"{path}: {p} = {v!r} is not a number (column {col.key!r})")
        return float(v)
    raise ValueError(f"{path}: none of {list(col.json_paths())} found (column {col.key!r}); "
                     f"metrics keys: {sorted((obj.get('metrics') or {}).keys())}")


def provenance_of(obj: Mapping[str, Any]) -> dict[str, Any]:
    """git commit (+ dirty flag), data hash and device of a result JSON: in its ``provenance``
    block (``sa4depth evaluate``) or at the top level (``bench infer``: ``git``, ``device``)."""
    src = obj.get("provenance") if isinstance(obj.get("provenance"), Mapping) else obj
    git = src.get("git", obj.get("git"))
    return {"code_commit": git.get("commit") if isinstance(git, Mapping) else git,
            "code_dirty": git.get("dirty") if isinstance(git, Mapping) else None,
            "data_hash": src.get("data_hash"), "device": src.get("device", obj.get("device"))}


def _run_config(rdir: Path) -> dict:
    f = rdir / "config.yaml"
    if not f.is_file():
        return {}
    with open(f) as fh:
        return yaml.safe_load(fh) or {}


def build_table(spec: TableSpec, data: str, scale: str, seeds: Iterable[int],
                weights: Mapping[str, Any] | None = None, runs_root: str | Path = "runs",
                metrics_root: str | Path = "results/metrics", allow_missing: bool = False) -> TableResult:
    """Collect every row's numbers. Raises :class:`MissingResults` for a run row without results
    unless ``allow_missing`` (then the row's status says which files are missing)."""
    seeds = [int(s) for s in seeds]
    rows: list[RowResult] = []
    all_missing: list[str] = []
    for row in spec.rows.values():
        status = row_status(row, weights)
        cells = {c.key: Cell(paper=(row.paper or {}).get(c.key)) for c in spec.columns}
        rr = RowResult(row=row, status=status, cells=cells)
        if status == "run":
            for s in seeds:
                got_any = False
                for c in spec.columns:
                    ev = spec.evals[spec.eval_for(row, c)]
                    p = metrics_path(data, scale, row.experiment, s, eval_id(ev), metrics_root)
                    if not p.is_file():
                        if str(p) not in rr.missing:
                            rr.missing.append(str(p))
                        continue
                    obj = _read_json(p)
                    cells[c.key].values.append(_value(obj, c, p))
                    got_any = True
                    rr.provenance.setdefault(s, provenance_of(obj))
                if got_any:
                    rr.seeds.append(s)
                rdir = run_dir(data, scale, row.experiment, s, runs_root)
                cfg = _run_config(rdir)
                for key in row.show_config:
                    node: Any = cfg
                    for part in key.split("."):
                        node = node.get(part) if isinstance(node, dict) else None
                    if node is not None:
                        rr.ran[key] = str(node)
                if row.show_config and (rdir / "done.json").is_file():
                    # the trainer records what actually ran (e.g. "orb+pnp"): shown as matcher_ran
                    try:
                        done = json.loads((rdir / "done.json").read_text())
                    except json.JSONDecodeError:
                        done = {}
                    if isinstance(done, dict) and done.get("matcher"):
                        rr.ran["matcher_ran"] = str(done["matcher"])
            if rr.missing:
                all_missing += rr.missing
                rr.status = "missing results"
        rows.append(rr)
    if all_missing and not allow_missing:
        raise MissingResults(f"{spec.path}: result files missing for {spec.name} (data={data}, scale={scale}): "
                             + ", ".join(all_missing))
    return TableResult(spec=spec, data=data, scale=scale, seeds=seeds, rows=rows)


# ----------------------------------------------------------------------------- formatting
def _fmt(x: Any, nd: int = 3) -> str:
    if x is None:
        return ""
    if isinstance(x, str):
        return x
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, int):
        return str(x)
    if math.isnan(x):
        return "nan"
    if abs(x) >= 100:
        return f"{x:.1f}"
    return f"{x:.{nd}f}"


def _repro(cell: Cell) -> str:
    if cell.mean is None:
        return "nan" if cell.values else ""
    s = _fmt(cell.mean)
    if cell.std is not None:
        s += f" +/- {_fmt(cell.std)}"
    return s


def _diff(cell: Cell) -> str:
    d = cell.diff
    return "" if d is None else f"{d:+.3f}"


def _status_text(rr: RowResult) -> str:
    st = rr.status
    if st == "cited":
        return f"cited: {rr.row.cite}" if rr.row.cite else "cited"
    if st == "run":
        s = f"ran ({len(rr.seeds)} seed{'s' if len(rr.seeds) != 1 else ''})"
        if rr.ran:
            s += "; " + ", ".join(f"{k.split('.')[-1]}={v}" for k, v in rr.ran.items())
        return s
    if st == "missing results":
        return "missing results: " + ", ".join(rr.missing)
    return st


def _paper_text(cell: Cell, spec: TableSpec) -> str:
    if cell.paper is None:
        return "n/a" if spec.paper_values != "available" else ""
    return _fmt(cell.paper)


def _table_rows(res: TableResult) -> tuple[list[str], list[list[str]]]:
    spec = res.spec
    head = ["No.", "Method"]
    has_training = any(rr.row.training for rr in res.rows)
    if has_training:
        head.append("Training")
    head.append("Status")
    for c in spec.columns:
        arrow = "v" if c.better == "lower" else "^"
        head += [f"{c.label} {arrow}", "paper", "diff"]
    body: list[list[str]] = []
    group = None
    for rr in res.rows:
        if rr.row.group and rr.row.group != group:
            group = rr.row.group
            body.append([f"[{spec.groups.get(group, group)}]"] + [""] * (len(head) - 1))
        line = [rr.row.name, rr.row.label]
        if has_training:
            line.append(rr.row.training or "")
        line.append(_status_text(rr))
        for c in spec.columns:
            cell = rr.cells[c.key]
            line += [_repro(cell), _paper_text(cell, spec), _diff(cell)]
        body.append(line)
    return head, body


def to_markdown(res: TableResult) -> str:
    head, body = _table_rows(res)
    out = [f"# {res.spec.title}", ""]
    out += [f"> {h}" for h in res.header[1:]]
    out.append("")
    esc = lambda s: s.replace("|", "\\|")  # noqa: E731
    out.append("| " + " | ".join(esc(h) for h in head) + " |")
    out.append("|" + "|".join("---" for _ in head) + "|")
    for line in body:
        out.append("| " + " | ".join(esc(x) for x in line) + " |")
    out.append("")
    return "\n".join(out)


def _tex_escape(s: str) -> str:
    rep = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
           "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
    return "".join(rep.get(ch, ch) for ch in s).replace("+/-", r"$\pm$")


def to_latex(res: TableResult) -> str:
    head, body = _table_rows(res)
    ncol = len(head)
    out = ["% " + h for h in res.header]
    out += [r"\begin{table}[t]", r"\centering", r"\scriptsize",
            r"\caption{" + _tex_escape(res.spec.title + ". " + " ".join(res.header[1:])) + "}",
            r"\begin{tabular}{" + "l" * 3 + "r" * (ncol - 3) + "}", r"\toprule",
            " & ".join(_tex_escape(h) for h in head) + r" \\", r"\midrule"]
    for line in body:
        if line[0].startswith("[") and all(x == "" for x in line[1:]):
            out.append(r"\multicolumn{" + str(ncol) + "}{l}{" + _tex_escape(line[0].strip("[]")) + r"} \\")
        else:
            out.append(" & ".join(_tex_escape(x) for x in line) + r" \\")
    out += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(out)


def to_csv(res: TableResult) -> str:
    buf = io.StringIO()
    for h in res.header:
        buf.write(f"# {h}\n")
    w = csv.writer(buf, lineterminator="\n")
    head = ["row", "label", "group", "training", "status", "data", "scale", "seeds"]
    for c in res.spec.columns:
        head += [c.key, f"{c.key}_std", f"{c.key}_paper", f"{c.key}_diff"]
    w.writerow(head)
    for rr in res.rows:
        line: list[Any] = [rr.row.name, rr.row.label, rr.row.group or "", rr.row.training or "",
                           _status_text(rr), res.data, res.scale, " ".join(map(str, rr.seeds))]
        for c in res.spec.columns:
            cell = rr.cells[c.key]
            line += [_num(cell.mean), _num(cell.std), "" if cell.paper is None else cell.paper, _num(cell.diff)]
        w.writerow(line)
    return buf.getvalue()


def _num(x: float | None) -> str:
    return "" if x is None else repr(float(x))


def to_json(res: TableResult) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    for rr in res.rows:
        entry: dict[str, Any] = {"label": rr.row.label, "status": _status_text(rr), "seeds": rr.seeds}
        for c in res.spec.columns:
            cell = rr.cells[c.key]
            entry[c.key] = {"mean": cell.mean, "std": cell.std, "n": cell.n, "paper": cell.paper,
                            "diff": cell.diff}
        if rr.ran:
            entry["ran"] = rr.ran
        rows[rr.row.name] = entry
    return {"table": res.spec.name, "title": res.spec.title, "data": res.data, "scale": res.scale,
            "seeds": res.seeds, "header": res.header, "rows": rows}


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def write_table(res: TableResult, out_dir: str | Path, formats: Iterable[str] = ("csv", "md", "tex", "json")) -> list[Path]:
    """Write ``<out_dir>/<table>.<fmt>`` atomically; returns the paths."""
    out_dir = Path(out_dir)
    paths = []
    for fmt in formats:
        p = out_dir / f"{res.spec.name}.{fmt}"
        if fmt == "csv":
            text = to_csv(res)
        elif fmt == "md":
            text = to_markdown(res)
        elif fmt == "tex":
            text = to_latex(res)
        elif fmt == "json":
            text = json.dumps(to_json(res), indent=1, allow_nan=False, default=_nan_none) + "\n"
        else:
            raise ValueError(f"unknown table format {fmt!r} (csv, md, tex, json)")
        _atomic_write(p, text)
        paths.append(p)
    return paths


def _nan_none(x: Any) -> Any:
    return None


def summarize(paths: Iterable[str | Path]) -> dict[str, Any]:
    """``{"<eval id>": {"seed<N>": metrics}}`` from evaluation JSONs named
    ``.../seed<N>/<eval id>.json`` (only their numeric ``metrics``; top-level numbers for files without
    a ``metrics`` object, such as ``bench infer``'s): a small DVC metrics file."""
    out: dict[str, Any] = {}
    for p in map(Path, paths):
        obj = _read_json(p)
        metrics = obj.get("metrics")
        if metrics is None:   # e.g. `sa4depth bench infer` writes its numbers at the top level
            metrics = {k: v for k, v in obj.items() if k not in ("seed", "batch", "height", "width")}
        if not isinstance(metrics, Mapping):
            raise ValueError(f"{p}: 'metrics' is not an object")
        flat = {k: v for k, v in metrics.items() if _is_num(v)}
        out.setdefault(p.stem, {})[p.parent.name] = flat
    return out


def write_summary(paths: Iterable[str | Path], out: str | Path) -> Path:
    out = Path(out)
    _atomic_write(out, json.dumps(summarize(paths), indent=1, sort_keys=True) + "\n")
    return out
