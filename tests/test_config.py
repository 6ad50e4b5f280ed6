"""Configuration: merge order, typing, and the errors users see."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sa4depth.config import ConfigError, load_config, load_row, parse_override, save_config, load_resolved

REPO = Path(__file__).resolve().parents[1]
PARAMS = REPO / "params"


def test_base_has_paper_defaults():
    cfg = load_config(data=None, scale=None, params=PARAMS)
    assert (cfg.data.width, cfg.data.height) == (640, 192)
    assert cfg.train.batch_size == 12
    assert cfg.train.lr == pytest.approx(1e-4)
    assert cfg.train.lr_step_epochs == 15 and cfg.train.lr_gamma == pytest.approx(0.1)
    assert cfg.train.epochs == 20
    assert cfg.loss.smoothness == pytest.approx(1e-3)
    assert (cfg.model.min_depth, cfg.model.max_depth) == (0.1, 100.0)
    assert cfg.data.frame_ids == [0, -1, 1]


def _mini_params(tmp_path: Path) -> Path:
    """A small params tree to test the merge order independently of the shipped presets."""
    p = tmp_path / "params"
    (p / "data").mkdir(parents=True)
    (p / "scale").mkdir()
    (p / "tables").mkdir()
    (p / "base.yaml").write_text("a: {x: 1, y: 1, z: 1, w: 1, v: 1.0}\nflag: true\nname: base\nopt: null\n")
    (p / "constraints.yaml").write_text("a.x: {min: 0}\nname: {choices: [base, other]}\nopt: {type: float, nullable: true}\n")
    (p / "data" / "d.yaml").write_text("a: {x: 2, y: 2, z: 2, w: 2}\n")
    (p / "scale" / "s.yaml").write_text("a: {y: 3, z: 3, w: 3}\n")
    (p / "tables" / "t.yaml").write_text(
        "rows:\n  r1: {set: {a.z: 4, a.w: 4}}\n  r2: {inherit: r1, set: {a.w: 5}}\n  c: {run: false}\n")
    return p


def test_merge_order(tmp_path):
    p = _mini_params(tmp_path)
    extra = tmp_path / "extra.yaml"
    extra.write_text("a: {v: 7}\n")
    cfg = load_config(data="d", scale="s", row="t:r2", files=[extra], overrides=["a.v=8.5"], params=p)
    # base <- data <- scale <- row (r1 then r2) <- file <- command line
    assert cfg.a.x == 2 and cfg.a.y == 3 and cfg.a.z == 4 and cfg.a.w == 5 and cfg.a.v == 8.5
    assert cfg.meta.row == "r2"
    assert cfg.meta.layers[0].endswith("base.yaml") and cfg.meta.layers[-1].startswith("command line")


def test_row_inheritance_chain(tmp_path):
    p = _mini_params(tmp_path)
    delta, chain = load_row(p / "tables" / "t.yaml", "r2")
    assert chain == ["r1", "r2"] and delta == {"a.z": 4, "a.w": 5}
    with pytest.raises(ConfigError, match="cited row"):
        load_row(p / "tables" / "t.yaml", "c")
    with pytest.raises(ConfigError, match=r"no row 'r3'.*did you mean 'r[12]'"):
        load_row(p / "tables" / "t.yaml", "r3")


def test_unknown_key_names_file_and_closest(tmp_path):
    p = _mini_params(tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: {xx: 3}\n")
    with pytest.raises(ConfigError) as e:
        load_config(data=None, scale=None, files=[bad], params=p)
    msg = str(e.value)
    assert str(bad) in msg and "'a.xx'" in msg and "did you mean 'a.x'" in msg
    with pytest.raises(ConfigError, match=r"command line: unknown key 'train.lrr' \(did you mean 'train.lr'\?\)"):
        load_config(scale="tiny", overrides=["train.lrr=1"], params=PARAMS)


def test_wrong_type_and_range(tmp_path):
    p = _mini_params(tmp_path)
    with pytest.raises(ConfigError, match=r"key 'flag': expected bool, got str"):
        load_config(data=None, scale=None, overrides={"flag": "yes"}, params=p)
    with pytest.raises(ConfigError, match=r"'a.x': -1 out of range \(must be >= 0\)"):
        load_config(data=None, scale=None, overrides=["a.x=-1"], params=p)
    with pytest.raises(ConfigError, match=r"'name': 'nope' is not one of"):
        load_config(data=None, scale=None, overrides=["name=nope"], params=p)
    with pytest.raises(ConfigError, match="may not be null"):
        load_config(data=None, scale=None, overrides=["a.x=null"], params=p)
    # int is accepted for a float key and coerced; nullable typed key accepts null and floats
    cfg = load_config(data=None, scale=None, overrides=["a.v=3", "opt=0.5"], params=p)
    assert isinstance(cfg.a.v, float) and cfg.opt == 0.5
    with pytest.raises(ConfigError, match="multiple of 32"):
        load_config(scale="tiny", overrides=["data.height=33"], params=PARAMS)


def test_bad_yaml_and_missing_preset(tmp_path):
    p = _mini_params(tmp_path)
    broken = tmp_path / "broken.yaml"
    broken.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match=str(broken) + ": invalid YAML"):
        load_config(data=None, scale=None, files=[broken], params=p)
    with pytest.raises(ConfigError, match=r"scale preset 'huge'.*have: s"):
        load_config(data=None, scale="huge", params=p)


def test_override_parsing():
    assert parse_override("train.lr=1e-3") == ("train.lr", 1e-3)
    assert parse_override("data.frame_ids=[0,-1,1]") == ("data.frame_ids", [0, -1, 1])
    assert parse_override("model.pretrained=null") == ("model.pretrained", None)
    assert parse_override("refine.robust=cauchy") == ("refine.robust", "cauchy")
    with pytest.raises(ConfigError, match="key=value"):
        parse_override("train.lr")


def test_every_shipped_preset_validates():
    for data in ("synthetic", "real"):
        for scale in ("tiny", "smoke", "small", "full"):
            cfg = load_config(data=data, scale=scale, params=PARAMS)
            assert cfg.data.width % 32 == 0


def test_resolved_config_roundtrip(tmp_path):
    cfg = load_config(scale="tiny", overrides=["seed=3"], params=PARAMS)
    path = save_config(cfg, tmp_path / "run" / "config.yaml")
    again = load_resolved(path)
    assert again.to_dict() == cfg.to_dict()
    assert yaml.safe_load(path.read_text())["seed"] == 3


def test_run_config_file_works_as_config_input(tmp_path):
    """A run's resolved config.yaml (with its meta provenance block) fed back with --config
    reproduces the same settings."""
    cfg = load_config(scale="tiny", overrides=["seed=3", "train.lr=3e-4"], params=PARAMS)
    path = save_config(cfg, tmp_path / "run" / "config.yaml")
    again = load_config(scale="tiny", files=[path], params=PARAMS)
    strip = lambda c: {k: v for k, v in c.to_dict().items() if k != "meta"}  # noqa: E731
    assert strip(again) == strip(cfg)


def test_cli_reports_config_errors(capsys):
    from sa4depth.cli import main

    assert main(["config", "--scale", "tiny", "train.batchsize=3"]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'train.batchsize'" in err and "did you mean 'train.batch_size'" in err
