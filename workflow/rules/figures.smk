# Figures from result files (Figs. 1, 3, 6, 10 of the paper). The qualitative and feature figures
# need predictions / feature maps of trained runs: `sa4depth figure` computes them from the run
# directories (the plotting itself, in sa4depth.report.figures, reads arrays only).

FIG_A = "md2_50"  # baseline (Tables II, VI row 1)
FIG_B = "sa4depth_md2_50"  # SA4Depth (Tables II, VI row 6)
FIG_ODOM_A = "odom_md2_50"
FIG_ODOM_B = "odom_sa4depth_md2_50"


rule fig1_scale_factors:
    input:
        a=metrics_file(FIG_A, "depth_eigen_benchmark"),
        b=metrics_file(FIG_B, "depth_eigen_benchmark"),
    output:
        report(f"{OUT}/figures/fig1_scale_factors.png", caption="../report/fig1.rst", category="Figures"),
    log:
        "logs/figures/fig1_scale_factors.log",
    conda:
        "../envs/sa4depth.yaml"
    shell:
        "sa4depth figure scale-factors --json 'Md2-50={input.a}' --json 'Md2-50 + SA4Depth={input.b}' "
        "--out {output} > {log} 2>&1"


rule fig3_qualitative_kitti:
    input:
        a=done_file(FIG_A),
        b=done_file(FIG_B),
    output:
        report(f"{OUT}/figures/fig3_qualitative_kitti.png", caption="../report/fig3.rst", category="Figures"),
    log:
        "logs/figures/fig3_qualitative_kitti.log",
    params:
        a=lambda wc, input: run_of(input.a),
        b=lambda wc, input: run_of(input.b),
    threads: max(1, config["threads"]["evaluate"])
    resources:
        mem_mb=res("evaluate", "mem_mb"),
        runtime=res("evaluate", "runtime"),
        cpus_per_task=res("evaluate", "cpus_per_task"),
        gpu=res("evaluate", "gpu"),
        slurm_partition=res("evaluate", "slurm_partition"),
    conda:
        "../envs/sa4depth.yaml"
    shell:
        "sa4depth figure qualitative --run 'Md2-50={params.a}' --run 'Md2-50 + SA4Depth={params.b}' "
        "--split eigen_benchmark --num 3 --out {output} > {log} 2>&1"


rule fig6_trajectories:
    input:
        a=metrics_file(FIG_ODOM_A, "odometry"),
        b=metrics_file(FIG_ODOM_B, "odometry"),
    output:
        report(f"{OUT}/figures/fig6_trajectories.png", caption="../report/fig6.rst", category="Figures"),
    log:
        "logs/figures/fig6_trajectories.log",
    conda:
        "../envs/sa4depth.yaml"
    shell:
        "sa4depth figure trajectories --json 'Md2-50={input.a}' --json 'Md2-50 + SA4Depth={input.b}' "
        "--out {output} > {log} 2>&1"


rule fig10_features:
    input:
        done=done_file(FIG_B),
    output:
        report(f"{OUT}/figures/fig10_features.png", caption="../report/fig10.rst", category="Figures"),
    log:
        "logs/figures/fig10_features.log",
    params:
        run=lambda wc, input: run_of(input.done),
    threads: max(1, config["threads"]["evaluate"])
    resources:
        mem_mb=res("evaluate", "mem_mb"),
        runtime=res("evaluate", "runtime"),
        cpus_per_task=res("evaluate", "cpus_per_task"),
        gpu=res("evaluate", "gpu"),
        slurm_partition=res("evaluate", "slurm_partition"),
    conda:
        "../envs/sa4depth.yaml"
    shell:
        "sa4depth figure features --run {params.run} --out {output} > {log} 2>&1"


rule figures:
    input:
        expand(f"{OUT}/figures/{{fig}}.png", fig=FIGURES),
