"""Paper tables from result files: reproduced value beside the paper's value and the difference.

Input: the table spec (``params/tables/<table>.yaml``, see :mod:`sa4depth.pipeline`) and the
evaluation JSONs written by ``sa4depth evaluate`` / ``sa4depth bench infer`` (each has a ``metrics``
dict plus ``config``, ``git``, ``data_hash``, ``device``). Output: ``<table>.csv``, ``.md``, ``.tex``
and ``.json`` (the last is a DVC metrics file); ``.html`` on request. Mean +/- sample std (ddof=1)
over seeds when there is more than one. Never imports torch.

How the tables read (issue #15):

* every table names its data, scale and seeds (:func:`data_caption`) under its title;
* one number format per column (:func:`column_format`): the paper's decimals for the metric
  (:data:`DECIMALS`), and scientific notation for the whole column when a value would round to zero
  or is very large, applied alike to the reproduced value, its std, the paper's value and the difference;
* a paper value that is a word (Table I's ``GT``: the pose is the ground truth, so there is no pose
  scale to measure) marks the cell as *not a measurement*: ours is shown the same way and no
  difference is computed ("n.a.");
* device measurements (columns read from ``bench infer``, the FPS of Table VI) show the device they
  were measured on, the paper's value is cited with its device (``notes.columns.<key>.paper_device``
  of the table file), and a difference is computed only on the same device;
* a column whose paper values the table file flags (``notes.columns.<key>.paper_flag``, e.g. Table II
  Scale Std) carries a marker (†) on those values and the flag as a footnote in every format;
* md/html show ↓/↑ (lower/higher is better), .tex ``$\\downarrow$``/``$\\uparrow$``; csv/json keep the
  metric keys as column names and carry ``better`` separately.

Table-file ``notes`` (optional, ignored by :mod:`sa4depth.pipeline`)::

    notes:
      markers: {GT: "what the word means"}               # footnote for a non-numeric paper value
      columns:
        <key>: {paper_flag: "caveat on the paper's values", paper_device: "NVIDIA T4"}
"""
from __future__ import annotations

import csv
import io
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from sa4depth.files import write_json_atomic, write_text_atomic
from sa4depth.pipeline import (Column, Row, TableSpec, eval_id, metrics_path, row_status, run_dir)
from sa4depth.report.claims import commit_counts, short_commit, trained_at, trained_at_text

__all__ = ["Cell", "RowResult", "TableResult", "build_table", "write_table", "to_markdown", "to_latex",
           "to_csv", "to_json", "to_html", "lookup", "scale_note", "data_caption", "MissingResults",
           "provenance_of", "summarize", "write_summary", "DECIMALS", "NumberFormat", "column_format",
           "FORMATS", "same_device", "device_of"]

FORMATS = ("csv", "md", "tex", "json", "html")


class MissingResults(FileNotFoundError):
    """A row that should have run has no result file; the message lists the files."""


@dataclass
class Cell:
    """One row x column: the values read per seed, the paper's value, and how they may be compared.

    ``na``: the paper prints a word here (``GT``), not a number: the quantity is not a measurement
    for this row, so ``mean``/``std``/``diff`` are None whatever the result files hold.
    ``devices``: the device each value was measured on (device-measurement columns only);
    ``paper_device``: the paper's device for its value. A difference needs the same device."""
    values: list[float] = field(default_factory=list)
    paper: Any = None
    na: str | None = None
    devices: list[str] = field(default_factory=list)
    paper_device: str | None = None
    paper_flag: str | None = None

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float | None:
        if self.na is not None:
            return None
        v = [x for x in self.values if x is not None and not math.isnan(x)]
        return sum(v) / len(v) if v else None

    @property
    def std(self) -> float | None:
        if self.na is not None:
            return None
        v = [x for x in self.values if x is not None and not math.isnan(x)]
        if len(v) < 2:
            return None
        m = sum(v) / len(v)
        return math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1))

    @property
    def device(self) -> str | None:
        """The device(s) the values were measured on, in seed order, unique (None: not a device column)."""
        uniq = list(dict.fromkeys(self.devices))
        return "; ".join(uniq) if uniq else None

    @property
    def comparable(self) -> bool:
        """False when the paper's number is for another device than ours (or either is unknown)."""
        if self.paper_device is None and not self.devices:
            return True
        if self.paper_device is None or not self.devices:
            return False
        return all(same_device(d, self.paper_device) for d in self.devices)

    @property
    def diff(self) -> float | None:
        if self.mean is None or not _is_num(self.paper) or not self.comparable:
            return None
        return self.mean - float(self.paper)

    @property
    def diff_note(self) -> str | None:
        """Why no difference is given although both numbers exist (None otherwise)."""
        if self.na is not None and self.values:
            return f"n.a.: the paper prints {self.na} (not a measurement)"
        if self.mean is not None and _is_num(self.paper) and not self.comparable:
            return (f"not computed: ours measured on {self.device or 'an unknown device'}, the paper's on "
                    f"{self.paper_device or 'an unstated device'}")
        return None


