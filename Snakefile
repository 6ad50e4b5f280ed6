# sa4depth reproduction DAG: every table and figure of the SA4Depth paper.
#
#   snakemake --cores 2 table_vi --config scale=tiny        # Table VI (16 ablation rows) end to end
#   snakemake --profile slurm all --config data=real scale=full   # the paper's setting on a cluster
#   snakemake -n table_vi                                     # the plan, in seconds
#   snakemake --cores 2 reproduce                             # make reproduce: paper + the headline claim
#   snakemake --report results/report.html all                # HTML report of every table and figure
#
# Config: workflow/config.yaml (schema: workflow/schemas/config.schema.yaml). Rows of the tables:
# params/tables/*.yaml; experiments (what trains, shared by tables): params/experiments.yaml.
from snakemake.utils import min_version, validate

from sa4depth.pipeline import prepare_workflow_config

min_version("8.0")


configfile: "workflow/config.yaml"


# --config's nested numbers typed, a misspelt key or a missing weights file in one line; then the schema
prepare_workflow_config(config, "workflow/schemas/config.schema.yaml", check_files=workflow.is_main_process)
validate(config, "workflow/schemas/config.schema.yaml")


envvars:
    "PATH",


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/tables.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/claims.smk"


localrules:
    all,
    paper,
    data,
    figures,
    synth_paths,
    table,
    audit,
    experiment_summary,
    fig1_scale_factors,
    fig6_trajectories,
    claims_ledger,
    headline_ledger,
    fig_monitor,
    reproduce,


# Every table, the Table VI audit, the figures and the per-experiment summaries at the configured
# scale (the claims ledger, hours on 2 CPU cores, is `make claims`).
rule paper:
    input:
        [table_outputs(t) for t in P.TABLES],
        f"{OUT}/audit/table_vi.md",
        expand(f"{OUT}/figures/{{fig}}.png", fig=FIGURES),
        [f"results/metrics/{DATA}/{SCALE}/{e}.json" for e in experiments_evals()],


# `make reproduce`: the paper DAG at the configured scale and the headline claim (config headline_claim, headline_seeds)
# answered at the headline scale (params/claims.yaml `headline_scale`, study) with its seeds and interval.
# It also asks for the ledger's inputs: the ledger is committed, and Snakemake does not rebuild a
# present output for a missing input (the same reason as the table targets, tables.smk).
rule reproduce:
    input:
        rules.paper.input,
        rules.headline_ledger.output,
        rules.headline_ledger.input.files,


rule all:
    default_target: True
    input:
        rules.paper.input,
        rules.headline_ledger.output,
        rules.headline_ledger.input.files,
        rules.claims.input,
