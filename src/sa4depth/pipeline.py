"""What a paper table needs: its rows, the experiments they run, the files those runs produce.

This module is the single place that maps ``params/tables/<table>.yaml`` onto paths. The Snakefile
(``workflow/rules/common.smk``), the table builder and the audit all import it, so a table can never
read a file that the workflow does not produce. Pure Python + PyYAML (no torch).

Table file format (see ``params/tables/table_vi.yaml`` for a commented example)::

    title, reference, dataset          # free text / the dataset the runs train on
    evals:   {NAME: {kind: depth|scale|odometry|video|infer, split: ..., scale_aware: bool}}
    columns: [{key, label, eval: NAME, better: lower|higher, paths: [dotted paths in the JSON]}]
    rows:    {ROW: {label, experiment: NAME, set: {...}, paper: {key: value} | null,
                    run: false + cite: "..."             -> a cited row (numbers from the paper)
                    not_implemented: "reason"            -> kept in the table, never scheduled
                    requires_weights: mast3r|pixloc      -> "not run: weights not provided" without them
                    eval: {COLUMN_EVAL: OTHER_EVAL}      -> e.g. scale-aware rows read depth_sa
                    switch / allowed / show_config       -> Table VI audit and matcher display}}

Paths (relative to the repository root):

    runs/<data>/<scale>/<experiment>/seed<N>/{config.yaml, model.pt, done.json}
    results/metrics/<data>/<scale>/<experiment>/seed<N>/<eval_id>.json
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from sa4depth.config import TABLE_ROW_KEYS, ConfigError, load_config, load_yaml, params_dir

__all__ = [
    "prepare_workflow_config",
    "TABLES", "EVAL_KINDS", "DATASET_PROFILE", "TableSpec", "Row", "Column",
    "load_table", "eval_id", "run_dir", "metrics_path", "synth_dir", "paths_file",
    "experiment_overrides", "experiment_config", "config_hash", "scheduled_rows", "row_status",
    "synthetic_paths", "committed_setting", "output_root",
]

TABLES = ("table_i", "table_ii", "table_iii", "table_iv", "table_v", "table_vi", "table_vii", "table_viii")
EVAL_KINDS = ("depth", "scale", "odometry", "video", "infer")
DEPTH_SPLITS = ("eigen", "eigen_benchmark", "cityscapes", "nyu")
#: which synthetic profile (``sa4depth synth --profile``) provides each dataset of the config
DATASET_PROFILE = {"kitti": "driving", "kitti_odom": "driving", "vkitti2": "driving",
                   "cityscapes": "dynamic", "nyu": "indoor"}
WEIGHT_KINDS = ("mast3r", "pixloc", "superglue")


# ----------------------------------------------------------------------------- spec
@dataclass(frozen=True)
class Column:
    key: str
    label: str
    eval: str
    better: str = "lower"
    paths: tuple[str, ...] = ()

    def json_paths(self) -> tuple[str, ...]:
        return self.paths or (f"metrics.{self.key}",)


@dataclass(frozen=True)
class Row:
    name: str
    label: str
    experiment: str | None
    has_config: bool              # a config can be resolved (experiment and/or set)
    cited: bool                   # run: false (numbers and reference from the paper)
    cite: str | None
    not_implemented: str | None
    requires_weights: str | None
    paper: Mapping[str, Any] | None
    eval_map: Mapping[str, str]
    group: str | None = None
    training: str | None = None
    switch: tuple[str, ...] | None = None
    allowed: tuple[str, ...] = ()
    show_config: tuple[str, ...] = ()

    @property
    def runs(self) -> bool:
        """True if the workflow trains this row (given its weights, see :func:`row_status`)."""
        return not self.cited and self.not_implemented is None and self.experiment is not None


@dataclass
class TableSpec:
    name: str
    path: Path
    title: str
    reference: str
    dataset: str | None
    evals: dict[str, dict[str, Any]]
    columns: list[Column]
    rows: dict[str, Row]
    groups: dict[str, str] = field(default_factory=dict)
    paper_values: str = "available"
    paper_note: str | None = None
    baseline_row: str | None = None

    def eval_for(self, row: Row, column: Column) -> str:
        return row.eval_map.get(column.eval, column.eval)

    def evals_for_row(self, row: Row) -> list[str]:
        """Eval names (keys of ``evals``) the row's columns read, in column order, unique."""
        out: list[str] = []
        for c in self.columns:
            e = self.eval_for(row, c)
            if e not in out:
                out.append(e)
        return out


