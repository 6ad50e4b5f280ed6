"""Report layer: tables and the audit from fabricated result files (no torch, no training)."""
from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import shutil
from pathlib import Path

import pytest
import yaml

from sa4depth.config import ConfigError, load_config
from sa4depth import pipeline as P
from sa4depth.report.audit import audit_markdown, audit_table, config_diff
from sa4depth.report.tables import MissingResults, build_table, to_json, write_table

REPO = Path(__file__).resolve().parents[1]
PARAMS = REPO / "params"

TABLE = """
title: "Table T: test"
reference: "unit test"
dataset: kitti
evals:
  depth: {kind: depth, split: eigen_benchmark}
  depth_sa: {kind: depth, split: eigen_benchmark, scale_aware: true}
  infer: {kind: infer}
columns:
  - {key: abs_rel, label: "Abs Rel", eval: depth, better: lower}
  - {key: a1, label: "d<1.25", eval: depth, better: higher}
  - {key: fps, label: "FPS", eval: infer, better: higher, paths: [metrics.fps, fps]}
groups:
  g1: "group one"
rows:
  base:
    group: g1
    label: "baseline"
    experiment: md2_18
    paper: {abs_rel: 0.090, a1: 0.914, fps: 61}
  ours_v:
    group: g1
    label: "ours, scale-aware"
    experiment: sa4depth_md2_18
    eval: {depth: depth_sa}
    paper: {abs_rel: 0.087, a1: GT}
  cited:
    label: "Other [1]"
    run: false
    cite: "[1] Someone, Somewhere 2020"
    paper: {abs_rel: 0.078, a1: 0.931}
  vit:
    label: "MonoViT"
    not_implemented: "MonoViT backbone is not implemented"
    experiment: md2_18
    set: {model.depth_arch: monovit}
    paper: {abs_rel: 0.075}
  needs_w:
    label: "with MASt3R"
    experiment: abl15_mast3r_features
    requires_weights: mast3r
    paper: {abs_rel: 0.082}
"""


def _write_eval(root: Path, exp: str, seed: int, eid: str, metrics: dict, **extra) -> Path:
    """A result file shaped like `sa4depth evaluate`'s (metrics + provenance block), or like
    `sa4depth bench infer`'s for eid == "infer" (numbers and git at the top level)."""
    p = P.metrics_path("synthetic", "tiny", exp, seed, eid, root)
    p.parent.mkdir(parents=True, exist_ok=True)
    git = {"commit": "abc123", "dirty": False}
    if eid == "infer":
        obj = {"benchmark": "infer", **metrics, "git": git, "device": "cpu", **extra}
    else:
        obj = {"evaluation": eid, "metrics": metrics, **extra,
               "provenance": {"git": git, "data_hash": "d" * 8, "device": "cpu", "config": {}}}
    p.write_text(json.dumps(obj))
    return p


@pytest.fixture()
def spec(tmp_path) -> P.TableSpec:
    tdir = tmp_path / "params" / "tables"
    shutil.copytree(PARAMS, tmp_path / "params", dirs_exist_ok=True)
    (tdir / "table_t.yaml").write_text(TABLE)
    return P.load_table(tdir / "table_t.yaml", tmp_path / "params")


def _fill(root: Path, seeds=(0, 1)):
    # baseline: two seeds with abs_rel 0.10 / 0.12 -> mean 0.11, std (ddof=1) = 0.0141421
    for s, (ar, a1, fps) in zip(seeds, [(0.10, 0.80, 100.0), (0.12, 0.90, 120.0)]):
        _write_eval(root, "md2_18", s, "depth_eigen_benchmark", {"abs_rel": ar, "a1": a1})
        _write_eval(root, "md2_18", s, "infer", {"fps": fps})
        # the scale-aware row must read depth_eigen_benchmark_sa, NOT the median-scaled file
        _write_eval(root, "sa4depth_md2_18", s, "depth_eigen_benchmark", {"abs_rel": 9.0, "a1": 0.0})
        _write_eval(root, "sa4depth_md2_18", s, "depth_eigen_benchmark_sa", {"abs_rel": 0.2, "a1": 0.5})
        _write_eval(root, "sa4depth_md2_18", s, "infer", {"fps": 50.0})


