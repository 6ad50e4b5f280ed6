"""The reproduction DAG: params/tables, experiments, Snakemake plan/lint/profiles, DVC stages."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sa4depth.config import load_config, load_row
from sa4depth import pipeline as P

REPO = Path(__file__).resolve().parents[1]
PARAMS = REPO / "params"
BIN = Path(sys.executable).parent
SNAKEMAKE = str(BIN / "snakemake")

needs_snakemake = pytest.mark.skipif(not Path(SNAKEMAKE).is_file(), reason="snakemake not installed")


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory) -> Path:
    """A directory that links the workflow's sources but none of the repository's outputs, so the
    plan does not depend on what has already run in the checkout (runs/, results/, .snakemake/)."""
    d = tmp_path_factory.mktemp("wf")
    for name in ("Snakefile", "workflow", "params", "slurm", "local"):
        (d / name).symlink_to(REPO / name)
    return d


def _snake(cwd: Path, *args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    return subprocess.run([SNAKEMAKE, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


def _jobs(out: str) -> dict[str, int]:
    """Job counts of a dry-run's 'Job stats' block."""
    counts = {}
    block = out.split("Job stats:")[-1]
    for m in re.finditer(r"^(\w+)\s+(\d+)$", block, re.M):
        counts[m.group(1)] = int(m.group(2))
    return counts


# ----------------------------------------------------------------------------- params
def test_every_table_loads_and_every_run_row_resolves():
    for t in P.TABLES:
        spec = P.load_table(t, PARAMS)
        assert spec.rows, t
        for row in spec.rows.values():
            if row.has_config:
                cfg = load_config(scale="tiny", row=f"{t}:{row.name}", params=PARAMS)
                if row.not_implemented:
                    assert cfg.model.depth_arch in ("monovit", "hybrid_depth"), (t, row.name)
            if P.row_status(row) == "run":
                assert row.experiment, (t, row.name)


def test_table_vi_rows_are_deltas_over_row_6():
    spec = P.load_table("table_vi", PARAMS)
    assert list(spec.rows) == [f"r{i:02d}_{n}" for i, n in enumerate(
        ["md2_50", "pixloc_lidar", "pred_depth", "posenet_init", "pose_selfsup", "sa4depth", "matcher_ransac",
         "matcher_pnp", "matcher_posenet", "detach_depth", "refined_pose_only_loss", "no_feature_map",
         "no_confidence", "fixed_damping", "mast3r_features", "pixloc_features"], start=1)]
    for row in spec.rows.values():
        _, chain = load_row(PARAMS / "tables" / "table_vi.yaml", row.name)
        assert chain[0] == "experiments:sa4depth_md2_50", (row.name, chain)   # every chain starts at row 6
        assert load_config(scale="tiny", row=f"table_vi:{row.name}", params=PARAMS).model.depth_layers == 50
    r6 = load_config(scale="tiny", row="table_vi:r06_sa4depth", params=PARAMS)
    assert r6.refine.enabled and r6.refine.init == "posenet" and r6.refine.irls and r6.loss.pose_self_sup > 0
    r1 = load_config(scale="tiny", row="table_vi:r01_md2_50", params=PARAMS)
    assert not r1.refine.enabled and r1.loss.pose_self_sup == 0
    assert load_config(scale="tiny", row="table_vi:r02_pixloc_lidar", params=PARAMS).refine.depth_source == "lidar"
    assert load_config(scale="tiny", row="table_vi:r08_matcher_pnp", params=PARAMS).matcher.solver == "pnp"
    assert spec.rows["r15_mast3r_features"].requires_weights == "mast3r"
    assert P.row_status(spec.rows["r16_pixloc_features"]) == "not run: weights not provided"
    assert P.row_status(spec.rows["r16_pixloc_features"], {"pixloc": "w.pth"}) == "run"
    assert spec.rows["r07_matcher_ransac"].show_config == ("matcher.method", "matcher.solver")


