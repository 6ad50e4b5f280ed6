"""Depth metrics, crops, median scaling, scale statistics and video alignment against hand values."""
import math

import numpy as np
import pytest

from sa4depth.evaluate.depth import evaluate_depth_arrays, protocol_for_split
from sa4depth.evaluate.metrics import (compute_depth_errors, crop_mask, fit_scale_shift, garg_crop_mask,
                                       median_scale, nyu_crop_mask, scale_ratio_stats, scale_variances)
from sa4depth.evaluate.video import evaluate_video, sequence_scale_std


def test_depth_errors_hand_computed():
    gt = np.array([1.0, 2.0, 3.0, 3.8])
    pred = np.array([2.0, 2.0, 2.0, 2.0])
    e = compute_depth_errors(gt, pred)
    # |gt-pred| = 1, 0, 1, 1.8 ; max ratio = 2, 1, 1.5, 1.9
    assert e["abs_rel"] == pytest.approx((1 / 1 + 0 + 1 / 3 + 1.8 / 3.8) / 4)
    assert e["sq_rel"] == pytest.approx((1 / 1 + 0 + 1 / 3 + 3.24 / 3.8) / 4)
    assert e["rmse"] == pytest.approx(math.sqrt((1 + 0 + 1 + 3.24) / 4))
    assert e["rmse_log"] == pytest.approx(math.sqrt((math.log(2) ** 2 + 0 + math.log(1.5) ** 2
                                                     + math.log(1.9) ** 2) / 4))
    assert e["a1"] == pytest.approx(1 / 4)   # only ratio 1 < 1.25
    assert e["a2"] == pytest.approx(2 / 4)   # 1, 1.5 < 1.5625
    assert e["a3"] == pytest.approx(3 / 4)   # 1, 1.5, 1.9 < 1.953125


def test_depth_errors_reject_bad_input():
    with pytest.raises(ValueError, match="positive"):
        compute_depth_errors(np.array([1.0, 2.0]), np.array([1.0, 0.0]))
    with pytest.raises(ValueError, match="no valid pixels"):
        compute_depth_errors(np.array([]), np.array([]))


def test_garg_crop_mask():
    m = garg_crop_mask((10, 100))
    # rows int(4.08)=4 .. int(9.92)=9 (exclusive), cols int(3.59)=3 .. int(96.41)=96 (exclusive)
    assert m.sum() == 5 * 93
    assert m[4, 3] and m[8, 95] and not m[3, 50] and not m[9, 50] and not m[5, 2] and not m[5, 96]
    k = garg_crop_mask((375, 1242))  # KITTI size: rows 153:371, cols 44:1197
    rows, cols = np.nonzero(k)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (153, 370, 44, 1196)
    n = nyu_crop_mask((480, 640))
    rows, cols = np.nonzero(n)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (45, 470, 41, 600)
    assert crop_mask("none", (3, 4)).all()
    with pytest.raises(ValueError, match="unknown crop"):
        crop_mask("bogus", (3, 4))


def test_median_scaling_and_clamp():
    gt = np.array([2.0, 4.0, 6.0])
    pred = np.array([1.0, 2.0, 100.0])
    scaled, ratio = median_scale(gt, pred, 1e-3, 80.0)
    assert ratio == pytest.approx(2.0)          # median(gt)=4 / median(pred)=2
    np.testing.assert_allclose(scaled, [2.0, 4.0, 80.0])  # 200 clamped to max_depth
    off, r1 = median_scale(gt, np.array([1e-5, 2.0, 3.0]), 1e-3, 80.0, enabled=False)
    assert r1 == 1.0
    np.testing.assert_allclose(off, [1e-3, 2.0, 3.0])     # clamp only


def test_scale_std_and_variances():
    s = scale_ratio_stats(np.array([1.0, 2.0, 3.0]))
    assert s["scale_std"] == pytest.approx(math.sqrt(2 / 3))
    assert s["scale_mean"] == pytest.approx(2.0)
    assert s["scale_std_md2"] == pytest.approx(math.sqrt(2 / 3) / 2)
    v = scale_variances([2, 4], [1, 1], [1, 1], [1, 0.5])  # depth scales 2, 4 ; pose scales 1, 2
    assert v["depth_scale_var"] == pytest.approx(1.0)
    assert v["pose_scale_var"] == pytest.approx(0.25)
    assert v["depth_pose_scale_ratio_var"] == pytest.approx(0.0)  # ratios 2, 2
    with pytest.raises(ValueError, match="pred_trans_norms"):
        scale_variances([1], [1], [1], [0])
    assert sequence_scale_std([2.0, 4.0]) == pytest.approx(1 / 3)


