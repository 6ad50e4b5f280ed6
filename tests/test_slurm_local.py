"""The local one-node Slurm cluster (workflow/ci/slurm-local.sh) and the `slurm` profile on it.

Three groups:
- always: the scripts parse, the CI config validates against the workflow schema, the profile keeps
  the settings a cluster without accounting needs;
- cluster: only when the local cluster runs (`sudo workflow/ci/slurm-local.sh start`), else SKIPPED:
  the node is idle, listens on 127.0.0.1 only, runs an `sbatch` job, fits the CI resources, and a
  second `start` changes nothing;
- workflow: additionally SA4DEPTH_SLURM_TESTS=1 (set by workflow/ci/slurm-ci.sh; ~30 s): a 2-rule
  Snakefile through a copy of the project's slurm profile, each rule a COMPLETED Slurm job.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CI = REPO / "workflow" / "ci"
SCRIPT = CI / "slurm-local.sh"
PROFILE = REPO / "workflow" / "profiles" / "slurm"


def _cluster_running() -> str | None:
    """None if the local cluster is up, else the reason to skip."""
    if shutil.which("sbatch") is None or shutil.which("scontrol") is None:
        return "Slurm is not installed (start the local cluster: sudo workflow/ci/slurm-local.sh start)"
    r = subprocess.run(["bash", str(SCRIPT), "status"], capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        return "the local Slurm cluster is not running (sudo workflow/ci/slurm-local.sh start)"
    return None


_SKIP = _cluster_running()
needs_cluster = pytest.mark.skipif(_SKIP is not None, reason=_SKIP or "")
needs_workflow = pytest.mark.skipif(
    _SKIP is not None or os.environ.get("SA4DEPTH_SLURM_TESTS") != "1",
    reason=_SKIP or "set SA4DEPTH_SLURM_TESTS=1 to run Snakemake through the local cluster (~30 s)")


def _merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


# ----------------------------------------------------------------------------- always
@pytest.mark.parametrize("name", ["slurm-local.sh", "slurm-ci.sh"])
def test_scripts_parse(name):
    r = subprocess.run(["bash", "-n", str(CI / name)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_usage_error_names_the_verbs():
    r = subprocess.run(["bash", str(SCRIPT), "restart"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert "start|stop|status" in r.stderr


def test_ci_config_validates_against_the_workflow_schema():
    validate = pytest.importorskip("snakemake.utils", reason="snakemake not installed (extra 'workflow')").validate

    base = yaml.safe_load((REPO / "workflow" / "config.yaml").read_text())
    ci = yaml.safe_load((CI / "slurm-local.yaml").read_text())
    merged = _merge(base, ci)
    validate(merged, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
    assert str(merged["cluster_gpus"]).lower() == "false"
    assert all(r["slurm_partition"] == "debug" for r in merged["resources"].values())
    bad = _merge(merged, {"resources": {"train": {"cpus_per_task": 0}}})
    with pytest.raises(Exception, match="cpus_per_task|minimum"):
        validate(bad, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))


def test_profile_works_without_accounting():
    """Without slurmdbd `sacct` fails and jobs drop out of tracking: the profile must poll with
    squeue, bound the queue (`jobs`) and not back off for minutes between status checks."""
    prof = yaml.safe_load((PROFILE / "config.yaml").read_text())
    assert prof["executor"] == "slurm"
    assert prof["slurm-status-command"] == "squeue"
    assert int(prof["jobs"]) >= 1
    assert int(prof["seconds-between-status-checks"]) <= 60
    conf = SCRIPT.read_text()
    assert re.search(r"^MinJobAge=(\d+)", conf, re.M) and int(re.search(r"^MinJobAge=(\d+)", conf, re.M)[1]) >= 180


# ----------------------------------------------------------------------------- cluster
def _node() -> dict[str, str]:
    out = subprocess.run(["scontrol", "-o", "show", "node"], capture_output=True, text=True, check=True).stdout
    return dict(kv.split("=", 1) for kv in out.split() if "=" in kv)


@needs_cluster
def test_node_idle_and_listening_on_localhost_only():
    node = _node()
    assert node["State"].split("+")[0] in ("IDLE", "MIXED", "ALLOCATED"), node["State"]
    if shutil.which("ss") is None:
        pytest.skip("ss (iproute2) not installed: cannot list listeners")
    out = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True, check=True).stdout
    listeners = [line for line in out.splitlines() if re.search(r'"(slurmctld|slurmd|slurmstepd|srun)"', line)]
    assert sum('"slurmctld"' in line or '"slurmd"' in line for line in listeners) >= 2, out
    for line in listeners:
        local = line.split()[3]
        assert local.startswith("127.0.0.1:"), f"Slurm listens on {local}, not 127.0.0.1 only: {line}"


@needs_cluster
def test_ci_resources_fit_the_node():
    node = _node()
    ci = yaml.safe_load((CI / "slurm-local.yaml").read_text())
    for kind, r in ci["resources"].items():
        assert r["cpus_per_task"] <= int(node["CPUTot"]), kind
        assert r["mem_mb"] <= int(node["RealMemory"]), kind


@needs_cluster
def test_sbatch_job_runs(tmp_path):
    out = tmp_path / "job.out"
    r = subprocess.run(["sbatch", "--parsable", "--wait", "-t", "2", "--mem=100", "-o", str(out),
                        "--wrap", "echo job=$SLURM_JOB_ID"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    jid = r.stdout.strip().split(";")[0]
    assert out.read_text().strip() == f"job={jid}"


@needs_cluster
@pytest.mark.skipif(os.geteuid() != 0, reason="slurm-local.sh start needs root")
def test_start_is_idempotent():
    state = Path(os.environ.get("SLURM_LOCAL_DIR", "/var/tmp/sa4depth-slurm"))
    pids = {n: (state / f"{n}.pid").read_text() for n in ("munged", "slurmctld", "slurmd")}
    t = time.time()
    r = subprocess.run(["bash", str(SCRIPT), "start"], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, SLURM_LOCAL_NO_INSTALL="1"))
    assert r.returncode == 0, r.stderr
    assert "already running" in r.stderr
    assert time.time() - t < 30
    assert {n: (state / f"{n}.pid").read_text() for n in pids} == pids


# ----------------------------------------------------------------------------- workflow
@needs_workflow
def test_toy_workflow_through_the_slurm_profile(tmp_path):
    shutil.copytree(PROFILE, tmp_path / "profile")
    (tmp_path / "Snakefile").write_text(textwrap.dedent("""\
        rule all:
            input: "b.txt"
        rule a:
            output: "a.txt"
            resources: mem_mb=200, runtime=5, slurm_partition="debug"
            shell: "echo $SLURM_JOB_ID > {output}"
        rule b:
            input: "a.txt"
            output: "b.txt"
            resources: mem_mb=200, runtime=5, slurm_partition="debug"
            shell: "cat {input} > {output}; echo $SLURM_JOB_ID >> {output}"
        """))
    snakemake = Path(sys.executable).parent / "snakemake"
    r = subprocess.run([str(snakemake), "--profile", "profile", "--slurm-init-seconds-before-status-checks", "1",
                        "--seconds-between-status-checks", "2"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=240)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    ids = (tmp_path / "b.txt").read_text().split()
    assert len(ids) == 2 and ids[0] != ids[1] and all(i.isdigit() for i in ids), ids
    submitted = re.findall(r"submitted with SLURM jobid (\d+)", r.stdout + r.stderr)
    assert sorted(submitted) == sorted(ids)
    for jid in ids:
        info = subprocess.run(["scontrol", "-o", "show", "job", jid], capture_output=True, text=True).stdout
        assert "JobState=COMPLETED" in info, info
