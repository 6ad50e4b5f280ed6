"""Nothing already computed is lost, and nothing a tool did not write is deleted or overwritten."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sa4depth.config import ConfigError, load_config
from sa4depth.train import train
from sa4depth.train.trainer import StopTraining

BIN = Path(sys.executable).parent / "sa4depth"
QUIET = dict(progress=False, log=lambda *_: None)


def _cfg(d: Path, *extra: str):
    return load_config(scale="tiny", overrides=[
        f"data.roots={{kitti: {d / 'kitti_raw'}}}", f"data.splits_dir={d / 'splits'}", "data.num_workers=0",
        "train.max_steps=2", "train.monitor_every=0", "train.checkpoint_every=1", *extra])


def _snapshot(run: Path) -> dict[str, bytes]:
    return {p.relative_to(run).as_posix(): p.read_bytes() for p in sorted(run.rglob("*"))
            if p.is_file() and p.name != ".train.lock"}


@pytest.fixture(scope="module")
def finished(driving, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("finished") / "run"
    assert train(_cfg(driving), run, **QUIET).status == "done"
    return run


def test_resume_never_keeps_a_finished_run_when_the_new_one_cannot_start(driving, finished, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    before = _snapshot(run)
    broken = tmp_path / "no_data"
    broken.mkdir()
    bad = load_config(scale="tiny", overrides=[
        f"data.roots={{kitti: {broken}}}", f"data.splits_dir={driving / 'splits'}", "data.num_workers=0",
        "train.max_steps=2", "train.monitor_every=0"])
    with pytest.raises(Exception):
        train(bad, run, resume="never", **QUIET)
    assert _snapshot(run) == before  # model.pt, done.json, log.csv, config.yaml, checkpoints: untouched
    assert not (run / "replaced").exists()


def test_resume_never_moves_the_old_run_aside_until_the_new_one_is_done(driving, finished, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    old_model = (run / "model.pt").read_bytes()
    # interrupted after its first checkpoint: the old run's files wait in replaced/
    with pytest.raises(StopTraining):
        train(_cfg(driving, "train.lr=2e-4"), run, resume="never", stop_after=1, **QUIET)
    assert (run / "replaced" / "model.pt").read_bytes() == old_model
    assert (run / "replaced" / "done.json").is_file() and not (run / "done.json").exists()
    # the rerun resumes the new run (same config) and, once done, drops the replaced one
    r = train(_cfg(driving, "train.lr=2e-4"), run, **QUIET)
    assert r.status == "done" and r.steps == 2
    assert not (run / "replaced").exists()
    assert json.loads((run / "done.json").read_text())["status"] == "done"
    assert (run / "model.pt").read_bytes() != old_model


def test_train_refuses_an_out_dir_with_files_it_did_not_write(driving, tmp_path):
    run = tmp_path / "mine"
    run.mkdir()
    (run / "model.pt").write_bytes(b"my own weights")
    for resume in ("auto", "never"):
        with pytest.raises(ConfigError, match=r"model.pt but no config.yaml.*did not write"):
            train(_cfg(driving), run, resume=resume, **QUIET)
    assert (run / "model.pt").read_bytes() == b"my own weights"
    assert sorted(p.name for p in run.iterdir()) == [".train.lock", "model.pt"]
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    for out in (a_file, a_file / "run"):
        with pytest.raises(ValueError, match=rf"{a_file}: is a file; the run's output folder {out} cannot go there"):
            train(_cfg(driving), out, **QUIET)
    assert a_file.read_text() == "mine"


def test_a_different_config_error_offers_a_safe_replacement(driving, finished, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    with pytest.raises(ConfigError, match=r"different config.*--resume never to replace it.*replaced"):
        train(_cfg(driving, "train.lr=3e-4"), run, **QUIET)


def test_synth_force_never_deletes_a_folder_synth_did_not_write(tmp_path):
    out = tmp_path / "precious"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    res = subprocess.run([str(BIN), "synth", "--profile", "driving", "--scale", "tiny", "--out", str(out),
                          "--quiet", "--force"], capture_output=True, text=True, timeout=600)
    assert res.returncode != 0
    assert "not written by sa4depth synth" in res.stderr and str(out) in res.stderr
    assert "Traceback" not in res.stderr
    assert (out / "thesis.tex").read_text() == "years of work"


# ----------------------------------------------------------------------------- no file runs code
class _Payload:
    """Pickles to a call of os.system: what a crafted .npy / checkpoint would carry."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _evil_array(marker: Path) -> np.ndarray:
    arr = np.empty(1, dtype=object)
    arr[0] = _Payload(marker)
    return arr


