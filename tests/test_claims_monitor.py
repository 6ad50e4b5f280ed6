"""The evidence machinery: the claims ledger's statistics and verdicts, the scale-alignment monitor
(pose errors against hand-computed values, its columns in a tiny run's log.csv) and the learnable
damping (it moves under training; row 14's stays put)."""
from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from sa4depth.config import load_config
from sa4depth.geometry import se3_exp
from sa4depth.report.claims import (BudgetRule, build_ledger, claim_verdict, compare, learning_state, load_claims,
                                    paired_interval, with_seeds, write_ledger)
from sa4depth.train import train
from sa4depth.train.monitor import pose_errors

torch.set_num_threads(min(2, os.cpu_count() or 1))
QUIET = dict(progress=False, log=lambda *_: None)
BIN = Path(sys.executable).parent / "sa4depth"
ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- statistics and verdicts
def test_paired_interval_matches_hand_computed_t_interval():
    d = [-0.139, -0.073, -0.065]  # the three differences
    mean, lo, hi = paired_interval(d)
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / 2)
    half = 4.30265273 * sd / math.sqrt(3)  # t_{0.975, 2}
    assert mean == pytest.approx(-0.092333, abs=1e-6)
    assert (lo, hi) == pytest.approx((mean - half, mean + half), abs=1e-9)
    assert lo == pytest.approx(-0.1929, abs=1e-3) and hi == pytest.approx(0.0086, abs=1e-3)
    assert paired_interval([0.1]) is None


@pytest.mark.parametrize("a,b,better,expected", [
    ([0.30, 0.31, 0.29, 0.30, 0.32], [0.40, 0.42, 0.41, 0.39, 0.40], "lower", "supports"),   # interval below 0
    ([0.40, 0.42, 0.41, 0.39, 0.40], [0.30, 0.31, 0.29, 0.30, 0.32], "lower", "opposes"),    # interval above 0
    ([0.30, 0.45, 0.28, 0.44, 0.35], [0.40, 0.31, 0.41, 0.30, 0.36], "lower", "unclear"),    # straddles 0
    ([0.92, 0.93, 0.91], [0.80, 0.81, 0.82], "higher", "supports"),
    ([0.80, 0.81, 0.82], [0.92, 0.93, 0.91], "higher", "opposes"),
])
def test_compare_classifies_constructed_differences(a, b, better, expected):
    rec = compare(a, b, better)
    assert rec["outcome"] == expected
    assert rec["mean_diff"] == pytest.approx(sum(x - y for x, y in zip(a, b)) / len(a))
    lo, hi = rec["ci95"]
    assert lo <= rec["mean_diff"] <= hi
    assert rec["a_values"] == a and rec["b_values"] == b


def test_family_interval_is_wider_and_can_flip_the_outcome():
    a, b = [0.0, 0.0, 0.0], [0.10, 0.08, 0.06]  # a - b = [-0.10, -0.08, -0.06]
    one = compare(a, b, "lower", family_size=1)
    many = compare(a, b, "lower", family_size=8)
    assert one["ci_family"][1] < 0 and one["outcome"] == "supports"
    assert many["ci_family"][0] < one["ci_family"][0] and many["ci_family"][1] > 0
    assert many["outcome"] == "unclear"


def test_claim_verdict_rule():
    assert claim_verdict(["supports", "supports"]) == "reproduced"
    assert claim_verdict(["supports", "unclear"]) == "inconclusive"
    assert claim_verdict(["supports", "opposes"]) == "contradicted"
    assert claim_verdict([]) == "inconclusive"


def test_compare_rejects_unpaired_values():
    with pytest.raises(ValueError, match="paired by seed"):
        compare([1.0, 2.0, 3.0], [1.0, 2.0], "lower")


# ----------------------------------------------------------------------------- the claims file and ledger
def _write(p: Path, text: str) -> Path:
    p.write_text(text)
    return p


def test_shipped_claims_file_validates_against_the_experiments():
    from sa4depth.config import load_yaml

    exps = load_yaml(ROOT / "params/experiments.yaml")["rows"]
    spec = load_claims(ROOT / "params/claims.yaml", experiments=exps)
    ids = [c.id for c in spec["claims"]]
    assert {"C1", "C2", "C3", "C4", "C5"} <= set(ids)
    assert all(c.seeds >= 3 for c in spec["claims"])


@pytest.mark.parametrize("body,match", [
    ("claims:\n  - {id: X, table: t, statement: s, seeds: 2, comparisons: []}\n", "seeds=2"),
    ("claims:\n  - {id: X, table: t, statement: s, seeds: 3, comparisons: [{metric: m, a: md2_18, b: nope,"
     " better: lower, eval: e, path: p}]}\n", "'nope' is not an experiment"),
    ("claims:\n  - {id: X, table: t, statement: s, seeds: 3, comparisons: [{metric: m, a: md2_18, b: md2_18,"
     " better: smaller, eval: e, path: p}]}\n", "better='smaller'"),
    ("claims:\n  - {id: X, table: t, statement: s, seeds: 3, sedes: 4, comparisons: []}\n", "unknown key"),
    ("claims:\n  - {id: X, table: t, statement: s, seeds: 3, comparisons: [{metric: m, a: md2_18, b: md2_18,"
     " better: lower, eval: log, path: mon/abs_rel}]}\n", "eval 'log' needs it"),
    ("claims:\n  - {id: X, table: t, statement: s, seeds: 3, comparisons: [{metric: m, a: md2_18, b: md2_18,"
     " better: lower, eval: e, step: 5, path: p}]}\n", "`step` goes with eval 'log'"),
    ("claims:\n  - {id: X, table: t, statement: s, seeds: 3, comparisons: [{metric: m, a: md2_18, b: md2_18,"
     " better: lower, eval: log, step: -1, path: p}]}\n", "step=-1"),
    ("claims:\n  - {id: X, table: t, statement: s, seeds: 3, comparisons: [{metric: m, a: md2_18, b: md2_18,"
     " better: lower, eval: e, path: p}]}\n  - {id: X, table: t, statement: s, seeds: 3, comparisons:"
     " [{metric: m, a: md2_18, b: md2_18, better: lower, eval: e, path: p}]}\n", "duplicate claim id"),
])
def test_bad_claims_files_name_the_problem(tmp_path, body, match):
    f = _write(tmp_path / "claims.yaml", body)
    with pytest.raises(ValueError, match=match) as e:
        load_claims(f, experiments={"md2_18": {}})
    assert str(f) in str(e.value)


#: a claims file's head with claim T1 (ea beats eb on depth_s's abs_rel, 3 seeds); tests append claims
_CLAIMS_T1 = """scale: tiny
claims:
  - id: T1
    table: table_x
    statement: a beats b
    seeds: 3
    comparisons:
      - {metric: abs_rel, eval: depth_s, path: metrics.abs_rel, a: ea, b: eb, better: lower}
"""


def test_ledger_is_computed_from_the_result_files(tmp_path):
    f = _write(tmp_path / "claims.yaml", _CLAIMS_T1 + """  - id: T2
    table: table_x
    statement: never run
    seeds: 3
    comparisons:
      - {metric: abs_rel, eval: depth_s, path: metrics.abs_rel, a: ea, b: ec, better: lower}
""")
    spec = load_claims(f)
    metrics = tmp_path / "metrics"
    vals = {"ea": [0.20, 0.22, 0.21], "eb": [0.30, 0.33, 0.31]}
    for exp, vs in vals.items():
        for s, v in enumerate(vs):
            p = metrics / "synthetic" / "tiny" / exp / f"seed{s}" / "depth_s.json"
            p.parent.mkdir(parents=True)
            p.write_text(json.dumps({"metrics": {"abs_rel": v}}))
    with pytest.raises(FileNotFoundError, match="ec seed 0 needed by claim T2"):
        build_ledger(spec["claims"], "synthetic", "tiny", tmp_path / "runs", metrics)
    led = build_ledger(spec["claims"], "synthetic", "tiny", tmp_path / "runs", metrics, allow_missing=True)
    (c,) = led["claims"]
    assert c["verdict"] == "reproduced" and c["id"] == "T1"
    m = c["comparisons"][0]
    assert m["a_values"] == vals["ea"] and m["b_values"] == vals["eb"]
    assert m["mean_diff"] == pytest.approx(-0.103333, abs=1e-6)
    assert [p["id"] for p in led["pending"]] == ["T2"]
    out = tmp_path / "ledger"
    written = write_ledger(led, out, provenance={"git_commit": "abc"})
    assert [p.name for p in written] == ["claims.json", "claims.md", "fig_ledger.png"] and written[2].is_file()
    js = json.loads((out / "claims.json").read_text())
    assert js["claims"][0]["verdict"] == "reproduced"
    assert (out / js["claims"][0]["comparisons"][0]["a_files"][0]).is_file()  # inputs copied beside it
    md = (out / "claims.md").read_text()
    # T2 has ea's results (shared with T1) but no comparison with all of its files: partly run, not "not run yet"
    assert "**reproduced**" in md and "## T2 (table_x): partly run: 0 of 1 comparisons answered (3 result files missing)" in md
    # the pending claim's results that exist (ea's, shared with T1) are committed too
    (p,) = js["pending"]
    assert p["missing"] == 3 and len(p["present_files"]) == 3 and "the 3 present are copied" in md
    assert p["missing_runs"] == [{"exp": "ec", "seeds": [0, 1, 2]}]
    assert "Runs without their results (3): `ec` seeds 0-2." in md
    # the text names runs, not this machine's paths (those stay in claims.json's missing_files)
    (line,) = [x for x in md.splitlines() if "result files are missing" in x]
    assert str(metrics) not in line and p["missing_files"][0].startswith(str(metrics))
    assert all((out / f).is_file() for f in p["present_files"])
    # no run directories: the training commit is unknown, and said so
    assert m["a_trained_at"] == ["run not found"] * 3 and led["trained_at"] == {"run not found": 6}