@dataclass
class RowResult:
    row: Row
    status: str
    cells: dict[str, Cell]
    seeds: list[int] = field(default_factory=list)
    ran: dict[str, str] = field(default_factory=dict)   # show_config key -> value of the run
    missing: list[str] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)
    trained_at: dict[int, str] = field(default_factory=dict)   # seed -> the commit that trained its run


@dataclass
class TableResult:
    spec: TableSpec
    data: str
    scale: str
    seeds: list[int]
    rows: list[RowResult]
    notes_cfg: dict[str, Any] = field(default_factory=dict)   # the table file's ``notes`` block

    @property
    def header(self) -> list[str]:
        """Lines above the table: title, what was run on (data, scale, seeds), what the cells hold."""
        lines = [f"{self.spec.title} -- reproduced beside the paper ({self.spec.reference})",
                 data_caption(self.data, self.scale, self.seeds),
                 scale_note(self.data, self.scale, len(self.seeds))]
        if self.spec.paper_values != "available":
            note = (self.spec.paper_note or "").strip()
            lines.append(f"Paper values: {self.spec.paper_values}" + (f" ({note})." if note else "."))
        lines.append("Cells: reproduced (mean ± std over seeds) | paper | diff = reproduced - paper. "
                     "↓ lower is better, ↑ higher is better. Cited rows carry the paper's numbers and their reference.")
        return lines

    @property
    def notes(self) -> list[str]:
        """Footnotes: markers (GT), flagged paper values (†), device measurements, number formats."""
        out: list[str] = []
        markers = (self.notes_cfg.get("markers") or {})
        seen: list[str] = []
        for rr in self.rows:
            for c in self.spec.columns:
                m = rr.cells[c.key].na
                if m is not None and m not in seen:
                    seen.append(m)
        for m in seen:
            what = markers.get(m) or f"the paper prints {m} here: not a measurement"
            out.append(f"{m}: {what}. Ours is shown as {m} too; n.a. = no difference computed.")
        for c in self.spec.columns:
            cn = _column_notes(self.notes_cfg, c.key)
            if cn.get("paper_flag") and any(_is_num(rr.cells[c.key].paper) for rr in self.rows):
                out.append(f"{FLAG_MARK} {c.label} (paper values): {str(cn['paper_flag']).rstrip('.')}.")
            if _is_device_column(self.spec, c):
                pd = cn.get("paper_device")
                out.append(f"{c.label}: measured on the device shown beside it"
                           + (f"; the paper's values were measured on {pd}" if pd else "; the paper's device is not stated")
                           + ". A difference is given only for the same device.")
        for c in self.spec.columns:
            f = column_format(self, c)
            if f.scientific:
                out.append(f"{c.label}: scientific notation for the whole column ({f.reason}).")
        trained = [c for rr in self.rows for c in rr.trained_at.values()]
        if trained:
            out.append(f"Trained at: {trained_at_text(commit_counts(trained))} (the commit each run's "
                       f"done.json or evaluation recorded; per seed in the JSON's `runs`).")
        return out


def data_caption(data: str, scale: str, seeds: Iterable[int]) -> str:
    """``data: synthetic, scale: smoke, seeds: 0, 1``: what a table or figure was made from."""
    ss = ", ".join(str(s) for s in seeds) or "none"
    return f"data: {data}, scale: {scale}, seeds: {ss}"


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


FLAG_MARK = "†"


