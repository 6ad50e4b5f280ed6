"""Odometry evaluation: chaining, KITTI devkit errors on analytic drifts, ATE == evo's CLI."""
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from sa4depth.evaluate.odometry import (chain_relative_poses, evaluate_trajectory, kitti_segment_errors,
                                        orthonormalize, read_kitti_poses, write_kitti_poses)


def _rz(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])


def _straight(n, step=1.0, rot_per_frame=0.0, scale=1.0):
    """Camera-to-world poses moving ``step*scale`` m along the camera z axis each frame and rolling
    ``rot_per_frame`` rad about it (positions are unaffected by the roll)."""
    rel = np.tile(np.eye(4), (n - 1, 1, 1))
    # motion in the camera frame: Twc_{i+1} = Twc_i @ M, with T_{i+1<-i} = inv(M)
    M = np.eye(4)
    M[:3, :3] = _rz(rot_per_frame)
    M[2, 3] = step * scale
    rel[:] = np.linalg.inv(M)
    return chain_relative_poses(rel)


def _expected_mean(n, lengths, step_size, per_segment):
    """Enumerate devkit segments on a 1 m/frame straight line: a segment of nominal length L from
    frame a ends at the first frame b with dist(b) > a + L, i.e. b = a + L + 1."""
    vals = [per_segment(L) for a in range(0, n, step_size) for L in lengths if a + L + 1 <= n - 1]
    return float(np.mean(vals)), len(vals)


def test_chain_inverts_relative_poses_and_orthonormalises():
    rng = np.random.default_rng(1)
    rel = np.tile(np.eye(4), (20, 1, 1))
    for i in range(20):
        q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        rel[i, :3, :3] = q * np.sign(np.linalg.det(q))
        rel[i, :3, 3] = rng.normal(size=3)
    Twc = chain_relative_poses(rel)
    assert np.allclose(Twc[0], np.eye(4))
    back = np.linalg.inv(Twc[1:]) @ Twc[:-1]  # T_{i+1<-i} = inv(Twc_{i+1}) Twc_i
    np.testing.assert_allclose(back, rel, atol=1e-9)
    R = orthonormalize(np.eye(3) + 1e-3 * rng.normal(size=(3, 3)))
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(R) == pytest.approx(1.0)


def test_t_err_constant_scale_drift():
    n = 401  # 400 m at 1 m / frame: lengths 100, 200, 300 fit
    gt = _straight(n)
    est = _straight(n, scale=1.02)
    raw = kitti_segment_errors(gt, est)
    exp, count = _expected_mean(n, [100, 200, 300], 10, lambda L: 0.02 * (L + 1) / L * 100.0)
    assert raw["num_segments"] == count
    assert raw["t_err"] == pytest.approx(exp, rel=1e-9)
    assert raw["r_err"] == pytest.approx(0.0, abs=1e-9)
    assert not raw["lengths_fallback"]
    assert raw["lengths_used"][:3] == [100.0, 200.0, 300.0]
    # a collinear path cannot be Umeyama-aligned: a clear error, not a crash inside evo
    with pytest.raises(ValueError, match="degenerate"):
        evaluate_trajectory(gt, est)


def test_sim3_alignment_removes_scale_drift():
    # a curve (yaw 0.5 deg / frame about the camera y axis) so that the Umeyama problem is well posed
    n = 401
    rel = np.tile(np.eye(4), (n - 1, 1, 1))
    c, s = np.cos(np.radians(0.5)), np.sin(np.radians(0.5))
    M = np.array([[c, 0, s, 0], [0, 1, 0, 0], [-s, 0, c, 1.0], [0, 0, 0, 1]])
    rel[:] = np.linalg.inv(M)
    gt = chain_relative_poses(rel)
    drift = rel.copy()
    drift[:, :3, 3] *= 1.02
    est = chain_relative_poses(drift)
    np.testing.assert_allclose(est[:, :3, 3], 1.02 * gt[:, :3, 3], atol=1e-9)
    res, est_al = evaluate_trajectory(gt, est)
    assert res["align_scale"] == pytest.approx(1 / 1.02, rel=1e-9)  # Sim(3) undoes the 2 % scale
    assert res["t_err"] == pytest.approx(0.0, abs=1e-6)
    assert res["ate_rmse"] == pytest.approx(0.0, abs=1e-6)
    assert res["t_err_raw"] > 1.0  # before alignment the drift is visible (chord/length < 2 %)
    assert res["r_err"] == pytest.approx(0.0, abs=1e-6)