def test_a_pending_claim_shows_the_comparisons_whose_runs_have_finished(tmp_path):
    """A claim with one comparison answered and one still training: the answered one is computed at
    the whole claim's family level (as it will read when the claim is finished), shown in claims.md,
    the console and the forest plot, with its files committed; the claim gets no verdict."""
    from sa4depth.report.figures import ledger_rows

    f = _write(tmp_path / "claims.yaml", """scale: tiny
claims:
  - id: T3
    table: table_x
    statement: a beats b and c
    summary: a beats b and c
    seeds: 3
    comparisons:
      - {metric: abs_rel, label: "a vs b", eval: depth_s, path: metrics.abs_rel, a: ea, b: eb, better: lower}
      - {metric: abs_rel, label: "a vs c", eval: depth_s, path: metrics.abs_rel, a: ea, b: ec, better: lower}
""")
    spec = load_claims(f)
    metrics = tmp_path / "metrics"

    def put(exp, vs):
        for s, v in enumerate(vs):
            p = metrics / "synthetic" / "tiny" / exp / f"seed{s}" / "depth_s.json"
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(json.dumps({"metrics": {"abs_rel": v}}))
    put("ea", [0.20, 0.22, 0.21])
    put("eb", [0.30, 0.33, 0.31])
    put("ec", [0.40, 0.45])  # seed 2 still training
    led = build_ledger(spec["claims"], "synthetic", "tiny", tmp_path / "runs", metrics, allow_missing=True)
    assert led["claims"] == []
    (p,) = led["pending"]
    assert p["n_comparisons"] == 2 and p["missing_runs"] == [{"exp": "ec", "seeds": [2]}]
    (m,) = p["comparisons"]
    assert m["label"] == "a vs b" and m["b_values"] == [0.30, 0.33, 0.31] and "verdict" not in p
    assert m["ci_family_level"] == pytest.approx(0.975)  # the family of 2, not of the 1 answered
    assert set(p["budget"]["rows"]) == {"ea", "eb"}  # the learning curves of the rows it reads (no logs here)
    out = tmp_path / "ledger"
    write_ledger(led, out)
    js = json.loads((out / "claims.json").read_text())
    (jm,) = js["pending"][0]["comparisons"]
    assert all((out / x).is_file() for x in jm["a_files"] + jm["b_files"])  # relative to the ledger, copied
    md = (out / "claims.md").read_text()
    assert "| T3 | table_x | a beats b and c | partly run: 1 of 2 comparisons answered (1 result files missing)" in md
    assert "## T3 (table_x): partly run" in md and "| a vs b | ea | eb | a < b |" in md and "| a vs c |" not in md
    (row,) = ledger_rows(js)
    assert row["claim"] == "T3" and row["verdict"] == "pending" and row["label"] == "a vs b"
    # once the last run is in, the claim is finished and the comparison answered early reads the same
    put("ec", [0.40, 0.45, 0.41])
    done = build_ledger(spec["claims"], "synthetic", "tiny", tmp_path / "runs", metrics, allow_missing=True)
    assert not done["pending"] and done["claims"][0]["verdict"] == "reproduced"
    first = done["claims"][0]["comparisons"][0]
    assert {k: first[k] for k in ("mean_diff", "ci95", "ci_family", "outcome")} == \
        {k: m[k] for k in ("mean_diff", "ci95", "ci_family", "outcome")}


def test_seed_lists_are_written_as_ranges():
    from sa4depth.report.claims import _ranges

    assert _ranges([8, 0, 1, 2, 5, 7]) == "0-2, 5, 7-8"
    assert _ranges([3]) == "3" and _ranges([]) == ""
    assert _ranges(range(5, 20)) == "5-19"


def test_ledger_from_its_committed_copies_and_new_runs(tmp_path, monkeypatch, capsys):
    """`--runs A B --metrics A' B'`: each run read from the first root holding its folder, so a ledger's
    committed copies (runs and metrics in one tree) and new runs answer one ledger; rebuilt into its own
    folder, the copies stay as they were."""
    spec = load_claims(_write(tmp_path / "claims.yaml", _CLAIMS_T1))
    metrics = tmp_path / "metrics"
    vals = {"ea": [0.20, 0.22, 0.21], "eb": [0.30, 0.33, 0.31]}
    for exp, vs in vals.items():
        for s, v in enumerate(vs[:2]):  # seeds 0 and 1 trained earlier
            p = metrics / "synthetic" / "tiny" / exp / f"seed{s}" / "depth_s.json"
            p.parent.mkdir(parents=True)
            p.write_text(json.dumps({"metrics": {"abs_rel": v}}))
            (tmp_path / "runs" / "synthetic" / "tiny" / exp / f"seed{s}").mkdir(parents=True)
    out = tmp_path / "ledger"
    led = build_ledger(spec["claims"], "synthetic", "tiny", tmp_path / "runs", metrics, allow_missing=True)
    assert [p["id"] for p in led["pending"]] == ["T1"]
    # a fresh checkout: only the ledger's copies of seeds 0-1 (made here by hand), then seed 2 trained anew
    copies = out / "runs"
    for exp, vs in vals.items():
        for s, v in enumerate(vs[:2]):
            p = copies / "synthetic" / "tiny" / exp / f"seed{s}" / "depth_s.json"
            p.parent.mkdir(parents=True)
            p.write_text(json.dumps({"metrics": {"abs_rel": v}}))
    new_runs, new_metrics = tmp_path / "new_runs", tmp_path / "new_metrics"
    for exp, vs in vals.items():
        (new_runs / "synthetic" / "tiny" / exp / "seed2").mkdir(parents=True)
        p = new_metrics / "synthetic" / "tiny" / exp / "seed2" / "depth_s.json"
        p.parent.mkdir(parents=True)
        p.write_text(json.dumps({"metrics": {"abs_rel": vs[2]}}))
    with pytest.raises(ValueError, match="one metrics root per runs root"):
        build_ledger(spec["claims"], "synthetic", "tiny", [copies, new_runs], [copies])
    led = build_ledger(spec["claims"], "synthetic", "tiny", [copies, new_runs], [copies, new_metrics])
    (c,) = led["claims"]
    m = c["comparisons"][0]
    assert m["a_values"] == vals["ea"] and m["b_values"] == vals["eb"] and c["verdict"] == "reproduced"
    assert m["a_files"][0].startswith(str(copies)) and m["a_files"][2].startswith(str(new_metrics))
    write_ledger(led, out)
    js = json.loads((out / "claims.json").read_text())
    files = js["claims"][0]["comparisons"][0]["b_files"]
    assert [json.loads((out / f).read_text())["metrics"]["abs_rel"] for f in files] == vals["eb"]
    # a finished run is read where it finished: an unfinished folder in an earlier root (seed 0 of ea
    # retrained in new_runs, no done.json yet, its own metric JSON) does not hide it; a file the
    # finished run's root lacks (seed 2's copy holding done.json only) comes from the root that has it
    (copies / "synthetic" / "tiny" / "ea" / "seed0" / "done.json").write_text("{}")
    (new_runs / "synthetic" / "tiny" / "ea" / "seed0").mkdir(parents=True)
    p = new_metrics / "synthetic" / "tiny" / "ea" / "seed0" / "depth_s.json"
    p.parent.mkdir(parents=True)
    p.write_text(json.dumps({"metrics": {"abs_rel": 0.99}}))
    (copies / "synthetic" / "tiny" / "eb" / "seed2" / "depth_s.json").unlink()  # written by write_ledger
    (copies / "synthetic" / "tiny" / "eb" / "seed2" / "done.json").write_text("{}")
    (c,) = build_ledger(spec["claims"], "synthetic", "tiny", [new_runs, copies], [new_metrics, copies])["claims"]
    m = c["comparisons"][0]
    assert m["a_values"] == vals["ea"] and m["b_values"] == vals["eb"]
    assert m["b_files"][2].startswith(str(new_metrics))
    # the command line: several run roots need their metrics roots
    (tmp_path / "params").mkdir()
    (tmp_path / "params" / "claims.yaml").write_text(_CLAIMS_T1.replace("a: ea, b: eb", "a: md2_18, b: md2_50"))
    (tmp_path / "params" / "experiments.yaml").write_text((ROOT / "params/experiments.yaml").read_text())
    monkeypatch.chdir(tmp_path)
    from sa4depth.cli import main

    assert main(["claims", "--runs", "a", "b", "--out-dir", "x"]) != 0
    assert "--metrics with one root each" in capsys.readouterr().err and not Path("x").exists()