def _table_notes(spec: TableSpec) -> dict[str, Any]:
    """The optional ``notes`` block of the table file (captions and caveats; not parsed by sa4depth.pipeline)."""
    try:
        with open(spec.path, encoding="utf-8") as f:
            data = yaml.safe_load(f) or {}
    except (OSError, yaml.YAMLError):
        return {}
    notes = data.get("notes") if isinstance(data, dict) else None
    return notes if isinstance(notes, dict) else {}


def _column_notes(notes: Mapping[str, Any], key: str) -> dict[str, Any]:
    c = (notes.get("columns") or {}).get(key)
    return dict(c) if isinstance(c, Mapping) else {}


def _is_device_column(spec: TableSpec, col: Column) -> bool:
    """Columns read from ``sa4depth bench infer`` (FPS): a property of the device, not of the model."""
    return spec.evals.get(col.eval, {}).get("kind") == "infer"


_VENDOR_WORDS = {"nvidia", "tesla", "geforce", "gpu", "cuda", "corporation"}


def same_device(ours: str, paper: str) -> bool:
    """Whether a measured device (``cuda (Tesla T4)``) is the paper's (``NVIDIA T4``): every model token
    of the paper's name (vendor words dropped) is among ours. ``cpu (x86_64, 2 threads)`` is no T4."""
    def tokens(s: str) -> set[str]:
        return set(re.findall(r"[a-z0-9]+", s.lower())) - _VENDOR_WORDS

    want = tokens(paper)
    return bool(want) and want <= tokens(ours)


def device_of(obj: Mapping[str, Any]) -> str | None:
    """``cuda (NVIDIA T4)`` / ``cpu (x86_64, 2 threads)`` of a result JSON (``bench infer`` writes
    ``device``, ``device_name``, ``threads`` at the top level; ``evaluate`` a provenance block)."""
    prov = obj.get("provenance") if isinstance(obj.get("provenance"), Mapping) else {}
    dev = obj.get("device", prov.get("device"))
    if dev is None:
        return None
    extra = [str(obj["device_name"])] if obj.get("device_name") else []
    if str(dev).startswith("cpu") and obj.get("threads"):
        extra.append(f"{obj['threads']} threads")
    return f"{dev} ({', '.join(extra)})" if extra else str(dev)


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
    notes = _table_notes(spec)
    rows: list[RowResult] = []
    all_missing: list[str] = []
    for row in spec.rows.values():
        status = row_status(row, weights)
        cells = {}
        for c in spec.columns:
            paper = (row.paper or {}).get(c.key)
            cn = _column_notes(notes, c.key)
            cells[c.key] = Cell(paper=paper,
                                na=paper.strip() if isinstance(paper, str) and paper.strip() else None,
                                paper_device=cn.get("paper_device") if _is_device_column(spec, c) else None,
                                paper_flag=cn.get("paper_flag") if _is_num(paper) else None)
        rr = RowResult(row=row, status=status, cells=cells)
        if status == "run":
            for s in seeds:
                got_any, trained_obj = False, None
                for c in spec.columns:
                    ev = spec.evals[spec.eval_for(row, c)]
                    p = metrics_path(data, scale, row.experiment, s, eval_id(ev), metrics_root)
                    if not p.is_file():
                        if str(p) not in rr.missing:
                            rr.missing.append(str(p))
                        continue
                    obj = _read_json(p)
                    cells[c.key].values.append(_value(obj, c, p))
                    if _is_device_column(spec, c):
                        cells[c.key].devices.append(device_of(obj) or "unknown device")
                    got_any = True
                    rr.provenance.setdefault(s, provenance_of(obj))
                    if trained_obj is None and isinstance((obj.get("provenance") or {}).get("trained"), Mapping):
                        trained_obj = obj
                if got_any:
                    rr.seeds.append(s)
                    # what the evaluation recorded of the run it read, else the run's own done.json
                    rr.trained_at[s] = trained_at(data, scale, row.experiment, s, runs_root, trained_obj)
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
    return TableResult(spec=spec, data=data, scale=scale, seeds=seeds, rows=rows, notes_cfg=notes)