def test_table_values_mean_std_diff_and_statuses(spec, tmp_path):
    root = tmp_path / "metrics"
    _fill(root)
    res = build_table(spec, "synthetic", "tiny", [0, 1], metrics_root=root, runs_root=tmp_path / "runs")
    rows = {r.row.name: r for r in res.rows}
    c = rows["base"].cells["abs_rel"]
    assert c.mean == pytest.approx(0.11) and c.std == pytest.approx(math.sqrt(2) * 0.01)
    assert c.diff == pytest.approx(0.11 - 0.090)
    assert rows["base"].cells["fps"].mean == pytest.approx(110.0)
    assert rows["ours_v"].cells["abs_rel"].mean == pytest.approx(0.2)   # read from the _sa file
    assert rows["ours_v"].cells["a1"].diff is None                      # paper value "GT" is not numeric
    assert rows["cited"].status == "cited" and rows["cited"].cells["abs_rel"].mean is None
    assert rows["vit"].status.startswith("not implemented")
    assert rows["needs_w"].status == "not run: weights not provided"
    md = (write_table(res, tmp_path / "out")[1]).read_text(encoding="utf-8")
    assert "SYNTHETIC" in md and "scale=tiny" in md and "2 seeds" in md
    assert "0.110 ± 0.014" in md and "cited: [1] Someone" in md and "not run: weights not provided" in md
    assert "[group one]" in md


def test_csv_tex_json_outputs(spec, tmp_path):
    root = tmp_path / "metrics"
    _fill(root)
    res = build_table(spec, "synthetic", "tiny", [0, 1], metrics_root=root, runs_root=tmp_path / "runs")
    paths = write_table(res, tmp_path / "out")
    text = paths[0].read_text(encoding="utf-8")
    assert text.startswith("# Table T")
    rows = list(csv.DictReader(io.StringIO("".join(l for l in text.splitlines(True) if not l.startswith("#")))))
    base = next(r for r in rows if r["row"] == "base")
    assert float(base["abs_rel"]) == pytest.approx(0.11) and float(base["abs_rel_paper"]) == pytest.approx(0.09)
    assert float(base["abs_rel_diff"]) == pytest.approx(0.02)
    tex = paths[2].read_text(encoding="utf-8")
    assert r"\begin{tabular}" in tex and r"$\pm$" in tex and r"d<1.25" in tex and "_" not in tex.split(r"\toprule")[1].replace(r"\_", "")
    js = json.loads(paths[3].read_text())   # strict JSON: no NaN
    assert js["rows"]["base"]["abs_rel"]["n"] == 2 and js["scale"] == "tiny"


def test_tables_name_the_commit_that_trained_each_run(spec, tmp_path):
    """Each seed's run in the JSON names its training commit (from the evaluation's record of the run,
    else the run's done.json, else 'run not found'), its evaluation commit and data; the notes count them."""
    root, runs = tmp_path / "metrics", tmp_path / "runs"
    _fill(root)
    rd = P.run_dir("synthetic", "tiny", "md2_18", 0, runs)
    rd.mkdir(parents=True)
    (rd / "done.json").write_text(json.dumps({"status": "done", "git": {"commit": "1234567" + "0" * 33, "dirty": True}}))
    p = P.metrics_path("synthetic", "tiny", "md2_18", 1, "depth_eigen_benchmark", root)
    obj = json.loads(p.read_text())
    obj["provenance"]["trained"] = {"done": True, "git": {"commit": "fedcba9" + "0" * 33, "dirty": False}}
    p.write_text(json.dumps(obj))
    res = build_table(spec, "synthetic", "tiny", [0, 1], metrics_root=root, runs_root=runs)
    js = to_json(res)["rows"]
    assert js["base"]["runs"] == [
        {"seed": 0, "trained_at": "1234567-dirty", "evaluated_at": "abc123", "data_hash": "d" * 8},
        {"seed": 1, "trained_at": "fedcba9", "evaluated_at": "abc123", "data_hash": "d" * 8}]
    assert [r["trained_at"] for r in js["ours_v"]["runs"]] == ["run not found"] * 2
    assert "runs" not in js["cited"]
    assert any(n.startswith("Trained at: run not found 2 runs, `1234567-dirty` 1 run, `fedcba9` 1 run")
               for n in res.notes), res.notes


def test_matcher_rows_show_what_ran(tmp_path):
    spec = P.load_table("table_vi", PARAMS)
    root, runs = tmp_path / "m", tmp_path / "runs"
    for row in P.scheduled_rows(spec):
        _write_eval(root, row.experiment, 0, "depth_eigen_benchmark", {"abs_rel": 0.1, "a1": 0.9})
        _write_eval(root, row.experiment, 0, "infer", {"fps": 10.0})
    rd = P.run_dir("synthetic", "tiny", "abl08_matcher_pnp", 0, runs)
    rd.mkdir(parents=True)
    cfg, _ = P.experiment_config("abl08_matcher_pnp", "synthetic", "tiny", 0, None, PARAMS)
    (rd / "config.yaml").write_text(yaml.safe_dump(cfg))
    (rd / "done.json").write_text(json.dumps({"status": "done", "matcher": "orb+pnp"}))
    res = build_table(spec, "synthetic", "tiny", [0], metrics_root=root, runs_root=runs)
    r8 = next(r for r in res.rows if r.row.name == "r08_matcher_pnp")
    assert r8.ran == {"matcher.method": "orb", "matcher.solver": "pnp", "matcher_ran": "orb+pnp"}
    assert "matcher_ran=orb+pnp" in to_json(res)["rows"]["r08_matcher_pnp"]["status"]


