"""Write dvc.yaml from params/ so that DVC's stages always match the Snakemake DAG.

    python workflow/scripts/make_dvc.py           # rewrite dvc.yaml
    python workflow/scripts/make_dvc.py --check   # exit 1 if dvc.yaml is out of date (CI)

Stages (all call Snakemake with the local profile; DVC vars come from params.yaml: data, scale, seeds):
- ``data_<profile>``: the synthetic data of the configured scale (outs: the data directory).
- ``run_<experiment>``: one per experiment any table trains (params/experiments.yaml), keyed like
  the workflow: outs ``runs/<data>/<scale>/<exp>`` (checkpoints) and ``results/metrics/<data>/<scale>/<exp>``
  (evaluation JSONs), metrics ``results/metrics/<data>/<scale>/<exp>.json``; params: the base, data
  and scale presets and exactly the experiment's rows (its ``inherit`` chain) in params/experiments.yaml.
- ``table_<n>``: each paper table (outs csv/md/tex, metrics json; Table VI also its audit).
- ``figures``; ``claims`` (the claims ledger, at params/claims.yaml's own scale).
Rows needing user weights (Table VI 15/16) are not stages: without weights they do not run.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "src"))

from sa4depth.config import load_row  # noqa: E402
from sa4depth.files import dump_yaml, write_text_atomic  # noqa: E402
from sa4depth.report import plan as P  # noqa: E402

SNAKE = "snakemake --profile workflow/profiles/local --config data=${data} scale=${scale} seeds=${seeds} --"
TRAIN_CODE = ["src/sa4depth/config.py", "src/sa4depth/files.py", "src/sa4depth/geometry.py", "src/sa4depth/losses.py", "src/sa4depth/models",
              "src/sa4depth/refine", "src/sa4depth/train", "src/sa4depth/data", "src/sa4depth/evaluate",
              "src/sa4depth/commands/train.py", "src/sa4depth/commands/evaluate.py", "src/sa4depth/benchmarks/infer.py"]
REPORT_CODE = ["src/sa4depth/report", "src/sa4depth/files.py", "src/sa4depth/commands/table.py",
               "src/sa4depth/commands/audit.py"]
PRESETS = ["params/base.yaml", "params/constraints.yaml", "params/data/${data}.yaml", "params/scale/${scale}.yaml"]
FIG_EXPS = ["md2_50", "sa4depth_md2_50", "odom_md2_50", "odom_sa4depth_md2_50"]


def build() -> dict:
    pdir = REPO / "params"
    specs = {t: P.load_table(pdir / "tables" / f"{t}.yaml", pdir) for t in P.TABLES}
    exps: dict[str, set[str]] = {}
    table_exps: dict[str, list[str]] = {}
    for t, spec in specs.items():
        table_exps[t] = []
        for row in P.scheduled_rows(spec, None):
            exps.setdefault(row.experiment, set())
            if row.experiment not in table_exps[t]:
                table_exps[t].append(row.experiment)
    stages: dict[str, dict] = {}
    for prof in ("driving", "dynamic", "indoor"):
        stages[f"data_{prof}"] = {
            "cmd": f"{SNAKE} data/synthetic/${{scale}}/{prof}/.complete data/synthetic/${{scale}}/{prof}.paths.yaml",
            "deps": ["src/sa4depth/data/synth", "src/sa4depth/commands/synth.py"],
            "params": [{"params/scale/${scale}.yaml": ["synth"]}, {"params/base.yaml": ["synth"]}],
            "outs": [f"data/synthetic/${{scale}}/{prof}", f"data/synthetic/${{scale}}/{prof}.paths.yaml"],
        }
    exp_file = pdir / "experiments.yaml"
    for exp in sorted(exps):
        _, chain = load_row(exp_file, exp)
        cfg, _ = P.experiment_config(exp, "synthetic", "tiny", 0, None, pdir)
        prof = P.DATASET_PROFILE[cfg["data"]["dataset"]]
        stages[f"run_{exp}"] = {
            "cmd": f"{SNAKE} results/metrics/${{data}}/${{scale}}/{exp}.json",
            "deps": [f"data/synthetic/${{scale}}/{prof}", *TRAIN_CODE],
            "params": [*({f: None} for f in PRESETS), {"params/experiments.yaml": [f"rows.{c}" for c in chain]}],
            "outs": [f"runs/${{data}}/${{scale}}/{exp}", f"results/metrics/${{data}}/${{scale}}/{exp}"],
            "metrics": [{f"results/metrics/${{data}}/${{scale}}/{exp}.json": {"cache": False}}],
        }
    for t, spec in specs.items():
        outs = [{f"results/tables/{t}.{ext}": {"cache": False}} for ext in ("csv", "md", "tex")]
        if spec.baseline_row:
            outs += [{f"results/audit/{t}.md": {"cache": False}}, {f"results/audit/{t}.json": {"cache": False}}]
        stages[t] = {
            "cmd": f"{SNAKE} {t}",
            "deps": [*(f"results/metrics/${{data}}/${{scale}}/{e}" for e in table_exps[t]),
                     *(f"runs/${{data}}/${{scale}}/{e}" for e in table_exps[t]), *REPORT_CODE],
            "params": [{f"params/tables/{t}.yaml": None}],
            "outs": outs,
            "metrics": [{f"results/tables/{t}.json": {"cache": False}}],
        }
    stages["figures"] = {
        "cmd": f"{SNAKE} figures",
        "deps": [*(f"runs/${{data}}/${{scale}}/{e}" for e in FIG_EXPS),
                 *(f"results/metrics/${{data}}/${{scale}}/{e}" for e in FIG_EXPS),
                 "src/sa4depth/report/figures.py", "src/sa4depth/commands/figure.py"],
        "outs": ["results/figures"],
    }
    # the claims ledger trains its own seeds at params/claims.yaml's scale (study), not ${scale};
    # its inputs are copied under results/claims/runs/ and committed with it (git, not the DVC cache)
    stages["claims"] = {
        "cmd": "snakemake --profile workflow/profiles/local --config data=${data} -- claims",
        "deps": list(dict.fromkeys([*TRAIN_CODE, *REPORT_CODE, "src/sa4depth/commands/claims.py"])),
        "params": [{"params/claims.yaml": None}, {"params/scale/study.yaml": None}, {"params/experiments.yaml": None}],
        "outs": [{"results/claims/claims.md": {"cache": False}}, {"results/claims/fig_monitor.png": {"cache": False}}],
        "metrics": [{"results/claims/claims.json": {"cache": False}}],
    }
    return {"vars": ["params.yaml"], "stages": stages}


def render() -> str:
    head = ("# GENERATED by workflow/scripts/make_dvc.py from params/ -- do not edit by hand; rerun the script.\n"
            "# `dvc repro` rebuilds what changed (each stage calls Snakemake); data/scale/seeds: params.yaml.\n"
            "# Checkpoints (runs/) and evaluation JSONs are cached outputs; tables and per-experiment summaries\n"
            "# are DVC metrics (`dvc metrics diff`). After `dvc pull` in a fresh clone, `snakemake -n table_vi`\n"
            "# has nothing to retrain (the data inputs of training are ancient(); reruns follow the config hash).\n")
    return head + dump_yaml(build(), width=120)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if dvc.yaml differs from what params/ gives")
    ap.add_argument("--out", default=str(REPO / "dvc.yaml"))
    args = ap.parse_args(argv)
    text = render()
    out = Path(args.out)
    if args.check:
        cur = out.read_text() if out.is_file() else ""
        if cur != text:
            print(f"{out} is out of date: run python workflow/scripts/make_dvc.py", file=sys.stderr)
            return 1
        print(f"{out} is up to date")
        return 0
    write_text_atomic(out, text, mkdir=False)
    print(f"wrote {out} ({len(build()['stages'])} stages)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
