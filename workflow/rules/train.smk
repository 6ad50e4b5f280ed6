# Training: one job per (data, scale, experiment, seed). Experiments are named in
# params/experiments.yaml and shared by all tables, so a run used by several tables trains once.
# Rerun policy: the `params` trigger carries the hash of the resolved config, so editing one row
# reruns that row only (and, through done.json, its evaluations); the data inputs are ancient() so
# a `dvc pull` (fresh mtimes, no .snakemake metadata) retrains nothing.
# The run directory also holds config.yaml (resolved config), checkpoints/, log.csv and tb/.
# Threads: `threads:` of a train / evaluate job is handed on as `--threads {threads}` (torch CPU
# threads): threads.<kind> of the workflow config when > 0 (the local default, 1: `--cores N` runs N
# jobs side by side); 0 = the job's allocation, resources.<kind>.cpus_per_task (what a Slurm job
# books; the local scheduler caps it at --cores).


rule train:
    input:
        data_inputs,
    output:
        done="runs/{data}/{scale}/{exp}/seed{seed}/done.json",
        model="runs/{data}/{scale}/{exp}/seed{seed}/model.pt",
    log:
        "logs/train/{data}/{scale}/{exp}/seed{seed}.log",
    params:
        config_hash=exp_hash,
        run_dir=lambda wc, output: run_of(output.done),
        config_file=config_files_arg,
        extra=extra_overrides,
        # not used by the command (it takes {threads}); kept so the params recorded for the `params`
        # rerun trigger stay those of existing runs
        torch_threads=config["threads"]["train"],
    threads: config["threads"]["train"] or res("train", "cpus_per_task")
    resources:
        mem_mb=res("train", "mem_mb"),
        runtime=res("train", "runtime"),
        cpus_per_task=res("train", "cpus_per_task"),
        gpu=res("train", "gpu"),
        slurm_partition=res("train", "slurm_partition"),
    conda:
        "../envs/sa4depth.yaml"
    shell:
        # config.yaml and checkpoints/ are not outputs, so a failed or preempted job (Slurm retry,
        # --rerun-incomplete) resumes from checkpoints/last.pt; a run whose config hash changed
        # trains afresh (--resume never: the trainer moves the old run aside until the new one is done).
        "resume=auto; if [ \"$(cat {params.run_dir}/config.hash 2>/dev/null)\" != {params.config_hash} ]; "
        "then resume=never; fi; "
        "mkdir -p {params.run_dir} && echo {params.config_hash} > {params.run_dir}/config.hash; "
        "sa4depth train --data {wildcards.data} --scale {wildcards.scale} --row experiments:{wildcards.exp} "
        "{params.config_file} --out-dir {params.run_dir} --resume $resume --no-progress "
        "--threads {threads} "
        "seed={wildcards.seed} {params.extra} > {log} 2>&1"
