"""Pieces of the trainer that need no training: data order, RNG isolation, logs, config checks."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from sa4depth.config import ConfigError, load_config
from sa4depth.train.checkpoint import capture_rng, load_checkpoint, restore_rng, save_checkpoint
from sa4depth.train.data import EpochBatchSampler, SeededDataset, epoch_permutation
from sa4depth.train.logging import CSVLog
from sa4depth.train.step import POSE_SOURCES, check_train_config, median_depth_ratio, uses_pose_net
from sa4depth.train.trainer import _comparable, config_diff, make_optimizer


def _flat(batches):
    return [i for b in batches for (_, i) in b]


def test_epoch_order_is_a_function_of_seed_and_epoch():
    a = list(EpochBatchSampler(20, 4, seed=3, epoch=1))
    b = list(EpochBatchSampler(20, 4, seed=3, epoch=1))
    c = list(EpochBatchSampler(20, 4, seed=3, epoch=2))
    assert a == b and _flat(a) != _flat(c)
    assert sorted(_flat(a)) == list(range(20))  # 20 // 4 = 5 full batches: every sample once
    assert all(e == 1 for bt in a for (e, _) in bt)


def test_resume_skips_consumed_batches_and_caps_epoch():
    full = list(EpochBatchSampler(22, 4, seed=0, epoch=0))
    assert len(full) == 5  # drop_last
    tail = list(EpochBatchSampler(22, 4, seed=0, epoch=0, start_batch=2))
    assert tail == full[2:] and len(EpochBatchSampler(22, 4, seed=0, start_batch=2)) == 3
    capped = EpochBatchSampler(22, 4, seed=0, max_batches=2)
    assert capped.batches_per_epoch == 2 and list(capped) == full[:2]


def test_rank_shards_partition_each_global_batch():
    single = list(EpochBatchSampler(16, 4, seed=5, epoch=0))
    r0 = list(EpochBatchSampler(16, 4, seed=5, epoch=0, rank=0, world_size=2))
    r1 = list(EpochBatchSampler(16, 4, seed=5, epoch=0, rank=1, world_size=2))
    for g, a, b in zip(single, r0, r1):
        assert len(a) == len(b) == 2 and a + b == g


def test_sampler_errors_name_the_problem():
    with pytest.raises(ValueError, match="not divisible by the world size 3"):
        EpochBatchSampler(16, 4, seed=0, world_size=3)
    with pytest.raises(ValueError, match="fewer than one batch"):
        EpochBatchSampler(3, 4, seed=0)


def test_unshuffled_order_is_identity():
    assert epoch_permutation(5, 0, 0, shuffle=False).tolist() == [0, 1, 2, 3, 4]


class _RandomDataset(torch.utils.data.Dataset):
    """Augmentation drawn from all three global RNGs, like a typical dataset."""

    def __len__(self):
        return 10

    def __getitem__(self, i):
        return (i, random.random(), float(np.random.rand()), float(torch.rand(())))


def test_seeded_dataset_is_deterministic_and_leaves_caller_rng_alone():
    ds = SeededDataset(_RandomDataset(), seed=1)
    torch.manual_seed(0)
    random.seed(0)
    np.random.seed(0)
    before = capture_rng()
    x = ds[(0, 3)]
    after = capture_rng()
    assert torch.equal(before["torch"], after["torch"])
    assert before["python"] == after["python"]
    assert np.array_equal(before["numpy"][1], after["numpy"][1])
    # same (epoch, index) -> same sample whatever happened to the global RNGs in between
    torch.rand(100), random.random(), np.random.rand(7)
    assert ds[(0, 3)] == x
    assert ds[(1, 3)] != x and ds[(0, 4)][1:] != x[1:]
    assert SeededDataset(_RandomDataset(), seed=2)[(0, 3)] != x


def test_rng_capture_restore_roundtrip():
    state = capture_rng()
    a = (random.random(), float(np.random.rand()), float(torch.rand(())))
    restore_rng(state)
    assert (random.random(), float(np.random.rand()), float(torch.rand(()))) == a


def test_median_depth_ratio_by_hand():
    gt = torch.zeros(2, 1, 4, 4)
    gt[0, 0, :2] = torch.tensor([1.0, 2.0, 3.0, 4.0]).repeat(2, 1)  # valid top half, median 2.5
    pred = torch.zeros(2, 1, 4, 4)
    pred[0] = 5 * gt[0] + 7 * (gt[0] == 0)  # invalid pixels must not count
    pred[1] = 3.0  # sample without valid GT -> ratio 1
    r = median_depth_ratio(pred, gt)
    assert r.shape == (2,)
    assert r[0].item() == pytest.approx(5.0)
    assert r[1].item() == pytest.approx(1.0)


def test_csv_log_resume_drops_rows_after_checkpoint(tmp_path):
    p = tmp_path / "log.csv"
    log = CSVLog(p)
    for s in range(1, 6):
        log.write({"step": s, "epoch": 0, "loss": 1.0 / s, "lr": 1e-4, "time": s})
    log2 = CSVLog(p, resume_step=3)
    log2.write({"step": 4, "epoch": 0, "loss": 0.2, "lr": 1e-4, "time": 9})
    lines = p.read_text().strip().splitlines()
    assert lines[0] == "step,epoch,loss,lr,time"
    assert [ln.split(",")[0] for ln in lines[1:]] == ["1", "2", "3", "4"]
    log2.write({"step": 5, "epoch": 0, "loss": 0.1, "new": 7, "lr": 1e-4, "time": 9})  # a late statistic
    lines = p.read_text().strip().splitlines()
    assert lines[0] == "step,epoch,loss,new,lr,time"
    assert lines[1].split(",")[3] == "" and lines[-1].split(",")[3] == "7"
    CSVLog(p)  # a fresh (non-resumed) run starts a new log
    assert not p.exists()


def test_config_diff_ignores_bookkeeping_only():
    a = load_config(scale="tiny").to_dict()
    b = load_config(scale="tiny", overrides=["train.log_every=7", "train.checkpoint_every=9",
                                             "data.num_workers=3"]).to_dict()
    assert config_diff(_comparable(a), _comparable(b)) == []
    c = load_config(scale="tiny", overrides=["train.lr=0.5"]).to_dict()
    assert config_diff(_comparable(a), _comparable(c)) == ["train.lr"]


def test_meaningless_switch_combinations_are_rejected():
    with pytest.raises(ConfigError, match="pose.source='gt'"):
        check_train_config(load_config(scale="tiny", overrides=["pose.source=gt", "refine.enabled=true"]))
    with pytest.raises(ConfigError, match="use_for_warp"):
        check_train_config(load_config(scale="tiny", overrides=["refine.enabled=true", "refine.init=coarse",
                                                                "refine.use_for_warp=false"]))
    with pytest.raises(ConfigError, match="frame_ids"):
        check_train_config(load_config(scale="tiny", overrides=["data.frame_ids=[0]"]))


def test_which_configs_train_a_pose_net():
    assert uses_pose_net(load_config(scale="tiny"))
    assert not uses_pose_net(load_config(scale="tiny", overrides=["pose.source=gt"]))
    assert not uses_pose_net(load_config(scale="tiny", overrides=["refine.enabled=true", "refine.init=coarse"]))
    assert not uses_pose_net(load_config(scale="tiny", overrides=["matcher.enabled=true"]))
    assert uses_pose_net(load_config(scale="tiny", overrides=["matcher.enabled=true", "matcher.refine_posenet=true"]))



def test_every_pose_source_choice_has_a_function():
    """The table of Table I pose sources (train/step.py) and the config's choices are the same names."""
    import yaml
    from pathlib import Path

    cons = yaml.safe_load((Path(__file__).parents[1] / "params" / "constraints.yaml").read_text())
    assert set(POSE_SOURCES) == set(cons["pose.source"]["choices"])
    cfg = load_config(scale="tiny")
    cfg.pose.source = "nonsense"  # a config that bypassed the schema check
    with pytest.raises(ConfigError, match="pose.source='nonsense'"):
        check_train_config(cfg)

