"""Shared fixtures."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent / "sa4depth"


@pytest.fixture(scope="session")
def driving(tmp_path_factory) -> Path:
    """The tiny driving profile (one odometry sequence per split to keep it quick), or the directory
    named by $SA4DEPTH_TEST_DRIVING when a session already rendered it."""
    pre = os.environ.get("SA4DEPTH_TEST_DRIVING")
    if pre and (Path(pre) / "kitti_raw").is_dir():
        return Path(pre)
    out = tmp_path_factory.mktemp("synth") / "driving"
    cmd = [str(BIN), "synth", "--profile", "driving", "--scale", "tiny", "--out", str(out), "--quiet",
           'data.odom_train_sequences=["00"]', 'data.odom_test_sequences=["09"]', "synth.odom_frames=3"]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return out
