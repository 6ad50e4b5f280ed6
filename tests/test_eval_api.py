"""The evaluation library API (sa4depth.evaluate.jobs) called from Python, without the CLI: the same
numbers, log lines and JSON as `sa4depth evaluate ...` on the same files (no dataset needed)."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from sa4depth.cli import main
from sa4depth.evaluate import jobs
from sa4depth.evaluate.odometry import write_kitti_poses
from sa4depth.evaluate.provenance import to_jsonable
from sa4depth.files import hash_files

sys.path.insert(0, str(Path(__file__).parent))
from fabricate import arc_trajectory  # noqa: E402


def _gt_npz(path, n=4, shape=(20, 60), seed=0):
    rng = np.random.default_rng(seed)
    maps = np.empty(n, dtype=object)
    for i in range(n):
        maps[i] = rng.uniform(2.0, 60.0, size=shape).astype(np.float32)
    np.savez(path, data=maps)
    return path


def _cli_json(argv, out, capsys):
    rc = main(argv + ["--out", str(out)])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    return json.loads(out.read_text()), cap.out.splitlines()


def _strip(r):
    """A result JSON without what differs between two writes (time, command line)."""
    r = json.loads(json.dumps(r))
    r["provenance"].pop("created")
    r["provenance"].pop("command")
    return r


def test_evaluate_depth_api_matches_cli(tmp_path, capsys):
    gt = _gt_npz(tmp_path / "gt_depths.npz")
    rng = np.random.default_rng(1)
    pred = tmp_path / "disps.npy"
    np.save(pred, rng.uniform(0.05, 0.5, size=(4, 10, 30)).astype(np.float32))
    cli, cli_lines = _cli_json(["evaluate", "depth", "--pred", str(pred), "--gt", str(gt), "--split", "eigen"],
                               tmp_path / "cli.json", capsys)

    cfg, model = jobs.resolve_config()          # the CLI's presets: --data synthetic --scale smoke
    assert model is None
    lines = []
    res = jobs.evaluate_depth(cfg, pred=pred, gt=gt, split="eigen", device="cuda", log=lines.append)
    assert isinstance(res, jobs.EvalResult) and (res.kind, res.protocol) == ("depth", "depth/eigen")
    assert res.device == "cpu"                  # scoring files runs no network: no device is used
    assert res.data_files == [gt]
    got = to_jsonable(res.result)
    assert got["metrics"]["abs_rel"] > 0.1      # random predictions: the numbers are not trivial
    assert got["metrics"] == cli["metrics"] and got["scale"] == cli["scale"]
    assert got["per_image"] == cli["per_image"] and got["num_images"] == cli["num_images"] == 4
    lines = "\n".join(lines).splitlines()      # format_metrics is one multi-line message
    assert lines == cli_lines[:-1] and cli_lines[-1] == f"-> wrote {tmp_path / 'cli.json'}"

    # scale-aware changes the numbers: the API passes its options through
    aware = jobs.evaluate_depth(cfg, pred=pred, gt=gt, split="eigen", scale_aware=True, log=lambda s: None)
    assert aware.result["metrics"]["abs_rel"] != pytest.approx(got["metrics"]["abs_rel"], rel=1e-3)
    with pytest.raises(ValueError, match="exactly one of model_path and pred"):
        jobs.evaluate_depth(cfg, gt=gt, split="eigen")


def test_write_result_adds_provenance_like_the_cli(tmp_path, capsys):
    gt = _gt_npz(tmp_path / "gt_depths.npz", n=3)
    pred = tmp_path / "d.npy"
    np.save(pred, np.random.default_rng(2).uniform(0.05, 0.5, size=(3, 10, 30)))
    cli, _ = _cli_json(["evaluate", "depth", "--pred", str(pred), "--gt", str(gt), "--split", "eigen_benchmark"],
                       tmp_path / "cli.json", capsys)
    cfg, _ = jobs.resolve_config()
    res = jobs.evaluate_depth(cfg, pred=str(pred), gt=str(gt), split="eigen_benchmark", log=lambda s: None)
    path = jobs.write_result(tmp_path / "sub" / "api.json", res, argv=["my-script", "--x"])
    assert path == tmp_path / "sub" / "api.json" and not (tmp_path / "sub" / "api.json.tmp").exists()
    r = json.loads(path.read_text())
    prov = r["provenance"]
    assert prov["command"] == "my-script --x" and prov["device"] == "cpu" and prov["seed"] == cfg.seed
    assert prov["protocol"] == "depth/eigen_benchmark" and prov["data_hash"] == hash_files([gt])
    assert prov["config"] == cfg.to_dict()
    assert list(r) == list(cli)                 # same keys, same order
    assert _strip(r) == _strip(cli)             # and the same values


def test_write_result_names_the_run_that_trained_the_evaluated_model(tmp_path):
    """provenance.trained: the evaluated model's done.json (the training commit, model sha256, steps);
    `done: false` for a model outside a finished run; a broken done.json is an error naming it."""
    cfg, _ = jobs.resolve_config()
    run = tmp_path / "run"
    run.mkdir()
    res = jobs.EvalResult("depth", "depth/eigen", {"metrics": {"abs_rel": 0.2}}, cfg, [], "cpu", run / "model.pt")
    r = json.loads(jobs.write_result(tmp_path / "a.json", res).read_text())
    assert r["provenance"]["trained"] == {"model": str(run / "model.pt"), "done": False}
    (run / "done.json").write_text(json.dumps({"status": "done", "steps": 600, "model_sha256": "ab12",
                                               "git": {"commit": "c0ffee" * 6, "dirty": False}}))
    r = json.loads(jobs.write_result(tmp_path / "b.json", res).read_text())
    assert r["provenance"]["trained"] == {"model": str(run / "model.pt"), "done": True, "steps": 600,
                                         "git": {"commit": "c0ffee" * 6, "dirty": False}, "model_sha256": "ab12"}
    code = [{"from_step": 0, "commit": "ab" * 20, "dirty": False}, {"from_step": 300, "commit": "c0ffee" * 6,
                                                                      "dirty": False}]
    (run / "done.json").write_text(json.dumps({"status": "done", "steps": 600, "git": code[1], "code": code}))
    r = json.loads(jobs.write_result(tmp_path / "b2.json", res).read_text())
    assert r["provenance"]["trained"]["code"] == code   # the commits of a resumed run, in order
    # a broken or foreign done.json: the numbers are still written, the record says why it is not used
    (run / "done.json").write_text("[600]")
    r = json.loads(jobs.write_result(tmp_path / "c.json", res).read_text())
    assert not r["provenance"]["trained"]["done"] and "run/done.json: not a done.json object" in \
        r["provenance"]["trained"]["error"] and r["metrics"] == {"abs_rel": 0.2}
    (run / "done.json").write_text(json.dumps({"model": "other.pt", "git": {"commit": "x" * 40}}))
    r = json.loads(jobs.write_result(tmp_path / "e.json", res).read_text())
    assert not r["provenance"]["trained"]["done"] and "describes 'other.pt'" in r["provenance"]["trained"]["error"]
    scored = jobs.EvalResult("depth", "depth/eigen", {"metrics": {"abs_rel": 0.2}}, cfg, [], "cpu")
    assert "trained" not in json.loads(jobs.write_result(tmp_path / "d.json", scored).read_text())["provenance"]


def test_evaluate_odometry_api_matches_cli(tmp_path, capsys):
    n = 40
    gt = arc_trajectory(n, radius=25, angle=1.8)
    est = gt.copy()
    est[:, :3, 3] *= 0.4
    est[:, 0, 3] += np.random.default_rng(3).normal(scale=0.2, size=n)
    g, e = write_kitti_poses(tmp_path / "09.txt", gt), write_kitti_poses(tmp_path / "est.txt", est)
    cli, cli_lines = _cli_json(["evaluate", "odometry", "--pred-poses", str(e), "--gt-poses", str(g),
                                "--sequence", "09"], tmp_path / "cli" / "odom.json", capsys)

    cfg, _ = jobs.resolve_config()
    lines = []
    out = tmp_path / "api" / "odom.json"
    res = jobs.evaluate_odometry(cfg, out=out, pred_poses=str(e), gt_poses=str(g), sequences=["09"],
                                 log=lines.append)
    s, c = to_jsonable(res.result["sequences"]["09"]), cli["sequences"]["09"]
    assert s["t_err"] > 1.0                     # a real drift, not a trivial zero
    assert s["t_err"] == c["t_err"] and s["r_err"] == c["r_err"] and s["ate_rmse"] == c["ate_rmse"]
    assert s == c
    assert res.result["plots"] == {"09": str(tmp_path / "api" / "odom_09.png")}
    assert (tmp_path / "api" / "odom_09.png").stat().st_size > 1000
    assert res.data_files == [g] and res.protocol == cli["provenance"]["protocol"]
    assert lines == cli_lines[:-1] and len(lines) == 2 and "t_err" in lines[1]
    with pytest.raises(ValueError, match="--pred-poses needs --gt-poses"):
        jobs.evaluate_odometry(cfg, out=out, pred_poses=str(e))


def test_evo_first_run_notice_stays_off_stdout(tmp_path):
    """On a fresh machine evo's plotting module creates ~/.evo/settings.json and prints a line saying
    so; the odometry plot imports it with that line kept off stdout (a command's output)."""
    import os
    import subprocess

    def run(code: str, home: Path) -> str:
        home.mkdir()
        env = dict(os.environ, HOME=str(home), MPLBACKEND="Agg")
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
        assert r.returncode == 0, r.stderr[-2000:]
        return r.stdout

    assert "settings.json" in run("from evo.tools import plot", tmp_path / "plain")  # what evo itself does
    out = run("from sa4depth.evaluate.odometry import _evo_plot; _evo_plot()", tmp_path / "ours")
    assert out == "" and (tmp_path / "ours" / ".evo" / "settings.json").is_file()


def test_resolve_config_from_a_run_applies_files_and_overrides(tmp_path):
    from sa4depth.config import load_config, load_resolved, save_config

    d = tmp_path / "run"
    d.mkdir()
    save_config(load_config(scale="tiny", row="experiments:md2_18"), d / "config.yaml")
    (d / "model.pt").write_bytes(b"")
    extra = tmp_path / "extra.yaml"
    extra.write_text("eval:\n  batch_size: 3\n")
    cfg, model = jobs.resolve_config(d, config_files=[extra], overrides=["eval.max_depth=60"])
    assert model == d / "model.pt"
    assert cfg.eval.batch_size == 3 and cfg.eval.max_depth == 60.0
    assert cfg.model.to_dict() == load_resolved(d / "config.yaml").model.to_dict()
    cfg, model = jobs.resolve_config(scale="tiny", overrides={"eval.max_depth": 70})
    assert model is None and cfg.eval.max_depth == 70.0 and cfg.meta.scale == "tiny"