def test_checkpoint_errors_name_the_file(tmp_path):
    bad = tmp_path / "last.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=str(bad)):
        load_checkpoint(bad)
    torch.save({"format": "something-else"}, bad)
    with pytest.raises(ValueError, match="not a sa4depth training checkpoint"):
        load_checkpoint(bad)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_checkpoint(tmp_path / "missing.pt")
    save_checkpoint(bad, {"step": 3})
    assert load_checkpoint(bad)["step"] == 3 and not (tmp_path / "last.pt.tmp").exists()


def test_fused_adam_matches_the_per_parameter_adam():
    """make_optimizer's fused Adam (a speed choice) must give Adam's update: compare three steps with
    torch's for-loop Adam on the same parameters and gradients."""
    cfg = load_config(scale="tiny", overrides=["train.lr=0.01"])
    torch.manual_seed(0)
    ref = [torch.nn.Parameter(torch.randn(5, 3)), torch.nn.Parameter(torch.randn(7))]
    ours = [torch.nn.Parameter(p.detach().clone()) for p in ref]
    start = [p.detach().clone() for p in ref]
    opt_ours = make_optimizer(ours, cfg.train, torch.device("cpu"))
    opt_ref = torch.optim.Adam(ref, lr=0.01, foreach=False)
    assert opt_ours.param_groups[0]["fused"] is True
    for _ in range(3):
        grads = [torch.randn_like(p) for p in ref]
        for ps, opt in ((ours, opt_ours), (ref, opt_ref)):
            for p, g in zip(ps, grads):
                p.grad = g.clone()
            opt.step()
    for a, b, s in zip(ours, ref, start):
        assert (a != s).all()  # every entry moved
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-5)
    sgd = make_optimizer(ours, load_config(scale="tiny", overrides=["train.optimizer=sgd"]).train, torch.device("cpu"))
    assert isinstance(sgd, torch.optim.SGD)
