"""One CLI grammar (issue #15): config overrides, --device, help text for every option, scoring one's
own predictions without a dataset, progress lines without a bar, --threads following the Slurm
allocation."""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sa4depth.cli import VERBS, build_parser, main
from sa4depth.config import ConfigError, load_config, load_resolved, save_config

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).parent / "snakemake"
BIN = Path(sys.executable).parent / "sa4depth"


def _subparsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(path, parser) of the parser and every subparser below it."""
    yield path, parser
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction):
            for name, sp in a.choices.items():
                yield from _subparsers(sp, path + (name,))


def _all_parsers():
    return list(_subparsers(build_parser()))


# ----------------------------------------------------------------------------- 5: help text
_PENDING: set[str] = set()  # verbs not yet on the grammar: none


@pytest.mark.parametrize("verb", list(VERBS))
def test_every_option_has_help_text(verb):
    missing = []
    for path, p in _all_parsers():
        if not path or path[0] != verb:
            continue
        for a in p._actions:
            if isinstance(a, (argparse._SubParsersAction, argparse._HelpAction)):
                continue
            if a.help is argparse.SUPPRESS:  # hidden deprecated aliases
                continue
            if not (a.help or "").strip():
                missing.append(f"sa4depth {' '.join(path)} {'/'.join(a.option_strings) or a.dest}")
    assert not missing, "options without help text:\n  " + "\n  ".join(missing)


def test_help_walker_sees_nested_subcommands():
    paths = {p for p, _ in _all_parsers()}
    assert {("evaluate", "depth"), ("evaluate", "video"), ("bench", "train"), ("bench", "infer")} <= paths


def test_row_help_names_both_forms():
    for path, p in _all_parsers():
        for a in p._actions:
            if "--row" in a.option_strings:
                assert "TABLE:ROW" in a.help and "experiments:NAME" in a.help, path


# ----------------------------------------------------------------------------- 3: device
def test_every_device_option_takes_auto_cpu_cuda():
    seen = []
    for path, p in _all_parsers():
        if path and path[0] in _PENDING:
            continue
        for a in p._actions:
            if "--device" in a.option_strings:
                assert tuple(a.choices) == ("auto", "cpu", "cuda"), path
                seen.append(path)
    assert {("train",), ("evaluate", "depth"), ("bench", "train"), ("bench", "infer")} <= set(seen)


def test_one_device_resolver():
    """Verbs resolve --device through sa4depth.device only (no private copies)."""
    import torch

    from sa4depth.device import resolve_device
    from sa4depth.train import resolve_device as train_resolve

    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError, match="expected auto, cpu or cuda"):
        train_resolve("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match=r"^train\.device=cuda but no CUDA"):
            train_resolve("cuda")
        with pytest.raises(ConfigError, match=r"^--device=cuda but no CUDA"):
            resolve_device("cuda")
    src = REPO / "src" / "sa4depth"
    offenders = [str(f.relative_to(src)) for d in ("commands", "benchmarks") for f in (src / d).glob("*.py")
                 if f.name != "figure.py" and ("cuda.is_available" in f.read_text() or "def _device(name" in f.read_text())]
    assert not offenders, offenders


# ----------------------------------------------------------------------------- 1: config overrides
def _fake_run(tmp_path: Path) -> Path:
    """A run directory as far as evaluate's config handling goes (no weights are loaded)."""
    d = tmp_path / "run"
    d.mkdir()
    save_config(load_config(scale="tiny", row="experiments:md2_18"), d / "config.yaml")
    (d / "model.pt").write_bytes(b"")
    return d


def _eval_config(argv):
    from sa4depth.commands.evaluate import _config

    args = build_parser().parse_args(argv)
    return _config(args)[0]


