"""`--run` paths with real (untrained) networks: batched inference and odometry on a tiny layout."""
import json

import numpy as np
import pytest
import torch

from sa4depth.cli import main
from sa4depth.config import load_config, save_config
from sa4depth.evaluate.odometry import write_kitti_poses


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from sa4depth.models import build_models, save_model_file

    torch.manual_seed(0)
    cfg = load_config(data="synthetic", scale="tiny")
    d = tmp_path_factory.mktemp("run")
    save_config(cfg, d / "config.yaml")
    save_model_file(d / "model.pt", cfg, build_models(cfg, load_pretrained=False))
    return d, cfg


def test_predict_disparities_batched_matches_single(run_dir):
    from sa4depth.evaluate.depth import predict_disparities
    from sa4depth.models import load_depth_model

    torch.set_num_threads(2)
    d, cfg = run_dir
    net, mcfg = load_depth_model(d / "model.pt")
    imgs = torch.rand(5, 3, cfg.data.height, cfg.data.width)
    a = predict_disparities(net, imgs, min_depth=0.1, max_depth=100.0, batch_size=2)
    b = predict_disparities(net, [imgs[3]], min_depth=0.1, max_depth=100.0, batch_size=1)
    assert len(a) == 5 and a[0].shape == (cfg.data.height, cfg.data.width)
    np.testing.assert_allclose(a[3], b[0], rtol=1e-5, atol=1e-6)
    # scaled disparity of Monodepth2's disp_to_depth lies in [1/max_depth, 1/min_depth]
    assert all(np.all((x >= 1 / 100.0 - 1e-6) & (x <= 10.0 + 1e-6)) for x in a)


def test_evaluate_odometry_run_on_tiny_layout(run_dir, tmp_path, capsys):
    from PIL import Image

    torch.set_num_threads(2)
    d, cfg = run_dir
    root = tmp_path / "kitti_odom"
    img_dir = root / "sequences" / "09" / "image_2"
    img_dir.mkdir(parents=True)
    rng = np.random.default_rng(0)
    n = 7
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (48, 160, 3), dtype=np.uint8)).save(img_dir / f"{i:06d}.png")
    th = np.linspace(0, 0.6, n)
    gt = np.tile(np.eye(4), (n, 1, 1))
    gt[:, 0, 3], gt[:, 2, 3] = 10 * np.sin(th), 10 * (1 - np.cos(th)) + th
    write_kitti_poses(root / "poses" / "09.txt", gt)
    out = tmp_path / "odom.json"
    rc = main(["evaluate", "odometry", "--run", str(d), "--sequence", "09", "--device", "cpu",
               "--set", f"data.roots.kitti_odom={root}", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    r = json.loads(out.read_text())
    s = r["sequences"]["09"]
    assert s["num_frames"] == n and np.isfinite(s["ate_rmse"]) and np.isfinite(s["t_err"])
    est = np.loadtxt(tmp_path / "odom_traj" / "09.txt")
    assert est.shape == (n, 12)
    np.testing.assert_allclose(est[0], np.eye(4)[:3].ravel(), atol=1e-12)  # chain starts at identity
    rc = main(["evaluate", "odometry", "--run", str(d), "--sequence", "09", "--set", "data.roots.nope=1",
               "--out", str(out)])
    assert rc == 2


def _kitti_layout(base, n=3):
    """A minimal KITTI-raw layout (images, improved-GT PNGs, calib, eigen_benchmark split)."""
    from PIL import Image

    drive = base / "kitti_raw" / "2000_01_01" / "2000_01_01_drive_0001_sync"
    (drive / "image_02" / "data").mkdir(parents=True)
    (drive / "proj_depth" / "groundtruth" / "image_02").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (48, 160, 3), dtype=np.uint8)).save(drive / "image_02" / "data" / f"{i:010d}.png")
        d = np.zeros((48, 160), np.uint16)
        d[20:] = (rng.uniform(5, 40, (28, 160)) * 256).astype(np.uint16)
        Image.fromarray(d).save(drive / "proj_depth" / "groundtruth" / "image_02" / f"{i:010d}.png")
    lines = []
    for k in range(4):
        tx = -54.0 * (k % 2)
        lines += [f"S_0{k}: 160 48", f"K_0{k}: 100 0 80 0 100 24 0 0 1", f"D_0{k}: 0 0 0 0 0",
                  f"R_0{k}: 1 0 0 0 1 0 0 0 1", f"T_0{k}: {tx / 100} 0 0", f"S_rect_0{k}: 160 48",
                  f"R_rect_0{k}: 1 0 0 0 1 0 0 0 1", f"P_rect_0{k}: 100 0 80 {tx} 0 100 24 0 0 0 1 0"]
    date = drive.parent
    (date / "calib_cam_to_cam.txt").write_text("calib_time: x\ncorner_dist: 0\n" + "\n".join(lines) + "\n")
    (date / "calib_velo_to_cam.txt").write_text("calib_time: x\nR: 0 -1 0 0 0 -1 1 0 0\nT: 0 0 0\n")
    (date / "calib_imu_to_velo.txt").write_text("calib_time: x\nR: 1 0 0 0 1 0 0 0 1\nT: 0 0 0\n")
    sp = base / "splits" / "eigen_benchmark"
    sp.mkdir(parents=True)
    (sp / "test_files.txt").write_text("".join(f"2000_01_01/2000_01_01_drive_0001_sync {i} l\n" for i in range(n)))
    return base