def _table_path(name: str | Path, pdir: Path | None = None) -> Path:
    p = Path(name)
    if p.suffix == ".yaml":
        return p
    return (pdir or params_dir()) / "tables" / f"{name}.yaml"


def load_table(name: str | Path, pdir: Path | None = None) -> TableSpec:
    """Parse and validate a table file; every problem names the file and the row/key."""
    path = _table_path(name, pdir)
    data = load_yaml(path)
    src = str(path)
    for key in ("title", "evals", "columns", "rows"):
        if key not in data:
            raise ConfigError(f"{src}: missing top-level key {key!r}")
    evals = data["evals"]
    if not isinstance(evals, dict) or not evals:
        raise ConfigError(f"{src}: 'evals' must be a non-empty mapping")
    for en, ev in evals.items():
        if not isinstance(ev, dict) or ev.get("kind") not in EVAL_KINDS:
            raise ConfigError(f"{src}: evals.{en}: 'kind' must be one of {list(EVAL_KINDS)}, got {ev!r}")
        if ev["kind"] == "depth" and ev.get("split") not in DEPTH_SPLITS:
            raise ConfigError(f"{src}: evals.{en}: depth 'split' must be one of {list(DEPTH_SPLITS)}")
    columns: list[Column] = []
    for i, c in enumerate(data["columns"]):
        if not isinstance(c, dict) or "key" not in c or "eval" not in c:
            raise ConfigError(f"{src}: columns[{i}] needs 'key' and 'eval'")
        if c["eval"] not in evals:
            raise ConfigError(f"{src}: columns[{i}] ({c['key']}): eval {c['eval']!r} not in evals {list(evals)}")
        if c.get("better", "lower") not in ("lower", "higher"):
            raise ConfigError(f"{src}: columns[{i}] ({c['key']}): 'better' must be lower or higher")
        columns.append(Column(key=c["key"], label=c.get("label", c["key"]), eval=c["eval"],
                              better=c.get("better", "lower"), paths=tuple(c.get("paths") or ())))
    col_keys = {c.key for c in columns}
    rows: dict[str, Row] = {}
    if not isinstance(data["rows"], dict) or not data["rows"]:
        raise ConfigError(f"{src}: 'rows' must be a non-empty mapping")
    known = TABLE_ROW_KEYS  # shared with sa4depth.config.load_row, which resolves these rows
    for rn, r in data["rows"].items():
        r = r or {}
        where = f"{src}: row {rn!r}"
        if not isinstance(r, dict):
            raise ConfigError(f"{where}: must be a mapping, got {type(r).__name__} {r!r}")
        unknown = set(r) - known
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)} (known: {sorted(known)})")
        cited = r.get("run") is False
        if cited and not r.get("cite") and not r.get("not_implemented"):
            raise ConfigError(f"{where}: a cited row (run: false) needs 'cite' (its reference)")
        paper = r.get("paper")
        if paper is not None:
            if not isinstance(paper, dict):
                raise ConfigError(f"{where}: 'paper' must be a mapping or null")
            bad = set(paper) - col_keys
            if bad:
                raise ConfigError(f"{where}: paper values for unknown column(s) {sorted(bad)}")
        emap = r.get("eval") or {}
        if not isinstance(emap, dict):
            raise ConfigError(f"{where}: 'eval' must map a column eval to another eval, got {emap!r}")
        for a, b in emap.items():
            if a not in evals or b not in evals:
                raise ConfigError(f"{where}: eval mapping {a!r} -> {b!r}: both must be in evals {list(evals)}")
        rw = r.get("requires_weights")
        if rw is not None and rw not in WEIGHT_KINDS:
            raise ConfigError(f"{where}: requires_weights {rw!r} not one of {list(WEIGHT_KINDS)}")
        if r.get("group") is not None and r["group"] not in (data.get("groups") or {}):
            raise ConfigError(f"{where}: group {r['group']!r} not in groups {list(data.get('groups') or {})}")
        exp = r.get("experiment")
        if not cited and exp is None and not r.get("not_implemented"):
            raise ConfigError(f"{where}: a run row needs 'experiment' (params/experiments.yaml)")
        rows[rn] = Row(
            name=rn, label=str(r.get("label", rn)), experiment=exp,
            has_config=not cited and (exp is not None or bool(r.get("set"))),
            cited=cited, cite=r.get("cite"), not_implemented=r.get("not_implemented"),
            requires_weights=rw, paper=paper, eval_map=dict(emap), group=r.get("group"),
            training=r.get("training"),
            switch=tuple(r["switch"]) if r.get("switch") is not None else None,
            allowed=tuple(r.get("allowed") or ()), show_config=tuple(r.get("show_config") or ()),
        )
    base = data.get("baseline_row")
    if base is not None and base not in rows:
        raise ConfigError(f"{src}: baseline_row {base!r} is not a row")
    return TableSpec(name=path.stem, path=path, title=str(data["title"]), reference=str(data.get("reference", "")),
                     dataset=data.get("dataset"), evals=dict(evals), columns=columns, rows=rows,
                     groups=dict(data.get("groups") or {}), paper_values=str(data.get("paper_values", "available")),
                     paper_note=data.get("paper_note"), baseline_row=base)


