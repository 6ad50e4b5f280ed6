"""Bad configuration input: every mistake stops with a ConfigError naming the file, the row and the key
(and the CLI exits non-zero with that message, no traceback). One test per class of mistake."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

from sa4depth.config import ConfigError, load_config, load_row, load_yaml

REPO = Path(__file__).resolve().parents[1]
PARAMS = REPO / "params"


def _params_copy(tmp_path: Path) -> Path:
    p = tmp_path / "params"
    shutil.copytree(PARAMS, p)
    return p


def _edit_yaml(path: Path, edit) -> None:
    data = yaml.safe_load(path.read_text())
    edit(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def _cli(argv, capsys, monkeypatch=None, params: Path | None = None) -> tuple[int, str]:
    from sa4depth.cli import main

    if params is not None:
        monkeypatch.setenv("SA4DEPTH_PARAMS", str(params))
    rc = main(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return rc, err


def _line_of(text: str, needle: str, nth: int = 1) -> int:
    """1-based line of the nth line starting (after indentation) with ``needle``."""
    hits = [i + 1 for i, ln in enumerate(text.splitlines()) if ln.strip().startswith(needle)]
    return hits[nth - 1]


# ----------------------------------------------------------------------------- 1. duplicate keys
def test_duplicate_yaml_keys_are_rejected_naming_file_key_and_line(tmp_path, capsys, monkeypatch):
    p = _params_copy(tmp_path)
    ex = p / "experiments.yaml"
    shipped = ex.read_text()
    # a duplicate row name: PyYAML would silently keep the second md2_18
    ex.write_text(shipped + "  md2_18:\n    set: {model.depth_layers: 50}\n")
    line = len(ex.read_text().splitlines()) - 1
    with pytest.raises(ConfigError) as e:
        load_config(scale="tiny", row="experiments:md2_18", params=p)
    msg = str(e.value)
    assert str(ex) in msg and "duplicate key 'md2_18'" in msg
    assert f"line {line}" in msg and f"first at line {_line_of(shipped, 'md2_18:')}" in msg
    # a duplicate key inside one row's set:
    ex.write_text(shipped.replace("set: {refine.irls: false}", "set: {refine.irls: false, refine.irls: true}", 1))
    with pytest.raises(ConfigError, match=re.escape(str(ex)) + r": line \d+: duplicate key 'refine.irls'"):
        load_config(scale="tiny", row="experiments:abl05_no_irls", params=p)
    rc, err = _cli(["config", "--scale", "tiny", "--row", "experiments:abl05_no_irls"], capsys, monkeypatch, p)
    assert rc == 2 and "duplicate key 'refine.irls'" in err and str(ex) in err
    # any file load_yaml reads (a --config file, nested sections), and a command-line mapping
    f = tmp_path / "extra.yaml"
    f.write_text("train:\n  lr: 1.0e-3\n  batch_size: 4\n  lr: 2.0e-3\n")
    with pytest.raises(ConfigError, match=re.escape(str(f)) + r": line 4: duplicate key 'lr' \(first at line 2"):
        load_yaml(f)
    with pytest.raises(ConfigError, match="duplicate key 'kitti'"):
        load_config(scale="tiny", overrides=["data.roots={kitti: /a, kitti: /b}"], params=PARAMS)
    # merge keys may still override what they merge; distinct keys load as before
    f.write_text("base: &b {lr: 1, batch_size: 2}\ntrain:\n  <<: *b\n  lr: 3\n")
    assert load_yaml(f)["train"] == {"lr": 3, "batch_size": 2}
    # the fast C loader stays in use (when PyYAML has it)
    import sa4depth.config as C

    if hasattr(yaml, "CSafeLoader"):
        assert issubclass(C._UniqueKeyLoader, yaml.CSafeLoader)


# ----------------------------------------------------------------------------- 2. unknown row-level keys
def test_unknown_row_level_key_is_rejected_naming_file_and_row(tmp_path, capsys, monkeypatch):
    from sa4depth import pipeline as P

    rows = yaml.safe_load((PARAMS / "experiments.yaml").read_text())["rows"]
    p = _params_copy(tmp_path)
    ex = p / "experiments.yaml"
    ex.write_text(ex.read_text().replace("    set: {refine.confidence: false}", "    sett: {refine.confidence: false}"))
    want = re.escape(str(ex)) + r": row 'abl13_no_confidence': unknown key\(s\) \['sett'\] \(did you mean 'set'\?\)"
    with pytest.raises(ConfigError, match=want):   # it used to resolve silently to the baseline's config
        load_config(scale="tiny", row="experiments:abl13_no_confidence", params=p)
    with pytest.raises(ConfigError, match=want):   # through the table row that names the experiment
        load_config(scale="tiny", row="table_vi:r13_no_confidence", params=p)
    rc, err = _cli(["config", "--scale", "tiny", "--row", "experiments:abl13_no_confidence"], capsys, monkeypatch, p)
    assert rc == 2 and "'abl13_no_confidence'" in err and "'sett'" in err
    # a stray top-level key of the experiments file
    ex.write_text(yaml.safe_dump({"rows": rows, "row": {"x": {"set": {}}}}))
    with pytest.raises(ConfigError, match=re.escape(str(ex)) + r": unknown top-level key\(s\) \['row'\]"):
        load_config(scale="tiny", row="experiments:md2_18", params=p)
    # table files resolved by load_row use the same row keys as the table parser (pipeline.load_table)
    t = p / "tables" / "t.yaml"
    t.write_text("title: t\nevals: {depth: {kind: depth, split: eigen}}\ncolumns: [{key: abs_rel, eval: depth}]\n"
                 "rows:\n  r1: {experiment: md2_18, sett: {train.lr: 1.0e-3}}\n")
    with pytest.raises(ConfigError, match=re.escape(str(t)) + r": row 'r1': unknown key\(s\) \['sett'\]"):
        load_row(t, "r1")
    with pytest.raises(ConfigError, match=re.escape(str(t)) + r": row 'r1': unknown key\(s\) \['sett'\]"):
        P.load_table(t, p)
    # the known keys are exactly what the shipped experiments file uses; tables share plan's list
    from sa4depth.config import EXPERIMENT_ROW_KEYS, TABLE_ROW_KEYS

    assert set().union(*(set(r or {}) for r in rows.values())) == EXPERIMENT_ROW_KEYS
    assert P.TABLE_ROW_KEYS is TABLE_ROW_KEYS


# ----------------------------------------------------------------------------- 3. typo blamed on its row
def test_typo_in_an_inherited_rows_set_is_blamed_on_that_row(tmp_path):
    p = _params_copy(tmp_path)
    ex = p / "experiments.yaml"

    def typo(d):
        d["rows"]["sa4depth_md2_50"]["set"]["refine.irl"] = True

    _edit_yaml(ex, typo)
    blamed = re.escape(str(ex)) + r" \(row sa4depth_md2_50[,)]"
    for row in ("experiments:abl05_no_irls", "experiments:abl03_coarse_init", "table_vi:r05_pose_selfsup"):
        with pytest.raises(ConfigError) as e:
            load_config(scale="tiny", row=row, params=p)
        msg = str(e.value)
        assert re.search(blamed, msg), msg
        assert "unknown key 'refine.irl'" in msg and "did you mean 'refine.irls'" in msg
        assert not re.search(r"\(row (abl05_no_irls|abl03_coarse_init|r05_pose_selfsup)[,)]", msg), msg
    # the leaf row's own typo is still blamed on the leaf
    _edit_yaml(ex, lambda d: d["rows"]["sa4depth_md2_50"]["set"].pop("refine.irl"))
    _edit_yaml(ex, lambda d: d["rows"]["abl05_no_irls"]["set"].update({"refine.iterationss": 3}))
    with pytest.raises(ConfigError, match=re.escape(str(ex)) + r" \(row abl05_no_irls\): unknown key"):
        load_config(scale="tiny", row="experiments:abl05_no_irls", params=p)


# ----------------------------------------------------------------------------- 4. ablation identical to baseline
def test_audit_stops_on_a_row_identical_to_its_baseline(tmp_path, capsys, monkeypatch):
    from sa4depth import pipeline as P

    # row 13's experiment sets its switch to the baseline's value and the row names no switch: it
    # ablates nothing; row 14 is declared identical on purpose (switch: [])
    p = _params_copy(tmp_path)
    _edit_yaml(p / "experiments.yaml",
               lambda d: d["rows"]["abl13_no_confidence"].update({"set": {"refine.confidence": True}}))

    def table(d):
        del d["rows"]["r13_no_confidence"]["switch"]
        d["rows"]["r14_fixed_damping"].update({"experiment": "sa4depth_md2_50", "switch": []})

    _edit_yaml(p / "tables" / "table_vi.yaml", table)
    argv = ["audit", "table_vi", "--scale", "tiny", "--runs", str(tmp_path / "runs"), "--metrics",
            str(tmp_path / "m"), "--out", str(tmp_path / "a.md"), "--json", str(tmp_path / "a.json")]
    rc, err = _cli(argv + ["--strict"], capsys, monkeypatch, p)
    assert rc == 1 and "row 'r13_no_confidence'" in err and "same config as the baseline row" in err
    assert "r14_fixed_damping" not in err
    assert "PROBLEM: identical to the reference row" in (tmp_path / "a.md").read_text()
    rc, err = _cli(argv, capsys)  # without --strict: reported, not fatal
    assert rc == 0 and "warning" in err and "r13_no_confidence" in err
    # the workflow's audit job runs the audit in strict mode
    smk = (REPO / "workflow" / "rules" / "tables.smk").read_text()
    audit_rule = smk.split("rule audit:")[1].split("\n\n\n")[0]
    assert "sa4depth audit" in audit_rule and "--strict" in audit_rule
    # the function level, and the shipped table passes
    from sa4depth.report.audit import audit_problems, audit_table

    spec = P.load_table(p / "tables" / "table_vi.yaml", p)
    a = audit_table(spec, "synthetic", "tiny", [0], runs_root=tmp_path / "runs", metrics_root=tmp_path / "m",
                    pdir=p)
    assert a["rows_identical_to_baseline"] == ["r13_no_confidence"]
    probs = audit_problems(a)
    assert len(probs) == 1 and "'r13_no_confidence'" in probs[0] and "'r06_sa4depth'" in probs[0]
    spec = P.load_table("table_vi", PARAMS)
    a = audit_table(spec, "synthetic", "tiny", [0], runs_root=tmp_path / "runs", metrics_root=tmp_path / "m",
                    pdir=PARAMS)
    assert a["rows_identical_to_baseline"] == [] and audit_problems(a) == []


# ----------------------------------------------------------------------------- 5. data.roots entries
def test_data_roots_entries_are_validated_and_the_dotted_form_merges(tmp_path, capsys):
    default_roots = load_config(scale="tiny", params=PARAMS).data.roots.to_dict()
    rc, err = _cli(["config", "--scale", "tiny", "data.roots={kiti: /x}"], capsys)
    assert rc == 2 and "command line: key 'data.roots': unknown entry 'kiti' (did you mean 'kitti'?)" in err
    with pytest.raises(ConfigError, match=r"unknown entry 'kiti' \(did you mean 'kitti'\?\)"):
        load_config(scale="tiny", overrides=["data.roots.kiti=/x"], params=PARAMS)
    # data.roots.kitti=/x sets one entry and keeps the others (docs/REAL_DATA.md)
    cfg = load_config(data="real", scale="tiny", overrides=["data.roots.kitti=/x"], params=PARAMS)
    real_roots = load_config(data="real", scale="tiny", params=PARAMS).data.roots.to_dict()
    assert cfg.data.roots.to_dict() == {**real_roots, "kitti": "/x"}
    rc, err = _cli(["config", "--scale", "tiny", "data.roots.nyu=/n"], capsys)
    assert rc == 0
    # the same in YAML, both spellings, merged with the mapping form
    f = tmp_path / "roots.yaml"
    f.write_text("data:\n  roots.kitti: /k\n  roots: {nyu: /n}\ndata.roots.cityscapes: /c\n")
    cfg = load_config(scale="tiny", files=[f], params=PARAMS)
    assert cfg.data.roots.to_dict() == {**default_roots, "kitti": "/k", "nyu": "/n", "cityscapes": "/c"}
    f.write_text("data:\n  roots: {nyu: /n, nuy: /m}\n")
    with pytest.raises(ConfigError, match=re.escape(str(f)) + r": key 'data.roots': unknown entry 'nuy'"):
        load_config(scale="tiny", files=[f], params=PARAMS)


# ----------------------------------------------------------------------------- 6. cross-field checks
def test_cross_field_checks_at_resolution_time(tmp_path, capsys):
    rc, err = _cli(["config", "--scale", "tiny", "model.min_depth=200"], capsys)
    assert rc == 2 and "model.min_depth=200.0 (from command line) must be < model.max_depth=100.0" in err
    assert "base.yaml" in err
    f = tmp_path / "depth.yaml"
    f.write_text("model: {max_depth: 0.05}\n")
    with pytest.raises(ConfigError, match=r"model.min_depth=0.1 .* must be < model.max_depth=0.05 \(from "
                                          + re.escape(str(f))):
        load_config(scale="tiny", files=[f], params=PARAMS)
    with pytest.raises(ConfigError, match=r"command line: key 'data.frame_ids': \[-1, 1\] must contain the "
                                          r"target frame 0"):
        load_config(scale="tiny", overrides=["data.frame_ids=[-1,1]"], params=PARAMS)
    rc, err = _cli(["config", "--scale", "tiny", "data.frame_ids=[1, -1]"], capsys)
    assert rc == 2 and "data.frame_ids" in err
    # the analogous pairs
    with pytest.raises(ConfigError, match=r"eval.min_depth=80.0 .* must be < eval.max_depth=80.0"):
        load_config(scale="tiny", overrides=["eval.min_depth=80"], params=PARAMS)
    with pytest.raises(ConfigError, match=r"refine.damping_min=100.0 .* must be < refine.damping_max=1.0"):
        load_config(scale="tiny", overrides=["refine.damping_min=100", "refine.damping_max=1"], params=PARAMS)
    with pytest.raises(ConfigError, match=r"refine.damping_init=1000.0 .* must lie in \[refine.damping_min"):
        load_config(scale="tiny", overrides=["refine.damping_init=1000"], params=PARAMS)
    with pytest.raises(ConfigError, match=r"key 'model.scales': \[1, 2\] must contain the full-resolution scale 0"):
        load_config(scale="tiny", overrides=["model.scales=[1,2]"], params=PARAMS)
    # valid values still pass, in any order
    cfg = load_config(scale="tiny", overrides=["model.min_depth=0.5", "model.max_depth=50",
                                               "data.frame_ids=[-1,0,1]"], params=PARAMS)
    assert (cfg.model.min_depth, cfg.model.max_depth, cfg.data.frame_ids) == (0.5, 50.0, [-1, 0, 1])


# ----------------------------------------------------------------------------- 7. section given a scalar
def test_a_section_given_a_scalar_says_it_must_be_a_mapping(tmp_path, capsys):
    f = tmp_path / "bad.yaml"
    f.write_text("train: 5\n")
    with pytest.raises(ConfigError) as e:
        load_config(scale="tiny", files=[f], params=PARAMS)
    msg = str(e.value)
    assert msg.startswith(f"{f}: 'train' is a section and must be a mapping") and "got int 5" in msg
    assert "unknown key" not in msg
    rc, err = _cli(["config", "--scale", "tiny", "--config", str(f)], capsys)
    assert rc == 2 and "'train' is a section and must be a mapping" in err and str(f) in err
    f.write_text("refine:\n  enabled: true\nmatcher:\n")  # an empty section reads as null
    with pytest.raises(ConfigError, match=re.escape(str(f)) + r": 'matcher' is a section and must be a mapping"):
        load_config(scale="tiny", files=[f], params=PARAMS)


# ----------------------------------------------------------------------------- 8. --threads
@pytest.mark.parametrize("argv", [["train", "--out", "x"], ["bench", "infer"], ["bench", "train"]])
def test_threads_must_not_be_negative(argv, capsys):
    from sa4depth.cli import build_parser

    parser = build_parser()
    with pytest.raises(SystemExit) as e:
        parser.parse_args([*argv, "--threads", "-3"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "argument --threads" in err and "-3" in err and "must be >= 1" in err
    with pytest.raises(SystemExit):
        parser.parse_args([*argv, "--threads", "two"])
    capsys.readouterr()
    # a positive count, and 0 = torch's default (the workflow's documented `threads: 0`), still parse
    assert parser.parse_args([*argv, "--threads", "2"]).threads == 2
    assert parser.parse_args([*argv, "--threads", "0"]).threads == 0
    assert parser.parse_args(argv).threads == 0
