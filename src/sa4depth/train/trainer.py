"""The training loop: optimiser, schedule, checkpoints / exact resume, signals, DDP, logs.

Schedule (SA4Depth Sec. V / Monodepth2): Adam(``train.lr``) (``train.optimizer sgd`` exists for
equivalence checks whose weight differences must scale with gradient differences), learning rate multiplied by
``train.lr_gamma`` every ``train.lr_step_epochs`` epochs (a StepLR stepped once per optimiser
step with ``step_size = lr_step_epochs * steps_per_epoch``; 0 = constant). An epoch is
``len(train split) // batch_size`` steps (drop_last), capped by ``train.steps_per_epoch``;
training stops after ``train.max_steps`` steps when > 0, else after ``train.epochs`` epochs.

Exact resume: the data order is a function of (seed, epoch) (:mod:`sa4depth.train.data`) and
the epoch / position are derived from the global step, so a checkpoint only needs the step,
the module / optimiser / scheduler / GradScaler states and the RNG states
(:mod:`sa4depth.train.checkpoint`). A run killed at any point and restarted with
``resume="auto"`` continues from ``checkpoints/last.pt`` and ends with the same weights as an
uninterrupted run (bit-identical on CPU with the same thread count; use
``train.deterministic`` on GPU).

Preemption: SIGTERM / SIGUSR1 (what Slurm sends before killing a job) make the loop finish the
current step, write a checkpoint and exit with :data:`EXIT_PREEMPTED` (3) so a rerun resumes.

Outputs in ``out_dir`` (rank 0 only): ``config.yaml`` (resolved config), ``log.csv``,
``tb/`` (TensorBoard), ``checkpoints/last.pt``, then ``model.pt`` and, last, ``done.json``.
"""
from __future__ import annotations

import math
import os
import random
import shutil
import signal
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from sa4depth.config import Config, ConfigError, load_yaml, save_config
from sa4depth.train.checkpoint import (capture_rng, load_checkpoint, restore_rng, save_checkpoint, sha256_file,
                                       write_json_atomic)
from sa4depth.train.data import EpochBatchSampler, SeededDataset, make_train_loader
from sa4depth.train.distributed import (DistInfo, all_reduce_mean, cleanup_distributed, convert_batchnorm,
                                        init_distributed)
from sa4depth.train.logging import CSVLog, TBLog
from sa4depth.train.step import SelfSupModel, batch_to_device, uses_pose_net

__all__ = ["EXIT_PREEMPTED", "TrainResult", "train", "resolve_device", "build_train_model", "config_diff",
           "StopTraining"]

EXIT_PREEMPTED = 3


class StopTraining(Exception):
    """Raised by the ``stop_after`` test hook right after a checkpoint (simulates a kill)."""


@dataclass
class TrainResult:
    status: str                      # done | skipped | preempted
    steps: int
    out_dir: Path
    exit_code: int = 0
    final: dict[str, float] = field(default_factory=dict)
    wall_time_s: float = 0.0


# ----------------------------------------------------------------------------- helpers
def resolve_device(name: str) -> torch.device:
    """``train.device``: ``auto`` -> cuda when available, else cpu; ``cuda`` without a GPU is an error
    (:func:`sa4depth.device.resolve_device`, the resolver every verb uses)."""
    from sa4depth.device import resolve_device as _resolve

    return _resolve(name, source="train.device")


#: seconds between the progress lines of a run without a progress bar (``train(progress_every=)``)
PROGRESS_EVERY_S = 60.0


class _ProgressLines:
    """Progress lines for logs without a tqdm bar (Snakemake / Slurm job logs): after the first step,
    then whenever ``every`` seconds have passed (0: every step; < 0: never)."""

    def __init__(self, total: int, step: int, every: float, log):
        self.total, self.every, self.log = total, every, log
        self.t0 = self.t_last = time.monotonic()
        self.step0 = self.step_last = step

    def update(self, step: int, loss: torch.Tensor) -> None:
        now = time.monotonic()
        if self.every < 0 or (self.step_last > self.step0 and now - self.t_last < self.every):
            return
        rate = (step - self.step0) / max(now - self.t0, 1e-9)  # mean it/s since this process started
        eta = (self.total - step) / rate if rate > 0 else math.inf
        self.log(f"sa4depth train: step {step}/{self.total} ({100 * step / self.total:.1f}%), "
                 f"loss {float(loss.detach()):.4f}, {rate:.3g} it/s, ETA {_hms(eta)}")
        self.t_last, self.step_last = now, step