def test_evaluate_run_positional_overrides_and_config_file(tmp_path, capsys):
    d = _fake_run(tmp_path)
    stored = load_resolved(d / "config.yaml")
    extra = tmp_path / "extra.yaml"
    extra.write_text("eval:\n  batch_size: 3\n  max_depth: 50\n")
    cfg = _eval_config(["evaluate", "depth", "--run", str(d), "--out", "x.json", "--config", str(extra),
                        "eval.max_depth=60", "data.roots.kitti=/elsewhere"])
    assert cfg.eval.batch_size == 3 and cfg.eval.max_depth == 60.0  # file, then the command line on top
    assert cfg.data.roots["kitti"] == "/elsewhere"
    assert cfg.data.roots["kitti_odom"] == stored.data.roots["kitti_odom"]  # free-form mapping: per entry
    assert cfg.model.to_dict() == stored.model.to_dict()  # the run's config is the base, not the presets
    assert cfg.meta.row == stored.meta.row and cfg.meta.layers[:len(stored.meta.layers)] == stored.meta.layers
    assert cfg.meta.layers[-1] == "command line: eval.max_depth=60 data.roots.kitti=/elsewhere"
    # nothing to apply: the stored config as it is
    assert _eval_config(["evaluate", "scale", "--run", str(d), "--out", "x.json"]).to_dict() == stored.to_dict()
    # the old --set still works, before the positional overrides, with a one-line note
    cfg = _eval_config(["evaluate", "depth", "--run", str(d), "--out", "x.json", "--set", "eval.max_depth=40",
                        "--set", "eval.batch_size=5", "eval.max_depth=45"])
    assert cfg.eval.max_depth == 45.0 and cfg.eval.batch_size == 5
    err = capsys.readouterr().err
    assert err.count("--set KEY=VALUE is deprecated") == 1


