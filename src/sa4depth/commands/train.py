"""Train a depth + pose model: the Monodepth2 baseline, a Table I pose source, or SA4Depth.

Writes RUN_DIR/config.yaml, log.csv, tb/, checkpoints/last.pt, model.pt and (last) done.json.
A finished run with the same config is not retrained; an interrupted one resumes from its last
checkpoint (--resume auto). On SIGTERM / SIGUSR1 (Slurm preemption) a checkpoint is written and
the command exits with code 3; rerun it to continue. Multi-process: torchrun --nproc_per_node N
-m sa4depth train ... (gloo on CPU, nccl on GPU; train.batch_size is the global batch).

Examples:
  sa4depth train --scale tiny --out runs/tiny_md2
  sa4depth train --scale smoke --row table_vi:r06_sa4depth --out runs/r06 --device cpu
"""
from __future__ import annotations

from sa4depth.commands import thread_count
from sa4depth.config import add_config_args, config_from_args


def add_arguments(p) -> None:
    add_config_args(p)
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="run directory")
    p.add_argument("--resume", choices=["auto", "never"], default="auto",
                   help="auto: continue from RUN_DIR/checkpoints/last.pt, skip a finished run (default); "
                        "never: start from scratch (a previous run in RUN_DIR is moved to RUN_DIR/replaced/ and "
                        "removed only once the new run is done)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default=None,
                   help="overrides train.device")
    p.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
    p.add_argument("--progress", action="store_true", help="progress bar even when stderr is not a terminal")
    p.add_argument("--threads", type=thread_count, default=0, help="torch CPU threads (0 = torch's default)")


def run(args) -> int:
    if args.device:
        args.overrides = list(args.overrides) + [f"train.device={args.device}"]
    cfg = config_from_args(args)
    import torch

    from sa4depth.train.trainer import train

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    progress = False if args.no_progress else (True if args.progress else None)
    result = train(cfg, args.out, resume=args.resume, progress=progress)
    return result.exit_code