# ----------------------------------------------------------------------------- paths
def eval_id(ev: Mapping[str, Any]) -> str:
    """File stem of an evaluation: ``depth_<split>[_sa]``, ``scale``, ``odometry``, ``video``, ``infer``."""
    kind = ev["kind"]
    if kind == "depth":
        return f"depth_{ev['split']}" + ("_sa" if ev.get("scale_aware") else "")
    return kind


def committed_setting(workflow_config: str | Path | None = None) -> tuple[str, str, int]:
    """(data, scale, seeds) whose tables, audit and figures are committed under ``results/``: the
    ``committed`` block of ``workflow/config.yaml`` (beside ``params/``)."""
    if workflow_config:
        f = Path(workflow_config)
    else:  # beside the params/ in use, else this checkout's (params copied elsewhere: SA4DEPTH_PARAMS)
        near = params_dir().parent / "workflow" / "config.yaml"
        f = near if near.is_file() else Path(__file__).resolve().parents[2] / "workflow" / "config.yaml"
    try:
        c = load_yaml(f)["committed"]
        return str(c["data"]), str(c["scale"]), int(c["seeds"])
    except (OSError, KeyError, TypeError, ValueError) as e:
        raise ConfigError(f"{f}: no valid `committed: {{data, scale, seeds}}` block ({e})") from None


def output_root(data: str, scale: str, seeds: int, committed: tuple[str, str, int] | None = None) -> Path:
    """Where tables, audit and figures of a setting go: ``results`` for the committed setting
    (:func:`committed_setting`), else ``results/<data>-<scale>-seeds<N>``, so that a quick run at
    another setting never replaces the committed results. The DAG and the CLI both use this."""
    committed = committed or committed_setting()
    if (data, scale, int(seeds)) == (committed[0], committed[1], int(committed[2])):
        return Path("results")
    return Path("results") / f"{data}-{scale}-seeds{int(seeds)}"


def run_dir(data: str, scale: str, exp: str, seed: int | str, root: str | Path = "runs") -> Path:
    return Path(root) / data / scale / exp / f"seed{seed}"


def metrics_path(data: str, scale: str, exp: str, seed: int | str, eid: str,
                 root: str | Path = "results/metrics") -> Path:
    return Path(root) / data / scale / exp / f"seed{seed}" / f"{eid}.json"