@pytest.mark.parametrize("kind", ["depth", "scale", "video"])
def test_evaluate_run_override_typo_is_named_with_did_you_mean(tmp_path, capsys, kind):
    d = _fake_run(tmp_path)
    rc = main(["evaluate", kind, "--run", str(d), "--out", str(tmp_path / "x.json"), "eval.max_dept=60"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "unknown key 'eval.max_dept'" in err and "did you mean 'eval.max_depth'" in err, err
    rc = main(["evaluate", kind, "--run", str(d), "--out", str(tmp_path / "x.json"), "eval.max_depth=yes"])
    assert rc == 2 and "eval.max_depth" in capsys.readouterr().err
    rc = main(["evaluate", kind, "--run", str(d), "--out", str(tmp_path / "x.json"),
               "eval.min_depth=90"])  # cross-key rule: min < max
    assert rc == 2 and "eval.min_depth" in capsys.readouterr().err


def test_evaluate_without_run_uses_presets_row_and_overrides(tmp_path):
    cfg = _eval_config(["evaluate", "depth", "--pred", "p.npy", "--out", "x.json", "--scale", "tiny",
                        "--row", "experiments:md2_50", "eval.max_depth=70"])
    ref = load_config(scale="tiny", row="experiments:md2_50", overrides=["eval.max_depth=70"])
    assert cfg.to_dict() == ref.to_dict()


def test_bench_train_takes_positional_overrides_and_config(tmp_path, capsys):
    extra = tmp_path / "extra.yaml"
    extra.write_text("refine:\n  vgg_blocks: 2\n")
    args = build_parser().parse_args(["bench", "train", "refine.vgg_width=0.5", "--layers", "18", "--scale", "tiny",
                                      "--config", str(extra), "--set", "refine.vgg_blocks=3"])
    from sa4depth.config import overrides_of

    assert args.config == [str(extra)] and overrides_of(args) == ["refine.vgg_blocks=3", "refine.vgg_width=0.5"]
    # validated before any child process starts; `--scale tiny key=value` does not take the override as a preset
    rc = main(["bench", "train", "--layers", "18", "--scale", "tiny", "refine.vgg_widht=0.5"])
    assert rc == 2 and "did you mean 'refine.vgg_width'" in capsys.readouterr().err


def test_deprecated_spellings_still_parse_and_say_so(capsys):
    p = build_parser()
    assert p.parse_args(["train", "--out", "r"]).out == "r"
    assert "--out is deprecated, use --out-dir" in capsys.readouterr().err
    assert p.parse_args(["train", "--out-dir", "r"]).out == "r"
    assert capsys.readouterr().err == ""
    for argv in (["stats", "--json", "x.json"], ["bench", "synth", "--json", "x.json"],
                 ["bench", "data", "--json", "x.json"], ["bench", "train", "--json", "x.json"]):
        assert p.parse_args(argv).out == "x.json"
        assert "--json is deprecated, use --out" in capsys.readouterr().err
    assert p.parse_args(["synth", "--out", "d"]).out == "d"
    help_text = dict(_all_parsers())[("train",)].format_help()
    assert "--out-dir RUN_DIR" in help_text and "--out " not in help_text  # old spellings are hidden


# ----------------------------------------------------------------------------- 6: own predictions
def _pred_and_gt(tmp_path: Path):
    rng = np.random.default_rng(0)
    pred = tmp_path / "disps.npy"
    np.save(pred, rng.uniform(0.05, 0.5, (3, 12, 40)).astype(np.float32))
    maps = np.empty(3, dtype=object)
    for i in range(3):
        maps[i] = rng.uniform(2, 60, (24, 80)).astype(np.float32)
    gt = tmp_path / "gt_depths.npz"
    np.savez(gt, data=maps)
    return pred, gt


def test_own_predictions_with_gt_need_no_dataset(tmp_path, monkeypatch, capsys):
    pred, gt = _pred_and_gt(tmp_path)
    monkeypatch.chdir(tmp_path)  # data/synthetic/... does not exist here
    out = tmp_path / "res.json"
    rc = main(["evaluate", "depth", "--pred", str(pred), "--gt", str(gt), "--split", "eigen", "--out", str(out),
               "data.splits_dir=/nonexistent/splits", "data.roots.kitti=/nonexistent/kitti"])
    assert rc == 0, capsys.readouterr().err
    r = json.loads(out.read_text())
    assert r["num_images"] == 3 and np.isfinite(r["metrics"]["abs_rel"])


def test_own_predictions_without_gt_or_data_name_the_file_once_and_suggest_gt(tmp_path, monkeypatch, capsys):
    pred, _ = _pred_and_gt(tmp_path)
    monkeypatch.chdir(tmp_path)
    rc = main(["evaluate", "depth", "--pred", str(pred), "--split", "eigen", "--out", str(tmp_path / "r.json")])
    err = capsys.readouterr().err
    assert rc == 2
    missing = "data/synthetic/driving/splits/eigen/test_files.txt"
    assert err.count(missing) == 1, err
    assert "--gt gt_depths.npz" in err


# ----------------------------------------------------------------------------- 7: progress lines
def _data_args(d: Path) -> list[str]:
    return [f"data.roots={{kitti: {d / 'kitti_raw'}}}", f"data.splits_dir={d / 'splits'}", "data.num_workers=0"]


_LINE = re.compile(r"^sa4depth train: step (\d+)/4 \(\d+\.\d%\), loss \d+\.\d{4}, [\d.e+]+ it/s, ETA \S+$")


def test_train_without_bar_logs_progress_lines(driving, tmp_path, capsys):
    over = _data_args(driving) + ["train.max_steps=4", "train.log_every=2", "train.checkpoint_every=1000"]
    rc = main(["train", "--scale", "tiny", "--out-dir", str(tmp_path / "run"), "--no-progress",
               "--progress-every", "0", "--threads", "2", *over])
    out = capsys.readouterr().out
    assert rc == 0
    steps = [int(m.group(1)) for m in map(_LINE.match, out.splitlines()) if m]
    assert steps == [1, 2, 3, 4], out
    assert "sa4depth train: done, 4 steps" in out


def test_train_progress_lines_default_interval(driving, tmp_path):
    """Default (60 s): a line after the first step, so a job log shows the run started; then the end."""
    from sa4depth.train import train

    cfg = load_config(scale="tiny", overrides=_data_args(driving) + ["train.max_steps=4", "train.log_every=2",
                                                                       "train.checkpoint_every=1000"])
    lines: list[str] = []
    r = train(cfg, tmp_path / "run", progress=False, log=lines.append)
    assert r.status == "done"
    steps = [int(m.group(1)) for m in map(_LINE.match, lines) if m]
    assert steps == [1], lines
    lines.clear()
    train(cfg, tmp_path / "run2", progress=False, log=lines.append, progress_every=-1)
    assert not [ln for ln in lines if _LINE.match(ln)]


# ----------------------------------------------------------------------------- 8: threads
def test_threads_follow_the_slurm_allocation():
    from sa4depth.device import resolve_threads

    assert resolve_threads(0, {}) == 0  # torch's default
    assert resolve_threads(0, {"SLURM_CPUS_PER_TASK": "8"}) == 8
    assert resolve_threads(3, {"SLURM_CPUS_PER_TASK": "8"}) == 3  # an explicit count wins
    assert resolve_threads(0, {"SLURM_CPUS_PER_TASK": ""}) == 0
    assert resolve_threads(0, {"SLURM_CPUS_PER_TASK": "garbage"}) == 0


def test_set_threads_reads_the_environment(monkeypatch):
    import torch

    from sa4depth.device import set_threads

    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("SLURM_CPUS_PER_TASK", "1")
        assert set_threads(0) == 1
        monkeypatch.delenv("SLURM_CPUS_PER_TASK")
        assert set_threads(2) == 2
    finally:
        torch.set_num_threads(before)


def test_cli_threads_zero_uses_slurm_cpus_per_task(tmp_path):
    """`sa4depth bench infer --threads 0` inside a (fake) 1-CPU Slurm job runs on 1 thread."""
    out = tmp_path / "infer.json"
    env = dict(os.environ, SLURM_CPUS_PER_TASK="1")
    r = subprocess.run([str(BIN), "bench", "infer", "--height", "32", "--width", "64", "--warmup", "0",
                        "--repeats", "1", "--device", "cpu", "--threads", "0", "--out", str(out)],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert json.loads(out.read_text())["threads"] == 1


def test_rules_pass_the_jobs_threads():
    """train / evaluate / bench infer rules hand Snakemake's `threads` (the job's allocation) to --threads."""
    for name in ("train.smk", "evaluate.smk"):
        text = (REPO / "workflow" / "rules" / name).read_text()
        cmds = re.findall(r'"sa4depth (?:train|evaluate [\w{}.]+|bench infer)[^"]*"(?:\s*"[^"]*")*', text)
        assert cmds, name
        for c in cmds:
            assert "--threads {threads}" in c, c
        threads = re.findall(r"^    threads: (.*)$", text, re.M)
        assert len(threads) == len(cmds), name
        assert set(threads) <= {'config["threads"]["train"] or res("train", "cpus_per_task")', "EVAL_THREADS"}, threads


@pytest.mark.skipif(not SNAKEMAKE.exists(), reason="snakemake not installed")
def test_local_dry_run_keeps_one_thread_per_job_and_zero_follows_cpus(tmp_path):
    wf = tmp_path / "wf"
    wf.mkdir()
    for name in ("Snakefile", "workflow", "params"):
        (wf / name).symlink_to(REPO / name)
    env = dict(os.environ, PATH=f"{BIN.parent}{os.pathsep}{os.environ.get('PATH', '')}")

    def threads(*extra):
        r = subprocess.run([str(SNAKEMAKE), "-n", "-p", "--cores", "2", "table_i", "--config", "scale=tiny", *extra],
                           cwd=wf, capture_output=True, text=True, timeout=300, env=env)
        assert r.returncode == 0, r.stdout + r.stderr
        found = re.findall(r"sa4depth (train|evaluate \w+) .*?--threads (\d+)", r.stdout)
        assert {k.split()[0] for k, _ in found} == {"train", "evaluate"}
        return {int(n) for _, n in found}

    assert threads() == {1}  # workflow/config.yaml: one thread per job, --cores 2 runs two side by side
    cfg = tmp_path / "threads0.yaml"
    cfg.write_text("threads: {train: 0, evaluate: 0}\n")
    assert threads("--configfile", str(cfg)) == {2}  # cpus_per_task (8, 4), capped at --cores 2