def test_missing_results_named_and_allow_missing(spec, tmp_path):
    root = tmp_path / "metrics"
    _fill(root, seeds=(0,))
    (P.metrics_path("synthetic", "tiny", "md2_18", 0, "infer", root)).unlink()
    with pytest.raises(MissingResults, match=r"md2_18/seed0/infer\.json"):
        build_table(spec, "synthetic", "tiny", [0], metrics_root=root)
    res = build_table(spec, "synthetic", "tiny", [0], metrics_root=root, allow_missing=True)
    base = next(r for r in res.rows if r.row.name == "base")
    assert base.status == "missing results" and base.cells["abs_rel"].mean == pytest.approx(0.10)


def test_bad_result_files_give_clear_errors(spec, tmp_path):
    root = tmp_path / "metrics"
    _fill(root, seeds=(0,))
    p = _write_eval(root, "md2_18", 0, "depth_eigen_benchmark", {"abs_rel": "oops", "a1": 0.8})
    with pytest.raises(ValueError, match=r"depth_eigen_benchmark\.json.*abs_rel.*not a number"):
        build_table(spec, "synthetic", "tiny", [0], metrics_root=root)
    p.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        build_table(spec, "synthetic", "tiny", [0], metrics_root=root)
    _write_eval(root, "md2_18", 0, "depth_eigen_benchmark", {"a1": 0.8})
    with pytest.raises(ValueError, match=r"none of \['metrics.abs_rel'\]"):
        build_table(spec, "synthetic", "tiny", [0], metrics_root=root)


def test_bad_table_spec_errors(tmp_path):
    shutil.copytree(PARAMS, tmp_path / "params")
    bad = yaml.safe_load(TABLE)
    bad["rows"]["base"]["paper"]["nonsense"] = 1
    f = tmp_path / "params" / "tables" / "bad.yaml"
    f.write_text(yaml.safe_dump(bad))
    with pytest.raises(ConfigError, match=r"bad\.yaml: row 'base': paper values for unknown column"):
        P.load_table(f, tmp_path / "params")
    bad = yaml.safe_load(TABLE)
    del bad["rows"]["cited"]["cite"]
    f.write_text(yaml.safe_dump(bad))
    with pytest.raises(ConfigError, match="cited row .* needs 'cite'"):
        P.load_table(f, tmp_path / "params")


def test_audit_table_vi_switches_and_detects_extra_difference(tmp_path):
    spec = P.load_table("table_vi", PARAMS)
    a = audit_table(spec, "synthetic", "tiny", [0], runs_root=tmp_path / "runs", metrics_root=tmp_path / "m", pdir=PARAMS)
    assert a["rows_with_switch_problems"] == 0 and len(a["rows"]) == 16
    r5 = a["rows"]["r05_pose_selfsup"]["diff_from_baseline"]
    assert r5 == {"refine.irls": {"baseline": True, "row": False}}
    assert a["rows"]["r16_pixloc_features"]["status"] == "not run: weights not provided"
    assert all(not r["ran"] for e in a["rows"].values() for r in e["runs"])
    # a params edit that makes row 13 differ in a second key is caught
    shutil.copytree(PARAMS, tmp_path / "params")
    ex = tmp_path / "params" / "experiments.yaml"
    data = yaml.safe_load(ex.read_text())
    data["rows"]["abl13_no_confidence"]["set"]["refine.iterations"] = 7
    ex.write_text(yaml.safe_dump(data))
    spec2 = P.load_table(tmp_path / "params" / "tables" / "table_vi.yaml", tmp_path / "params")
    a2 = audit_table(spec2, "synthetic", "tiny", [0], runs_root=tmp_path / "runs", pdir=tmp_path / "params")
    assert a2["rows_with_switch_problems"] == 1
    assert a2["rows"]["r13_no_confidence"]["switch_problem"]["differs_but_not_named"] == ["refine.iterations"]
    assert "PROBLEM" in audit_markdown(a2)