def test_paper_numbers_transcribed():
    vi = P.load_table("table_vi", PARAMS).rows
    assert vi["r06_sa4depth"].paper == {"abs_rel": 0.080, "a1": 0.928, "fps": 61}
    assert vi["r02_pixloc_lidar"].paper["abs_rel"] == 0.398 and vi["r09_matcher_posenet"].paper["a1"] == 0.596
    ii = P.load_table("table_ii", PARAMS).rows
    assert ii["md2_50"].paper["abs_rel"] == 0.085 and ii["hybrid_depth_ours"].paper["rmse"] == 3.103
    assert ii["md2_50_v_ours"].paper == {"abs_rel": 0.085, "sq_rel": 0.476, "rmse": 3.782, "rmse_log": 0.133,
                                         "a1": 0.914, "a2": 0.983, "a3": 0.995}
    assert ii["packnet"].cited and "[14]" in ii["packnet"].cite
    assert ii["monovit"].not_implemented and ii["monovit"].paper["abs_rel"] == 0.075
    vii = P.load_table("table_vii", PARAMS).rows
    assert [r.paper["abs_rel"] for r in vii.values()] == [0.090, 0.087, 0.099, 0.096, 0.114, 0.110]
    assert P.load_table("table_i", PARAMS).rows["r2_gt_scaled"].paper["pose_scale_var"] == "GT"
    assert P.load_table("table_iii", PARAMS).rows["monovit_v_ours"].paper["abs_rel"] == 0.118
    for t in ("table_iv", "table_v", "table_viii"):            # lost in the text extraction: not invented
        spec = P.load_table(t, PARAMS)
        assert spec.paper_values == "unavailable" and all(r.paper is None for r in spec.rows.values())


def test_shared_experiments_and_row_lookup_agree():
    a = load_config(scale="tiny", row="table_ii:md2_50", params=PARAMS).to_dict()
    b = load_config(scale="tiny", row="table_vi:r01_md2_50", params=PARAMS).to_dict()
    c = load_config(scale="tiny", row="experiments:md2_50", params=PARAMS).to_dict()
    for d in (a, b, c):
        d.pop("meta")
    assert a == b == c
    ii = {r.experiment for r in P.scheduled_rows(P.load_table("table_ii", PARAMS))}
    vi = {r.experiment for r in P.scheduled_rows(P.load_table("table_vi", PARAMS))}
    assert {"md2_50", "sa4depth_md2_50"} <= ii & vi


def test_config_hash_changes_only_for_the_edited_row(tmp_path):
    shutil.copytree(PARAMS, tmp_path / "params")
    before = {e: P.config_hash(P.experiment_config(e, "synthetic", "tiny", 0, None, PARAMS)[0])
              for e in ("abl10_detach_depth", "abl13_no_confidence", "sa4depth_md2_50")}
    ex = tmp_path / "params" / "experiments.yaml"
    data = yaml.safe_load(ex.read_text())
    data["rows"]["abl13_no_confidence"]["set"]["refine.iterations"] = 9
    ex.write_text(yaml.safe_dump(data))
    after = {e: P.config_hash(P.experiment_config(e, "synthetic", "tiny", 0, None, tmp_path / "params")[0])
             for e in before}
    assert after["abl13_no_confidence"] != before["abl13_no_confidence"]
    assert after["abl10_detach_depth"] == before["abl10_detach_depth"]
    assert after["sa4depth_md2_50"] == before["sa4depth_md2_50"]