def test_result_made_with_another_config_counts_as_missing_when_checked(tmp_path):
    """check_config (the CLI's default): a metric JSON whose provenance records a training config other
    than the params give now is listed as missing, and named as made with another config."""
    from sa4depth.pipeline import experiment_config
    from sa4depth.report.claims import STALE, is_current

    spec = load_claims(_write(tmp_path / "claims.yaml", _CLAIMS_T1.replace("a: ea, b: eb", "a: md2_18, b: md2_50")))
    metrics = tmp_path / "metrics"
    for exp, vs in {"md2_18": [0.20, 0.22, 0.21], "md2_50": [0.30, 0.33, 0.31]}.items():
        for s, v in enumerate(vs):
            cfg = experiment_config(exp, "synthetic", "tiny", s)[0]
            if (exp, s) == ("md2_50", 1):
                cfg["loss"]["smoothness"] = 0.5
            p = metrics / "synthetic" / "tiny" / exp / f"seed{s}" / "depth_s.json"
            p.parent.mkdir(parents=True)
            p.write_text(json.dumps({"metrics": {"abs_rel": v}, "provenance": {"config": cfg}}))
    stale = metrics / "synthetic" / "tiny" / "md2_50" / "seed1" / "depth_s.json"
    assert not is_current(stale, "synthetic", "tiny", "md2_50", 1)
    assert is_current(stale.parent.parent / "seed0" / "depth_s.json", "synthetic", "tiny", "md2_50", 0)
    assert build_ledger(spec["claims"], "synthetic", "tiny", tmp_path / "runs", metrics)["claims"][0]["verdict"] \
        == "reproduced"  # not checked: read
    led = build_ledger(spec["claims"], "synthetic", "tiny", tmp_path / "runs", metrics, allow_missing=True,
                       check_config=True)
    assert not led["claims"] and led["pending"][0]["missing_files"] == [str(stale) + STALE]
    with pytest.raises(FileNotFoundError, match="md2_50 seed 1 needed by claim T1 is missing \\(made with another"):
        build_ledger(spec["claims"], "synthetic", "tiny", tmp_path / "runs", metrics, check_config=True)


