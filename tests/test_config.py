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


def _settings(cfg) -> dict:
    """A resolved config as flat ``dotted.key -> value`` (free-form mappings such as data.roots
    flattened per entry), without the ``meta`` provenance block."""
    out: dict = {}

    def walk(d, prefix):
        for k, v in d.items():
            if isinstance(v, dict):
                walk(v, f"{prefix}{k}.")
            else:
                out[f"{prefix}{k}"] = v

    walk({k: v for k, v in cfg.to_dict().items() if k != "meta"}, "")
    return out


def _changed(cfg, ref) -> dict:
    a, b = _settings(cfg), _settings(ref)
    assert a.keys() == b.keys()  # presets and rows add no keys (unknown ones are rejected)
    return {k: a[k] for k in a if a[k] != b[k]}


_SYNTH = ["synth.width", "synth.height", "synth.sequences", "synth.frames", "synth.odom_frames", "synth.test_frames"]
_SMALL_NET = ["refine.num_points", "refine.iterations", "refine.feature_dim", "refine.vgg_blocks", "refine.vgg_width",
              "refine.decoder_channels"]
# What each shipped preset is meant to change relative to base.yaml (the paper's setting) and nothing
# else: synthetic is base's embedded default; real only relocates the data; full keeps the paper's
# image size, batch, epochs and lr schedule (only workers, checkpoint/monitor cadence and the
# rendered benchmark's size differ).
PRESET_CHANGES = {
    ("data", "synthetic"): set(),
    ("data", "real"): {"data.img_ext", "data.splits_dir",
                       *(f"data.roots.{d}" for d in ("kitti", "kitti_odom", "cityscapes", "nyu", "vkitti2"))},
    ("scale", "tiny"): {"data.height", "data.width", "data.num_workers", "data.odom_train_sequences", "eval.batch_size",
                        "refine.num_points", "refine.iterations", "refine.feature_dim",
                        "train.batch_size", "train.epochs", "train.max_steps", "train.checkpoint_every",
                        "train.log_every", "train.monitor_every", "train.monitor_samples", *_SYNTH},
    ("scale", "smoke"): {"data.height", "data.width", "data.num_workers", "data.odom_train_sequences",
                         "loss.automask_after", *_SMALL_NET,
                         "train.batch_size", "train.epochs", "train.max_steps", "train.checkpoint_every",
                         "train.log_every", "train.lr_step_epochs",
                         "synth.width", "synth.height", "synth.odom_frames"},
    ("scale", "study"): {"data.height", "data.width", "data.num_workers", "data.odom_train_sequences",
                         "loss.automask_after", *_SMALL_NET,
                         "train.batch_size", "train.epochs", "train.max_steps", "train.checkpoint_every",
                         "train.log_every", "train.lr_step_epochs", "train.monitor_every", "train.monitor_samples",
                         "synth.width", "synth.height", "synth.odom_frames"},
    ("scale", "long"): {"data.height", "data.width", "data.num_workers", "data.odom_train_sequences",
                        "loss.automask_after", *_SMALL_NET,
                        "train.batch_size", "train.epochs", "train.max_steps", "train.checkpoint_every",
                        "train.log_every", "train.lr_step_epochs", "train.monitor_every", "train.monitor_samples",
                        "synth.width", "synth.height", "synth.odom_frames"},
    ("scale", "small"): {"data.height", "data.width", "data.num_workers", "refine.num_points", "refine.iterations",
                         "train.batch_size", "train.epochs", "train.lr_step_epochs", "train.checkpoint_every",
                         "train.monitor_every", "train.monitor_samples", *_SYNTH},
    ("scale", "full"): {"data.num_workers", "train.checkpoint_every", "train.monitor_every", "train.monitor_samples",
                        *_SYNTH},
}


def _presets(kind: str) -> list[str]:
    return sorted(f.stem for f in (PARAMS / kind).glob("*.yaml"))


def test_every_shipped_preset_changes_only_what_it_means_to():
    """Each data/scale preset differs from base in exactly its expected keys (a stray or silently
    ineffective setting fails), data and scale presets touch disjoint keys, so that any data x scale
    pair is the union of the two changes; and every shipped preset is listed here."""
    assert {("data", n) for n in _presets("data")} | {("scale", n) for n in _presets("scale")} == set(PRESET_CHANGES)
    base = load_config(data=None, scale=None, params=PARAMS)
    changes = {}
    for kind, name in PRESET_CHANGES:
        cfg = load_config(**{"data": None, "scale": None, kind: name}, params=PARAMS)
        changes[kind, name] = _changed(cfg, base)
        assert set(changes[kind, name]) == PRESET_CHANGES[kind, name], (kind, name)
    assert changes["scale", "full"].keys().isdisjoint({"data.width", "data.height", "train.batch_size", "train.lr",
                                                        "train.epochs", "train.lr_step_epochs", "train.lr_gamma"})
    for data in _presets("data"):
        for scale in _presets("scale"):
            assert PRESET_CHANGES["data", data].isdisjoint(PRESET_CHANGES["scale", scale]), (data, scale)
            both = _changed(load_config(data=data, scale=scale, params=PARAMS), base)
            assert both == {**changes["data", data], **changes["scale", scale]}, (data, scale)


def test_every_experiment_row_resolves_at_every_data_and_scale_as_its_own_delta():
    """Every row of params/experiments.yaml resolves under every data x scale preset pair (the
    workflow test checks the tables at scale tiny only), and the result is the preset pair's config
    with exactly the row's (inherited) delta applied: rows change only their own keys, and no row
    is undone by a preset."""
    exp = PARAMS / "experiments.yaml"
    rows = list(yaml.safe_load(exp.read_text())["rows"])
    assert len(rows) > 20
    deltas = {r: load_row(exp, r)[0] for r in rows}
    for data in _presets("data"):
        for scale in _presets("scale"):
            preset = _settings(load_config(data=data, scale=scale, params=PARAMS))
            for r in rows:
                cfg = load_config(data=data, scale=scale, row=f"experiments:{r}", params=PARAMS)
                assert cfg.meta.row == r
                got = _settings(cfg)
                delta = deltas[r]
                assert set(delta) <= set(got), (r, set(delta) - set(got))
                assert {k: got[k] for k in delta} == delta, (data, scale, r)
                assert {k: v for k, v in got.items() if k not in delta} == \
                    {k: v for k, v in preset.items() if k not in delta}, (data, scale, r)


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