def test_a_key_of_a_component_that_is_off_leaves_the_hash_alone():
    """`matcher.orb_patch` came after runs were recorded: it enters the hash only where the matcher is on,
    so a config recorded before it existed hashes as it did, and a matcher run's hash follows it."""
    cfg = P.experiment_config("md2_18", "synthetic", "tiny", 0, None, PARAMS)[0]
    older = {**cfg, "matcher": {k: v for k, v in cfg["matcher"].items() if k != "orb_patch"}}
    assert "orb_patch" in cfg["matcher"] and P.config_hash(cfg) == P.config_hash(older)
    assert P.config_hash(cfg) != P.config_hash({**cfg, "model": {**cfg["model"], "depth_layers": 50}})
    m = P.experiment_config("abl08_matcher_pnp", "synthetic", "tiny", 0, None, PARAMS)[0]
    m_older = {**m, "matcher": {k: v for k, v in m["matcher"].items() if k != "orb_patch"}}
    m_fixed = {**m, "matcher": {**m["matcher"], "orb_patch": 31}}
    assert len({P.config_hash(m), P.config_hash(m_older), P.config_hash(m_fixed)}) == 3
    # the trainer's resume check reads the same way: a checkpoint from before the key resumes unless
    # the matcher is on
    from sa4depth.train.trainer import _comparable, config_diff

    assert config_diff(_comparable(older), _comparable(cfg)) == []
    assert config_diff(_comparable(m_older), _comparable(m)) == ["matcher.orb_patch"]
    # `loss.pose_self_detach` came after runs were recorded too: at true (what every run before it did)
    # it leaves the hash alone; the one experiment that sets it false hashes apart
    s = P.experiment_config("sa4depth_md2_18", "synthetic", "tiny", 0, None, PARAMS)[0]
    s_older = {**s, "loss": {k: v for k, v in s["loss"].items() if k != "pose_self_detach"}}
    assert s["loss"]["pose_self_detach"] is True and P.config_hash(s) == P.config_hash(s_older)
    u = P.experiment_config("md2_18_abl11_target_grad", "synthetic", "tiny", 0, None, PARAMS)[0]
    r11 = P.experiment_config("md2_18_abl11_refined_pose_only_for_loss", "synthetic", "tiny", 0, None, PARAMS)[0]
    assert u["loss"]["pose_self_detach"] is False and u == {**r11, "loss": {**r11["loss"], "pose_self_detach": False}}
    assert P.config_hash(u) != P.config_hash(r11)
    assert config_diff(_comparable(s_older), _comparable(s)) == []
    assert config_diff(_comparable(r11), _comparable(u)) == ["loss.pose_self_detach"]


def test_weights_become_overrides(tmp_path):
    w = tmp_path / "m.pth"
    w.write_bytes(b"x")
    cfg, extra = P.experiment_config("abl15_mast3r_features", "synthetic", "tiny", 0, {"mast3r": str(w)}, PARAMS)
    assert extra == [f"refine.feature_weights={w}"] and cfg["refine"]["feature_weights"] == str(w)
    cfg, extra = P.experiment_config("abl07_matcher_essential", "synthetic", "tiny", 0, {"superglue": str(w)}, PARAMS)
    assert cfg["matcher"]["method"] == "superglue"
    assert P.experiment_config("md2_50", "synthetic", "tiny", 0, {"mast3r": str(w)}, PARAMS)[1] == []


DVC = str(BIN / "dvc")
needs_dvc = pytest.mark.skipif(not Path(DVC).is_file(), reason="dvc not installed")


def test_dvc_yaml_declares_every_table_and_the_claims_ledger_and_no_stages():
    """Snakemake is the only DAG: dvc.yaml declares metrics for `dvc metrics show/diff`, no stages."""
    dvc = yaml.safe_load((REPO / "dvc.yaml").read_text())
    assert "stages" not in dvc
    assert dvc["metrics"] == [f"results/tables/{t}.json" for t in P.TABLES] + ["results/claims/claims.json",
                                                                                        "results/claims/synthetic-study/claims.json",
                                                                                        "results/claims/headline/claims.json"]


@needs_dvc
def test_make_track_puts_data_runs_and_metrics_under_dvc_and_their_dvc_files_under_git(tmp_path):
    """`make track` in a git repository with the project's .gitignore, dvc.yaml and .dvc/config:
    the tracked directories stay out of git, their .dvc files are committable, and a `dvc pull`
    after deleting them brings back the same bytes; `dvc metrics show` reads the tables."""
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", HOME=str(tmp_path / "home"))

    def sh(*cmd, cwd=tmp_path / "repo"):
        r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120, env=env)
        assert r.returncode == 0, f"{cmd}: {r.stdout[-2000:]} {r.stderr[-2000:]}"
        return r.stdout

    repo = tmp_path / "repo"
    (repo / ".dvc").mkdir(parents=True)
    for name in (".gitignore", "dvc.yaml", "Makefile", ".dvc/config", ".dvcignore"):
        shutil.copy(REPO / name, repo / name)
    sh("git", "init", "-q")
    sh(DVC, "init", "-q", "--force")
    sh(DVC, "remote", "add", "-f", "-d", "localstore", str(tmp_path / "store"))
    files = {"data/synthetic/tiny/driving/x.png": b"img", "data/synthetic/tiny/driving.paths.yaml": b"a: 1\n",
             "runs/synthetic/tiny/md2_18/seed0/model.pt": b"weights",
             "results/metrics/synthetic/tiny/md2_18/seed0/depth_eigen.json": b"{}",
             "results/tables/table_i.json": b'{"rows": {"r1": {"abs_rel": {"mean": 0.125}}}}'}
    for rel, data in files.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_bytes(data)
    sh("make", "track", "DATA=synthetic", "SCALE=tiny", f"VENV={BIN.parent}")
    status = sh("git", "status", "--porcelain", "--untracked-files=all")
    dvc_files = {"data/synthetic/tiny.dvc", "runs/synthetic/tiny.dvc", "results/metrics/synthetic/tiny.dvc"}
    assert dvc_files <= {ln[3:] for ln in status.splitlines()}
    assert not any(rel in status for rel in files if not rel.startswith("results/tables"))
    sh(DVC, "push", "-q")
    shutil.rmtree(repo / "runs/synthetic/tiny")
    sh(DVC, "pull", "-q")
    assert (repo / "runs/synthetic/tiny/md2_18/seed0/model.pt").read_bytes() == b"weights"
    assert "0.125" in sh(DVC, "metrics", "show", "results/tables/table_i.json")