def test_fit_scale_shift_exact():
    x = np.array([0.0, 1.0, 2.0, 5.0])
    s, t = fit_scale_shift(x, 3 * x - 2)
    assert (s, t) == (pytest.approx(3.0), pytest.approx(-2.0))


def test_eigen_protocol_end_to_end():
    gt = np.zeros((10, 100))
    gt[:, :] = 10.0
    gt[0:4, :] = 100.0  # above max_depth and outside the crop: ignored either way
    # prediction at a lower resolution: disparity 0.2 -> depth 5 -> median ratio 2 -> exact
    pred = np.full((5, 50), 0.2)
    proto = protocol_for_split("eigen")
    assert (proto.crop, proto.mask, proto.max_depth) == ("garg", "range", 80.0)
    r = evaluate_depth_arrays([pred, pred], [gt, gt], proto)
    assert r["metrics"]["abs_rel"] == pytest.approx(0.0, abs=1e-6)
    assert r["per_image"][0]["valid"] == 5 * 93
    assert r["scale"]["scale_mean"] == pytest.approx(2.0, rel=1e-6)
    assert r["scale"]["scale_std"] == pytest.approx(0.0, abs=1e-9)
    aware = protocol_for_split("eigen", median_scaling=False)
    r2 = evaluate_depth_arrays([pred], [gt], aware)
    assert r2["metrics"]["abs_rel"] == pytest.approx(0.5, rel=1e-6)  # |10-5|/10
    # scale-aware: the ratio is measured (Table II's Scale Std of the M+v rows), not applied
    assert r2["scale"]["applied"] is False and r2["scale"]["scale_mean"] == pytest.approx(2.0, rel=1e-6)
    bench = protocol_for_split("eigen_benchmark")  # the paper's protocol: Garg crop, (1e-3, 80)
    assert (bench.crop, bench.mask) == ("garg", "range")
    assert evaluate_depth_arrays([pred], [gt], bench)["per_image"][0]["valid"] == 5 * 93
    md2 = protocol_for_split("eigen_benchmark", crop="none")  # Monodepth2's script: gt > 0, no crop
    assert md2.mask == "positive"
    r3 = evaluate_depth_arrays([pred], [gt], md2)
    assert r3["per_image"][0]["valid"] == 1000


def test_cityscapes_and_nyu_protocols():
    H, W = 64, 128
    gt = np.full((H, W), 20.0)
    gt[48:] = 0.0  # hood (bottom 25%) has no GT in this toy map; the crop removes it anyway
    # ManyDepth: pred covers the top 75 % of the frame; crop rows >= H/4, cols 0.09375..0.90625 W
    pred = np.full((48, 128), 0.1)
    r = evaluate_depth_arrays([pred], [gt], protocol_for_split("cityscapes"), pred_kind="disp")
    assert r["per_image"][0]["valid"] == (48 - 16) * (116 - 12)
    assert r["metrics"]["abs_rel"] == pytest.approx(0.0, abs=1e-6)
    ny = protocol_for_split("nyu")
    assert ny.max_depth == 10.0 and ny.crop == "nyu"
    with pytest.raises(ValueError, match="unknown evaluation split"):
        protocol_for_split("kitti")


def test_video_alignment_recovers_scale_shift():
    rng = np.random.default_rng(0)
    gts, preds, seqs = [], [], []
    for name, (a, b) in {"s1": (2.0, 0.01), "s2": (4.0, -0.02)}.items():
        for _ in range(3):
            g = rng.uniform(2.0, 50.0, size=(6, 8))
            # prediction disparity such that a * pred + b = 1 / gt exactly
            preds.append((1.0 / g - b) / a)
            gts.append(g)
            seqs.append(name)
    r = evaluate_video(preds, gts, seqs, space="disparity", max_depth=80.0)
    assert r["metrics"]["abs_rel"] == pytest.approx(0.0, abs=1e-9)
    scales = [p["scale"] for p in r["per_sequence"]]
    assert scales == [pytest.approx(2.0), pytest.approx(4.0)]
    assert r["seq_scale_std"] == pytest.approx(1 / 3)
    # depth-space alignment with pred depth = (gt - t) / s
    pd = [(g - 1.0) / 3.0 for g in gts]
    r2 = evaluate_video(pd, gts, seqs, pred_kind="depth", space="depth")
    assert r2["metrics"]["rmse"] == pytest.approx(0.0, abs=1e-8)
    assert r2["seq_scale_std"] == pytest.approx(0.0, abs=1e-9)
