# Shared helpers: everything path- or row-related comes from sa4depth.pipeline (pure Python), so
# the tables read exactly the files these rules produce.
import functools
import re
import os
from pathlib import Path
import sys

from snakemake.exceptions import WorkflowError

from sa4depth.report import claims as CL
from sa4depth import pipeline as P

DATA = config["data"]
SCALE = config["scale"]
SEEDS = list(range(int(config["seeds"])))
CLUSTER_GPUS = str(config["cluster_gpus"]).lower() == "true"
WEIGHTS = {k: v for k, v in (config.get("weights") or {}).items() if v}
# Rules call the `sa4depth` CLI of the environment running Snakemake (e.g. .venv/bin/snakemake
# without an activated venv): put this interpreter's bin directory first on PATH. Jobs inherit it.
os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
# tables, audit and figures of the committed setting go to results/; any other setting to its own
# folder, so that a quick run never replaces them (workflow/config.yaml, `committed`)
_C = config["committed"]
OUT = str(P.output_root(DATA, SCALE, len(SEEDS), (_C["data"], _C["scale"], _C["seeds"])))
SPECS = {t: P.load_table(f"params/tables/{t}.yaml") for t in P.TABLES}
FIGURES = ["fig1_scale_factors", "fig3_qualitative_kitti", "fig6_trajectories", "fig10_features"]


wildcard_constraints:
    data="synthetic|real",
    scale="tiny|smoke|study|long|small|full",
    exp="[A-Za-z0-9_]+",
    seed="[0-9]+",
    profile="driving|dynamic|indoor",
    split="eigen|eigen_benchmark|cityscapes|nyu",
    eval="depth_(eigen|eigen_benchmark|cityscapes|nyu)(_sa)?|scale|odometry|video|refinement",
    table="table_[ivx]+",


def res(kind, key):
    """A resource of a job kind from config['resources']; GPUs only if config['cluster_gpus']."""
    value = config["resources"][kind][key]
    if key == "gpu" and not CLUSTER_GPUS:
        return 0
    return value


@functools.lru_cache(maxsize=None)
def exp_config(exp, data, scale, seed):
    """(resolved config dict, extra overrides) of an experiment as it trains."""
    return P.experiment_config(exp, data, scale, int(seed), WEIGHTS)


def exp_hash(wc):
    """Hash of the resolved config: a `params` rerun trigger (changing one row reruns that row only)."""
    return P.config_hash(exp_config(wc.exp, wc.data, wc.scale, wc.seed)[0])


def exp_profile(wc):
    return P.DATASET_PROFILE[exp_config(wc.exp, wc.data, wc.scale, wc.seed)[0]["data"]["dataset"]]


def data_inputs(wc):
    """The synthetic data an experiment reads (nothing for data=real: `sa4depth prepare` checks it).
    Wrapped in ancient(): a re-rendered or `dvc pull`ed data set does not retrain by mtime alone."""
    if wc.data != "synthetic":
        real_data_check(exp_config(wc.exp, wc.data, wc.scale, wc.seed)[0]["data"]["dataset"])
        return []
    prof = exp_profile(wc)
    return [ancient(str(P.synth_dir(wc.scale, prof) / ".complete")), ancient(str(P.paths_file(wc.scale, prof)))]


@functools.lru_cache(maxsize=None)
def real_data_check(dataset):
    """Stop the DAG while it is being built (seconds, in the terminal) when a real dataset that a
    planned training reads is not where params/data/real.yaml says: `sa4depth prepare`'s layout
    check without the file counts, so a subset of a dataset passes."""
    from sa4depth.config import load_config
    from sa4depth.data.prepare.layout import check_dataset

    cfg = load_config(data="real", scale=SCALE)
    root = cfg.data.roots[dataset]
    splits = cfg.data.splits_dir if dataset in ("kitti", "cityscapes", "nyu") else None
    layout = check_dataset(dataset, root, splits, check_counts=False)
    if not layout.complete:
        sys.stderr.write(layout.format() + "\n")
        raise WorkflowError(
            f"real data: {dataset} is incomplete at {root} (the parts missing are listed above). Edit "
            f"data.roots.{dataset} / data.splits_dir in params/data/real.yaml, or get the data with "
            f"`sa4depth prepare {dataset} --root {root}"
            f"{f' --splits-dir {splits}' if splits else ''} --download` (docs/REAL_DATA.md)")