# ----------------------------------------------------------------------------- snakemake
@needs_snakemake
def test_dry_run_table_vi_plans_14_runs_and_shares_runs_between_tables(sandbox):
    r = _snake(sandbox, "-n", "table_vi", "audit_table_vi", "--config", "scale=tiny")
    assert r.returncode == 0, r.stderr[-3000:]
    jobs = _jobs(r.stdout)
    assert jobs["train"] == 14 and jobs["evaluate"] == 14 and jobs["bench_infer"] == 14  # 16 rows - 2 without weights
    assert jobs["synth"] == 1 and jobs["audit"] == 1
    r = _snake(sandbox, "-n", "table_ii", "table_vi", "table_vii", "--config", "scale=tiny", "seeds=2")
    assert r.returncode == 0, r.stderr[-3000:]
    exps = set()
    for t in ("table_ii", "table_vi", "table_vii"):
        exps |= {row.experiment for row in P.scheduled_rows(P.load_table(t, PARAMS))}
    assert _jobs(r.stdout)["train"] == 2 * len(exps)    # each shared experiment trains once per seed
    assert "runs/synthetic/tiny/md2_50/seed1/done.json" in r.stdout


@needs_snakemake
def test_dry_run_claims_trains_each_claims_seeds_once_and_keys_its_output(sandbox):
    from sa4depth.report.claims import load_claims

    claims = load_claims(PARAMS / "claims.yaml")["claims"]
    need = {}
    for c in claims:
        for m in c.comparisons:
            for e in (m.a, m.b):
                need[e] = max(need.get(e, 0), c.seeds)
    r = _snake(sandbox, "-n", "claims", "--config", "claims_scale=tiny")
    assert r.returncode == 0, r.stderr[-3000:]
    jobs = _jobs(r.stdout)
    assert jobs["train"] == sum(need.values())  # runs shared by claims train once per seed
    assert jobs["claims_ledger"] == 1 and jobs["fig_monitor"] == 1 and jobs["claims_refinement"] == 1
    assert "results/claims/synthetic-tiny/claims.json" in r.stdout  # never the committed ledger
    # the headline SA4Depth runs' refinement sweep, every seed of the headline claim, copied beside the ledger
    headline = next(c for c in claims if c.id == "C2")
    for s in range(headline.seeds):
        assert f"results/metrics/synthetic/tiny/sa4depth_md2_18/seed{s}/refinement.json" in r.stdout
        assert f"results/claims/synthetic-tiny/refinement/sa4depth_md2_18_seed{s}.json" in r.stdout
    assert "runs/synthetic/tiny/md2_18/seed4/done.json" in r.stdout
    r = _snake(sandbox, "-n", "claim_C2", "--config", "claims_scale=tiny")
    assert r.returncode == 0, r.stderr[-3000:]
    assert _jobs(r.stdout)["train"] == 10