def synth_dir(scale: str, profile: str, root: str | Path = "data/synthetic") -> Path:
    return Path(root) / scale / profile


def paths_file(scale: str, profile: str, root: str | Path = "data/synthetic") -> Path:
    """YAML merged into training configs (``--config``): dataset roots of the synthetic data."""
    return Path(root) / scale / f"{profile}.paths.yaml"


def synthetic_paths(scale: str, profile: str, root: str | Path = "data/synthetic") -> dict[str, Any]:
    """``data.roots`` + ``data.splits_dir`` for data written by ``sa4depth synth`` at this scale."""
    d = {p: synth_dir(scale, p, root).as_posix() for p in ("driving", "dynamic", "indoor")}
    return {"data": {
        "roots": {"kitti": f"{d['driving']}/kitti_raw", "kitti_odom": f"{d['driving']}/kitti_odom",
                  "vkitti2": f"{d['driving']}/kitti_raw", "cityscapes": f"{d['dynamic']}/cityscapes",
                  "nyu": f"{d['indoor']}/nyu"},
        "splits_dir": f"{d[profile]}/splits",
    }}


# ----------------------------------------------------------------------------- configs
def experiment_overrides(exp_cfg: Mapping[str, Any], weights: Mapping[str, Any] | None) -> list[str]:
    """Command-line overrides that point an experiment at user-provided weights (rows 7-9, 15, 16)."""
    weights = weights or {}
    out: list[str] = []
    feats = exp_cfg["refine"]["features"]
    if exp_cfg["refine"]["enabled"] and feats in ("mast3r", "pixloc") and weights.get(feats):
        out.append(f"refine.feature_weights={weights[feats]}")
    if exp_cfg["matcher"]["enabled"] and weights.get("superglue"):
        out += ["matcher.method=superglue", f"matcher.superglue_weights={weights['superglue']}"]
    return out


def experiment_config(exp: str, data: str, scale: str, seed: int, weights: Mapping[str, Any] | None = None,
                      pdir: Path | None = None) -> tuple[dict[str, Any], list[str]]:
    """Resolved config dict of an experiment (synthetic roots included) and the extra overrides."""
    pdir = pdir or params_dir()
    base = load_config(data=data, scale=scale, row=(str(pdir / "experiments.yaml"), exp), params=pdir)
    extra = experiment_overrides(base.to_dict(), weights)
    files: list[Path] = []
    ov = [f"seed={seed}", *extra]
    cfg = load_config(data=data, scale=scale, row=(str(pdir / "experiments.yaml"), exp), files=files,
                      overrides=ov, params=pdir).to_dict()
    if data == "synthetic":
        prof = DATASET_PROFILE[cfg["data"]["dataset"]]
        sp = synthetic_paths(scale, prof)["data"]
        cfg["data"]["roots"] = {**cfg["data"]["roots"], **sp["roots"]}
        cfg["data"]["splits_dir"] = sp["splits_dir"]
    cfg.pop("meta", None)
    return cfg, extra