def test_r_err_constant_roll_drift():
    n, a = 401, 1e-3
    gt = _straight(n)
    est = _straight(n, rot_per_frame=a)
    np.testing.assert_allclose(est[:, :3, 3], gt[:, :3, 3], atol=1e-9)  # same positions
    res = kitti_segment_errors(gt, est)
    exp, _ = _expected_mean(n, [100, 200, 300], 10, lambda L: np.degrees((L + 1) * a / L) * 100.0)
    assert res["r_err"] == pytest.approx(exp, rel=1e-6)
    assert res["t_err"] == pytest.approx(0.0, abs=1e-9)


def test_short_trajectory_falls_back_and_says_so():
    gt = _straight(24, step=0.5)  # 11.5 m, shorter than 100 m
    est = _straight(24, step=0.5, scale=1.1)
    res = kitti_segment_errors(gt, est, step_size=1)
    assert res["lengths_fallback"] is True
    np.testing.assert_allclose(res["lengths_used"], [11.5 * k / 10 for k in range(1, 9)])
    assert res["t_err"] > 9.0  # ~10 % scale error seen on every segment


def test_ate_matches_evo_command_line(tmp_path):
    rng = np.random.default_rng(2)
    n = 60
    rel = np.tile(np.eye(4), (n - 1, 1, 1))
    for i in range(n - 1):
        rel[i, :3, :3] = _rz(rng.normal(scale=0.02)) @ _rz(0).T
        rel[i, :3, 3] = [rng.normal(scale=0.1), 0.0, -1.0 + rng.normal(scale=0.05)]
    gt = chain_relative_poses(rel)
    noisy = rel.copy()
    noisy[:, :3, 3] += rng.normal(scale=0.05, size=(n - 1, 3))
    est = chain_relative_poses(noisy)
    est[:, :3, 3] *= 0.3  # an arbitrary monocular scale
    g, e = tmp_path / "gt.txt", tmp_path / "est.txt"
    write_kitti_poses(g, gt)
    write_kitti_poses(e, est)
    res, _ = evaluate_trajectory(read_kitti_poses(g), read_kitti_poses(e))
    evo_ape = Path(sys.executable).with_name("evo_ape")
    z = tmp_path / "ape.zip"
    env = dict(os.environ, MPLBACKEND="Agg")
    subprocess.run([str(evo_ape), "kitti", str(g), str(e), "-as", "--save_results", str(z), "--no_warnings"],
                   check=True, capture_output=True, text=True, env=env, timeout=120)
    with zipfile.ZipFile(z) as zf:
        stats = json.loads(zf.read("stats.json"))
    assert res["ate_rmse"] == pytest.approx(stats["rmse"], rel=1e-9)
    assert res["ate_rmse"] > 0.01


def test_malformed_pose_file_names_file_and_line(tmp_path):
    p = tmp_path / "bad.txt"
    good = " ".join(["1", "0", "0", "0", "0", "1", "0", "0", "0", "0", "1", "0"])
    p.write_text(good + "\n" + good + "\n" + " ".join(["1"] * 11) + "\n")
    with pytest.raises(ValueError, match=r"bad\.txt:3: malformed pose line: expected 12 numbers"):
        read_kitti_poses(p)
    p.write_text(good.replace("0", "x", 1) + "\n")
    with pytest.raises(ValueError, match=r"bad\.txt:1: malformed pose line: non-numeric"):
        read_kitti_poses(p)
    p.write_text(good.replace("1", "nan", 1) + "\n")
    with pytest.raises(ValueError, match="NaN"):
        read_kitti_poses(p)
    with pytest.raises(ValueError, match="differ in size"):
        evaluate_trajectory(_straight(5), _straight(6))
