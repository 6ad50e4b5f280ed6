"""`sa4depth evaluate ...` on external predictions: JSON content, provenance and bad input."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from sa4depth.cli import main
from sa4depth.evaluate.depth import load_predictions
from sa4depth.evaluate.odometry import write_kitti_poses
from sa4depth.files import hash_files

sys.path.insert(0, str(Path(__file__).parent))
from fabricate import arc_trajectory  # noqa: E402


def _gt_npz(path, n=3, shape=(20, 60), depth=10.0):
    maps = np.empty(n, dtype=object)
    for i in range(n):
        maps[i] = np.full(shape, depth * (i + 1), dtype=np.float32)
    np.savez(path, data=maps)
    return path


def test_evaluate_depth_external_predictions(tmp_path, capsys):
    gt = _gt_npz(tmp_path / "gt_depths.npz")
    # disparity 1/5 everywhere at a lower resolution -> depth 5 ; GT 10, 20, 30 -> ratios 2, 4, 6
    pred = tmp_path / "disps.npy"
    np.save(pred, np.full((3, 10, 30), 0.2, dtype=np.float32))
    out = tmp_path / "res" / "depth.json"
    rc = main(["evaluate", "depth", "--pred", str(pred), "--gt", str(gt), "--split", "eigen", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    r = json.loads(out.read_text())
    assert r["evaluation"] == "depth" and r["split"] == "eigen" and r["num_images"] == 3
    assert r["metrics"]["abs_rel"] == pytest.approx(0.0, abs=1e-6)
    assert r["scale"]["scale_mean"] == pytest.approx(4.0, rel=1e-5)
    assert r["scale"]["scale_std"] == pytest.approx(np.std([2.0, 4.0, 6.0]), rel=1e-5)
    prov = r["provenance"]
    assert prov["protocol"] == "depth/eigen"
    assert prov["data_hash"] == hash_files([gt])
    assert set(prov["git"]) == {"commit", "dirty"}
    assert prov["config"]["eval"]["max_depth"] == 80.0 and prov["seed"] == 0
    assert not (tmp_path / "res" / "depth.json.tmp").exists()
    # scale-aware: no median scaling -> depth 5 against 10, 20, 30
    rc = main(["evaluate", "depth", "--pred", str(pred), "--gt", str(gt), "--split", "eigen", "--scale-aware",
               "--out", str(out)])
    r = json.loads(out.read_text())
    assert r["metrics"]["abs_rel"] == pytest.approx(np.mean([0.5, 0.75, 5 / 6]), rel=1e-5)
    assert r["scale"]["applied"] is False  # ratios measured (Scale Std), not applied
    assert r["scale"]["scale_mean"] == pytest.approx(4.0, rel=1e-5)


@pytest.mark.parametrize("arr, msg", [
    (np.full((2, 10, 30), 0.2), "2 predictions but .*gt_depths.npz has 3"),
    (np.full((3, 2, 10, 30), 0.2), r"shape \(N, H, W\)"),
    (np.where(np.arange(900).reshape(3, 10, 30) == 5, np.nan, 0.2), "NaN"),
    (np.where(np.arange(900).reshape(3, 10, 30) == 7, 0.0, 0.2), "non-positive"),
])
def test_bad_predictions_give_clear_errors(tmp_path, capsys, arr, msg):
    gt = _gt_npz(tmp_path / "gt_depths.npz")
    pred = tmp_path / "bad_pred.npy"
    np.save(pred, arr)
    rc = main(["evaluate", "depth", "--pred", str(pred), "--gt", str(gt), "--split", "eigen",
               "--out", str(tmp_path / "o.json")])
    err = capsys.readouterr().err
    assert rc == 2
    assert "bad_pred.npy" in err
    import re
    assert re.search(msg, err), err
    assert not (tmp_path / "o.json").exists()


def test_prediction_file_formats(tmp_path):
    p = tmp_path / "p.npz"
    np.savez(p, disp=np.ones((2, 1, 4, 5)), other=np.ones(3))
    assert len(load_predictions(p)) == 2 and load_predictions(p)[0].shape == (4, 5)
    np.savez(p, a=np.ones((2, 4, 5)), b=np.ones((2, 4, 5)))
    with pytest.raises(ValueError, match="--pred-key"):
        load_predictions(p)
    assert len(load_predictions(p, key="b")) == 2
    with pytest.raises(ValueError, match=r"\.npy or \.npz"):
        (tmp_path / "p.txt").write_text("1")
        load_predictions(tmp_path / "p.txt")


def test_evaluate_odometry_external_and_malformed(tmp_path, capsys):
    n = 30
    gt = arc_trajectory(n, radius=20, angle=1.5)
    est = gt.copy()
    est[:, :3, 3] *= 0.5
    est[5:, 0, 3] += 0.3
    g, e = tmp_path / "09.txt", tmp_path / "est.txt"
    write_kitti_poses(g, gt)
    write_kitti_poses(e, est)
    out = tmp_path / "odom.json"
    rc = main(["evaluate", "odometry", "--pred-poses", str(e), "--gt-poses", str(g), "--sequence", "09",
               "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    r = json.loads(out.read_text())
    s = r["sequences"]["09"]
    assert s["lengths_fallback"] is True and len(s["lengths_used"]) == 8  # ~30 m < 100 m
    assert s["align_scale"] == pytest.approx(2.0, rel=0.05)
    assert 0 < s["ate_rmse"] < 0.5
    assert (tmp_path / "odom_09.png").stat().st_size > 1000
    assert r["provenance"]["data_hash"] == hash_files([g])
    lines = e.read_text().splitlines()
    lines[3] = lines[3] + " 7"
    e.write_text("\n".join(lines) + "\n")
    rc = main(["evaluate", "odometry", "--pred-poses", str(e), "--gt-poses", str(g), "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and "est.txt:4: malformed pose line: expected 12 numbers" in err


def test_evaluate_video_external(tmp_path, capsys):
    gt = _gt_npz(tmp_path / "gt_depths.npz", n=4, shape=(8, 12))
    split = tmp_path / "test_files.txt"
    split.write_text("drive_a 0 l\ndrive_a 1 l\ndrive_b 0 l\ndrive_b 1 l\n")
    # disparities 2x / 4x the GT's: per-sequence scales 0.5 and 0.25 in disparity space
    d = np.stack([np.full((8, 12), k / (10.0 * (i + 1))) for i, k in enumerate([2, 2, 4, 4])])
    pred = tmp_path / "v.npy"
    np.save(pred, d)
    out = tmp_path / "video.json"
    rc = main(["evaluate", "video", "--pred", str(pred), "--gt", str(gt), "--split-file", str(split),
               "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    r = json.loads(out.read_text())
    assert r["num_sequences"] == 2 and r["alignment_space"] == "disparity"
    assert r["metrics"]["abs_rel"] == pytest.approx(0.0, abs=1e-6)
    assert r["seq_scale_std"] == pytest.approx(np.std([0.5, 0.25]) / 0.375, rel=1e-4)


def test_infer_timing_on_a_tiny_net():
    import torch

    from sa4depth.benchmarks.infer import time_depth_net

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.c = torch.nn.Conv2d(3, 1, 3, padding=1)

        def forward(self, x):
            return {("disp", 0): torch.sigmoid(self.c(x))}

    r = time_depth_net(Tiny(), 32, 64, 2, "cpu", warmup=1, repeats=5)
    assert r["latency_p10_s"] <= r["latency_median_s"] <= r["latency_p90_s"]
    assert r["fps"] == pytest.approx(2 / r["latency_median_s"])
    with pytest.raises(ValueError, match="multiples of 32"):
        time_depth_net(Tiny(), 30, 64, 1, "cpu", 0, 1)
