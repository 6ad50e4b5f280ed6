"""Ablation audit: does every row differ from the reference row only in the switch the paper names?

For each row of a table with a ``baseline_row`` (Table VI: row 6 = SA4Depth) the audit resolves the
row's config and the baseline's config exactly as the workflow trains them
(:func:`sa4depth.pipeline.experiment_config`), lists every differing dotted key, and checks that set
against the row's declared ``switch`` (plus ``allowed`` extras such as a weights path). It then reports,
per seed, whether the run exists, its ``done.json`` status and the commit that trained it, the data
hash and code commit recorded by its evaluation JSONs, the checkpoint's sha256, and whether the run's
saved ``config.yaml`` still equals what the params say (a stale run is flagged). Works without any run.
Never imports torch.

A row whose resolved config is identical to the baseline's ablates nothing (a wrong ``experiment:`` or
an ``inherit`` that undoes its own switch): it is listed in ``rows_identical_to_baseline`` and, like a
switch problem, fails ``sa4depth audit --strict`` (the workflow's audit job). A row that is meant to
equal the baseline says so with an explicit ``switch: []``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from sa4depth.config import ConfigError, load_config, without_inactive_keys
from sa4depth.files import flatten, sha256_file, write_json_atomic, write_text_atomic
from sa4depth.report.claims import trained_at
from sa4depth.report.tables import provenance_of
from sa4depth.pipeline import (TableSpec, eval_id, experiment_config, metrics_path, params_dir, row_status,
                                  run_dir, synthetic_paths, DATASET_PROFILE)

__all__ = ["config_diff", "row_config", "audit_table", "audit_problems", "audit_markdown", "write_audit"]

def config_diff(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Dotted keys whose values differ between two resolved configs: ``{key: (a, b)}``."""
    fa, fb = (flatten(c, leaf=lambda key: key == "data.roots") for c in (a, b))
    out = {}
    for k in sorted(set(fa) | set(fb)):
        if k == "seed" or k.startswith("meta."):
            continue
        if fa.get(k, "<absent>") != fb.get(k, "<absent>"):
            out[k] = (fa.get(k, "<absent>"), fb.get(k, "<absent>"))
    return out


def row_config(spec: TableSpec, row_name: str, data: str, scale: str, seed: int,
               weights: Mapping[str, Any] | None, pdir: Path) -> dict[str, Any]:
    """Resolved config of a table row as the workflow would train it."""
    row = spec.rows[row_name]
    if row.experiment is not None and not row.not_implemented:
        cfg, _ = experiment_config(row.experiment, data, scale, seed, weights, pdir)
        return cfg
    cfg = load_config(data=data, scale=scale, row=(str(spec.path), row_name), overrides=[f"seed={seed}"],
                      params=pdir).to_dict()
    if data == "synthetic":
        sp = synthetic_paths(scale, DATASET_PROFILE[cfg["data"]["dataset"]])["data"]
        cfg["data"]["roots"] = {**cfg["data"]["roots"], **sp["roots"]}
        cfg["data"]["splits_dir"] = sp["splits_dir"]
    cfg.pop("meta", None)
    return cfg


def _load(path: Path) -> Any:
    with open(path) as f:
        return json.load(f) if path.suffix == ".json" else yaml.safe_load(f)


def audit_table(spec: TableSpec, data: str, scale: str, seeds: Iterable[int], weights: Mapping[str, Any] | None = None,
                runs_root: str | Path = "runs", metrics_root: str | Path = "results/metrics",
                pdir: Path | None = None) -> dict[str, Any]:
    """The audit as a JSON-able dict (see module doc)."""
    pdir = pdir or params_dir()
    seeds = [int(s) for s in seeds]
    if spec.baseline_row is None:
        raise ConfigError(f"{spec.path}: no 'baseline_row': this table has no ablation audit")
    s0 = seeds[0] if seeds else 0
    base_cfg = row_config(spec, spec.baseline_row, data, scale, s0, weights, pdir)
    rows_out: dict[str, Any] = {}
    n_bad = 0
    identical: list[str] = []
    for name, row in spec.rows.items():
        status = row_status(row, weights)
        entry: dict[str, Any] = {"label": row.label, "experiment": row.experiment, "status": status}
        if row.has_config:
            cfg = row_config(spec, name, data, scale, s0, weights, pdir)
            diff = config_diff(base_cfg, cfg)
            entry["diff_from_baseline"] = {k: {"baseline": a, "row": b} for k, (a, b) in diff.items()}
            if name != spec.baseline_row and not diff and row.switch != ():
                # ablates nothing (``switch: []`` declares a row that is meant to equal the baseline)
                entry["identical_to_baseline"] = True
                identical.append(name)
            if row.switch is not None:
                expected, allowed = set(row.switch), set(row.allowed)
                got = set(diff)
                missing, extra = sorted(expected - got), sorted(got - expected - allowed)
                ok = not missing and not extra
                entry["switch"] = list(row.switch)
                entry["switch_ok"] = ok
                if not ok:
                    n_bad += 1
                    entry["switch_problem"] = {"named_but_equal": missing, "differs_but_not_named": extra}
        runs = []
        if status == "run":
            for s in seeds:
                rd = run_dir(data, scale, row.experiment, s, runs_root)
                r: dict[str, Any] = {"seed": s, "run_dir": rd.as_posix(), "ran": False}
                done = rd / "done.json"
                if done.is_file():
                    d = _load(done)
                    r["ran"] = True
                    r["done_status"] = d.get("status") if isinstance(d, dict) else None
                    r["steps"] = d.get("steps") if isinstance(d, dict) else None
                    # the commit that trained it (``code_commit`` below is the one that evaluated it)
                    r["trained_at"] = trained_at(data, scale, row.experiment, s, runs_root,
                                                 done=d if isinstance(d, dict) else {})
                model = rd / "model.pt"
                if model.is_file():
                    r["checkpoint_sha256"] = sha256_file(model)
                if (rd / "config.yaml").is_file():
                    saved = _load(rd / "config.yaml") or {}
                    expect = row_config(spec, name, data, scale, s, weights, pdir)
                    stale = config_diff(without_inactive_keys(expect), without_inactive_keys(saved))
                    r["config_matches_params"] = not stale
                    if stale:
                        r["stale_keys"] = sorted(stale)
                for en in spec.evals_for_row(row):
                    mp = metrics_path(data, scale, row.experiment, s, eval_id(spec.evals[en]), metrics_root)
                    if mp.is_file():
                        for k, v in provenance_of(_load(mp)).items():
                            if v is not None and k != "device":
                                r.setdefault(k, v)
                        r.setdefault("evaluations", []).append(mp.as_posix())
                runs.append(r)
        entry["runs"] = runs
        rows_out[name] = entry
    return {"table": spec.name, "title": spec.title, "baseline_row": spec.baseline_row, "data": data,
            "scale": scale, "seeds": seeds, "rows_with_switch_problems": n_bad,
            "rows_identical_to_baseline": identical, "rows": rows_out}


