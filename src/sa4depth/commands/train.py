"""Train a depth + pose model: the Monodepth2 baseline, a Table I pose source, or SA4Depth.

Writes RUN_DIR/config.yaml, log.csv, tb/, checkpoints/last.pt, model.pt and (last) done.json.
A finished run with the same config is not retrained; an interrupted one resumes from its last
checkpoint (--resume auto). On SIGTERM / SIGUSR1 (Slurm preemption) a checkpoint is written and
the command exits with code 3; rerun it to continue. Multi-process: torchrun --nproc_per_node N
-m sa4depth train ... (gloo on CPU, nccl on GPU; train.batch_size is the global batch).

Progress: a tqdm bar when stderr is a terminal (or with --progress); otherwise (--no-progress, job
logs) one line "step S/TOTAL (P%), loss L, R it/s, ETA T" after the first step and then every
--progress-every seconds (default 60), so a Slurm job log shows how far a run is.

Examples:
  sa4depth train --scale tiny --out-dir runs/tiny_md2
  sa4depth train --scale smoke --row table_vi:r06_sa4depth --out-dir runs/r06 --device cpu
  sa4depth train --row experiments:md2_18 --out-dir runs/md2 seed=1 train.max_steps=100
"""
from __future__ import annotations

from sa4depth.commands import add_device_arg, add_option, add_threads_arg
from sa4depth.config import add_config_args, config_from_args


def add_arguments(p) -> None:
    add_config_args(p)
    add_option(p, "--out-dir", deprecated=("--out",), dest="out", required=True, metavar="RUN_DIR",
               help="run directory (config.yaml, checkpoints/, log.csv, tb/, model.pt, done.json)")
    p.add_argument("--resume", choices=["auto", "never"], default="auto",
                   help="auto: continue from RUN_DIR/checkpoints/last.pt, skip a finished run (default); "
                        "never: start from scratch (a previous run in RUN_DIR is moved to RUN_DIR/replaced/ and "
                        "removed only once the new run is done)")
    add_device_arg(p, default=None, help="torch device, overrides train.device: auto = cuda when available, else cpu "
                                        "(default: the config's train.device)")
    p.add_argument("--no-progress", action="store_true",
                   help="no tqdm bar: progress lines every --progress-every seconds instead")
    p.add_argument("--progress", action="store_true", help="progress bar even when stderr is not a terminal")
    p.add_argument("--progress-every", type=float, default=60.0, metavar="SECONDS",
                   help="without the bar: a line (step/total, loss, it/s, ETA) after the first step, then every "
                        "SECONDS (default 60; 0 = every step, negative = none)")
    add_threads_arg(p)


def run(args) -> int:
    if args.device:
        args.overrides = list(args.overrides) + [f"train.device={args.device}"]
    cfg = config_from_args(args)

    from sa4depth.device import set_threads
    from sa4depth.train.trainer import train

    set_threads(args.threads)
    progress = False if args.no_progress else (True if args.progress else None)
    result = train(cfg, args.out, resume=args.resume, progress=progress, progress_every=args.progress_every,
                   log=lambda line: print(line, flush=True))
    return result.exit_code