# ----------------------------------------------------------------------------- formatting
#: decimals per metric: the paper's tables print Abs Rel, Sq Rel, RMSE, RMSE log and the delta
#: accuracies with 3 decimals (Tables II, III, VI, VII), Table I's scale variances and Table II's
#: Scale Std with 2, FPS as an integer (Table VI). Table V's and VIII's numbers were lost in the text
#: extraction: t_err / r_err get 2 (the usual DF-VO style), seq. scale std 3.
DECIMALS: dict[str, int] = {"abs_rel": 3, "sq_rel": 3, "rmse": 3, "rmse_log": 3, "a1": 3, "a2": 3, "a3": 3,
                            "scale_std": 2, "depth_scale_var": 2, "pose_scale_var": 2, "fps": 0,
                            "seq_scale_std": 3}
_PREFIX_DECIMALS = (("t_err", 2), ("r_err", 2))
DEFAULT_DECIMALS = 3
#: a column switches to scientific notation when a value is at least this large ...
SCI_LARGE = 1e5
#: ... or when a non-zero value would print as zero at the column's decimals


def _decimals(key: str) -> int:
    if key in DECIMALS:
        return DECIMALS[key]
    for prefix, d in _PREFIX_DECIMALS:
        if key.startswith(prefix):
            return d
    return DEFAULT_DECIMALS


@dataclass(frozen=True)
class NumberFormat:
    """How every number of one column is written (reproduced mean, std, paper value, difference)."""
    decimals: int
    scientific: bool = False
    reason: str = ""

    def __call__(self, x: Any, sign: bool = False) -> str:
        if x is None:
            return ""
        if isinstance(x, str):
            return x
        x = float(x)
        if math.isnan(x):
            return "nan"
        if self.scientific:
            m = max(self.decimals, 2)
            return f"{x:+.{m}e}" if sign else f"{x:.{m}e}"
        s = f"{x:+.{self.decimals}f}" if sign else f"{x:.{self.decimals}f}"
        if float(s) == 0.0:   # no "-0.000"
            s = f"{0.0:+.{self.decimals}f}" if sign else f"{0.0:.{self.decimals}f}"
        return s


def column_format(res: TableResult, col: Column) -> NumberFormat:
    """The paper's decimals for the metric; scientific notation for the whole column if one of its
    numbers (ours or the paper's) would print as 0 at those decimals or is >= :data:`SCI_LARGE`."""
    d = _decimals(col.key)
    vals = []
    for rr in res.rows:
        c = rr.cells[col.key]
        for v in (c.mean, c.paper):
            if _is_num(v) and math.isfinite(float(v)) and float(v) != 0.0:
                vals.append(abs(float(v)))
    tiny = [v for v in vals if v < 0.5 * 10 ** -d]
    big = [v for v in vals if v >= SCI_LARGE]
    if tiny:
        return NumberFormat(d, True, f"{min(tiny):.1e} would print as 0 with {d} decimals")
    if big:
        return NumberFormat(d, True, f"{max(big):.1e} is too large for fixed notation")
    return NumberFormat(d)


def _arrow(col: Column) -> str:
    return "↓" if col.better == "lower" else "↑"


def _repro(cell: Cell, f: NumberFormat) -> str:
    if cell.na is not None:
        return cell.na if cell.values else ""
    if cell.mean is None:
        return "nan" if cell.values else ""
    s = f(cell.mean)
    if cell.std is not None:
        s += f" ± {f(cell.std)}"
    return s


def _diff(cell: Cell, f: NumberFormat) -> str:
    if cell.na is not None:
        return "n.a." if cell.values else ""
    d = cell.diff
    if d is None:
        return "n.a. (other device)" if cell.diff_note else ""
    return f(d, sign=True)


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


def _paper_text(cell: Cell, spec: TableSpec, f: NumberFormat) -> str:
    if cell.paper is None:
        return "n/a" if spec.paper_values != "available" else ""
    if not _is_num(cell.paper):
        return str(cell.paper)
    s = f(cell.paper) + (FLAG_MARK if cell.paper_flag else "")
    if cell.paper_device:
        s += f" ({cell.paper_device})"
    return s


def _table_rows(res: TableResult) -> tuple[list[str], list[list[str]]]:
    """Display rows (unicode: ↓ ↑ ± †); each format escapes / translates them."""
    spec = res.spec
    head = ["No.", "Method"]
    has_training = any(rr.row.training for rr in res.rows)
    if has_training:
        head.append("Training")
    head.append("Status")
    fmts = {c.key: column_format(res, c) for c in spec.columns}
    dev_cols = {c.key for c in spec.columns if _is_device_column(spec, c)}
    for c in spec.columns:
        head.append(f"{c.label} {_arrow(c)}")
        if c.key in dev_cols:
            head.append("device")
        head += ["paper", "diff"]
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
            cell, f = rr.cells[c.key], fmts[c.key]
            line.append(_repro(cell, f))
            if c.key in dev_cols:
                line.append(cell.device or "")
            line += [_paper_text(cell, spec, f), _diff(cell, f)]
        body.append(line)
    return head, body