def _hms(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


def _comparable(cfg: dict) -> dict:
    """A config without bookkeeping that does not change the trained model (meta, log cadence)."""
    d = {k: v for k, v in cfg.items() if k != "meta"}
    if isinstance(d.get("train"), dict):
        d["train"] = {k: v for k, v in d["train"].items()
                      if k not in ("log_every", "checkpoint_every", "device", "monitor_every", "monitor_samples")}
    if isinstance(d.get("data"), dict):
        d["data"] = {k: v for k, v in d["data"].items() if k != "num_workers"}
    return d


def config_diff(a: dict, b: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two (comparable) config dicts."""
    out: list[str] = []
    for k in sorted(set(a) | set(b)):
        ka = f"{prefix}{k}"
        va, vb = a.get(k, "<missing>"), b.get(k, "<missing>")
        if isinstance(va, dict) and isinstance(vb, dict):
            out += config_diff(va, vb, ka + ".")
        elif va != vb:
            out.append(ka)
    return out


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


def make_optimizer(params: list[nn.Parameter], tc: Config, device: torch.device) -> torch.optim.Optimizer:
    """``train.optimizer``: Adam(``train.lr``) or SGD. Adam is torch's fused implementation on CPU
    and CUDA: the same update as the per-parameter loop, in one kernel. On 2 CPU cores the loop was
    300 of 950 ms of a smoke-scale Md2-18 step under torch.profiler; in wall time fused steps were
    0.54-0.64 s against 0.68-0.74 s (12-step runs, 2 threads)."""
    if tc.optimizer == "adam":
        return torch.optim.Adam(params, lr=tc.lr, fused=device.type in ("cpu", "cuda"))
    return torch.optim.SGD(params, lr=tc.lr)


def param_groups(model: nn.Module, cfg: Config) -> list[dict[str, Any]]:
    """Trainable parameters as optimiser groups: the SA4Depth damping logit (Eq. 10) learns at
    ``train.lr * refine.damping_lr_mult`` (PixLoc's 100x), everything else at ``train.lr``."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    damp = [p for n, p in named if n.endswith("damping_logit")]
    rest = [p for n, p in named if not n.endswith("damping_logit")]
    groups: list[dict[str, Any]] = [{"params": rest}]
    if damp:
        groups.append({"params": damp, "lr": float(cfg.train.lr) * float(cfg.refine.damping_lr_mult)})
    return groups


def build_train_model(cfg: Config) -> SelfSupModel:
    """Depth/pose nets from :func:`sa4depth.models.build_models` (+ the SA4Depth refiner)."""
    from sa4depth.models.io import build_models

    nets = build_models(cfg)
    refiner = None
    if cfg.refine.enabled and not cfg.matcher.enabled:
        try:
            from sa4depth.refine import SA4DepthRefiner  # type: ignore[attr-defined]
        except ImportError:
            from sa4depth.refine.module import SA4DepthRefiner

        refiner = SA4DepthRefiner(cfg)
    pose = nets["pose"]
    if not uses_pose_net(cfg):
        pose.requires_grad_(False)  # kept in the model file, not trained (Table I gt rows, rows 2-3, 7-8)
    return SelfSupModel(cfg, nets["depth"], pose, refiner)


class _SignalFlag:
    """Records SIGTERM / SIGUSR1 instead of dying; restored on exit."""

    SIGNALS = tuple(s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGUSR1", None)) if s)

    def __init__(self) -> None:
        self.received: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> "_SignalFlag":
        import threading

        if threading.current_thread() is threading.main_thread():
            for s in self.SIGNALS:
                self._old[s] = signal.signal(s, self._handle)
        return self

    def _handle(self, signum, _frame) -> None:
        self.received = signum

    def __exit__(self, *exc) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)


class _RunLock:
    """An exclusive, non-blocking ``flock`` on ``RUN_DIR/.train.lock`` while a process trains into
    the run directory: a second ``sa4depth train`` into the same directory (two Snakemake
    invocations scheduling the same run, a user's rerun while a job is still alive) stops at once
    instead of two writers interleaving checkpoints and log.csv. The kernel drops the lock when the
    process dies, so a killed run never leaves a stale lock. No-op where ``fcntl`` is missing."""

    def __init__(self, out: Path):
        self.path = out / ".train.lock"
        self.fh: Any = None

    def acquire(self) -> None:
        try:
            import fcntl
        except ImportError:  # not POSIX
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fh = open(self.path, "a")
        try:
            fcntl.flock(self.fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.fh.close()
            self.fh = None
            raise ConfigError(f"{self.path.parent}: another process is training into this run directory "
                              f"(it holds {self.path}); wait for it to finish or use another --out") from None

    def release(self) -> None:
        if self.fh is not None:
            self.fh.close()  # closing the file releases the flock
            self.fh = None


def _load_dataset(cfg: Config):
    """The training split; GT depth only when a pose source needs it, LiDAR only for row 2."""
    try:
        from sa4depth.data import build_dataset  # type: ignore[attr-defined]
    except ImportError:
        from sa4depth.data.factory import build_dataset

    return build_dataset(cfg, "train", load_depth=cfg.pose.source == "gt_scaled",
                         load_lidar=bool(cfg.refine.enabled and cfg.refine.depth_source == "lidar"))


# ----------------------------------------------------------------------------- main entry
def train(cfg: Config, out_dir: str | os.PathLike, resume: str = "auto", progress: bool | None = None,
          stop_after: int | None = None, log: Any = print, dataset: Any = None,
          progress_every: float = PROGRESS_EVERY_S) -> TrainResult:
    """Train the model described by ``cfg`` into ``out_dir``; see the module docstring.

    Args:
        resume: ``auto`` continues from ``out_dir/checkpoints/last.pt`` when present (and skips a
            finished run with the same config); ``never`` starts from scratch: a previous run's
            outputs are moved to ``out_dir/replaced/`` and removed only when the new run is done.
        progress: tqdm bar; ``None`` = only when stderr is a terminal.
        progress_every: without the bar, ``log`` a progress line (step/total, loss, it/s, ETA) after
            the first step and then whenever this many seconds have passed since the last line
            (a Slurm job log shows progress); 0 = after every step, < 0 = never.
        stop_after: test hook: raise :class:`StopTraining` right after the checkpoint written at
            this step (what a SIGKILL after that checkpoint leaves behind).
        dataset: the training ``Dataset`` to use instead of ``build_dataset(cfg, "train")``
            (benchmarks, tests with in-memory data).
    """
    if resume not in ("auto", "never"):
        raise ValueError(f"resume={resume!r}: expected 'auto' or 'never'")
    out = Path(out_dir)
    device = resolve_device(cfg.train.device)
    info = init_distributed(device.type)
    if info.enabled and device.type == "cuda":
        device = torch.device("cuda", info.local_rank)  # one GPU per rank (torchrun LOCAL_RANK)
    # process-wide switches changed for deterministic runs are restored afterwards
    saved = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    lock = _RunLock(out) if info.is_main else None
    try:
        if lock is not None:
            lock.acquire()
        return _train(cfg, out, resume, progress, stop_after, log, device, info, dataset, progress_every)
    finally:
        if lock is not None:
            lock.release()
        torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[2], saved[3]
        cleanup_distributed()


# what ``sa4depth train`` writes into a run directory (besides config.yaml and the lock)
_RUN_OUTPUTS = ("done.json", "model.pt", "log.csv", "checkpoints", "tb")
REPLACED_DIR = "replaced"


def _inspect_out_dir(cfg: Config, out: Path, resume: str) -> str:
    """Returns ``fresh``, ``resume`` or ``done``; writes nothing.

    Refuses a directory holding trainer outputs (model.pt, log.csv, ...) without the config.yaml a
    run writes first: those files were not made by ``sa4depth train`` and are never overwritten.
    """
    done, cfg_file, last = out / "done.json", out / "config.yaml", out / "checkpoints" / "last.pt"
    if not cfg_file.is_file():
        foreign = [n for n in _RUN_OUTPUTS if (out / n).exists()]
        if foreign:
            raise ConfigError(f"{out}: holds {', '.join(foreign)} but no config.yaml, so sa4depth train did not "
                              f"write them; they are left alone: choose another --out or move them away")
        return "fresh"
    if resume == "auto":
        saved = load_yaml(cfg_file)
        diff = config_diff(_comparable(saved), _comparable(cfg.to_dict()))
        if diff:
            raise ConfigError(f"{cfg_file}: the run in {out} was made with a different config (keys: "
                              f"{', '.join(diff[:8])}{' ...' if len(diff) > 8 else ''}); use another --out, "
                              f"or --resume never to replace it (the old run is kept in {out / REPLACED_DIR} "
                              f"until the new one finishes)")
        if done.is_file():
            return "done"
        if last.is_file():
            return "resume"
    return "fresh"


def _start_fresh(cfg: Config, out: Path) -> None:
    """Move a previous run's outputs aside into ``out/replaced/`` (removed once the new run is
    done) and write the new config.yaml. Called only once the data and the model are built, so a
    run that cannot start leaves the previous one as it was."""
    old = [n for n in (*_RUN_OUTPUTS, "config.yaml") if (out / n).exists()]
    if old:
        aside = out / REPLACED_DIR
        if aside.exists():  # an older replaced run whose successor never finished: keep the newer one
            shutil.rmtree(aside)
        aside.mkdir()
        for n in old:
            os.replace(out / n, aside / n)
    save_config(cfg, out / "config.yaml")


def _train(cfg: Config, out: Path, resume: str, progress: bool | None, stop_after: int | None, log,
           device: torch.device, info: DistInfo, train_set: Any = None,
           progress_every: float = -1.0) -> TrainResult:
    t_start = time.time()
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
    state, error = "fresh", None
    if info.is_main:
        try:
            state = _inspect_out_dir(cfg, out, resume)
        except (ConfigError, ValueError, OSError) as e:
            error = e
    if info.enabled:  # only rank 0 looks at / writes the run directory; the others follow
        import torch.distributed as dist

        flags: list[Any] = [state, None if error is None else f"{type(error).__name__}: {error}"]
        dist.broadcast_object_list(flags, src=0)
        state = flags[0]
        if flags[1] is not None and error is None:
            raise ConfigError(f"rank 0 could not prepare {out}: {flags[1]}")
    if error is not None:
        raise error
    if state == "done":
        if info.is_main:
            log(f"sa4depth train: {out} is already trained (done.json, same config): nothing to do")
        import json

        with open(out / "done.json") as f:
            d = json.load(f)
        return TrainResult("skipped", int(d.get("steps", 0)), out, 0, d.get("final_losses", {}))

    tc = cfg.train
    if tc.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    seed_everything(int(cfg.seed))

    model = build_train_model(cfg)
    if tc.sync_bn:
        model = convert_batchnorm(model, info, device.type)
    model = model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(param_groups(model, cfg), tc, device)

    dataset = SeededDataset(train_set if train_set is not None else _load_dataset(cfg), int(cfg.seed))
    n = len(dataset)
    probe = EpochBatchSampler(n, tc.batch_size, int(cfg.seed), 0, info.rank, info.world_size,
                              max_batches=tc.steps_per_epoch)
    steps_per_epoch = probe.batches_per_epoch
    total_steps = tc.max_steps if tc.max_steps > 0 else tc.epochs * steps_per_epoch
    step_size = tc.lr_step_epochs * steps_per_epoch
    scheduler = (torch.optim.lr_scheduler.StepLR(optimizer, step_size=step_size, gamma=tc.lr_gamma)
                 if step_size > 0 else torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0))
    use_amp = bool(tc.amp) and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)

    ddp_model: nn.Module = model
    if info.enabled:
        from torch.nn.parallel import DistributedDataParallel as DDP

        ddp_model = DDP(model, device_ids=[device.index] if device.type == "cuda" else None,
                        find_unused_parameters=bool(cfg.refine.enabled or cfg.matcher.enabled))

    step, elapsed_before = 0, 0.0
    last_ck = out / "checkpoints" / "last.pt"
    if state == "fresh" and info.is_main:
        _start_fresh(cfg, out)
    if state == "resume":
        ck = load_checkpoint(last_ck, map_location=device)
        if ck.get("total_steps") != total_steps or ck.get("steps_per_epoch") != steps_per_epoch:
            raise ValueError(f"{last_ck}: made for {ck.get('total_steps')} steps x {ck.get('steps_per_epoch')} "
                             f"per epoch, this run has {total_steps} x {steps_per_epoch}")
        model.load_state_dict(ck["model"])
        optimizer.load_state_dict(ck["optimizer"])
        scheduler.load_state_dict(ck["scheduler"])
        scaler.load_state_dict(ck["scaler"])
        step = int(ck["step"])
        elapsed_before = float(ck.get("elapsed_s", 0.0))
        rngs = ck["rng"] if isinstance(ck["rng"], list) else [ck["rng"]]
        rng = rngs[info.rank] if info.rank < len(rngs) else rngs[0]  # world size may change on resume
        restore_rng(rng)
        if info.is_main:
            log(f"sa4depth train: resuming {out} at step {step}/{total_steps}")

    csv_log = CSVLog(out / "log.csv", resume_step=step if state == "resume" else None) if info.is_main else None
    tb = TBLog(out / "tb", purge_step=step if state == "resume" else None) if info.is_main else None
    monitor = None
    if info.is_main and tc.monitor_every > 0:
        from sa4depth.train.monitor import ScaleMonitor

        monitor = ScaleMonitor.from_config(cfg, device, log)

    def monitor_row(at_step: int, vals: dict[str, float]) -> dict[str, float]:
        """Monitor values (``mon/*``) merged into the logged row of ``at_step``, also to TensorBoard."""
        assert monitor is not None
        mon = {f"mon/{k}": v for k, v in monitor(model).items()}
        tb.write(at_step, {f"monitor/{k[4:]}": v for k, v in mon.items()})  # type: ignore[union-attr]
        return {**vals, **mon}

    if monitor is not None and step == 0:  # the untrained model: where every curve starts
        row0 = monitor_row(0, {})
        csv_log.write({"step": 0, "epoch": 0, **{k: f"{v:.6g}" for k, v in row0.items()},  # type: ignore[union-attr]
                       "lr": f"{optimizer.param_groups[0]['lr']:.6g}", "time": f"{elapsed_before:.2f}"})

    def checkpoint() -> None:
        rngs: Any = capture_rng()
        if info.enabled:
            import torch.distributed as dist

            gathered: list[Any] = [None] * info.world_size
            dist.all_gather_object(gathered, rngs)
            rngs = gathered
        if info.is_main:
            save_checkpoint(last_ck, {
                "step": step, "total_steps": total_steps, "steps_per_epoch": steps_per_epoch,
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(), "rng": rngs,
                "elapsed_s": elapsed_before + time.time() - t_start, "config": cfg.to_dict(),
                "world_size": info.world_size,
            })

    from tqdm import tqdm

    show = progress if progress is not None else sys.stderr.isatty()
    bar = tqdm(total=total_steps, initial=step, disable=not (show and info.is_main), desc="train",
               dynamic_ncols=True)
    lines = _ProgressLines(total_steps, step, progress_every, log) if info.is_main and not show else None
    last_logs: dict[str, float] = {}
    last_monitor: dict[str, float] = {}
    status, exit_code = "done", 0
    autocast = (lambda: torch.autocast(device_type="cuda", dtype=torch.float16)) if use_amp else nullcontext
    model.train()
    with _SignalFlag() as sig:
        while step < total_steps:
            epoch, pos = divmod(step, steps_per_epoch)
            sampler = EpochBatchSampler(n, tc.batch_size, int(cfg.seed), epoch, info.rank, info.world_size,
                                        start_batch=pos, max_batches=steps_per_epoch)
            loader = make_train_loader(dataset, sampler, cfg.data.num_workers, pin_memory=device.type == "cuda")
            for batch in loader:
                inputs = batch_to_device(batch, device, non_blocking=True)
                model.step = step  # optimiser steps taken so far (loss.automask_after)
                with autocast():
                    loss, logs = ddp_model(inputs)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"step {step + 1}: non-finite loss {loss.item()} "
                                             f"({ {k: float(v) for k, v in logs.items()} })")
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if tc.grad_clip > 0:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(params, tc.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                step += 1
                bar.update(1)
                if lines is not None:
                    lines.update(step, loss)
                # every rank takes the same branch (all_reduce_mean); only rank 0 measures
                at_monitor = tc.monitor_every > 0 and (step % tc.monitor_every == 0 or step == total_steps)
                if step % tc.log_every == 0 or step == total_steps or at_monitor:
                    vals = {k: float(v) for k, v in logs.items()}
                    vals = all_reduce_mean(vals, info, device)
                    last_logs = vals
                    if at_monitor and monitor is not None:
                        vals = monitor_row(step, vals)
                        last_monitor = {k[4:]: v for k, v in vals.items() if k.startswith("mon/")}
                    if info.is_main:
                        lr = optimizer.param_groups[0]["lr"]
                        row = {"step": step, "epoch": epoch, **{k: f"{v:.6g}" for k, v in vals.items()},
                               "lr": f"{lr:.6g}", "time": f"{elapsed_before + time.time() - t_start:.2f}"}
                        csv_log.write(row)  # type: ignore[union-attr]
                        tb.write(step, {f"train/{k}": v for k, v in vals.items() if not k.startswith("mon/")}  # type: ignore[union-attr]
                                 | {"train/lr": lr})
                        bar.set_postfix(loss=f"{vals.get('loss', math.nan):.4f}")
                stop = sig.received is not None
                if info.enabled:
                    import torch.distributed as dist

                    t = torch.tensor([1.0 if stop else 0.0], device=device)
                    dist.all_reduce(t, op=dist.ReduceOp.MAX)
                    stop = bool(t.item() > 0)
                if step % tc.checkpoint_every == 0 or stop or step == total_steps or step == stop_after:
                    checkpoint()
                if stop_after is not None and step == stop_after:
                    bar.close()
                    raise StopTraining(f"stopped after step {step} (test hook)")
                if stop and step < total_steps:
                    status, exit_code = "preempted", EXIT_PREEMPTED
                    break
                if step >= total_steps:
                    break
            if status == "preempted":
                break
    bar.close()
    wall = elapsed_before + time.time() - t_start
    if tb is not None:
        tb.close()
    if status == "preempted":
        if info.is_main:
            log(f"sa4depth train: signal received, checkpoint written at step {step} ({last_ck}); "
                f"rerun the same command to resume (exit code {EXIT_PREEMPTED})")
        return TrainResult(status, step, out, exit_code, last_logs, wall)

    if info.is_main:
        from sa4depth.models.io import save_model_file

        model_path = save_model_file(out / "model.pt", cfg, model.named_modules_for_saving(),
                                     extra={"step": step, "final_losses": last_logs})
        write_json_atomic(out / "done.json", {
            "status": "done", "steps": step, "epochs": math.ceil(step / steps_per_epoch),
            "wall_time_s": round(wall, 3), "final_losses": last_logs,
            "model": "model.pt", "model_sha256": sha256_file(model_path),
            "checkpoint": "checkpoints/last.pt", "checkpoint_sha256": sha256_file(last_ck),
            "device": str(device), "world_size": info.world_size, "seed": int(cfg.seed),
            "samples": n, "steps_per_epoch": steps_per_epoch, **model.matcher_info,
            **({"monitor": last_monitor} if last_monitor else {}),
        })
        if (out / REPLACED_DIR).exists():  # the new result exists: the replaced run can go
            shutil.rmtree(out / REPLACED_DIR)
        log(f"sa4depth train: done, {step} steps in {wall:.1f} s, final loss {last_logs.get('loss', math.nan):.4f}"
            f" -> {out / 'model.pt'}")
    return TrainResult(status, step, out, 0, last_logs, wall)
