"""The training loop on in-memory data (tests/test_train_fakes.PlaneDataset): exact resume after a
kill, skip of finished runs, every Table I pose source, DDP == 1 process."""
from __future__ import annotations

import csv
import json
import os
import signal
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from test_train_fakes import PlaneDataset, ddp_worker, free_port  # noqa: E402

from sa4depth.config import ConfigError, load_config  # noqa: E402
from sa4depth.models.io import read_model_file  # noqa: E402
from sa4depth.train import StopTraining, build_train_model, train  # noqa: E402
from sa4depth.train.checkpoint import load_checkpoint  # noqa: E402

torch.set_num_threads(min(2, os.cpu_count() or 1))
QUIET = dict(progress=False, log=lambda *_: None)


def _cfg(*over):
    return load_config(scale="tiny", overrides=["train.max_steps=4", "train.checkpoint_every=2", "train.log_every=1",
                                                "data.num_workers=0", "train.deterministic=true", *over])


def _weights(run: Path) -> dict[str, torch.Tensor]:
    sds = read_model_file(run / "model.pt")["state_dicts"]
    return {f"{m}.{k}": v for m, sd in sds.items() for k, v in sd.items()}


def _assert_same(a: Path, b: Path, atol=1e-6) -> None:
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    worst = max((wa[k].double() - wb[k].double()).abs().max().item() for k in wa if wa[k].numel())
    assert worst <= atol, f"weights differ by {worst}"


def _log_steps(run: Path) -> list[int]:
    with open(run / "log.csv") as f:
        return [int(r["step"]) for r in csv.DictReader(f)]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """An uninterrupted 4-step run (2 epochs of 2 steps: exercises the epoch boundary too)."""
    out = tmp_path_factory.mktemp("ref")
    r = train(_cfg(), out, dataset=PlaneDataset(n=5), **QUIET)
    assert r.status == "done" and r.steps == 4
    return out


def test_kill_after_checkpoint_then_resume_gives_identical_weights(reference, tmp_path):
    with pytest.raises(StopTraining):  # what a SIGKILL right after the step-2 checkpoint leaves
        train(_cfg(), tmp_path, dataset=PlaneDataset(n=5), stop_after=2, **QUIET)
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt")["step"] == 2
    assert not (tmp_path / "done.json").exists() and not (tmp_path / "model.pt").exists()
    r = train(_cfg(), tmp_path, dataset=PlaneDataset(n=5), **QUIET)
    assert r.status == "done" and r.steps == 4
    _assert_same(reference, tmp_path)
    assert _log_steps(tmp_path) == [1, 2, 3, 4]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # preemption handler restored
    # (SIGTERM -> checkpoint + exit code 3 -> resume is covered through the CLI in test_train_cli.py)
    # the comparison can fail: training moved the weights far beyond the tolerance
    torch.manual_seed(0)
    init = build_train_model(_cfg()).depth.state_dict()
    trained = read_model_file(tmp_path / "model.pt")["state_dicts"]["depth"]
    assert max((init[k] - trained[k]).abs().max().item() for k in init if init[k].is_floating_point()) > 1e-4


def test_done_json_says_which_commit_trained_which_steps(tmp_path, monkeypatch):
    """A run resumed under other code records both: ``code`` lists each process's commit with the step
    it started from; ``git`` is the code that finished it."""
    import sa4depth.evaluate.provenance as prov

    cfg = _cfg("train.max_steps=6")
    monkeypatch.setattr(prov, "git_info", lambda cwd=None: {"commit": "a" * 40, "dirty": False})
    with pytest.raises(StopTraining):
        train(cfg, tmp_path, dataset=PlaneDataset(n=5), stop_after=2, **QUIET)
    monkeypatch.setattr(prov, "git_info", lambda cwd=None: {"commit": "b" * 40, "dirty": True})
    with pytest.raises(StopTraining):
        train(cfg, tmp_path, dataset=PlaneDataset(n=5), stop_after=4, **QUIET)
    # resumed from a copy without .git that states the same commit: the same code, no new entry
    monkeypatch.setattr(prov, "git_info", lambda cwd=None: {"commit": "b" * 40, "dirty": True,
                                                            "source": "SA4DEPTH_GIT_COMMIT"})
    train(cfg, tmp_path, dataset=PlaneDataset(n=5), **QUIET)
    done = json.loads((tmp_path / "done.json").read_text())
    assert done["code"] == [{"from_step": 0, "commit": "a" * 40, "dirty": False},
                            {"from_step": 2, "commit": "b" * 40, "dirty": True}]
    assert done["git"] == {"commit": "b" * 40, "dirty": True, "source": "SA4DEPTH_GIT_COMMIT"}


def test_finished_run_is_skipped_and_config_change_is_refused(reference):
    done = (reference / "done.json").read_text()
    from sa4depth.evaluate.provenance import git_info

    assert json.loads(done)["git"] == git_info()   # the code that trained it (commit, dirty)
    assert json.loads(done)["code"] == [{"from_step": 0, **git_info()}]  # one process, one entry
    r = train(_cfg("train.log_every=2"), reference, dataset=PlaneDataset(n=5), **QUIET)  # bookkeeping only
    assert r.status == "skipped" and r.steps == 4
    assert (reference / "done.json").read_text() == done
    with pytest.raises(ConfigError, match="train.lr"):
        train(_cfg("train.lr=0.001"), reference, dataset=PlaneDataset(n=5), **QUIET)