def _is_group_line(line: list[str]) -> bool:
    return line[0].startswith("[") and all(x == "" for x in line[1:])


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
    notes = res.notes
    if notes:
        out += ["", "Notes:", ""] + [f"- {n}" for n in notes]
    out.append("")
    return "\n".join(out)


def to_html(res: TableResult) -> str:
    import html as _h

    head, body = _table_rows(res)
    e = _h.escape
    out = ["<!DOCTYPE html>", '<html><head><meta charset="utf-8">', f"<title>{e(res.spec.title)}</title>",
           "<style>table{border-collapse:collapse;font-size:small}td,th{border:1px solid #ccc;padding:2px 6px}"
           "td{text-align:right}td:nth-child(-n+3){text-align:left}.group td{text-align:left;font-style:italic}"
           "</style></head><body>", f"<h1>{e(res.spec.title)}</h1>"]
    out += [f"<p>{e(h)}</p>" for h in res.header[1:]]
    out.append("<table>")
    out.append("<thead><tr>" + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr></thead><tbody>")
    for line in body:
        if _is_group_line(line):
            out.append(f'<tr class="group"><td colspan="{len(head)}">{e(line[0].strip("[]"))}</td></tr>')
        else:
            out.append("<tr>" + "".join(f"<td>{e(x)}</td>" for x in line) + "</tr>")
    out.append("</tbody></table>")
    if res.notes:
        out.append("<p>Notes:</p><ul>" + "".join(f"<li>{e(n)}</li>" for n in res.notes) + "</ul>")
    out += ["</body></html>", ""]
    return "\n".join(out)


_TEX_UNICODE = {"±": r"$\pm$", "↓": r"$\downarrow$", "↑": r"$\uparrow$", FLAG_MARK: r"$^{\dagger}$",
                "δ": r"$\delta$"}


def _tex_escape(s: str) -> str:
    rep = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
           "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", **_TEX_UNICODE}
    return "".join(rep.get(ch, ch) for ch in s).replace("+/-", r"$\pm$")


def _tex_cell(s: str) -> str:
    r"""Escape, and write scientific numbers (1.23e-04) as $1.23\times10^{-4}$."""
    def sci(m: "re.Match[str]") -> str:
        return f"${m.group(1)}\\times10^{{{int(m.group(2))}}}$"

    return re.sub(r"([+-]?\d+\.\d+)e([+-]\d+)", sci, _tex_escape(s))


def _sentence(s: str) -> str:
    s = s.strip()
    return s if s.endswith((".", ")", "!", "?")) else s + "."


def to_latex(res: TableResult) -> str:
    head, body = _table_rows(res)
    ncol = len(head)
    out = ["% " + _tex_escape(h) for h in res.header] + ["% Note: " + _tex_escape(n) for n in res.notes]
    out += [r"\begin{table}[t]", r"\centering", r"\scriptsize",
            r"\caption{" + _tex_escape(" ".join(_sentence(h) for h in [res.spec.title, *res.header[1:]])) + "}",
            r"\begin{tabular}{" + "l" * 3 + "r" * (ncol - 3) + "}", r"\toprule",
            " & ".join(_tex_escape(h) for h in head) + r" \\", r"\midrule"]
    for line in body:
        if _is_group_line(line):
            out.append(r"\multicolumn{" + str(ncol) + "}{l}{" + _tex_escape(line[0].strip("[]")) + r"} \\")
        else:
            out.append(" & ".join(_tex_cell(x) for x in line) + r" \\")
    out += [r"\bottomrule", r"\end{tabular}"]
    for n in res.notes:
        out.append(r"\par\smallskip{\footnotesize " + _tex_escape(n) + "}")
    out += [r"\end{table}", ""]
    return "\n".join(out)