def config_hash(cfg: Mapping[str, Any]) -> str:
    """sha256 (16 hex) of a resolved config without ``meta`` (and without the keys of
    :data:`sa4depth.config.ONLY_WHEN_ON` whose component is off, and of ``ONLY_WHEN_NOT`` at their given
    value): the Snakemake ``params`` rerun trigger."""
    from sa4depth.config import without_inactive_keys

    c = without_inactive_keys({k: v for k, v in cfg.items() if k != "meta"})
    return hashlib.sha256(json.dumps(c, sort_keys=True, default=str).encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------- scheduling
def row_status(row: Row, weights: Mapping[str, Any] | None = None) -> str:
    """``run`` | ``cited`` | ``not implemented: ...`` | ``not run: weights not provided``."""
    if row.cited and not row.not_implemented:
        return "cited"
    if row.not_implemented:
        return f"not implemented: {row.not_implemented}"
    if row.requires_weights and not (weights or {}).get(row.requires_weights):
        return "not run: weights not provided"
    return "run"


def scheduled_rows(spec: TableSpec, weights: Mapping[str, Any] | None = None) -> list[Row]:
    return [r for r in spec.rows.values() if row_status(r, weights) == "run"]


def table_needs(spec: TableSpec, data: str, scale: str, seeds: Iterable[int],
                weights: Mapping[str, Any] | None = None) -> list[tuple[str, int, str]]:
    """(experiment, seed, eval name) triples a table reads, unique, in row order."""
    out: list[tuple[str, int, str]] = []
    for r in scheduled_rows(spec, weights):
        for s in seeds:
            for e in spec.evals_for_row(r):
                t = (r.experiment, int(s), e)
                if t not in out:
                    out.append(t)
    return out


def prepare_workflow_config(config: dict[str, Any], schema: str | Path, check_files: bool = True) -> None:
    """Readies the DAG's config (``workflow/config.yaml`` + ``--config``) for Snakemake's schema check,
    in place, so that what a user typed reads as meant or fails in one line:

    * a nested value that ``--config`` passed as text (``threads={train: 2}`` arrives as ``'2'``) becomes
      the integer / number the schema asks for, so that the schema's own bounds judge it, and
      ``null`` / ``none`` becomes None where the schema allows null;
    * a key the schema does not know is a ``ValueError`` naming it, the closest known key and the
      allowed ones (the schema check prints the whole schema and config instead);
    * with ``check_files`` (the Snakefile passes it for the main process only: a cluster job re-reads
      the Snakefile on its node), a ``weights`` entry that names no file is a ``ValueError`` (else
      every training that loads it would fail when its job runs).
    """
    import difflib

    def allowed(node: Mapping[str, Any]) -> list[str]:
        """A node's keys: its properties and the alternatives of a ``^(a|b)$`` pattern."""
        out = [str(k) for k in node.get("properties") or {}]
        for pat in node.get("patternProperties") or {}:
            m = re.fullmatch(r"\^\(([\w|]+)\)\$", pat)
            out += m.group(1).split("|") if m else [pat]
        return sorted(out)

    def walk(obj: Any, node: Mapping[str, Any], where: str) -> None:
        if not isinstance(obj, dict):
            return
        props = node.get("properties") or {}
        patterns = node.get("patternProperties") or {}
        for key in list(obj):
            if key in props:
                sub = props[key]
            else:  # JSON Schema: a pattern matches anywhere in the key unless anchored
                sub = next((v for pat, v in patterns.items() if re.search(pat, str(key))), None)
            if sub is None:
                if node.get("additionalProperties", True) is False:
                    known = allowed(node)
                    near = difflib.get_close_matches(str(key), known, n=1)
                    hint = f" (did you mean {near[0]!r}?)" if near else ""
                    raise ValueError(f"config key '{where}{key}' is unknown{hint}; known keys"
                                     f"{' at ' + where.rstrip('.') if where else ''}: {', '.join(known)}")
                continue
            types = sub.get("type")
            types = [types] if isinstance(types, str) else list(types or [])
            v = obj[key]
            if isinstance(v, str) and "null" in types and v.strip().lower() in ("null", "none", "~", ""):
                obj[key] = None
            elif isinstance(v, str) and "string" not in types:  # else left as text: the schema check names it
                if "integer" in types and re.fullmatch(r"[+-]?\d+", v.strip()):
                    obj[key] = int(v)
                elif "number" in types:
                    try:
                        obj[key] = float(v)
                    except ValueError:
                        pass
            walk(obj[key], sub, f"{where}{key}.")

    walk(config, load_yaml(schema), "")
    weights = config.get("weights")
    if check_files and isinstance(weights, dict):  # anything else: the schema check names it
        for name, path in weights.items():
            if path and not Path(str(path)).is_file():
                raise ValueError(f"config weights.{name}={path}: no such file (give the path to the {name} "
                                 "weights, or leave it out: the rows that need it then read 'not run: weights "
                                 "not provided')")