@needs_snakemake
def test_committed_ledger_copies_stand_in_for_runs_only_where_their_config_is_current(tmp_path):
    """A fresh clone's `snakemake claim_C2` trains only what the committed ledger lacks: a copy whose
    recorded training config is what the params give now replaces its run; a stale one does not."""
    import json

    d = tmp_path / "wf"
    d.mkdir()
    for name in ("Snakefile", "workflow", "params", "slurm", "local"):
        (d / name).symlink_to(REPO / name)
    copies = d / "results" / "claims" / "synthetic-tiny" / "runs" / "synthetic" / "tiny"
    for seed, change in ((0, None), (1, 123)):
        cfg = P.experiment_config("md2_18", "synthetic", "tiny", seed)[0]
        if change is not None:
            cfg["train"]["max_steps"] = change  # trained with another budget than the params give now
        f = copies / "md2_18" / f"seed{seed}" / "depth_eigen_benchmark.json"
        f.parent.mkdir(parents=True)
        f.write_text(json.dumps({"metrics": {"abs_rel": 0.2}, "provenance": {"config": cfg}}))
    r = _snake(d, "-n", "-p", "claim_C2", "--config", "claims_scale=tiny")
    assert r.returncode == 0, r.stderr[-3000:]
    assert _jobs(r.stdout)["train"] == 9    # 10 runs, seed 0 of md2_18 from its copy
    assert "runs/synthetic/tiny/md2_18/seed0/done.json" not in r.stdout
    assert "runs/synthetic/tiny/md2_18/seed1/done.json" in r.stdout
    assert "--runs runs results/claims/synthetic-tiny/runs" in r.stdout
    r = _snake(d, "-n", "claim_C2", "--config", "claims_scale=tiny", "ledger_copies=false")
    assert r.returncode == 0, r.stderr[-3000:]
    assert _jobs(r.stdout)["train"] == 10


@needs_snakemake
def test_dry_run_reproduce_is_the_paper_plus_the_headline_claim_at_its_seeds(sandbox):
    """`make reproduce` = the paper DAG at `scale` and the headline claim's runs at `headline_scale`
    with config headline_seeds seeds, its ledger keyed beside (never over) the full ledger."""
    r = _snake(sandbox, "-n", "paper", "--config", "scale=tiny")
    assert r.returncode == 0, r.stderr[-3000:]
    paper_trains = _jobs(r.stdout)["train"]
    r = _snake(sandbox, "-n", "-p", "reproduce", "--config", "scale=tiny", "claims_scale=tiny", "headline_scale=tiny", "headline_seeds=4")
    assert r.returncode == 0, r.stderr[-3000:]
    jobs = _jobs(r.stdout)
    assert jobs["headline_ledger"] == 1 and "claims_ledger" not in jobs
    # C2's two experiments at 4 seeds; at scale=tiny seed 0 of md2_18 and sa4depth_md2_18 is the paper's run
    assert jobs["train"] == paper_trains + 2 * 3
    assert "results/claims/synthetic-tiny/headline/claims.json" in r.stdout
    assert "--only C2 --seeds 4" in r.stdout
    assert "runs/synthetic/tiny/sa4depth_md2_18/seed3/done.json" in r.stdout
    assert "seed4/done.json" not in r.stdout
    # by default the headline trains at the 600-step study scale and the full ledger at the long scale
    r = _snake(sandbox, "-n", "-p", "reproduce", "--config", "scale=tiny")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "runs/synthetic/study/sa4depth_md2_18/seed2/done.json" in r.stdout and "synthetic/long/" not in r.stdout
    assert " results/claims/headline/claims.json" in r.stdout
    r = _snake(sandbox, "-n", "claims")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "runs/synthetic/long/md2_18/seed4/done.json" in r.stdout and "synthetic/study/" not in r.stdout
    for bad in ("headline_claim=C9", "headline_seeds=2"):
        r = _snake(sandbox, "-n", "reproduce", "--config", "scale=tiny", "claims_scale=tiny", "headline_scale=tiny", bad)
        out = r.stdout + r.stderr
        assert r.returncode != 0 and ("C9" in out or "seeds" in out), out[-2000:]