@pytest.mark.parametrize("source,expect_key,pose_trained", [
    ("gt", None, False),
    ("gt_scaled", "gt_scale_ratio", False),
    ("gt_supervised", "pose_sup", True),
    ("velocity_supervised", "pose_sup", True),
])
def test_table_i_pose_sources_run(tmp_path, source, expect_key, pose_trained):
    cfg = _cfg(f"pose.source={source}", "train.max_steps=1", "train.checkpoint_every=100")
    r = train(cfg, tmp_path, dataset=PlaneDataset(n=2), **QUIET)
    assert r.status == "done" and r.steps == 1
    if expect_key:
        assert expect_key in r.final and r.final[expect_key] > 0
    if source == "gt_scaled":  # GT depth is 8 m, an untrained net predicts ~0.2 m: the pose shrinks with it
        assert r.final["gt_scale_ratio"] < 0.2
    torch.manual_seed(cfg.seed)  # the trainer's initialisation, rebuilt
    init = build_train_model(cfg).pose.state_dict()
    trained = read_model_file(tmp_path / "model.pt")["state_dicts"]["pose"]
    changed = any(not torch.equal(init[k], trained[k]) for k in init if "running" not in k and "num_batches" not in k)
    assert changed == pose_trained


def test_ddp_two_processes_equal_one_process(tmp_path):
    """2 gloo ranks x 2 samples == 1 process x 4 samples (global batch 4), with global-batch BatchNorm
    (train.sync_bn). Plain SGD so that weight differences scale with gradient differences (Adam's
    first steps are ~lr * sign(g) and would hide them)."""
    import torch.multiprocessing as mp

    cfg = _cfg("train.batch_size=4", "train.max_steps=2", "train.checkpoint_every=100", "train.optimizer=sgd",
               "train.lr=0.01")
    mp.spawn(ddp_worker, args=(2, free_port(), cfg.to_dict(), str(tmp_path / "ddp"), 8), nprocs=2, join=True)
    train(cfg, tmp_path / "one", dataset=PlaneDataset(n=8), **QUIET)
    wa, wb = _weights(tmp_path / "ddp"), _weights(tmp_path / "one")
    for k in wa:
        if not wa[k].is_floating_point():
            assert torch.equal(wa[k], wb[k]), k
        elif "running_" in k:  # BN statistics: relative (running_var reaches O(100))
            torch.testing.assert_close(wa[k], wb[k], rtol=1e-4, atol=1e-5, msg=k)
        else:
            torch.testing.assert_close(wa[k], wb[k], rtol=0, atol=1e-5, msg=k)
    assert _log_steps(tmp_path / "ddp") == [1, 2]  # rank 0 logged every step



def test_the_trainer_is_the_plain_loop(tmp_path):
    """The trainer's weights equal (torch.equal) those of a hand-written loop: seed, model, Adam, the data
    order of sa4depth.train.data and ``model(batch, step=i)``; with loss.automask_after=3 of 4 steps the
    step counter changes the loss, so it must reach forward. Checkpoints, logs, the monitor-less
    bookkeeping and the staging around the step change nothing."""
    from sa4depth.train.data import EpochBatchSampler, SeededDataset, make_train_loader
    from sa4depth.train.trainer import make_optimizer, param_groups, seed_everything

    cfg = _cfg("loss.automask_after=3", "train.monitor_every=0", "train.deterministic=false")
    r = train(cfg, tmp_path, dataset=PlaneDataset(n=5), **QUIET)
    assert r.status == "done" and r.steps == 4

    seed_everything(int(cfg.seed))
    model = build_train_model(cfg)
    opt = make_optimizer(param_groups(model, cfg), cfg.train, torch.device("cpu"))
    data = SeededDataset(PlaneDataset(n=5), int(cfg.seed))
    step = 0
    model.train()
    for epoch in range(2):  # 5 samples, batch 2: 2 steps an epoch
        for batch in make_train_loader(data, EpochBatchSampler(5, 2, int(cfg.seed), epoch), 0):
            loss, _ = model(batch, step=step)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
    assert step == 4
    with pytest.raises(TypeError):  # the step counter is an argument, not model state
        model(batch)
    trained = _weights(tmp_path)
    mine = {f"{m}.{k}": v for m, mod in model.named_modules_for_saving().items() for k, v in mod.state_dict().items()}
    assert trained.keys() == mine.keys()
    assert all(torch.equal(trained[k], mine[k]) for k in mine), [k for k in mine if not torch.equal(trained[k], mine[k])]

def test_automask_after_switches_automasking_on_at_that_step():
    """loss.automask_after: before that optimiser step the photometric loss is the plain per-pixel
    minimum (automask off), from it on Monodepth2's automasked one; evaluation always masks."""
    ds = PlaneDataset(n=2)
    from torch.utils.data import default_collate
    batch = default_collate([ds[0], ds[1]])

    def photo(*over, step):
        torch.manual_seed(0)
        m = build_train_model(_cfg(*over))
        torch.manual_seed(1)  # the automask tie-break noise
        return m(batch, step=step)[1]["photo"].item()

    on, off = photo(step=0), photo("loss.automask=false", step=0)
    assert on < off  # identity pixels win somewhere: automasking changes the loss
    assert photo("loss.automask_after=3", step=2) == pytest.approx(off, rel=1e-6)
    assert photo("loss.automask_after=3", step=3) == pytest.approx(on, rel=1e-6)