def _gt_npz(path: Path, n: int = 2, shape=(12, 20)) -> Path:
    maps = np.empty(n, dtype=object)  # Monodepth2's layout: an object array of maps
    for i in range(n):
        maps[i] = np.full(shape, 10.0 * (i + 1), dtype=np.float32)
    np.savez(path, data=maps)
    return path


def test_a_crafted_prediction_file_never_runs_code(tmp_path, capsys):
    from sa4depth.cli import main

    marker = tmp_path / "pwned"
    pred = tmp_path / "pred.npy"
    np.save(pred, _evil_array(marker), allow_pickle=True)
    evil_npz = tmp_path / "pred.npz"
    np.savez(evil_npz, data=_evil_array(marker))
    gt = _gt_npz(tmp_path / "gt_depths.npz")
    for p in (pred, evil_npz):
        rc = main(["evaluate", "depth", "--pred", str(p), "--gt", str(gt), "--split", "eigen",
                   "--out", str(tmp_path / "r.json")])
        err = capsys.readouterr().err
        assert rc == 2 and str(p) in err and "only numpy arrays" in err, err
    rc = main(["evaluate", "depth", "--pred", str(tmp_path / "ok.npy"), "--gt", str(evil_npz), "--split", "eigen",
               "--out", str(tmp_path / "r.json")])
    assert rc == 2
    assert not marker.exists()


def test_crafted_checkpoints_and_model_files_never_run_code(tmp_path):
    import torch

    from sa4depth.models.io import read_model_file
    from sa4depth.train.checkpoint import load_checkpoint

    marker = tmp_path / "pwned"
    for name, loader in (("last.pt", load_checkpoint), ("model.pt", read_model_file)):
        f = tmp_path / name
        torch.save({"format": "x", "payload": _Payload(marker)}, f)
        with pytest.raises(ValueError, match=str(f)) as e:
            loader(f)
        # one line that names what was refused, and never torch's advice to load with weights_only=False
        msg = str(e.value)
        assert f"refusing to load {os.system.__module__}.system" in msg and "\n" not in msg and "weights_only" not in msg, msg
        f.write_bytes(b"my own weights")                    # not a pickle of anything: torch's own complaint
        with pytest.raises(ValueError, match=str(f)) as e:
            loader(f)
        msg = str(e.value)
        assert "Unsupported operand" in msg and "refusing" not in msg and "weights_only" not in msg, msg
    assert not marker.exists()


def test_object_array_ground_truth_still_loads_without_pickle(tmp_path):
    from sa4depth.evaluate.depth import load_gt_depths

    maps = load_gt_depths(_gt_npz(tmp_path / "gt_depths.npz", n=3, shape=(4, 6)))
    assert [m.shape for m in maps] == [(4, 6)] * 3 and maps[2][0, 0] == 30.0


@pytest.mark.parametrize("make, msg", [
    (lambda p: p.with_suffix(".npy").write_text("not numpy at all"), "cannot read a .npy array"),
    (lambda p: np.savez(p.with_suffix(".npz")), "holds no arrays"),
    (lambda p: p.with_suffix(".npz").write_bytes(b"PK\x03\x04 broken"), "cannot read a .npz archive"),
])
def test_unreadable_prediction_files_are_named(tmp_path, capsys, make, msg):
    from sa4depth.cli import main

    make(tmp_path / "pred")
    pred = next(tmp_path.glob("pred.*"))
    rc = main(["evaluate", "depth", "--pred", str(pred), "--gt", str(_gt_npz(tmp_path / "gt.npz")),
               "--split", "eigen", "--out", str(tmp_path / "r.json")])
    err = capsys.readouterr().err
    assert rc == 2 and str(pred) in err and msg in err, err