def test_evaluate_depth_run_exports_gt_and_scores(run_dir, tmp_path, capsys):
    torch.set_num_threads(2)
    d, _ = run_dir
    base = _kitti_layout(tmp_path)
    out = tmp_path / "depth.json"
    save = tmp_path / "disps.npy"
    rc = main(["evaluate", "depth", "--run", str(d), "--split", "eigen_benchmark", "--device", "cpu",
               "--set", f"data.roots.kitti={base / 'kitti_raw'}", "--set", f"data.splits_dir={base / 'splits'}",
               "--save-pred", str(save), "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    gt_file = base / "splits" / "eigen_benchmark" / "gt_depths.npz"
    assert gt_file.is_file()  # exported on first use, Monodepth2 layout
    r = json.loads(out.read_text())
    gt0 = np.load(gt_file, allow_pickle=True)["data"][0]
    from sa4depth.evaluate.metrics import garg_crop_mask
    expected = int((garg_crop_mask(gt0.shape) & (gt0 > 1e-3) & (gt0 < 80)).sum())  # Garg crop, (1e-3, 80)
    assert r["num_images"] == 3 and r["per_image"][0]["valid"] == expected < gt0.size
    assert all(np.isfinite(v) for v in r["metrics"].values())
    # the saved disparities, scored as external predictions, give the same numbers
    rc = main(["evaluate", "depth", "--pred", str(save), "--gt", str(gt_file), "--split", "eigen_benchmark",
               "--out", str(tmp_path / "again.json")])
    r2 = json.loads((tmp_path / "again.json").read_text())
    assert r2["metrics"] == pytest.approx(r["metrics"], rel=1e-6)


def test_git_dirty_means_code_or_params_changed_not_the_committed_results(tmp_path):
    """A run rewrites the committed tables while later jobs record provenance: that is not 'dirty'."""
    import subprocess

    from sa4depth.evaluate.provenance import git_info

    def git(*a):
        subprocess.run(["git", *a], cwd=tmp_path, check=True, capture_output=True)

    (tmp_path / "src").mkdir()
    (tmp_path / "results" / "tables").mkdir(parents=True)
    (tmp_path / "src" / "a.py").write_text("x = 1\n")
    (tmp_path / "results" / "tables" / "t.csv").write_text("1\n")
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    info = git_info(tmp_path / "src")
    assert info["dirty"] is False and len(info["commit"]) == 40
    (tmp_path / "results" / "tables" / "t.csv").write_text("2\n")
    assert git_info(tmp_path / "src")["dirty"] is False
    (tmp_path / "src" / "a.py").write_text("x = 2\n")
    assert git_info(tmp_path / "src")["dirty"] is True


def test_a_tree_without_git_records_the_commit_the_caller_states(tmp_path, monkeypatch, capsys):
    """A copy without .git (a cluster's scratch copy) records SA4DEPTH_GIT_COMMIT, marked as stated by
    the caller; a checkout's own commit wins over it; a malformed value stops the CLI before any work."""
    import subprocess

    from sa4depth.cli import main
    from sa4depth.evaluate.provenance import git_info

    copy = tmp_path / "copy"
    copy.mkdir()
    monkeypatch.delenv("SA4DEPTH_GIT_COMMIT", raising=False)
    monkeypatch.delenv("SA4DEPTH_GIT_DIRTY", raising=False)
    assert git_info(copy) == {"commit": None, "dirty": None}
    monkeypatch.setenv("SA4DEPTH_GIT_COMMIT", "ab" * 20)
    assert git_info(copy) == {"commit": "ab" * 20, "dirty": None, "source": "SA4DEPTH_GIT_COMMIT"}
    monkeypatch.setenv("SA4DEPTH_GIT_DIRTY", "true")
    assert git_info(copy)["dirty"] is True
    monkeypatch.setenv("SA4DEPTH_GIT_DIRTY", "0")
    assert git_info(copy)["dirty"] is False

    ck = tmp_path / "checkout"
    ck.mkdir()
    (ck / "a.py").write_text("x = 1\n")
    for a in (["init", "-q"], ["add", "."], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "i"]):
        subprocess.run(["git", *a], cwd=ck, check=True, capture_output=True)
    own = git_info(ck)
    assert own["commit"] != "ab" * 20 and "source" not in own

    monkeypatch.setenv("SA4DEPTH_GIT_DIRTY", "maybe")
    with pytest.raises(ValueError, match="SA4DEPTH_GIT_DIRTY='maybe'"):
        git_info(copy)
    monkeypatch.delenv("SA4DEPTH_GIT_COMMIT")                  # checked even without a commit stated
    with pytest.raises(ValueError, match="SA4DEPTH_GIT_DIRTY='maybe'"):
        git_info(copy)
    monkeypatch.setenv("SA4DEPTH_GIT_DIRTY", "false")
    monkeypatch.setenv("SA4DEPTH_GIT_COMMIT", "abc1234")   # short: not a commit git can be asked about
    assert main(["evaluate", "depth", "--pred", str(tmp_path / "no.npz"), "--gt", str(tmp_path / "no.npz"),
                 "--out", str(tmp_path / "out.json")]) == 2
    err = capsys.readouterr().err
    assert "SA4DEPTH_GIT_COMMIT='abc1234'" in err and "no.npz" not in err
    assert not (tmp_path / "out.json").exists()


def test_qualitative_figure_loads_the_split_once_for_runs_on_the_same_data(tmp_path, monkeypatch):
    """Fig. 3: every run's disparities on the same test images; runs that read the same data share
    one load of the split."""
    import sa4depth.data as D
    from sa4depth.models import build_models, save_model_file
    from sa4depth.report.figure_jobs import qualitative_figure

    torch.set_num_threads(2)
    base = _kitti_layout(tmp_path)
    cfg = load_config(data="synthetic", scale="tiny", overrides=[
        f"data.roots.kitti={base / 'kitti_raw'}", f"data.splits_dir={base / 'splits'}"])
    runs = []
    for k, name in enumerate(("a", "b")):
        torch.manual_seed(k)
        d = tmp_path / name
        d.mkdir()
        save_config(cfg, d / "config.yaml")
        save_model_file(d / "model.pt", cfg, build_models(cfg, load_pretrained=False))
        runs.append((name, str(d)))
    calls = []
    real = D.load_test_images
    monkeypatch.setattr(D, "load_test_images", lambda c, s: calls.append(s) or real(c, s))
    out = qualitative_figure(runs, tmp_path / "fig3.png", split="eigen_benchmark", num=2, device="cpu")
    assert out.stat().st_size > 1000 and calls == ["eigen_benchmark"]
