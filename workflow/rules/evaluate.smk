# Evaluations of a finished run: one JSON each (metrics + config, git, data_hash, device).
# Paths: results/metrics/<data>/<scale>/<experiment>/seed<N>/<eval id>.json (sa4depth.pipeline).


EVAL_RESOURCES = dict(
    mem_mb=res("evaluate", "mem_mb"),
    runtime=res("evaluate", "runtime"),
    cpus_per_task=res("evaluate", "cpus_per_task"),
    gpu=res("evaluate", "gpu"),
    slurm_partition=res("evaluate", "slurm_partition"),
)

# torch CPU threads of an evaluation job (`--threads {threads}`); 0 in the config = its cpus_per_task
# (see train.smk)
EVAL_THREADS = config["threads"]["evaluate"] or res("evaluate", "cpus_per_task")


rule evaluate:
    """One evaluation of a finished run, keyed by its id (one rule for every kind)."""
    input:
        done=run_done,
        data=data_inputs,
    output:
        json="results/metrics/{data}/{scale}/{exp}/seed{seed}/{eval}.json",
    log:
        "logs/evaluate/{data}/{scale}/{exp}/seed{seed}/{eval}.log",
    params:
        config_hash=exp_hash,
        run=lambda wc, input: run_of(input.done),
        what=eval_command,
    threads: EVAL_THREADS
    resources:
        **EVAL_RESOURCES,
    conda:
        "../envs/sa4depth.yaml"
    shell:
        "sa4depth evaluate {params.what} --run {params.run} --threads {threads} --out {output.json} > {log} 2>&1"


rule bench_infer:
    """Depth-net inference FPS (Table VI) at the run's input size (the paper: 640x192 on a T4).
    The number reflects the node it ran on; tiny/smoke use fewer timing repeats."""
    input:
        done=run_done,
    output:
        json="results/metrics/{data}/{scale}/{exp}/seed{seed}/infer.json",
    log:
        "logs/evaluate/{data}/{scale}/{exp}/seed{seed}/infer.log",
    params:
        config_hash=exp_hash,
        run=lambda wc, input: run_of(input.done),
        size=bench_size_args,
        # not used by the command (it takes {threads}); kept so the recorded params stay the same
        torch_threads=config["threads"]["evaluate"],
    threads: EVAL_THREADS
    resources:
        **EVAL_RESOURCES,
    conda:
        "../envs/sa4depth.yaml"
    shell:
        "sa4depth bench infer --run {params.run} {params.size} --threads {threads} "
        "--out {output.json} > {log} 2>&1"


rule experiment_summary:
    """Every evaluation of one experiment (all seeds) in one small JSON: a DVC metrics file."""
    input:
        lambda wc: [str(P.metrics_path(wc.data, wc.scale, wc.exp, s, e))
                    for s in SEEDS for e in experiments_evals(wc.data, wc.scale).get(wc.exp, [])],
    output:
        "results/metrics/{data}/{scale}/{exp}.json",
    log:
        "logs/summary/{data}/{scale}/{exp}.log",
    conda:
        "../envs/sa4depth.yaml"
    script:
        "../scripts/summary.py"
