# Synthetic data: the procedural benchmark in the real datasets' layouts (docs/DATA_LAYOUTS.md),
# one copy per scale so that tiny/smoke/... runs never read each other's data.


rule synth:
    output:
        marker="data/synthetic/{scale}/{profile}/.complete",
    log:
        "logs/synth/{scale}/{profile}.log",
    params:
        out=lambda wc, output: run_of(output.marker),
    threads: 1
    resources:
        mem_mb=res("synth", "mem_mb"),
        runtime=res("synth", "runtime"),
        cpus_per_task=res("synth", "cpus_per_task"),
        gpu=res("synth", "gpu"),
        slurm_partition=res("synth", "slurm_partition"),
    conda:
        "../envs/sa4depth.yaml"
    shell:
        "sa4depth synth --profile {wildcards.profile} --scale {wildcards.scale} --out-dir {params.out} > {log} 2>&1"


rule synth_paths:
    """Dataset roots of the synthetic data of one scale/profile, merged into training configs."""
    output:
        "data/synthetic/{scale}/{profile}.paths.yaml",
    log:
        "logs/synth/{scale}/{profile}.paths.log",
    conda:
        "../envs/sa4depth.yaml"
    script:
        "../scripts/synth_paths.py"


rule data:
    """All synthetic profiles of the configured scale."""
    input:
        expand("data/synthetic/{scale}/{profile}/.complete", scale=SCALE, profile=["driving", "dynamic", "indoor"]),
        expand("data/synthetic/{scale}/{profile}.paths.yaml", scale=SCALE, profile=["driving", "dynamic", "indoor"]),