def config_files_arg(wc):
    if wc.data != "synthetic":
        return ""
    return f"--config {P.paths_file(wc.scale, exp_profile(wc))}"


def extra_overrides(wc):
    return " ".join(exp_config(wc.exp, wc.data, wc.scale, wc.seed)[1])


def table_inputs(table, data=DATA, scale=SCALE):
    spec = SPECS[table]
    return [str(P.metrics_path(data, scale, e, s, P.eval_id(spec.evals[en])))
            for e, s, en in P.table_needs(spec, data, scale, SEEDS, WEIGHTS)]


def table_runs(table, data=DATA, scale=SCALE):
    spec = SPECS[table]
    return sorted({str(P.run_dir(data, scale, r.experiment, s) / "done.json")
                   for r in P.scheduled_rows(spec, WEIGHTS) for s in SEEDS})


def experiments_evals(data=DATA, scale=SCALE):
    """{experiment: sorted eval ids} over all tables (scheduled rows only)."""
    out = {}
    for spec in SPECS.values():
        for e, s, en in P.table_needs(spec, data, scale, SEEDS, WEIGHTS):
            out.setdefault(e, set()).add(P.eval_id(spec.evals[en]))
    return {k: sorted(v) for k, v in out.items()}


def weights_args():
    return " ".join(f"--weights {k}={v}" for k, v in sorted(WEIGHTS.items()))


def table_outputs(table):
    return [f"{OUT}/tables/{table}.{ext}" for ext in ("csv", "md", "tex", "json")]


def run_done(wc):
    """done.json of the run of these wildcards. NOT ancient(): Snakemake does not propagate a rerun
    through ancient() inputs, and a retrained run must be re-evaluated in the same invocation."""
    return str(P.run_dir(wc.data, wc.scale, wc.exp, wc.seed) / "done.json")


def run_of(path):
    """Run directory of a done.json / model.pt path."""
    return str(Path(path).parent)


def metrics_file(exp, eid, seed=0):
    return str(P.metrics_path(DATA, SCALE, exp, seed, eid))


def done_file(exp, seed=0):
    return str(P.run_dir(DATA, SCALE, exp, seed) / "done.json")


def eval_command(wc):
    """`sa4depth evaluate` arguments of an evaluation id (sa4depth.pipeline.eval_id): depth_<split>[_sa]
    (the Eigen / benchmark / Cityscapes / NYU protocol, _sa without median scaling), scale (Table I),
    odometry (Table V / Fig. 6: the run's data.odom_test_sequences; the JSON, per-sequence PNGs and
    <eval>_traj/<seq>.txt pose files beside it), video (Table VIII), refinement (an SA4Depth run's LM
    refinement at other iteration counts and damping: the ledger's results/claims/refinement/)."""
    m = re.fullmatch(r"depth_(eigen|eigen_benchmark|cityscapes|nyu)(_sa)?", wc.eval)
    if m:
        return f"depth --split {m.group(1)}" + (" --scale-aware" if m.group(2) else "")
    return wc.eval


def bench_size_args(wc):
    """`sa4depth bench infer` options: the run's input size; fewer repeats at the CPU scales."""
    cfg = exp_config(wc.exp, wc.data, wc.scale, wc.seed)[0]
    args = f"--height {cfg['data']['height']} --width {cfg['data']['width']}"
    if wc.scale in ("tiny", "smoke", "study", "long"):
        args += " --warmup 2 --repeats 10"
    return args


# ----------------------------------------------------------------------------- the claims ledger (claims.smk)
CLAIMS = CL.load_claims("params/claims.yaml")


def ledger_out(scale, default_scale, sub=""):
    """Where a ledger at `scale` goes: results/claims/<sub> for the committed setting (synthetic data at
    the claims file's scale), results/claims/<data>-<scale>/<sub> otherwise, never over it."""
    root = "results/claims" if (DATA, scale) == ("synthetic", default_scale) else f"results/claims/{DATA}-{scale}"
    return f"{root}/{sub}" if sub else root


