"""sa4depth: a runnable reproduction of SA4Depth (consistent pose-depth scale alignment for
self-supervised monocular depth estimation), with the Monodepth2 baseline, evaluation
protocols and a Snakemake/DVC pipeline for every table of the paper."""

__version__ = "0.1.0"