def test_audit_reports_runs_checkpoints_and_stale_configs(tmp_path):
    spec = P.load_table("table_vi", PARAMS)
    runs, mroot = tmp_path / "runs", tmp_path / "m"
    cfg, _ = P.experiment_config("abl10_detach_depth", "synthetic", "tiny", 0, None, PARAMS)
    rd = P.run_dir("synthetic", "tiny", "abl10_detach_depth", 0, runs)
    rd.mkdir(parents=True)
    (rd / "config.yaml").write_text(yaml.safe_dump(cfg))
    (rd / "model.pt").write_bytes(b"weights")
    (rd / "done.json").write_text(json.dumps({"status": "done", "steps": 4,
                                              "git": {"commit": "9876543" + "0" * 33, "dirty": False}}))
    _write_eval(mroot, "abl10_detach_depth", 0, "depth_eigen_benchmark", {"abs_rel": 0.1, "a1": 0.9})
    a = audit_table(spec, "synthetic", "tiny", [0], runs_root=runs, metrics_root=mroot, pdir=PARAMS)
    r = a["rows"]["r10_detach_depth"]["runs"][0]
    assert r["ran"] and r["done_status"] == "done" and r["config_matches_params"]
    # trained at the done.json's commit, evaluated at the evaluation's (code_commit)
    assert r["trained_at"] == "9876543" and "trained_at=9876543; " in audit_markdown(a)
    # a run recorded before matcher.orb_patch existed (its matcher off) still matches the params
    older = {**cfg, "matcher": {k: v for k, v in cfg["matcher"].items() if k != "orb_patch"}}
    (rd / "config.yaml").write_text(yaml.safe_dump(older))
    a_old = audit_table(spec, "synthetic", "tiny", [0], runs_root=runs, metrics_root=mroot, pdir=PARAMS)
    assert a_old["rows"]["r10_detach_depth"]["runs"][0]["config_matches_params"]
    (rd / "config.yaml").write_text(yaml.safe_dump(cfg))
    assert r["checkpoint_sha256"] == hashlib.sha256(b"weights").hexdigest()
    assert r["code_commit"] == "abc123" and r["data_hash"] == "d" * 8 and r["code_dirty"] is False
    cfg["refine"]["iterations"] = 99          # the saved run no longer matches params
    (rd / "config.yaml").write_text(yaml.safe_dump(cfg))
    a = audit_table(spec, "synthetic", "tiny", [0], runs_root=runs, metrics_root=mroot, pdir=PARAMS)
    r = a["rows"]["r10_detach_depth"]["runs"][0]
    assert not r["config_matches_params"] and r["stale_keys"] == ["refine.iterations"]


def test_config_diff_ignores_meta_and_seed():
    a = load_config(scale="tiny", row="experiments:sa4depth_md2_50", overrides=["seed=1"]).to_dict()
    b = load_config(scale="tiny", row="table_vi:r06_sa4depth", overrides=["seed=2"]).to_dict()
    assert config_diff(a, b) == {}


def test_summary_json(tmp_path):
    from sa4depth.report.tables import summarize

    p0 = _write_eval(tmp_path, "md2_18", 0, "depth_eigen_benchmark", {"abs_rel": 0.1, "note": "x"})
    p1 = _write_eval(tmp_path, "md2_18", 1, "infer", {"fps": 3.0})
    s = summarize([p0, p1])
    assert s == {"depth_eigen_benchmark": {"seed0": {"abs_rel": 0.1}}, "infer": {"seed1": {"fps": 3.0}}}


def test_figures_from_fabricated_results(tmp_path):
    import numpy as np

    from sa4depth.report import figures as F

    p = _write_eval(tmp_path, "md2_18", 0, "depth_eigen_benchmark", {"abs_rel": 0.1},
                    per_image=[{"ratio": 1.0 + 0.1 * i, "abs_rel": 0.1} for i in range(6)])
    r = F.per_image_ratios(p)
    assert r.tolist() == pytest.approx([1.0, 1.1, 1.2, 1.3, 1.4, 1.5])
    out = F.plot_scale_factors({"a": r, "b": r[::-1]}, tmp_path / "f1.png")
    assert out.stat().st_size > 1000
    with pytest.raises(ValueError, match="per_image"):
        F.per_image_ratios(_write_eval(tmp_path, "x", 0, "depth_eigen_benchmark", {"abs_rel": 0.1}))
    # PCA colouring: two frames with identical features get identical colours
    rng = np.random.default_rng(0)
    f = rng.normal(size=(8, 5, 7))
    rgb = F.pca_rgb([f, f.copy()])
    assert rgb[0].shape == (5, 7, 3) and np.allclose(rgb[0], rgb[1]) and rgb[0].min() >= 0 and rgb[0].max() <= 1
    img = rng.uniform(size=(5, 7, 3))
    F.plot_features([img, img], [f, f], [np.ones((5, 7)), np.zeros((5, 7))], tmp_path / "f10.png")
    F.plot_qualitative([img], {"run": [rng.uniform(size=(5, 7))]}, tmp_path / "f3.png", gts=[np.ones((5, 7))])
    F.montage([("a", tmp_path / "f1.png"), ("b", tmp_path / "f3.png")], tmp_path / "m.png", title="t")
    assert (tmp_path / "m.png").is_file() and not list(tmp_path.glob("*.tmp.png"))