def _make_args(target: str = "reproduce") -> list[str]:
    """The Snakemake arguments after the target in the command `make TARGET` runs (make -n)."""
    import shlex

    r = subprocess.run(["make", "-n", target, "VENV=.venv-never-made-by-this-test"], cwd=REPO,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    cmd = r.stdout.replace("\\\n", " ")
    line = next(ln for ln in cmd.splitlines() if "snakemake" in ln)
    tokens = shlex.split(line)
    return tokens[tokens.index(target) + 1:]


@needs_snakemake
@pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")
def test_make_reproduce_starts_the_headline_runs_first(sandbox):
    """`make reproduce` gives the headline claim's (long) study trainings the highest priority, so
    the short smoke jobs fill the cores around them instead of one study run finishing alone."""
    args = _make_args("reproduce")
    assert "--prioritize" in args, args
    r = _snake(sandbox, "-n", "reproduce", *args, "--config", "scale=tiny", "claims_scale=tiny", "headline_scale=tiny", "headline_seeds=3")
    assert r.returncode == 0, r.stderr[-3000:]
    jobs = _priorities(r.stdout)
    assert jobs["runs/synthetic/tiny/sa4depth_md2_18/seed2/done.json"] is True
    assert jobs["runs/synthetic/tiny/md2_18/seed1/done.json"] is True
    assert jobs["runs/synthetic/tiny/md2_50/seed0/done.json"] is False  # a paper-only run


def _priorities(stdout: str) -> dict[str, bool]:
    """{first output of each planned job: whether Snakemake gave it the highest priority}."""
    jobs = {}
    for block in re.split(r"^\[[^\]\n]*\d{4}\]$", stdout, flags=re.M):  # one block per job, after its timestamp
        m = re.search(r"output: (\S+)", block)
        if m:
            jobs[m.group(1).rstrip(",")] = "priority: highest" in block
    return jobs


@needs_snakemake
@pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")
def test_make_claims_starts_the_headline_claims_runs_first(sandbox):
    """`make claims` trains C2's runs (all its seeds) first: the headline answer comes hours before
    the whole ledger; the prioritised target is input-only (no job writes the ledger early)."""
    args = _make_args("claims")
    assert "--prioritize" in args, args
    r = _snake(sandbox, "-n", "claims", *args, "--config", "claims_scale=tiny")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "claim_C2" not in _jobs(r.stdout) and _jobs(r.stdout)["claims_ledger"] == 1
    jobs = _priorities(r.stdout)
    assert jobs["runs/synthetic/tiny/sa4depth_md2_18/seed4/done.json"] is True
    assert jobs["runs/synthetic/tiny/md2_18/seed4/done.json"] is True
    assert jobs["runs/synthetic/tiny/t1_self_supervised/seed0/done.json"] is False  # C1 only


@needs_snakemake
def test_table_target_runs_its_rows_when_the_committed_table_is_present(tmp_path):
    """Tables are committed to git; in a fresh clone (no runs, no metrics) `snakemake table_i` must
    still plan the rows' trainings instead of "Nothing to be done" on the present table."""
    for name in ("Snakefile", "workflow", "params"):
        (tmp_path / name).symlink_to(REPO / name)
    tables = tmp_path / "results" / "tables"
    tables.mkdir(parents=True)
    for ext in ("csv", "md", "tex", "json"):
        (tables / f"table_i.{ext}").write_text("committed\n")
    r = _snake(tmp_path, "-n", "table_i", "--config", "scale=tiny")
    assert r.returncode == 0, r.stderr[-3000:]
    jobs = _jobs(r.stdout)
    assert jobs.get("train") == 5 and jobs.get("table") == 1


@needs_snakemake
def test_claims_targets_run_their_runs_when_the_committed_ledgers_are_present(tmp_path):
    """The ledgers are committed; in a fresh clone `reproduce` and `claims` must still plan the runs
    instead of "Nothing to be done" on the present ledger files."""
    for name in ("Snakefile", "workflow", "params"):
        (tmp_path / name).symlink_to(REPO / name)
    for sub in ("synthetic-tiny", "synthetic-tiny/headline"):
        d = tmp_path / "results" / "claims" / sub
        d.mkdir(parents=True)
        for f in ("claims.json", "claims.md", "fig_monitor.png", "curves.json"):
            (d / f).write_text("committed\n")
    r = _snake(tmp_path, "-n", "reproduce", "--config", "scale=tiny", "claims_scale=tiny", "headline_scale=tiny")
    assert r.returncode == 0, r.stderr[-3000:]
    jobs = _jobs(r.stdout)
    assert jobs.get("headline_ledger") == 1 and "runs/synthetic/tiny/sa4depth_md2_18/seed2/done.json" in r.stdout
    r = _snake(tmp_path, "-n", "claims", "--config", "claims_scale=tiny")
    assert r.returncode == 0, r.stderr[-3000:]
    jobs = _jobs(r.stdout)
    assert jobs.get("claims_ledger") == 1 and jobs.get("fig_monitor") == 1 and jobs.get("train", 0) > 0


@needs_snakemake
def test_lint_clean_and_schema_rejects_bad_config(sandbox):
    r = _snake(sandbox, "--lint")
    assert r.returncode == 0 and "Congratulations" in (r.stdout + r.stderr), (r.stdout + r.stderr)[-3000:]
    r = _snake(sandbox, "-n", "table_i", "--config", "scale=huge")
    assert r.returncode != 0 and "huge" in (r.stdout + r.stderr)
    r = _snake(sandbox, "-n", "table_i", "--config", "scael=tiny")   # one line, not the schema's dump
    out = r.stdout + r.stderr
    assert r.returncode != 0 and "config key 'scael' is unknown (did you mean 'scale'?)" in out, out
    assert "Error validating" not in out


def test_workflow_config_typos_nested_numbers_and_missing_weights(tmp_path):
    """What --config makes of a user's typing: nested numbers arrive as text and are typed for the
    schema (which then judges their bounds); a misspelt key or a weights path to nothing is one line."""
    import copy

    import yaml

    from sa4depth.pipeline import prepare_workflow_config

    schema = REPO / "workflow" / "schemas" / "config.schema.yaml"
    base = yaml.safe_load((REPO / "workflow" / "config.yaml").read_text())
    cfg = copy.deepcopy(base)
    cfg["threads"] = {"train": "2", "evaluate": "-1"}
    cfg["resources"]["train"]["mem_mb"] = "16000"
    cfg["resources"]["train"]["slurm_partition"] = "123"   # a string in the schema: stays one
    prepare_workflow_config(cfg, schema)
    assert cfg["threads"] == {"train": 2, "evaluate": -1}
    assert cfg["resources"]["train"]["mem_mb"] == 16000 and cfg["resources"]["train"]["slurm_partition"] == "123"
    cfg["threads"]["train"] = "two"                          # not a number: left for the schema to name
    prepare_workflow_config(cfg, schema)
    assert cfg["threads"]["train"] == "two"
    cfg["weights"] = {"mast3r": "null", "pixloc": "None"}    # --config "weights={mast3r: null}"
    prepare_workflow_config(cfg, schema)
    assert cfg["weights"] == {"mast3r": None, "pixloc": None}
    cfg["weights"] = "none"                                   # not a mapping: left for the schema to name
    prepare_workflow_config(cfg, schema)
    with pytest.raises(ValueError, match=r"config key 'resources.trian' is unknown \(did you mean 'train'\?\); "
                                         r"known keys at resources: evaluate, synth, train"):
        prepare_workflow_config(dict(base, resources={**base["resources"], "trian": {}}), schema)

    for key, where, msg in ((("scael",), "tiny", r"config key 'scael' is unknown \(did you mean 'scale'\?\); known keys: .*seeds"),
                            (("committed", "foo"), 1, r"config key 'committed.foo' is unknown; known keys at committed: data, scale, seeds")):
        cfg = copy.deepcopy(base)
        node = cfg
        for k in key[:-1]:
            node = node[k]
        node[key[-1]] = where
        with pytest.raises(ValueError, match=msg):
            prepare_workflow_config(cfg, schema)

    cfg = copy.deepcopy(base)
    real = tmp_path / "m.pth"
    real.write_bytes(b"x")
    cfg["weights"] = {"mast3r": str(real), "pixloc": None}
    prepare_workflow_config(cfg, schema)
    cfg["weights"]["superglue"] = str(tmp_path / "nope.pth")
    with pytest.raises(ValueError, match=rf"weights.superglue={tmp_path / 'nope.pth'}: no such file"):
        prepare_workflow_config(cfg, schema)
    prepare_workflow_config(cfg, schema, check_files=False)   # a cluster job's re-read of the Snakefile


@needs_snakemake
def test_slurm_profile_by_name_places_resources(sandbox):
    r = _snake(sandbox, "--profile", "slurm", "-n", "table_vii", "--config", "scale=tiny")
    assert r.returncode == 0, r.stderr[-3000:]
    train = r.stdout.split("rule train:")[1].split("\n\n")[0]
    assert "mem_mb=24000" in train and "runtime=1440" in train and "cpus_per_task=8" in train
    assert "gpu=0" in train                          # cluster_gpus false: no GPU request
    r = _snake(sandbox, "--profile", "slurm", "-n", "table_vii", "--config", "scale=tiny", "cluster_gpus=true")
    assert "gpu=1" in r.stdout.split("rule train:")[1].split("\n\n")[0]


def test_cli_audit_and_table_without_runs(tmp_path, capsys):
    from sa4depth.cli import main

    out, js = tmp_path / "a.md", tmp_path / "a.json"
    assert main(["audit", "table_vi", "--scale", "tiny", "--runs", str(tmp_path / "runs"), "--metrics",
                 str(tmp_path / "m"), "--out", str(out), "--json", str(js), "--strict"]) == 0
    assert "r16_pixloc_features" in out.read_text() and "not run yet" in out.read_text()
    assert main(["table", "table_vi", "--scale", "tiny", "--metrics", str(tmp_path / "m"),
                 "--out-dir", str(tmp_path / "t"), "--quiet"]) == 2   # as `claims` with files missing
    err = capsys.readouterr().err
    assert "depth_eigen_benchmark.json" in err and f"--metrics {tmp_path / 'm'}: no such folder" in err
    assert main(["table", "table_vi", "--scale", "tiny", "--metrics", str(tmp_path / "m"),
                 "--out-dir", str(tmp_path / "t"), "--quiet", "--allow-missing"]) == 0
    assert (tmp_path / "t" / "table_vi.tex").is_file()
    assert main(["audit", "table_vi", "--weights", "mast3r=/nonexistent.pth", "--out", str(out)]) == 2


@needs_snakemake
def test_real_data_is_checked_when_the_dag_is_built(sandbox):
    """`--config data=real` without the data stops in the terminal before any job runs, naming the
    file to edit and the command that gets the data (not after a first job, in a job log)."""
    r = _snake(sandbox, "-n", "table_vi", "--config", "data=real")
    assert r.returncode != 0
    out = r.stdout + r.stderr
    assert "real data: kitti is incomplete at data/real/kitti_raw" in out
    assert "params/data/real.yaml" in out and "sa4depth prepare kitti" in out
    assert "MISSING" in out  # the layout check's list of what is missing


@needs_snakemake
def test_a_quick_run_never_targets_the_committed_tables(sandbox):
    """Only the committed setting (workflow/config.yaml `committed`) writes results/{tables,audit,figures}/."""
    quick = _snake(sandbox, "-n", "table_vi", "figures", "--config", "scale=tiny")
    assert quick.returncode == 0, quick.stderr[-2000:]
    out = quick.stdout + quick.stderr
    assert "results/synthetic-tiny-seeds1/tables/table_vi.csv" in out
    assert "results/synthetic-tiny-seeds1/audit/table_vi.md" in out
    assert "results/synthetic-tiny-seeds1/figures/fig6_trajectories.png" in out
    assert not re.search(r"results/(tables|audit|figures)/", out)
    default = _snake(sandbox, "-n", "table_vi")
    assert default.returncode == 0 and "results/tables/table_vi.csv" in default.stdout + default.stderr


def test_cli_table_and_audit_default_to_the_same_keyed_folders_as_the_dag(tmp_path, monkeypatch):
    """`sa4depth table/audit` without --out-dir/--out: a non-committed setting writes to
    results/<data>-<scale>-seeds<N>/, never over the committed results/tables or results/audit."""
    from sa4depth.cli import main

    monkeypatch.chdir(tmp_path)
    common = ["--runs", str(tmp_path / "runs"), "--metrics", str(tmp_path / "m")]
    assert main(["table", "table_vi", "--scale", "tiny", "--quiet", "--allow-missing", *common]) == 0
    assert main(["audit", "table_vi", "--scale", "tiny", "--seeds", "2", *common]) == 0
    made = sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / "results").rglob("*") if p.is_file())
    assert made == sorted(["results/synthetic-tiny-seeds1/tables/table_vi." + e for e in ("csv", "json", "md", "tex")]
                          + ["results/synthetic-tiny-seeds2/audit/table_vi.json",
                             "results/synthetic-tiny-seeds2/audit/table_vi.md"])
    assert not (tmp_path / "results" / "tables").exists() and not (tmp_path / "results" / "audit").exists()
    assert P.output_root("synthetic", "smoke", 1) == Path("results")          # workflow/config.yaml `committed`
    assert P.output_root("real", "full", 3) == Path("results/real-full-seeds3")
