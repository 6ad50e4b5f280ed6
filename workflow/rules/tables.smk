# Tables, audit and figures are assembled from result files only (localrules: no GPU, seconds).


rule table:
    input:
        spec="params/tables/{table}.yaml",
        experiments="params/experiments.yaml",
        metrics=lambda wc: table_inputs(wc.table),
        runs=lambda wc: table_runs(wc.table),
    output:
        csv=report(f"{OUT}/tables/{{table}}.csv", caption="../report/table.rst", category="Tables",
                   labels={"table": "{table}"}),
        md=f"{OUT}/tables/{{table}}.md",
        tex=f"{OUT}/tables/{{table}}.tex",
        json=f"{OUT}/tables/{{table}}.json",
    log:
        "logs/tables/{table}.log",
    params:
        data=DATA,
        scale=SCALE,
        seeds=len(SEEDS),
        weights=weights_args(),
        out_dir=lambda wc, output: run_of(output.json),
    conda:
        "../envs/sa4depth.yaml"
    shell:
        "sa4depth table {wildcards.table} --data {params.data} --scale {params.scale} --seeds {params.seeds} "
        "{params.weights} --out-dir {params.out_dir} --quiet > {log} 2>&1"


rule audit:
    """Config difference of every row from the reference row + run provenance (Table VI). Strict: a row
    whose config is not exactly its named switch, or equals the reference row's, fails the job (see the log)."""
    input:
        spec="params/tables/{table}.yaml",
        experiments="params/experiments.yaml",
        table=f"{OUT}/tables/{{table}}.json",
    output:
        md=report(f"{OUT}/audit/{{table}}.md", caption="../report/audit.rst", category="Audit",
                  labels={"table": "{table}"}),
        json=f"{OUT}/audit/{{table}}.json",
    log:
        "logs/audit/{table}.log",
    params:
        data=DATA,
        scale=SCALE,
        seeds=len(SEEDS),
        weights=weights_args(),
    conda:
        "../envs/sa4depth.yaml"
    shell:
        "sa4depth audit {wildcards.table} --data {params.data} --scale {params.scale} --seeds {params.seeds} "
        "{params.weights} --out {output.md} --json {output.json} --strict > {log} 2>&1"


# One target per paper table: `snakemake table_vi`. Table VI also writes its ablation audit.
# The target also asks for the table's metric files: the tables are committed to git, and Snakemake
# does not rebuild a present output for a missing input, so without them `snakemake table_i` in a fresh clone would say "nothing to be done" instead of running the rows.
for _t in P.TABLES:

    rule:
        name:
            _t
        input:
            table_outputs(_t),
            [f"{OUT}/audit/{_t}.md"] if SPECS[_t].baseline_row else [],
            table_inputs(_t),
        localrule: True


# `snakemake audit_table_vi`: the audit alone (it needs the table's runs, like the table).
for _t in [t for t in P.TABLES if SPECS[t].baseline_row]:

    rule:
        name:
            f"audit_{_t}"
        input:
            f"{OUT}/audit/{_t}.md",
            f"{OUT}/audit/{_t}.json",
            table_inputs(_t),
        localrule: True