def test_ledger_names_the_commit_that_trained_each_run(tmp_path):
    """From each run's done.json: the short commit (-dirty), `unrecorded` without a git record, `run not
    found` without done.json; per comparison side, per claim and over the ledger, and in claims.md."""
    f = _write(tmp_path / "claims.yaml", _CLAIMS_T1 + """  - id: T3
    table: table_x
    statement: a beats a itself
    seeds: 3
    comparisons:
      - {metric: abs_rel, eval: depth_s, path: metrics.abs_rel, a: ea, b: ea, better: lower}
""")
    spec = load_claims(f)
    metrics, runs = tmp_path / "metrics", tmp_path / "runs"
    for exp in ("ea", "eb"):
        for s in range(3):
            p = metrics / "synthetic" / "tiny" / exp / f"seed{s}" / "depth_s.json"
            p.parent.mkdir(parents=True)
            p.write_text(json.dumps({"metrics": {"abs_rel": 0.2 + 0.01 * s + (0.1 if exp == "eb" else 0)}}))
    done = {("ea", 0): {"git": {"commit": "abcdef0123", "dirty": False}},
            ("ea", 1): {"git": {"commit": "abcdef0123", "dirty": False}},
            ("ea", 2): {"git": {"commit": "abcdef0123", "dirty": False}},
            ("eb", 0): {"git": {"commit": "1234567890", "dirty": True}},
            ("eb", 1): {"status": "done"}}                      # seed 2 of eb: no done.json
    for (exp, s), d in done.items():
        p = runs / "synthetic" / "tiny" / exp / f"seed{s}" / "done.json"
        p.parent.mkdir(parents=True)
        p.write_text(json.dumps(d))
    led = build_ledger(spec["claims"], "synthetic", "tiny", runs, metrics)
    t1, t3 = led["claims"]
    m = t1["comparisons"][0]
    assert m["a_trained_at"] == ["abcdef0"] * 3
    assert m["b_trained_at"] == ["1234567-dirty", "unrecorded", "run not found"]
    assert led["train_time"] == {"runs": 0, "train_hours": 0.0, "runs_without_time": 6}
    assert t1["trained_at"] == {"abcdef0": 3, "1234567-dirty": 1, "run not found": 1, "unrecorded": 1}
    assert t3["trained_at"] == {"abcdef0": 3}                  # a run read twice counts once
    assert led["trained_at"] == t1["trained_at"]
    out = tmp_path / "ledger"
    write_ledger(led, out)
    md = (out / "claims.md").read_text()
    assert "`abcdef0` 3 runs, `1234567-dirty` 1 run, run not found 1 run, unrecorded 1 run" in md
    assert "the commit of 2 of its 6 runs is not known" in md.split("## T1")[1].split("## T3")[0]
    assert "Trained at: `abcdef0` 3 runs; each seed pairs runs trained at one commit." in md.split("## T3")[1]
    assert json.loads((out / "claims.json").read_text())["trained_at"] == led["trained_at"]
    (runs / "synthetic" / "tiny" / "ea" / "seed0" / "done.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="ea/seed0/done.json: not a done.json object"):
        build_ledger(spec["claims"], "synthetic", "tiny", runs, metrics)
    # an evaluation that recorded its model's run (provenance.trained) is read first, run directory or not
    p = metrics / "synthetic" / "tiny" / "eb" / "seed2" / "depth_s.json"
    p.write_text(json.dumps({"metrics": {"abs_rel": 0.32}, "provenance": {"trained": {
        "model": "x/model.pt", "done": True, "git": {"commit": "feedbeef99", "dirty": False}}}}))
    (runs / "synthetic" / "tiny" / "ea" / "seed0" / "done.json").write_text(json.dumps(done[("ea", 0)]))
    led = build_ledger(spec["claims"], "synthetic", "tiny", runs, metrics)
    assert led["claims"][0]["comparisons"][0]["b_trained_at"] == ["1234567-dirty", "unrecorded", "feedbee"]
    # every commit known: the seeds whose two runs come from different commits are named
    (runs / "synthetic" / "tiny" / "eb" / "seed1" / "done.json").write_text(json.dumps(done[("ea", 0)]))
    t1 = build_ledger(spec["claims"], "synthetic", "tiny", runs, metrics)["claims"][0]
    assert t1["pairing"] == "seeds 0, 2 pair runs trained at different commits"
    # a run resumed under other code reads as its commits in order (done.json `code`)
    (runs / "synthetic" / "tiny" / "eb" / "seed1" / "done.json").write_text(json.dumps({
        "git": {"commit": "bbbbbbb999", "dirty": False},
        "code": [{"from_step": 0, "commit": "abcdef0123", "dirty": False},
                 {"from_step": 300, "commit": "bbbbbbb999", "dirty": False}]}))
    t1 = build_ledger(spec["claims"], "synthetic", "tiny", runs, metrics)["claims"][0]
    assert t1["comparisons"][0]["b_trained_at"][1] == "abcdef0+bbbbbbb"
    write_ledger(build_ledger(spec["claims"], "synthetic", "tiny", runs, metrics), out)
    assert "`a+b`: a run resumed under other code" in (out / "claims.md").read_text()


def test_log_comparison_reads_the_finished_runs_learning_curve_at_its_step(tmp_path):
    """eval `log`: a column of log.csv at `step` (the last row of that step: a resumed run logs it
    twice); the run counts only once done.json exists; a step the monitor never logged is an error."""
    f = _write(tmp_path / "claims.yaml", """scale: tiny
claims:
  - id: T1
    table: table_x
    statement: early on, a is behind b
    seeds: 3
    comparisons:
      - {metric: early, eval: log, step: 50, path: mon/abs_rel, a: ea, b: eb, better: higher}
""")
    spec = load_claims(f)
    runs = tmp_path / "runs"
    curves = {"ea": [0.60, 0.58, 0.62], "eb": [0.50, 0.51, 0.49]}
    for exp, vs in curves.items():
        for s, v in enumerate(vs):
            d = runs / "synthetic" / "tiny" / exp / f"seed{s}"
            d.mkdir(parents=True)
            # step 50 logged twice (a resume): the second value counts; rows without the column are skipped
            (d / "log.csv").write_text("step,loss,mon/abs_rel\n0,1.0,0.7\n50,0.9,0.99\n50,0.9,%s\n60,0.8,\n"
                                       "100,0.7,0.1\n" % v)
    led = build_ledger(spec["claims"], "synthetic", "tiny", runs, tmp_path / "metrics", allow_missing=True)
    assert led["claims"] == [] and led["pending"][0]["missing"] == 6          # no done.json yet: not finished
    for exp in curves:
        for s in range(3):
            (runs / "synthetic" / "tiny" / exp / f"seed{s}" / "done.json").write_text("{}")
    (c,) = build_ledger(spec["claims"], "synthetic", "tiny", runs, tmp_path / "metrics")["claims"]
    m = c["comparisons"][0]
    assert m["a_values"] == curves["ea"] and m["b_values"] == curves["eb"] and m["step"] == 50
    assert c["verdict"] == "reproduced" and m["a_files"][0].endswith("log.csv")
    out = tmp_path / "ledger"
    write_ledger({"claims": [c], "pending": []}, out)
    copied = out / json.loads((out / "claims.json").read_text())["claims"][0]["comparisons"][0]["a_files"][0]
    assert copied.name == "log.csv" and "50,0.9,0.6" in copied.read_text()
    spec["claims"][0].comparisons[0].step = 75
    with pytest.raises(ValueError, match="no value of 'mon/abs_rel' at step 75"):
        build_ledger(spec["claims"], "synthetic", "tiny", runs, tmp_path / "metrics")
    spec["claims"][0].comparisons[0].a_path = "mon/nope"
    with pytest.raises(ValueError, match="no column 'mon/nope'"):
        build_ledger(spec["claims"], "synthetic", "tiny", runs, tmp_path / "metrics")


def test_seeds_override_reads_seeds_0_to_n_minus_1_only(tmp_path, monkeypatch, capsys):
    """`sa4depth claims --seeds N` (make reproduce's headline ledger): each claim answered from seeds
    0..N-1 whatever its own count; fewer than 3 is refused."""
    (tmp_path / "params").mkdir()
    f = _write(tmp_path / "params" / "claims.yaml", """scale: tiny
claims:
  - id: T1
    table: table_x
    statement: a beats b
    seeds: 5
    comparisons:
      - {metric: abs_rel, eval: depth_s, path: metrics.abs_rel, a: md2_18, b: md2_50, better: lower}
""")
    spec = load_claims(f)
    assert [c.seeds for c in with_seeds(spec["claims"], 3)] == [3] and spec["claims"][0].seeds == 5
    assert with_seeds(spec["claims"], None)[0].seeds == 5
    for bad in (2, 0, True, 3.0):
        with pytest.raises(ValueError, match="seeds="):
            with_seeds(spec["claims"], bad)
    metrics = tmp_path / "results" / "metrics"
    # seeds 0-2 favour a, seed 3 (not read at --seeds 3) would flip the mean
    vals = {"md2_18": [0.20, 0.22, 0.21, 0.90], "md2_50": [0.30, 0.33, 0.31, 0.30]}
    for exp, vs in vals.items():
        for s, v in enumerate(vs):
            p = metrics / "synthetic" / "tiny" / exp / f"seed{s}" / "depth_s.json"
            p.parent.mkdir(parents=True)
            p.write_text(json.dumps({"metrics": {"abs_rel": v}}))
    (tmp_path / "params" / "experiments.yaml").write_text((ROOT / "params/experiments.yaml").read_text())
    monkeypatch.chdir(tmp_path)
    from sa4depth.cli import main

    assert main(["claims", "--only", "T1", "--seeds", "3", "--out-dir", "out"]) == 0
    (c,) = json.loads(Path("out/claims.json").read_text())["claims"]
    assert c["seeds"] == 3 and c["verdict"] == "reproduced"
    assert c["comparisons"][0]["a_values"] == vals["md2_18"][:3]
    capsys.readouterr()
    assert main(["claims", "--only", "T1", "--out-dir", "out5"]) != 0    # its own 5 seeds: seed 4 missing
    assert "md2_18 seed 4 needed by claim T1" in capsys.readouterr().err
    assert main(["claims", "--only", "T1", "--seeds", "2", "--out-dir", "out2"]) != 0
    assert "seeds=2" in capsys.readouterr().err and not Path("out2").exists()


# ----------------------------------------------------------------------------- the monitor
def test_pose_errors_against_hand_computed_values():
    T_gt = torch.eye(4).repeat(2, 1, 1)
    T_gt[:, :3, 3] = torch.tensor([0.0, 0.0, 2.0])  # 2 m forward
    xi = torch.tensor([[0.0, 0.1, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
    T = se3_exp(xi)  # sample 0: a 0.1 rad yaw, sample 1: identity rotation
    T[0, :3, 3] = torch.tensor([0.0, 0.0, 1.0])  # right direction, half the GT length
    T[1, :3, 3] = torch.tensor([0.3, 0.0, 0.4])  # |t| = 0.5, 36.87 deg off
    s = torch.tensor([0.5, 0.25])  # the depth net predicts at half / a quarter of the metric scale
    e = pose_errors(T, T_gt, s)
    assert e["rot_err"][0] == pytest.approx(math.degrees(0.1), abs=1e-4)
    assert e["rot_err"][1] == pytest.approx(0.0, abs=1e-4)
    assert e["tdir_err"][0] == pytest.approx(0.0, abs=1e-4)
    assert e["tdir_err"][1] == pytest.approx(math.degrees(math.atan2(0.3, 0.4)), abs=1e-4)
    # sample 0: |t|/|t_gt| = 0.5 = s -> aligned (a = 1), and t equals s * t_gt exactly
    assert e["align"][0] == pytest.approx(1.0) and e["trans_err"][0] == pytest.approx(0.0, abs=1e-9)
    # sample 1: a = (0.5 / 2) / 0.25 = 1, but |t - s t_gt| = |(0.3, 0, -0.1)| against |s t_gt| = 0.5
    assert e["align"][1] == pytest.approx(1.0)
    assert e["trans_err"][1] == pytest.approx(math.sqrt(0.09 + 0.01) / 0.5)


def _data_args(d: Path) -> list[str]:
    return [f"data.roots={{kitti: {d / 'kitti_raw'}}}", f"data.splits_dir={d / 'splits'}", "data.num_workers=0"]


def _rows(run: Path) -> list[dict]:
    with open(run / "log.csv") as f:
        return list(csv.DictReader(f))


def test_monitor_columns_in_a_tiny_runs_log_and_damping_learns_only_in_row_6(driving, tmp_path):
    common = _data_args(driving) + ["model.depth_layers=18", "train.max_steps=4", "train.monitor_every=2",
                                    "train.monitor_samples=4", "train.checkpoint_every=100"]
    runs = {}
    for name, row in (("r06", "table_vi:r06_sa4depth"), ("r14", "table_vi:r14_fixed_damping")):
        cfg = load_config(scale="tiny", row=row, overrides=common)
        r = train(cfg, tmp_path / name, **QUIET)
        assert r.status == "done"
        runs[name] = tmp_path / name
    rows = _rows(runs["r06"])
    mon = [r for r in rows if r.get("mon/abs_rel")]
    assert [int(r["step"]) for r in mon] == [0, 2, 4]  # the untrained model, then every 2 steps
    for col in ("abs_rel", "net_rot_err", "net_tdir_err", "net_trans_err", "net_align_mean", "net_align_std",
                "ref_rot_err", "ref_trans_err", "ref_align_mean", "ref_align_std", "depth_scale_var",
                "net_pose_scale_var", "ref_pose_scale_var", "lm_cost_init", "lm_cost_final", "ref_worse_frac",
                "lm_cost_worse_frac", "damping"):
        vals = [float(r[f"mon/{col}"]) for r in mon]
        assert all(math.isfinite(v) for v in vals), col
    lam6 = [float(r["mon/damping"]) for r in mon]
    lam14 = [float(r["mon/damping"]) for r in _rows(runs["r14"]) if r.get("mon/damping")]
    assert lam6[0] == pytest.approx(1e-3, rel=1e-4) and lam14[0] == pytest.approx(1e-3, rel=1e-4)
    assert all(v == pytest.approx(1e-3, rel=1e-6) for v in lam14)  # row 14: fixed
    assert abs(math.log(lam6[-1] / lam6[0])) > 0.01  # row 6: moved by more than 1 % in 4 steps
    done = json.loads((runs["r06"] / "done.json").read_text())
    assert done["monitor"]["damping"] == pytest.approx(lam6[-1], rel=1e-4)
    # every value path of the shipped claims resolves in the files the evaluations really write
    from sa4depth.report.claims import _dig

    files = {"train": runs["r06"] / "done.json"}
    for eid, args in (("depth_eigen_benchmark", ["depth", "--split", "eigen_benchmark"]),
                      ("depth_eigen_benchmark_sa", ["depth", "--split", "eigen_benchmark", "--scale-aware"]),
                      ("scale", ["scale"])):
        out = tmp_path / f"{eid}.json"
        r = subprocess.run([str(BIN), "evaluate", *args, "--run", str(runs["r06"]), "--out", str(out)],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        files[eid] = out
        # the evaluation names the run that trained the model (done.json's commit and model hash)
        trained = json.loads(out.read_text())["provenance"]["trained"]
        assert trained["done"] and trained["git"] == done["git"] and trained["model_sha256"] == done["model_sha256"]
    spec = load_claims(ROOT / "params/claims.yaml")
    log_columns = set(rows[0])
    for c in spec["claims"]:
        for m in c.comparisons:
            if m.eval == "log":                          # a column of the run's log.csv
                assert {m.a_path, m.b_path} <= log_columns, (c.id, m.a_path)
                continue
            assert m.eval in files, (c.id, m.eval)
            obj = json.loads(files[m.eval].read_text())
            for path in (m.a_path, m.b_path):
                assert math.isfinite(_dig(obj, path, files[m.eval])), (c.id, path)
    # the monitor figure from the two runs' logs
    png = tmp_path / "fig_monitor.png"
    summary = tmp_path / "curves.json"
    r = subprocess.run([str(BIN), "figure", "monitor", "--run", f"row 6={runs['r06']}", "--run",
                        f"row 14={runs['r14']}", "--out", str(png), "--summary", str(summary), "--window", "2"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert png.stat().st_size > 10_000
    curves = json.loads(summary.read_text())["curves"]
    assert curves["row 6"]["steps"] == [0, 2, 4] and curves["row 6"]["sources"] == [str(runs["r06"] / "log.csv")]
    assert curves["row 6"]["mean"] == pytest.approx([float(r["mon/abs_rel"]) for r in mon])
    assert [(w["from"], w["to"]) for w in curves["row 6"]["slopes"]] == [(0, 2), (2, 4)]
    r = subprocess.run([str(BIN), "figure", "monitor", "--run", f"x={tmp_path / 'nope'}", "--out", str(png)],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "log.csv not found" in r.stderr


def test_refinement_sweep_repeats_the_trainings_monitor_and_varies_only_the_refinement(driving, tmp_path):
    """`sa4depth evaluate refinement`: at the run's own LM settings the monitor values equal those its
    done.json recorded; other iteration counts and lambda at damping_min change the refined pose only."""
    common = _data_args(driving) + ["model.depth_layers=18", "train.max_steps=3", "train.monitor_every=3",
                                    "train.monitor_samples=4", "train.checkpoint_every=100"]
    run = tmp_path / "r06"
    assert train(load_config(scale="tiny", row="table_vi:r06_sa4depth", overrides=common), run, **QUIET).status == "done"
    k = int(load_config(scale="tiny", row="table_vi:r06_sa4depth", overrides=common).refine.iterations)
    out = tmp_path / "sweep.json"
    r = subprocess.run([str(BIN), "evaluate", "refinement", "--run", str(run), "--iterations", str(k), "1",
                        "--out", str(out), "--threads", "1"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    res = json.loads(out.read_text())
    assert res["evaluation"] == "refinement" and res["trained"]["iterations"] == k
    # relative; float noise only where the thread count differs from the training's
    assert res["matches_training"] is not None and res["matches_training"] <= 1e-4
    rows = {(x["lm_iterations"], x["damping_setting"]): x for x in res["rows"]}
    assert set(rows) == {(k, "trained"), (1, "trained"), (k, "min"), (1, "min")}
    for x in res["rows"]:  # the pose net and the depth do not depend on the refinement's settings
        for col in ("abs_rel", "net_trans_err", "net_align_std", "lm_cost_init"):
            assert x[col] == rows[(k, "trained")][col], col
    assert rows[(1, "min")]["damping"] == pytest.approx(float(res["trained"]["damping_min"]), rel=1e-5)
    assert rows[(k, "trained")]["damping"] == pytest.approx(res["trained"]["damping"])
    assert rows[(1, "trained")]["lm_cost_final"] != rows[(k, "trained")]["lm_cost_final"]
    assert rows[(k, "min")]["ref_trans_err"] != rows[(k, "trained")]["ref_trans_err"]
    assert res["provenance"]["trained"]["done"] is True
    # a run without the refinement: a clear error, nothing written
    base = tmp_path / "md2"
    assert train(load_config(scale="tiny", row="table_ii:md2_18", overrides=common[:-4] + [
        "train.max_steps=1", "train.monitor_every=0"]), base, **QUIET).status == "done"
    r = subprocess.run([str(BIN), "evaluate", "refinement", "--run", str(base), "--out", str(tmp_path / "x.json")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "not an SA4Depth run" in r.stderr and not (tmp_path / "x.json").exists()


def test_curve_summary_slopes_and_seed_means_against_hand_computed_values():
    from sa4depth.report.figures import curve_summary

    steps = np.array([0.0, 100, 200, 300, 400])
    # seed 0: slope -1e-3 then flat; seed 1: the same plus 0.02; a third seed missing step 400
    s0 = {"step": steps, "abs_rel": np.array([0.5, 0.4, 0.3, 0.3, 0.3])}
    s1 = {"step": steps, "abs_rel": s0["abs_rel"] + 0.02}
    s2 = {"step": steps[:4], "abs_rel": np.array([0.5, 0.4, 0.3, 0.3]) + 0.01}
    out = curve_summary({"a": [s0, s1]}, window=200)["a"]
    assert out["seeds"] == 2 and out["steps"] == [0, 100, 200, 300, 400]
    assert out["mean"] == pytest.approx([0.51, 0.41, 0.31, 0.31, 0.31])
    assert [w["slope_per_step"] for w in out["slopes"]] == pytest.approx([-1e-3, 0.0], abs=1e-12)
    out = curve_summary({"a": [s0, s1, s2]}, window=200)["a"]     # compared on the steps all three logged
    assert out["steps"] == [0, 100, 200, 300] and out["mean"][0] == pytest.approx(0.51)
    with pytest.raises(ValueError, match="no monitor column 'nope'"):
        curve_summary({"a": [s0]}, key="nope")


def _piecewise(slopes, start=0.6, every=25, window=200):
    """A curve over steps 0, every, ... with slope slopes[i] per step in window i (continuous)."""
    steps = np.arange(0, window * len(slopes) + 1, every, dtype=float)
    vals = np.full_like(steps, start)
    for i, st in enumerate(steps[1:], 1):
        vals[i] = vals[i - 1] + slopes[min(int((st - 1) // window), len(slopes) - 1)] * every
    return {"step": steps, "abs_rel": vals}


def test_learning_state_classifies_constructed_curves():
    """Past the knee when the last window's slope is at most knee_ratio of the steepest; still falling
    otherwise; did not learn when every seed ends at >= untrained_ratio of its start; `upto` cuts."""
    bend = _piecewise([-1e-3, -5e-4, -1e-4])                       # ratio 0.1, hand-computed
    r = learning_state([bend, bend], BudgetRule())
    assert r["state"] == "past the knee" and r["ratio"] == pytest.approx(0.1)
    assert [w["slope_per_step"] for w in r["windows"]] == pytest.approx([-1e-3, -5e-4, -1e-4])
    assert r["next_window_change"] == pytest.approx(-0.02) and r["to_step"] == 600
    assert r["first"] == pytest.approx(0.6) and r["last"] == pytest.approx(0.6 - 0.2 - 0.1 - 0.02)
    assert learning_state([bend], BudgetRule(knee_ratio=0.05))["state"] == "still falling"
    line = _piecewise([-5e-4, -5e-4, -5e-4])
    assert learning_state([line], BudgetRule())["state"] == "still falling"
    assert learning_state([line], BudgetRule())["ratio"] == pytest.approx(1.0)
    flat = _piecewise([-1e-5, 1e-5, -1e-5])
    r = learning_state([flat, flat], BudgetRule())
    assert r["state"] == "did not learn" and r["not_learned_seeds"] == [0, 1]
    r = learning_state([flat, bend, bend], BudgetRule())           # one seed stuck at the untrained level
    assert r["state"] == "past the knee" and r["not_learned_seeds"] == [0]
    r = learning_state([bend], BudgetRule(), upto=400)             # the curve as it was at step 400
    assert r["state"] == "still falling" and r["to_step"] == 400 and r["ratio"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="too short to tell a knee"):   # one window has no knee
        learning_state([bend], BudgetRule(), upto=200)
    with pytest.raises(ValueError, match="share fewer than 2 steps"):
        learning_state([bend], BudgetRule(), upto=0)
    # windows end at the last step: to step 625, [425, 625] and [225, 425], the partial [0, 25] left out
    longer = _piecewise([-1e-3, -5e-4, -1e-4, -1e-4])
    r = learning_state([longer], BudgetRule(), upto=625)
    assert [(w["from"], w["to"]) for w in r["windows"]] == [(25, 225), (225, 425), (425, 625)]
    # a resumed run's step logged twice, the later row empty: the earlier finite value counts
    dup = {k: np.concatenate([v, v[-1:]]) for k, v in bend.items()}
    dup["abs_rel"][-1] = np.nan
    assert learning_state([dup], BudgetRule())["last"] == pytest.approx(learning_state([bend], BudgetRule())["last"])
    # a seed that stopped early: compared on the shared steps, and said so
    short = {k: v[:-4] for k, v in bend.items()}
    r = learning_state([bend, short], BudgetRule())
    assert (r["to_step"], r["longest_step"]) == (500, 600)
    rise = _piecewise([-1e-3, -5e-4, 2e-5])
    assert learning_state([rise], BudgetRule())["rising"] and learning_state([rise], BudgetRule())["state"] == "past the knee"
    with pytest.raises(ValueError, match="runs/x/log.csv: no monitor column 'abs_rel'"):
        learning_state([{"step": bend["step"]}], BudgetRule(), names=["runs/x/log.csv"])
    from sa4depth.report.claims import _budget_summary

    # x, mean of the three: last slope (-1e-5 - 2 * 5e-4) / 3 per step, x 200 = -0.067; y, to step 500:
    # windows [100, 300] and [300, 500], each half of two slopes: -7.5e-4 and -3e-4 (ratio 0.4)
    text = _budget_summary({"x": learning_state([flat, line, line], BudgetRule()),
                            "y": learning_state([bend, short], BudgetRule()),
                            "z": learning_state([rise], BudgetRule()),
                            "w": learning_state([flat], BudgetRule()),
                            "v": {"state": "unknown", "reason": "no log"}})
    assert text == ("still falling: x (last slope 100.00 % of its steepest; another window at it: -0.067; seed 0 "
                    "did not learn), y (last slope 40.00 % of its steepest; another window at it: -0.060; read to "
                    "step 500, the last with a value in every seed (longest: 600)); did not learn: w; unknown: v "
                    "(no log); past the knee: z (rising in its last window)")
    from sa4depth.report.claims import _budget_cell

    rows = {"a": {"state": "past the knee"}, "b": {"state": "did not learn"}, "c": {"state": "unknown"}}
    assert _budget_cell({"rows": rows}) == "1 of 3 (1 did not learn, 1 unknown)"


def test_ledger_reports_each_compared_rows_learning_state(tmp_path):
    """Per claim, each row's state from its seeds' log.csv (unknown, with why, without them); the
    markdown's table column and line; the learning curves copied beside the ledger."""
    f = _write(tmp_path / "claims.yaml", _CLAIMS_T1 + """budget: {column: abs_rel, window: 200, knee_ratio: 0.2, untrained_ratio: 0.9}
""")
    spec = load_claims(f)
    assert spec["budget"] == BudgetRule() and spec["headline_scale"] == spec["scale"] == "tiny"  # its default
    metrics, runs = tmp_path / "metrics", tmp_path / "runs"
    curves = {"ea": _piecewise([-1e-3, -5e-4, -1e-4]), "eb": _piecewise([-5e-4, -4e-4, -3e-4])}
    for exp in ("ea", "eb"):
        for s in range(3):
            p = metrics / "synthetic" / "tiny" / exp / f"seed{s}" / "depth_s.json"
            p.parent.mkdir(parents=True)
            p.write_text(json.dumps({"metrics": {"abs_rel": 0.2 + 0.01 * s + (0.1 if exp == "eb" else 0)}}))
    c = build_ledger(spec["claims"], "synthetic", "tiny", runs, metrics, budget=spec["budget"])["claims"][0]
    assert {k: r["state"] for k, r in c["budget"]["rows"].items()} == {"ea": "unknown", "eb": "unknown"}
    assert "log.csv not found" in c["budget"]["rows"]["ea"]["reason"] and not c["budget"]["past_knee"]
    for exp, cv in curves.items():
        for s in range(3):
            d = runs / "synthetic" / "tiny" / exp / f"seed{s}"
            d.mkdir(parents=True)
            (d / "done.json").write_text(json.dumps({"wall_time_s": 600.0 * (s + 1)} if exp == "ea" else {}))
            rows = "".join(f"{int(st)},{v + 0.01 * s}\n" for st, v in zip(cv["step"], cv["abs_rel"]))
            (d / "log.csv").write_text("step,mon/abs_rel\n" + rows)
    led = build_ledger(spec["claims"], "synthetic", "tiny", runs, metrics, budget=spec["budget"])
    b = led["claims"][0]["budget"]
    assert b["rows"]["ea"]["state"] == "past the knee" and b["rows"]["eb"]["state"] == "still falling"
    assert b["rows"]["eb"]["ratio"] == pytest.approx(0.6) and led["budget_rule"]["knee_ratio"] == 0.2
    # ea's three runs: 600 + 1200 + 1800 s; eb's done.json have no wall_time_s
    assert led["train_time"] == {"runs": 3, "train_hours": pytest.approx(1.0), "runs_without_time": 3}
    assert b["summary"].startswith("still falling: eb (last slope 60.00 % of its steepest; another window at it: -0.060)")
    out = tmp_path / "ledger"
    write_ledger(led, out)
    md = (out / "claims.md").read_text()
    assert "| rows past the knee |" in md and "| 3 | 1 of 2 (1 still falling) |" in md
    assert "Learning curves: still falling: eb" in md
    assert "Training time of those runs: 1.0 hours summed over 3 runs" in md and "; 3 runs have no record." in md
    copied = json.loads((out / "claims.json").read_text())["claims"][0]["budget"]["rows"]["eb"]["log_files"]
    assert len(copied) == 3 and (out / copied[2]).read_text() == (runs / "synthetic/tiny/eb/seed2/log.csv").read_text()


def test_claims_file_scales_must_name_a_preset(tmp_path):
    (tmp_path / "scale").mkdir()
    (tmp_path / "scale" / "tiny.yaml").write_text("{}\n")
    body = _CLAIMS_T1.replace("scale: tiny\n", "")
    assert load_claims(_write(tmp_path / "ok.yaml", "scale: tiny\n" + body))["headline_scale"] == "tiny"
    for head, match in (("scale: null\n", "scale=None: the name of a scale preset"),
                        ("scale: tiny\nheadline_scale: huge\n", "headline_scale='huge': no .*huge.yaml \\(known: tiny\\)")):
        f = _write(tmp_path / "claims.yaml", head + body)
        with pytest.raises(ValueError, match=match) as e:
            load_claims(f)
        assert str(f) in str(e.value)


@pytest.mark.parametrize("budget,match", [
    ("{window: 0}", "budget.window=0"),
    ("{knee_ratio: 2}", "budget.knee_ratio=2"),
    ("{knee: 0.2}", "unknown key"),
    ("{column: ''}", "budget.column"),
])
def test_bad_budget_rule_names_the_key(tmp_path, budget, match):
    f = _write(tmp_path / "claims.yaml", _CLAIMS_T1 + f"budget: {budget}\n")
    with pytest.raises(ValueError, match=match) as e:
        load_claims(f)
    assert str(f) in str(e.value)


def test_monitor_figure_of_baseline_runs_marks_the_refinement_panels_empty(tmp_path, monkeypatch):
    from sa4depth.report import figures as F

    texts = []
    real_save = F.save_figure
    monkeypatch.setattr(F, "save_figure", lambda fig, out: texts.extend(
        t.get_text() for ax in fig.axes for t in ax.texts) or real_save(fig, out))
    run = {"step": np.array([0.0, 25, 50]), "abs_rel": np.array([0.56, 0.5, 0.45]),
           "net_align_std": np.array([0.1, 0.2, 0.1]), "net_trans_err": np.array([1.0, 0.5, 0.3])}
    out = F.plot_monitor({"Md2-18": [run]}, tmp_path / "m.png")
    assert out.stat().st_size > 1000
    assert texts.count("not logged by these runs") == 2     # refinement-worse and damping panels


def test_monitor_does_not_change_training(driving, tmp_path):
    """The monitor runs under its own RNG and in eval mode: the trained weights are identical."""
    from sa4depth.models.io import read_model_file

    base = _data_args(driving) + ["model.depth_layers=18", "train.max_steps=3", "train.checkpoint_every=100",
                                  "train.deterministic=true"]
    w = {}
    for every in (0, 1):
        cfg = load_config(scale="tiny", row="table_ii:md2_18_ours",
                          overrides=base + [f"train.monitor_every={every}", "train.monitor_samples=3"])
        train(cfg, tmp_path / f"m{every}", **QUIET)
        w[every] = read_model_file(tmp_path / f"m{every}" / "model.pt")["state_dicts"]
    for mod in w[0]:
        for k in w[0][mod]:
            assert torch.equal(w[0][mod][k], w[1][mod][k]), f"{mod}.{k}"


def test_seeds_needed_is_the_smallest_n_whose_interval_excludes_zero():
    from sa4depth.report.claims import seeds_needed

    d = [-0.139, -0.073, -0.065]  # the differences: the 95 % interval straddles 0 at n = 3
    n = seeds_needed(d, 0.95)
    assert n == 4
    assert paired_interval(d + [sum(d) / 3])[2] < 0  # with a 4th seed at the mean it clears 0
    assert seeds_needed([0.1, -0.1, 0.1, -0.1], 0.95) is None


def test_image_share_against_a_hand_computed_two_way_layout():
    """d[s, i] = a - b per seed and image. d = [[0, 2], [2, 0], [4, 4]]: seed means 1, 1, 4 (variance 3);
    image means 2, 2, grand mean 2; residuals -1, 1 / 1, -1 / 0, 0: residual mean square 4 / (2 x 1) = 2,
    over 2 images 1, a share of 1/3."""
    from sa4depth.report.claims import image_share

    b = [[1.0, 1.0], [1.0, 1.0], [1.0, 1.0]]
    a = [[1.0, 3.0], [3.0, 1.0], [5.0, 5.0]]
    r = image_share(a, b)
    assert r["images"] == 2 and r["seed_mean_var"] == pytest.approx(3.0)
    assert r["interaction_var"] == pytest.approx(2.0) and r["share"] == pytest.approx(1 / 3)
    assert r["width_share"] == pytest.approx(1 - math.sqrt(2 / 3))  # the interval scales with the sd
    # additive seed and image effects, no interaction: the spread is all the runs'
    assert image_share([[0.1 * s + x for x in (0.0, 0.5, 0.2)] for s in range(3)], [[0.0] * 3] * 3)["share"] \
        == pytest.approx(0.0, abs=1e-12)
    assert image_share([[1.0, 2.0]] * 3, [[0.0, 0.0]] * 3) is None            # seed means do not vary
    assert image_share([[1.0, 2.0], [1.0], [3.0, 1.0]], [[0.0, 0.0]] * 3) is None  # unequal image lists
    assert image_share([[1.0, 2.0]], [[0.0, 0.0]]) is None                    # one seed


def test_ledger_reports_the_test_images_share_of_the_spread(tmp_path):
    """From the evaluation JSONs' per_image lists (the metric is their mean), per comparison in
    claims.json and as a line of claims.md; none where per_image is absent or is not the metric's."""
    spec = load_claims(_write(tmp_path / "claims.yaml", _CLAIMS_T1))
    metrics = tmp_path / "metrics"
    per = {"ea": [[1.0, 3.0], [3.0, 1.0], [5.0, 5.0]], "eb": [[1.0, 1.0]] * 3}
    for exp, rows in per.items():
        for s, r in enumerate(rows):
            p = metrics / "synthetic" / "tiny" / exp / f"seed{s}" / "depth_s.json"
            p.parent.mkdir(parents=True)
            p.write_text(json.dumps({"metrics": {"abs_rel": sum(r) / 2},
                                     "per_image": [{"abs_rel": v} for v in r]}))
    led = build_ledger(spec["claims"], "synthetic", "tiny", tmp_path / "runs", metrics)
    m = led["claims"][0]["comparisons"][0]
    assert m["image_share"]["share"] == pytest.approx(1 / 3) and m["image_share"]["images"] == 2
    write_ledger(led, tmp_path / "out")
    assert "Spread from the test images" in (tmp_path / "out" / "claims.md").read_text()
    assert "abs_rel 33.3 % of the variance, 18.4 % of the interval's width (2 images)" in \
        (tmp_path / "out" / "claims.md").read_text()
    # runs evaluated on different image sets (here: another image skipped) do not pair image by image
    p = metrics / "synthetic" / "tiny" / "eb" / "seed1" / "depth_s.json"
    p.write_text(json.dumps({"metrics": {"abs_rel": 1.0}, "per_image": [{"abs_rel": 1.0}, {"abs_rel": 1.0}],
                             "skipped": ["frame 7"]}))
    assert build_ledger(spec["claims"], "synthetic", "tiny", tmp_path / "runs", metrics
                        )["claims"][0]["comparisons"][0]["image_share"] is None
    p.write_text(json.dumps({"metrics": {"abs_rel": 1.0}, "per_image": [{"abs_rel": 1.0}, {"abs_rel": 1.0}]}))
    # values too large to square: no share, and the ledger is still computed
    huge = metrics / "synthetic" / "tiny" / "ea" / "seed1" / "depth_s.json"
    huge.write_text(json.dumps({"metrics": {"abs_rel": 0.0}, "per_image": [{"abs_rel": 1e200}, {"abs_rel": -1e200}]}))
    led = build_ledger(spec["claims"], "synthetic", "tiny", tmp_path / "runs", metrics)
    assert led["claims"][0]["comparisons"][0]["image_share"] is None
    huge.write_text(json.dumps({"metrics": {"abs_rel": 2.0}, "per_image": [{"abs_rel": 3.0}, {"abs_rel": 1.0}]}))
    assert build_ledger(spec["claims"], "synthetic", "tiny", tmp_path / "runs", metrics
                        )["claims"][0]["comparisons"][0]["image_share"]["share"] == pytest.approx(1 / 3)
    # a metric that is not the per-image mean (here: a pooled value) has no share
    p = metrics / "synthetic" / "tiny" / "ea" / "seed0" / "depth_s.json"
    p.write_text(json.dumps({"metrics": {"abs_rel": 1.9}, "per_image": [{"abs_rel": 1.0}, {"abs_rel": 3.0}]}))
    assert build_ledger(spec["claims"], "synthetic", "tiny", tmp_path / "runs", metrics
                        )["claims"][0]["comparisons"][0]["image_share"] is None


def test_ledger_forest_rows_turn_towards_the_claim_and_scale_by_the_compared_row(tmp_path):
    """x = mean(a - b) towards the claim (negated where the paper claims a < b), in % of |mean(b)|; the
    intervals likewise (sorted); a comparison whose b mean is 0 is left out; the PNG is written."""
    from sa4depth.report.figures import ledger_rows, plot_ledger

    ledger = {"claims": [{"id": "T1", "verdict": "inconclusive", "comparisons": [
        {"metric": "abs_rel", "label": None, "better": "lower", "b_values": [0.1, 0.3], "n": 2, "mean_diff": -0.01,
         "ci95": [-0.02, 0.0], "ci_family": [-0.03, 0.01], "outcome": "unclear"},
        {"metric": "a1", "label": "delta < 1.25", "better": "higher", "b_values": [0.5, 0.5], "n": 2,
         "mean_diff": 0.01, "ci95": [0.005, 0.015], "ci_family": [0.004, 0.016], "outcome": "supports"},
        {"metric": "bias", "label": None, "better": "lower", "b_values": [1.0, -1.0], "n": 2, "mean_diff": 0.1,
         "ci95": [0.0, 0.2], "ci_family": [0.0, 0.2], "outcome": "unclear"}]}],
        "pending": [{"id": "T2"}]}
    r1, r2 = ledger_rows(ledger)                      # the third (b mean 0) is left out
    assert r1["x"] == pytest.approx(5.0) and r1["ci95"] == pytest.approx([0.0, 10.0])
    assert r1["ci_family"] == pytest.approx([-5.0, 15.0]) and r1["label"] == "abs_rel"
    assert r2["x"] == pytest.approx(2.0) and r2["ci95"] == pytest.approx([1.0, 3.0]) and r2["outcome"] == "supports"
    assert plot_ledger(ledger, tmp_path / "f.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _resolved(exp: str, scale: str) -> dict:
    """An experiment's resolved config at seed 0 as flat dotted keys, without the meta record."""
    from sa4depth.files import flatten
    from sa4depth.pipeline import experiment_config

    c = flatten(experiment_config(exp, "synthetic", scale, 0)[0])
    return {k: v for k, v in c.items() if not k.startswith("meta.")}


def _key_diff(a: dict, b: dict) -> dict:
    """{key: (a's value, b's value)} for every key whose values differ."""
    return {k: (a.get(k), b.get(k)) for k in set(a) | set(b) if a.get(k) != b.get(k)}


def test_c4_md2_18_rows_differ_from_row_6_exactly_as_their_table_vi_rows_do():
    """C4's Md2-18 substitution: each md2_18_abl* row differs from sa4depth_md2_18 in the same keys and
    values as its Table VI row differs from sa4depth_md2_50, and (1)/(6) on Md2-18 differ from
    Md2-50's only in the depth net's depth."""
    def cfg(exp):
        return _resolved(exp, "tiny")

    diff = _key_diff
    six18, six50 = cfg("sa4depth_md2_18"), cfg("sa4depth_md2_50")
    assert diff(six18, six50) == {"model.depth_layers": (18, 50)}
    assert diff(cfg("md2_18"), cfg("md2_50")) == {"model.depth_layers": (18, 50)}
    exps = load_claims(ROOT / "params/claims.yaml")["claims"]
    c4 = next(c for c in exps if c.id == "C4")
    subs = {cmp.b for cmp in c4.comparisons if cmp.b.startswith("md2_18_abl")}
    assert len(subs) == 7
    for exp in sorted(subs):
        row = exp[len("md2_18_"):]
        assert diff(cfg(exp), six18) == diff(cfg(row), six50) != {}, exp


def test_long_scale_is_the_study_scale_trained_longer():
    """The full ledger's scale (`long`) is the headline's (`study`) with train.max_steps 1200 and nothing
    else changed, for every experiment a claim trains, so its runs answer "the same, trained longer"."""
    spec = load_claims(ROOT / "params/claims.yaml")
    assert (spec["scale"], spec["headline_scale"]) == ("long", "study")
    exps = sorted({e for c in spec["claims"] for m in c.comparisons for e in (m.a, m.b)})
    assert "md2_18" in exps and "sa4depth_md2_18" in exps
    for exp in exps:
        diff = _key_diff(_resolved(exp, "long"), _resolved(exp, "study"))
        # each scale renders its own copy of the data (from the same `synth` block, which is compared)
        roots = {k: v for k, v in diff.items() if k.startswith("data.roots.") or k == "data.splits_dir"}
        assert all(a.replace("/long/", "/study/") == b for a, b in roots.values()), roots
        assert {k: v for k, v in diff.items() if k not in roots} == {"train.max_steps": (1200, 600)}, exp


def _table_of(md: str) -> str:
    """The verdict table of a claims.md: from its header line to the first line that is not a row."""
    lines = md.splitlines()
    i = lines.index(next(ln for ln in lines if ln.startswith("| claim | table | what it says")))
    j = i
    while j < len(lines) and lines[j].startswith("|"):
        j += 1
    return "\n".join(lines[i:j])


def test_readme_verdict_tables_are_the_committed_ledgers():
    """Each verdict table of the README and of docs/ is the committed ledger's its marker names, row
    for row (written by `sa4depth claims --readme`, never typed); a marker's path is relative to its
    document."""
    from sa4depth.report.claims import README_BEGIN, readme_table_blocks

    named = set()
    docs = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))
    for doc in docs:
        text = doc.read_text(encoding="utf-8")
        if doc.name != "README.md" and README_BEGIN not in text:
            continue
        for source, start, end in readme_table_blocks(text, str(doc)):
            ledger = (doc.parent / source).resolve()
            named.add(ledger.relative_to(ROOT).as_posix())
            md = ledger.read_text(encoding="utf-8")
            tt = [ln for ln in md.splitlines() if ln.startswith("Training time of those runs:")]
            assert text[start:end].strip() == "\n\n".join([_table_of(md)] + tt), (doc, source)
    assert named >= {"results/claims/claims.md", "results/claims/synthetic-study/claims.md"}


def test_update_readme_rewrites_only_the_marked_block(tmp_path):
    from sa4depth.report.claims import update_readme

    led = {"claims": [{"id": "T1", "table": "table_x", "summary": "a beats b", "verdict": "reproduced",
                       "data": "synthetic", "scale": "tiny", "seeds": 3,
                       "budget": {"rows": {"ea": {"state": "past the knee"}}}}],
           "pending": [{"id": "T2", "table": "table_x", "summary": "later", "missing": 6, "seeds": 3}]}
    other = "<!-- ledger-table: elsewhere/claims.md -->\n| kept |\n<!-- /ledger-table -->\n"
    doc = _write(tmp_path / "README.md", "intro\n<!-- ledger-table: led/claims.md; note -->\n| old |\n"
                                          "<!-- /ledger-table -->\n" + other + "outro\n")
    md = tmp_path / "led" / "claims.md"
    assert update_readme(doc, led, md) is True
    text = doc.read_text()
    assert text.startswith("intro\n<!-- ledger-table: led/claims.md; note -->\n| claim | table |") and text.endswith(
        "<!-- /ledger-table -->\n" + other + "outro\n")                # the other ledger's block is kept
    assert "| T1 | table_x | a beats b | **reproduced** | synthetic | tiny | 3 | 1 of 1 |" in text
    assert "| T2 | table_x | later | not run yet (6 result files missing) | | | 3 | |" in text
    assert update_readme(doc, led, md) is False                   # the same ledger: nothing to change
    assert "Training time" not in text                            # no run with a done.json: no line
    led["train_time"] = {"runs": 4, "train_hours": 2.25, "runs_without_time": 1}
    assert update_readme(doc, led, md) is True
    assert ("| 3 | |\n\nTraining time of those runs: 2.2 hours summed over 4 runs (each run's `wall_time_s` in "
            "its `done.json`") in doc.read_text() and "; 1 run has no record.\n<!-- /ledger-table -->" in doc.read_text()
    with pytest.raises(ValueError, match="no ledger-table block names .*nowhere/claims.md .*led/claims.md, elsewhere"):
        update_readme(doc, led, tmp_path / "nowhere" / "claims.md")
    bad = _write(tmp_path / "other.md", "no markers here\n")
    with pytest.raises(ValueError, match=f"{bad}: no '<!-- ledger-table"):
        update_readme(bad, led, md)
    with pytest.raises(ValueError, match="names no claims.md"):
        update_readme(_write(tmp_path / "o2.md", "<!-- ledger-table -->\n<!-- /ledger-table -->\n"), led, md)
    with pytest.raises(ValueError, match="has no '<!-- /ledger-table -->' line"):
        update_readme(_write(tmp_path / "o3.md", "<!-- ledger-table: led/claims.md -->\n| x |\n"), led, md)
    # the CLI refuses before writing anything
    spec = _write(tmp_path / "c.yaml", _CLAIMS_T1.replace("a: ea, b: eb", "a: sa4depth_md2_18, b: md2_18"))
    r = subprocess.run([str(BIN), "claims", "--claims", str(spec), "--readme", str(bad), "--allow-missing",
                        "--out-dir", str(tmp_path / "led"), "--runs", str(tmp_path / "runs"),
                        "--metrics", str(tmp_path / "metrics")], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode != 0 and "no '<!-- ledger-table" in r.stderr and not (tmp_path / "led").exists()
    r = subprocess.run([str(BIN), "claims", "--claims", str(spec), "--readme", str(doc), "--allow-missing",
                        "--out-dir", str(tmp_path / "led"), "--runs", str(tmp_path / "runs"),
                        "--metrics", str(tmp_path / "metrics")], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert "| T1 | table_x |  | not run yet (6 result files missing) | | | 3 | |" in doc.read_text()
    from sa4depth.report.claims import comparison_line

    m = compare([0.20, 0.22, 0.21], [0.30, 0.33, 0.31], "lower")
    assert comparison_line({**m, "metric": "abs_rel", "label": "", "a": "ea", "b": "eb", "better": "lower"}) == (
        f"abs_rel: ea - eb = -0.1033, 95 % [{m['ci95'][0]:+.4f}, {m['ci95'][1]:+.4f}] (a < b claimed, 3 seeds): "
        f"supports")
    m = compare([0.20, 0.22, 0.21], [0.30, 0.33, 0.31], "lower", family_size=2)    # the family's interval too
    assert comparison_line({**m, "metric": "abs_rel", "label": "", "a": "ea", "b": "eb", "better": "lower"}) == (
        f"abs_rel: ea - eb = -0.1033, 95 % [{m['ci95'][0]:+.4f}, {m['ci95'][1]:+.4f}], 97.5 % "
        f"[{m['ci_family'][0]:+.4f}, {m['ci_family'][1]:+.4f}] (a < b claimed, 3 seeds): supports")
    assert "verdict table rewritten" in r.stderr and (tmp_path / "led" / "claims.md").is_file()
