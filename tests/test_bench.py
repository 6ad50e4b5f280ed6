"""`sa4depth bench train` runs, reports what it timed, and applies --set overrides (no timing asserted)."""
from __future__ import annotations

import json

from sa4depth.cli import main


def test_bench_train_json_and_overrides(tmp_path):
    out = tmp_path / "bench.json"
    argv = ["bench", "train", "--layers", "18", "--scale", "tiny", "--sa4depth", "--steps", "1", "--warmup", "0",
            "--threads", "1", "--set", "refine.vgg_blocks=2", "--set", "refine.vgg_width=0.5", "--json", str(out)]
    assert main(argv) == 0
    res = json.loads(out.read_text())["results"]
    assert [r["sa4depth"] for r in res] == [False, True]
    base, sa = res
    assert base["steps_per_s"] > 0 and base["images_per_s"] == base["steps_per_s"] * base["batch_size"]
    assert (base["height"], base["width"], base["batch_size"]) == (32, 96, 2)
    assert sa["overrides"] == ["refine.vgg_blocks=2", "refine.vgg_width=0.5"]
    # the override reached the child: a 2-block half-width feature net trains fewer parameters than 4 full blocks
    full = tmp_path / "full.json"
    assert main(argv[:-6] + ["--json", str(full)]) == 0
    sa_full = json.loads(full.read_text())["results"][1]
    assert sa["params_trained"] < sa_full["params_trained"]
    assert sa["overhead_vs_baseline"] > 0
    # FLOPs counted: the feature net adds work, the full-size one more than the reduced one
    assert 0 < base["gflop_per_step"] < sa["gflop_per_step"] < sa_full["gflop_per_step"]
    assert sa["flop_ratio_vs_baseline"] == sa["gflop_per_step"] / base["gflop_per_step"]


def test_step_flops_count_forward_and_backward():
    """The FLOPs of a step are its forward's plus its backward's (about twice the forward's for
    convolutions and matrix products): between 2x and 3x the forward count alone."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from sa4depth.benchmarks.train import _step_gflop, random_batch
    from sa4depth.config import load_config
    from sa4depth.train.trainer import build_train_model

    cfg = load_config(scale="tiny", overrides=["train.device=cpu"])
    torch.manual_seed(0)
    model = build_train_model(cfg).train()
    batch = random_batch(cfg, "cpu")
    fwd = FlopCounterMode(display=False)
    with fwd:
        model(batch, step=0)
    step = _step_gflop(model, batch, torch.device("cpu"), use_amp=False)
    assert 2.0 < step / (fwd.get_total_flops() / 1e9) <= 3.0 + 1e-9  # backward alone: 1.9x here
    assert all(p.grad is None for p in model.parameters())  # no gradient left behind