def test_gt_given_as_npy_and_out_under_a_file_are_clear_errors(tmp_path, capsys):
    from sa4depth.cli import main

    pred = tmp_path / "pred.npy"
    np.save(pred, np.full((2, 6, 10), 0.2, dtype=np.float32))
    gt_npy = tmp_path / "gt.npy"
    np.save(gt_npy, np.ones((2, 12, 20), dtype=np.float32))
    rc = main(["evaluate", "depth", "--pred", str(pred), "--gt", str(gt_npy), "--split", "eigen",
               "--out", str(tmp_path / "r.json")])
    err = capsys.readouterr().err
    assert rc == 2 and str(gt_npy) in err and ".npz" in err, err
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    for out in (blocker / "r.json", tmp_path):  # under a file; a directory
        rc = main(["evaluate", "depth", "--pred", str(pred), "--gt", str(_gt_npz(tmp_path / "gt.npz")),
                   "--split", "eigen", "--out", str(out)])
        err = capsys.readouterr().err
        assert rc == 2 and "error:" in err and "Traceback" not in err, err


def test_a_cached_gt_export_is_checked_against_its_split_file(driving, tmp_path, capsys):
    from sa4depth.evaluate.jobs import gt_file as _gt_file
    from sa4depth.safeio import load_npz

    splits = tmp_path / "splits"
    shutil.copytree(driving / "splits", splits)
    (splits / "eigen_benchmark" / "gt_depths.npz").unlink(missing_ok=True)
    cfg = load_config(scale="tiny", overrides=[f"data.roots={{kitti: {driving / 'kitti_raw'}}}",
                                               f"data.splits_dir={splits}"])
    gt = _gt_file(cfg, "eigen_benchmark", "auto")
    first = load_npz(gt)
    assert "exporting GT depths" in capsys.readouterr().out
    assert _gt_file(cfg, "eigen_benchmark", "auto") == gt and "exporting" not in capsys.readouterr().out
    # the same lines in reverse order: same numbers, other images -> exported again, in the new order
    sf = splits / "eigen_benchmark" / "test_files.txt"
    lines = sf.read_text().splitlines()
    sf.write_text("\n".join(reversed(lines)) + "\n")
    _gt_file(cfg, "eigen_benchmark", "auto")
    assert "exported from another version" in capsys.readouterr().out
    again = load_npz(gt)
    assert list(again["keys"]) == list(reversed(list(first["keys"])))
    # someone else's gt_depths.npz (no split record) is used as is, never overwritten
    _gt_npz(gt)
    before = gt.read_bytes()
    _gt_file(cfg, "eigen_benchmark", "auto")
    assert "was not exported by sa4depth" in capsys.readouterr().out and gt.read_bytes() == before


def test_two_processes_writing_the_same_file_never_fail(tmp_path):
    """Two `claim_<ID>` jobs write the same ledger at once: with per-process temporary names
    (``unique=True``) neither renames the other's temporary file away; the file is always whole."""
    target = tmp_path / "claims.json"
    code = ("import sys; from sa4depth.files import write_json_atomic, copy_atomic\n"
            "for i in range(300):\n"
            "    write_json_atomic(sys.argv[1], {'n': list(range(200))}, unique=True)\n"
            "    copy_atomic(sys.argv[1], sys.argv[1] + '.copy', unique=True)\n")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(target)], stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    errs = [p.communicate(timeout=300)[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), errs
    assert json.loads(target.read_text()) == {"n": list(range(200))}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["claims.json", "claims.json.copy"]
