# The claims ledger (params/claims.yaml, src/sa4depth/report/claims.py): every claim's experiments
# trained with the claim's own seed count at the claims scale, evaluated, and answered by paired
# intervals over seeds. `snakemake claims` builds the whole ledger (hours on 2 CPU cores; every
# finished run and evaluation is kept, so an interrupted invocation resumes where it stopped);
# `snakemake claim_C2` trains and evaluates one claim and rewrites the ledger with what exists
# (claims not run yet are listed as pending).


rule claims_ledger:
    input:
        spec="params/claims.yaml",
        experiments="params/experiments.yaml",
        files=claim_files(),
    output:
        json=f"{CLAIMS_OUT}/claims.json",
        md=f"{CLAIMS_OUT}/claims.md",
        fig=f"{CLAIMS_OUT}/fig_ledger.png",
    log:
        f"logs/claims/{DATA}-{CLAIMS_SCALE}.log",
    params:
        data=DATA,
        scale=CLAIMS_SCALE,
        out=lambda wc, output: str(Path(output.json).parent),
        roots=LEDGER_ROOTS,
    conda:
        "../envs/sa4depth.yaml"
    shell:
        "sa4depth claims --data {params.data} --scale {params.scale} {params.roots} --out-dir {params.out} > {log} 2>&1"


rule headline_ledger:
    """`make reproduce`'s answer to the headline claim: its runs at config headline_seeds seeds, at
    the headline scale (the 600-step study preset; the full ledger's runs go on to 1200 steps)."""
    input:
        spec="params/claims.yaml",
        experiments="params/experiments.yaml",
        files=CL.claim_inputs(HEADLINE_CLAIMS, DATA, HEADLINE_SCALE),
    output:
        json=f"{HEADLINE_OUT}/claims.json",
        md=f"{HEADLINE_OUT}/claims.md",
        fig=f"{HEADLINE_OUT}/fig_ledger.png",
    log:
        f"logs/claims/headline-{DATA}-{HEADLINE_SCALE}.log",
    params:
        data=DATA,
        scale=HEADLINE_SCALE,
        claim=HEADLINE["claim"],
        seeds=HEADLINE["seeds"],
        out=lambda wc, output: str(Path(output.json).parent),
    conda:
        "../envs/sa4depth.yaml"
    shell:
        "sa4depth claims --data {params.data} --scale {params.scale} --only {params.claim} --seeds {params.seeds} "
        "--out-dir {params.out} > {log} 2>&1 && cat {log}"


rule fig_monitor:
    """The scale-alignment monitor against step (learning curves), baseline vs SA4Depth, all seeds."""
    input:
        monitor_runs(),
    output:
        png=report(f"{CLAIMS_OUT}/fig_monitor.png", caption="../report/fig_monitor.rst", category="Claims"),
        summary=f"{CLAIMS_OUT}/curves.json",
    log:
        f"logs/claims/fig_monitor-{DATA}-{CLAIMS_SCALE}.log",
    params:
        runs=monitor_args,
        title=f"Scale-alignment monitor, {DATA} data, {CLAIMS_SCALE} scale, {MONITOR_SEEDS} seeds",
    conda:
        "../envs/sa4depth.yaml"
    shell:
        "sa4depth figure monitor {params.runs} --title '{params.title}' --out {output.png} "
        "--summary {output.summary} > {log} 2>&1"


# only the sweeps whose current copy is not committed (REFINEMENT_TODO): a committed copy is then a
# plain source file, so Snakemake has no rule that would re-evaluate (and retrain) its run
if REFINEMENT_TODO:

    rule claims_refinement:
        """The headline SA4Depth runs' refinement at other LM iteration counts and damping (`sa4depth
        evaluate refinement`), copied beside the ledger (results/metrics/ is not committed)."""
        input:
            REFINEMENT_TODO,
        output:
            [refinement_copy(f) for f in REFINEMENT_TODO],
        log:
            f"logs/claims/refinement-{DATA}-{CLAIMS_SCALE}.log",
        params:
            pairs=lambda wc, input, output: " ".join(f"{i}:{o}" for i, o in zip(input, output)),
        localrule: True
        conda:
            "../envs/sa4depth.yaml"
        shell:
            'for p in {params.pairs}; do cp -v "${{p%%:*}}" "${{p#*:}}"; done > {log} 2>&1'


# The ledger's inputs too: the ledger is committed, and a fresh clone's `snakemake claims` must still
# train what it lacks; where the committed ledger's copy of a run's result stands in for it (config
# ledger_copies), nothing is trained for it.
rule claims:
    input:
        rules.claims_ledger.output,
        rules.fig_monitor.output,
        [refinement_copy(f) for f in refinement_sweeps()],
        rules.claims_ledger.input.files,
        rules.fig_monitor.input,
        REFINEMENT_TODO,
    localrule: True


# The full ledger's runs and evaluations of the headline claim (config headline_claim, every seed of
# the claim, at the claims scale): `make claims` gives them the highest priority (--prioritize), so
# that `sa4depth claims --allow-missing` answers the headline hours before the rest is trained. An
# input-only rule: as a target it writes nothing.
rule claims_headline_runs:
    input:
        claim_files([HEADLINE["claim"]]),
    localrule: True


# `snakemake claim_C2`: one claim's runs and evaluations, then the ledger of everything present.
for _c in CLAIMS["claims"]:

    rule:
        name:
            f"claim_{_c.id}"
        input:
            claim_files([_c.id]),
        log:
            f"logs/claims/claim_{_c.id}-{DATA}-{CLAIMS_SCALE}.log",
        params:
            data=DATA,
            scale=CLAIMS_SCALE,
            out=CLAIMS_OUT,
            roots=LEDGER_ROOTS,
        localrule: True
        conda:
            "../envs/sa4depth.yaml"
        shell:
            "sa4depth claims --data {params.data} --scale {params.scale} {params.roots} --allow-missing "
            "--out-dir {params.out} > {log} 2>&1 && cat {log}"