CLAIMS_SCALE = config.get("claims_scale") or CLAIMS["scale"]
CLAIMS_OUT = ledger_out(CLAIMS_SCALE, CLAIMS["scale"])
# `snakemake reproduce`: the headline claim with config headline_seeds seeds, beside the ledger
HEADLINE = {"claim": str(config["headline_claim"]), "seeds": int(config["headline_seeds"])}
HEADLINE_CLAIMS = CL.with_seeds([c for c in CLAIMS["claims"] if c.id == HEADLINE["claim"]], HEADLINE["seeds"])
if not HEADLINE_CLAIMS:
    raise ValueError(f"workflow config: headline_claim={HEADLINE['claim']!r} is not a claim of params/claims.yaml "
                     f"(known: {', '.join(c.id for c in CLAIMS['claims'])})")
HEADLINE_SCALE = config.get("headline_scale") or CLAIMS["headline_scale"]
HEADLINE_OUT = ledger_out(HEADLINE_SCALE, CLAIMS["headline_scale"], "headline")
# the monitor figure: Md2-18 vs Md2-18 + SA4Depth, every seed of the headline claim
MONITOR_RUNS = {"Md2-18": "md2_18", "Md2-18 + SA4Depth": "sa4depth_md2_18"}
MONITOR_SEEDS = max([c.seeds for c in CLAIMS["claims"] if c.id == "C2"] or [3])


# where the committed ledger keeps its per-seed copies (config ledger_copies; None: not used)
LEDGER_COPIES = f"{CLAIMS_OUT}/runs" if str(config.get("ledger_copies", True)).lower() == "true" else None
# `sa4depth claims` reads this machine's runs first, then the committed copies (each run where it
# finished, a copy made with another config than the params give now counts as missing)
LEDGER_ROOTS = (f"--runs runs {LEDGER_COPIES} --metrics results/metrics {LEDGER_COPIES}" if LEDGER_COPIES
                else "--runs runs --metrics results/metrics")


def committed_or(f, copy=None):
    """``f`` (a run's done.json or a metric JSON of the claims scale), or the committed ledger's copy
    of it (``copy``: where, default under LEDGER_COPIES) when ``f`` is not on this machine and the copy
    records the config the params give now: a source file, so the DAG trains nothing for it."""
    if not LEDGER_COPIES or Path(f).is_file():
        return f
    parts = Path(f).parts[-5:]  # <data>/<scale>/<exp>/seed<N>/<name>
    c = Path(copy) if copy else CL.committed_copy(f, LEDGER_COPIES)
    if c.is_file() and copy_is_current(str(c), parts[2], int(parts[3][4:])):
        return str(c)
    return f


@functools.lru_cache(maxsize=None)
def copy_is_current(copy, exp, seed):
    """CL.is_current with the DAG's own (cached) resolved config: every Snakemake invocation parses
    this file, and a Slurm job once per job."""
    return CL.is_current(copy, DATA, CLAIMS_SCALE, exp, seed,
                         lambda: P.config_hash(exp_config(exp, DATA, CLAIMS_SCALE, seed)[0]))


def claim_files(ids=None):
    chosen = [c for c in CLAIMS["claims"] if ids is None or c.id in ids]
    return [committed_or(f) for f in CL.claim_inputs(chosen, DATA, CLAIMS_SCALE)]


def monitor_runs():
    return [committed_or(str(P.run_dir(DATA, CLAIMS_SCALE, e, s) / "done.json"))
            for e in MONITOR_RUNS.values() for s in range(MONITOR_SEEDS)]


def refinement_sweeps():
    """`sa4depth evaluate refinement` of the monitor figure's SA4Depth runs (every seed of the headline
    claim), in results/metrics/."""
    return [str(P.metrics_path(DATA, CLAIMS_SCALE, MONITOR_RUNS["Md2-18 + SA4Depth"], s, "refinement"))
            for s in range(MONITOR_SEEDS)]


def refinement_copy(f):
    """Where `claims_refinement` copies a refinement sweep beside the ledger."""
    return f"{CLAIMS_OUT}/refinement/{Path(f).parent.parent.name}_{Path(f).parent.name}.json"


# the sweeps to evaluate here: those without a current committed copy beside the ledger
REFINEMENT_TODO = [f for f in refinement_sweeps() if committed_or(f, refinement_copy(f)) == f]


def monitor_args(wc, input):
    labels = [lab for lab in MONITOR_RUNS for _ in range(MONITOR_SEEDS)]
    return " ".join(f"--run '{lab}={run_of(f)}'" for lab, f in zip(labels, input))