def audit_problems(a: Mapping[str, Any]) -> list[str]:
    """One line per row that fails the audit (``--strict``), naming the row and what is wrong."""
    out = []
    base = a["baseline_row"]
    for name, e in a["rows"].items():
        if e.get("identical_to_baseline"):
            out.append(f"{a['table']}: row {name!r} (experiment {e['experiment']!r}) resolves to the same config "
                       f"as the baseline row {base!r}: it ablates nothing (if that is intended, give it 'switch: []')")
        if e.get("switch_ok") is False:
            pr = e["switch_problem"]
            bits = [f"named in 'switch' but equal to the baseline: {pr['named_but_equal']}"] \
                if pr["named_but_equal"] else []
            if pr["differs_but_not_named"]:
                bits.append(f"differs from the baseline but not named in 'switch': {pr['differs_but_not_named']}")
            out.append(f"{a['table']}: row {name!r}: config difference from baseline row {base!r} is not its "
                       f"switch: " + "; ".join(bits))
    return out


def _v(x: Any) -> str:
    return "`" + json.dumps(x) + "`"


def audit_markdown(a: Mapping[str, Any]) -> str:
    out = [f"# Audit of {a['title']}", "",
           f"Reference row: **{a['baseline_row']}**; data={a['data']}, scale={a['scale']}, seeds={a['seeds']}.",
           f"Rows whose config difference is not exactly the named switch: **{a['rows_with_switch_problems']}**."]
    same = a.get("rows_identical_to_baseline") or []
    out += [f"Rows whose config is identical to the reference row (they ablate nothing): "
            f"**{len(same)}**" + (f" ({', '.join(same)})." if same else "."), ""]
    for name, e in a["rows"].items():
        out.append(f"## {name}: {e['label']}")
        out.append(f"- experiment: `{e['experiment']}`; status: {e['status']}")
        if "diff_from_baseline" in e:
            d = e["diff_from_baseline"]
            if d:
                out.append("- config difference from the reference row:")
                for k, v in d.items():
                    out.append(f"  - `{k}`: {_v(v['baseline'])} -> {_v(v['row'])}")
            else:
                out.append("- config difference from the reference row: none")
            if e.get("identical_to_baseline"):
                out.append("- PROBLEM: identical to the reference row (ablates nothing)")
        if "switch" in e:
            verdict = "OK: differs exactly in the named switch" if e["switch_ok"] else \
                f"PROBLEM: {e['switch_problem']}"
            out.append(f"- switch named by the paper: {e['switch'] or '(none: reference row)'} -> {verdict}")
        for r in e.get("runs", []):
            bits = [f"seed {r['seed']}", "ran" if r["ran"] else "not run yet"]
            for k in ("done_status", "steps", "trained_at", "data_hash", "code_commit", "code_dirty",
                      "checkpoint_sha256"):
                if r.get(k) is not None:
                    bits.append(f"{k}={r[k]}")
            if "config_matches_params" in r:
                bits.append("config matches params" if r["config_matches_params"]
                            else f"STALE run config (keys {r['stale_keys']})")
            out.append("- run: " + "; ".join(bits))
        out.append("")
    return "\n".join(out)


def write_audit(a: Mapping[str, Any], out_md: str | Path, out_json: str | Path | None = None) -> None:
    if out_md is not None:
        write_text_atomic(out_md, audit_markdown(a))
    if out_json:
        write_json_atomic(out_json, a, indent=1, default=str)
