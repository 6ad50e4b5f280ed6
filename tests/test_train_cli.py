"""`sa4depth train` on the synthetic driving benchmark (tiny scale): the loss falls, the CLI survives
SIGTERM (exit 3) and SIGKILL and resumes to the same weights, a finished run is not retrained,
and SA4Depth (Table VI row 6) trains end to end on CPU."""
from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from sa4depth.config import load_config
from sa4depth.models.io import load_model_file, read_model_file
from sa4depth.train import train

torch.set_num_threads(min(2, os.cpu_count() or 1))
QUIET = dict(progress=False, log=lambda *_: None)
BIN = Path(sys.executable).parent / "sa4depth"


def _data_args(d: Path) -> list[str]:
    return [f"data.roots={{kitti: {d / 'kitti_raw'}}}", f"data.splits_dir={d / 'splits'}", "data.num_workers=0"]


def _losses(run: Path) -> list[float]:
    with open(run / "log.csv") as f:
        return [float(r["loss"]) for r in csv.DictReader(f) if r["loss"]]  # step 0: monitor only


def test_loss_falls_on_synthetic_driving(driving, tmp_path):
    cfg = load_config(scale="tiny", overrides=_data_args(driving) + [
        "train.max_steps=12", "train.log_every=1", "train.checkpoint_every=1000"])
    r = train(cfg, tmp_path, **QUIET)
    assert r.status == "done" and r.steps == 12
    loss = _losses(tmp_path)
    first, last = sum(loss[:5]) / 5, sum(loss[-5:]) / 5
    print(f"photometric+smoothness loss: first 5 steps {first:.4f}, last 5 steps {last:.4f}")
    assert last < 0.9 * first


def _wait(pred, proc, timeout=300.0):
    t0 = time.time()
    while not pred():
        if proc.poll() is not None:
            raise AssertionError(f"training exited early (rc {proc.returncode}): {proc.stdout.read()}")
        if time.time() - t0 > timeout:
            proc.kill()
            raise AssertionError("timed out waiting for a checkpoint")
        time.sleep(0.02)


def test_cli_sigterm_sigkill_resume_and_skip(driving, tmp_path):
    over = _data_args(driving) + ["train.max_steps=4", "train.checkpoint_every=1", "train.log_every=1",
                                  "train.deterministic=true"]
    run = tmp_path / "run"
    cmd = [str(BIN), "train", "--scale", "tiny", "--out", str(run), "--no-progress", "--threads",
           str(torch.get_num_threads()), *over]
    ck = run / "checkpoints" / "last.pt"

    # 1) preemption: SIGTERM once the first checkpoint exists -> checkpoint + exit code 3
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    _wait(ck.exists, p)
    p.send_signal(signal.SIGTERM)
    out, _ = p.communicate(timeout=300)
    assert p.returncode == 3, out
    assert "rerun the same command to resume" in out
    # 2) SIGKILL right after the next checkpoint (a new file replaces last.pt)
    ino = ck.stat().st_ino
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    _wait(lambda: ck.exists() and ck.stat().st_ino != ino, p)
    p.kill()
    p.wait()
    assert not (run / "done.json").exists()
    # 3) resume to the end
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "resuming" in res.stdout
    # same weights as an uninterrupted run
    ref = tmp_path / "ref"
    train(load_config(scale="tiny", overrides=over), ref, **QUIET)
    a, b = read_model_file(run / "model.pt")["state_dicts"], read_model_file(ref / "model.pt")["state_dicts"]
    worst = max((a[m][k].double() - b[m][k].double()).abs().max().item() for m in a for k in a[m] if a[m][k].numel())
    assert worst <= 1e-6, f"resumed CLI run differs from the uninterrupted run by {worst}"
    with open(run / "log.csv") as f:  # step 0: the scale monitor on the untrained model (tiny: every 2 steps)
        assert [int(r["step"]) for r in csv.DictReader(f)] == [0, 1, 2, 3, 4]
    # 4) a finished run with the same config is not retrained
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0 and "nothing to do" in res.stdout
    for name in ("config.yaml", "log.csv", "model.pt", "done.json", "checkpoints/last.pt"):
        assert (run / name).exists(), name
    assert any((run / "tb").iterdir())


def test_sa4depth_row6_trains_end_to_end(driving, tmp_path):
    cfg = load_config(scale="tiny", row="table_vi:r06_sa4depth",
                      overrides=_data_args(driving) + ["train.max_steps=1", "train.checkpoint_every=100"])
    assert cfg.refine.enabled and cfg.model.depth_layers == 50
    r = train(cfg, tmp_path, **QUIET)
    assert r.status == "done" and r.steps == 1
    assert r.final["pose_self"] > 0 and "refine/refine_fallbacks" in r.final
    saved = read_model_file(tmp_path / "model.pt")["state_dicts"]
    assert {"depth", "pose", "refiner"} <= set(saved)
    cfg2, mods = load_model_file(tmp_path / "model.pt")
    assert cfg2.refine.enabled and "refiner" in mods["extra"]


def test_sigterm_to_every_process_of_the_job_still_checkpoints(driving, tmp_path):
    """Slurm preemption signals every process of the job, DataLoader workers included: the run must
    still finish its step, write the checkpoint and exit 3 (workers ignore the signal)."""
    from sa4depth.train.checkpoint import load_checkpoint

    over = _data_args(driving) + ["data.num_workers=1", "train.max_steps=40", "train.checkpoint_every=1",
                                  "train.monitor_every=0"]
    run = tmp_path / "run"
    cmd = [str(BIN), "train", "--scale", "tiny", "--out", str(run), "--no-progress", "--threads", "1", *over]
    ck = run / "checkpoints" / "last.pt"
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    _wait(ck.exists, p)
    os.killpg(p.pid, signal.SIGTERM)
    out, _ = p.communicate(timeout=300)
    assert p.returncode == 3, out
    assert "DataLoader worker" not in out
    assert 1 <= load_checkpoint(ck)["step"] < 40


def test_a_second_train_into_a_busy_run_directory_stops_at_once(driving, tmp_path):
    """Two writers in one run directory (e.g. two Snakemake invocations scheduling the same run)
    would interleave checkpoints and log.csv: the second process must refuse, naming the lock."""
    over = _data_args(driving) + ["train.max_steps=200", "train.checkpoint_every=1", "train.monitor_every=0"]
    run = tmp_path / "run"
    cmd = [str(BIN), "train", "--scale", "tiny", "--out", str(run), "--no-progress", "--threads", "1", *over]
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait(lambda: (run / "checkpoints" / "last.pt").exists(), first)
        second = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert second.returncode == 2, second.stdout + second.stderr
        assert "another process is training into this run directory" in second.stderr
        assert first.poll() is None  # the first run is untouched
    finally:
        first.kill()
        first.wait()
    # the lock dies with its (killed) process: the directory can be trained into again
    short = [str(BIN), "train", "--scale", "tiny", "--out", str(run), "--no-progress", "--threads", "1",
             "--resume", "never", *_data_args(driving), "train.max_steps=2", "train.monitor_every=0"]
    res = subprocess.run(short, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