def to_csv(res: TableResult) -> str:
    """Numbers at full precision, column names = metric keys (no arrows); ``better`` in a comment line."""
    buf = io.StringIO()
    for h in res.header:
        buf.write(f"# {h}\n")
    for n in res.notes:
        buf.write(f"# Note: {n}\n")
    buf.write("# Columns: " + "; ".join(f"{c.key} = {c.label} ({c.better} is better)" for c in res.spec.columns)
              + "\n")
    w = csv.writer(buf, lineterminator="\n")
    spec = res.spec
    dev_cols = {c.key for c in spec.columns if _is_device_column(spec, c)}
    flag_cols = {c.key for c in spec.columns if any(rr.cells[c.key].paper_flag for rr in res.rows)}
    head = ["row", "label", "group", "training", "status", "data", "scale", "seeds"]
    for c in spec.columns:
        head += [c.key, f"{c.key}_std"]
        if c.key in dev_cols:
            head.append(f"{c.key}_device")
        head.append(f"{c.key}_paper")
        if c.key in dev_cols:
            head.append(f"{c.key}_paper_device")
        if c.key in flag_cols:
            head.append(f"{c.key}_paper_flag")
        head.append(f"{c.key}_diff")
    w.writerow(head)
    for rr in res.rows:
        line: list[Any] = [rr.row.name, rr.row.label, rr.row.group or "", rr.row.training or "",
                           _status_text(rr), res.data, res.scale, " ".join(map(str, rr.seeds))]
        for c in spec.columns:
            cell = rr.cells[c.key]
            line += [_num(cell.mean), _num(cell.std)]
            if c.key in dev_cols:
                line.append(cell.device or "")
            line.append("" if cell.paper is None else cell.paper)
            if c.key in dev_cols:
                line.append(cell.paper_device or "")
            if c.key in flag_cols:
                line.append(cell.paper_flag or "")
            line.append(_num(cell.diff))
        w.writerow(line)
    return buf.getvalue()


def _num(x: float | None) -> str:
    return "" if x is None else repr(float(x))


def _evaluated_at(prov: Mapping[str, Any]) -> str | None:
    """:func:`provenance_of`'s commit written as the ledger writes one (:func:`short_commit`); None if none."""
    c = prov.get("code_commit")
    return short_commit({"commit": c, "dirty": prov.get("code_dirty")}) if c else None


def to_json(res: TableResult) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    for rr in res.rows:
        entry: dict[str, Any] = {"label": rr.row.label, "status": _status_text(rr), "seeds": rr.seeds}
        for c in res.spec.columns:
            cell = rr.cells[c.key]
            e: dict[str, Any] = {"mean": cell.mean, "std": cell.std, "n": cell.n, "paper": cell.paper,
                                 "diff": cell.diff}
            if cell.na is not None:
                e["na"] = cell.na
            if _is_device_column(res.spec, c):
                e["device"] = cell.device
                e["paper_device"] = cell.paper_device
            if cell.paper_flag:
                e["paper_flag"] = cell.paper_flag
            if cell.diff_note:
                e["diff_note"] = cell.diff_note
            entry[c.key] = e
        if rr.ran:
            entry["ran"] = rr.ran
        if rr.seeds:
            # each seed's run: the commit that trained it, the commit that evaluated it, the data it read
            entry["runs"] = [{"seed": s, "trained_at": rr.trained_at.get(s),
                              "evaluated_at": _evaluated_at(rr.provenance.get(s, {})),
                              "data_hash": rr.provenance.get(s, {}).get("data_hash")} for s in rr.seeds]
        rows[rr.row.name] = entry
    cols = []
    for c in res.spec.columns:
        f = column_format(res, c)
        cols.append({"key": c.key, "label": c.label, "better": c.better, "decimals": f.decimals,
                     "notation": "scientific" if f.scientific else "fixed"})
    return {"table": res.spec.name, "title": res.spec.title, "data": res.data, "scale": res.scale,
            "seeds": res.seeds, "header": res.header, "notes": res.notes, "columns": cols, "rows": rows}


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
        elif fmt == "html":
            text = to_html(res)
        else:
            raise ValueError(f"unknown table format {fmt!r} ({', '.join(FORMATS)})")
        write_text_atomic(p, text, encoding="utf-8")   # the tables hold ↓ ↑ ± †
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
    return write_json_atomic(out, summarize(paths), indent=1, sort_keys=True)
