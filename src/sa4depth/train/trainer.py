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

import json
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

from sa4depth.config import Config, ConfigError, load_yaml, save_config, without_inactive_keys
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
    """A config without bookkeeping that does not change the trained model (meta, log cadence, the
    keys of components that are off: :func:`sa4depth.config.without_inactive_keys`)."""
    d = without_inactive_keys({k: v for k, v in cfg.items() if k != "meta"})
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


def build_train_model(cfg: Config, load_pretrained: bool = True) -> SelfSupModel:
    """Depth/pose nets from :func:`sa4depth.models.build_models` (+ the SA4Depth refiner);
    ``load_pretrained=False`` when the weights come from a model file."""
    from sa4depth.models.io import build_models

    nets = build_models(cfg, load_pretrained=load_pretrained)
    refiner = None
    if cfg.refine.enabled and not cfg.matcher.enabled:
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
    from sa4depth.data import build_dataset

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
    # every rank sees a file where the run's folder (or one above it) goes, so none waits for the others
    blocker = next((p for p in (out, *out.parents) if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise ValueError(f"{blocker}: is a file; the run's output folder {out} cannot go there (pass another --out-dir)")
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
    """The run's stages: out dir -> setup -> restore -> logs -> steps (+ checkpoints) -> finish."""
    t_start = time.time()
    state = _prepare_out_dir(cfg, out, resume, info)
    if state == "done":
        return _skip_done(out, info, log)
    run = _setup(cfg, out, device, info, log, t_start, train_set)
    _restore(run, state)
    if info.is_main:  # rank 0 writes the checkpoints and done.json that carry it
        _record_code(run)
    _open_logs(run, resumed=state == "resume", progress=progress, progress_every=progress_every)
    status = "done"
    run.model.train()
    with _SignalFlag() as sig:
        while run.step < run.total_steps and status == "done":
            epoch, pos = divmod(run.step, run.steps_per_epoch)
            for batch in _epoch_loader(run, epoch, pos):
                _step(run, batch, epoch)
                stop = _stop_requested(run, sig)
                if (run.step % cfg.train.checkpoint_every == 0 or stop or run.step == run.total_steps
                        or run.step == stop_after):
                    _checkpoint(run)
                if stop_after is not None and run.step == stop_after:
                    run.bar.close()
                    raise StopTraining(f"stopped after step {run.step} (test hook)")
                if stop and run.step < run.total_steps:
                    status = "preempted"
                    break
                if run.step >= run.total_steps:
                    break
    return _finish(run, status)


# ----------------------------------------------------------------------------- the stages
@dataclass(eq=False)
class _Run:
    """One process's training state: built by :func:`_setup`, moved to the resumed step by
    :func:`_restore`, advanced by :func:`_step`, saved by :func:`_checkpoint`, ended by :func:`_finish`."""

    cfg: Config
    out: Path
    device: torch.device
    info: DistInfo
    log: Any
    t_start: float                              # time.time() when this process began
    model: SelfSupModel
    ddp_model: nn.Module                        # ``model`` or its DDP wrapper (what the step calls)
    params: list[nn.Parameter]                  # the trained parameters (gradient clipping)
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler
    use_amp: bool
    dataset: SeededDataset
    samples: int                                # len(dataset)
    steps_per_epoch: int
    total_steps: int
    step: int = 0                               # optimiser steps taken
    elapsed_before: float = 0.0                 # wall time of the processes before a resume
    csv_log: CSVLog | None = None               # rank 0 only, as are tb, monitor and lines
    tb: TBLog | None = None
    monitor: Any = None
    bar: Any = None                             # tqdm (disabled unless shown on rank 0)
    lines: _ProgressLines | None = None
    last_logs: dict[str, float] = field(default_factory=dict)
    last_monitor: dict[str, float] = field(default_factory=dict)
    code: list[dict[str, Any]] = field(default_factory=list)  # {"from_step", "commit", "dirty"} per code change

    @property
    def last_ck(self) -> Path:
        return self.out / "checkpoints" / "last.pt"

    def elapsed(self) -> float:
        """Wall time of the run so far, resumed processes included."""
        return self.elapsed_before + time.time() - self.t_start

    def autocast(self):
        return torch.autocast(device_type="cuda", dtype=torch.float16) if self.use_amp else nullcontext()


def _prepare_out_dir(cfg: Config, out: Path, resume: str, info: DistInfo) -> str:
    """Rank 0 creates and inspects the run directory (:func:`_inspect_out_dir`); the other ranks
    follow its answer. Returns ``fresh``, ``resume`` or ``done``."""
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
    return state


def _skip_done(out: Path, info: DistInfo, log) -> TrainResult:
    """A finished run with the same config: nothing to train, its done.json reported."""
    if info.is_main:
        log(f"sa4depth train: {out} is already trained (done.json, same config): nothing to do")
    with open(out / "done.json") as f:
        d = json.load(f)
    return TrainResult("skipped", int(d.get("steps", 0)), out, 0, d.get("final_losses", {}))


def _setup(cfg: Config, out: Path, device: torch.device, info: DistInfo, log, t_start: float,
           train_set: Any) -> _Run:
    """Determinism switches, seeding, model, optimiser, dataset / epoch length, schedule, GradScaler,
    DDP wrapper. Writes nothing (the run directory is changed only once all of this worked)."""
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
    return _Run(cfg=cfg, out=out, device=device, info=info, log=log, t_start=t_start, model=model,
                ddp_model=ddp_model, params=params, optimizer=optimizer, scheduler=scheduler, scaler=scaler,
                use_amp=use_amp, dataset=dataset, samples=n, steps_per_epoch=steps_per_epoch,
                total_steps=total_steps)


def _restore(run: _Run, state: str) -> None:
    """``fresh``: rank 0 moves a previous run aside and writes config.yaml (:func:`_start_fresh`);
    ``resume``: module / optimiser / scheduler / scaler / RNG states and the step from
    checkpoints/last.pt (each rank its own RNG state)."""
    info = run.info
    if state == "fresh" and info.is_main:
        _start_fresh(run.cfg, run.out)
    if state != "resume":
        return
    ck = load_checkpoint(run.last_ck, map_location=run.device)
    if ck.get("total_steps") != run.total_steps or ck.get("steps_per_epoch") != run.steps_per_epoch:
        raise ValueError(f"{run.last_ck}: made for {ck.get('total_steps')} steps x {ck.get('steps_per_epoch')} "
                         f"per epoch, this run has {run.total_steps} x {run.steps_per_epoch}")
    run.model.load_state_dict(ck["model"])
    run.optimizer.load_state_dict(ck["optimizer"])
    run.scheduler.load_state_dict(ck["scheduler"])
    run.scaler.load_state_dict(ck["scaler"])
    run.step = int(ck["step"])
    run.elapsed_before = float(ck.get("elapsed_s", 0.0))
    run.code = list(ck.get("code", []))
    rngs = ck["rng"] if isinstance(ck["rng"], list) else [ck["rng"]]
    rng = rngs[info.rank] if info.rank < len(rngs) else rngs[0]  # world size may change on resume
    restore_rng(rng)
    if info.is_main:
        run.log(f"sa4depth train: resuming {run.out} at step {run.step}/{run.total_steps}")


def _record_code(run: _Run) -> None:
    """Appends this process's code (``git_info``) to ``run.code`` with the step it starts from, unless
    it is the code of the process before: a run resumed under a later commit says which steps each
    commit trained (done.json ``code``; ``git`` alone is the code that finished it)."""
    from sa4depth.evaluate.provenance import git_info

    now = git_info()
    same = ("commit", "dirty")  # a copy stating the checkout's commit (``source``) is the same code
    if not run.code or {k: run.code[-1].get(k) for k in same} != {k: now.get(k) for k in same}:
        run.code.append({"from_step": run.step, **now})


def _open_logs(run: _Run, resumed: bool, progress: bool | None, progress_every: float) -> None:
    """log.csv / TensorBoard (rows after a resumed step dropped), the scale monitor and its row of the
    untrained model (step 0), the tqdm bar or the progress lines."""
    cfg, info = run.cfg, run.info
    if info.is_main:
        run.csv_log = CSVLog(run.out / "log.csv", resume_step=run.step if resumed else None)
        run.tb = TBLog(run.out / "tb", purge_step=run.step if resumed else None)
    if info.is_main and cfg.train.monitor_every > 0:
        from sa4depth.train.monitor import ScaleMonitor

        run.monitor = ScaleMonitor.from_config(cfg, run.device, run.log)
    if run.monitor is not None and run.step == 0:  # the untrained model: where every curve starts
        row0 = _monitor_row(run, 0, {})
        run.csv_log.write({"step": 0, "epoch": 0, **{k: f"{v:.6g}" for k, v in row0.items()},  # type: ignore[union-attr]
                           "lr": f"{run.optimizer.param_groups[0]['lr']:.6g}", "time": f"{run.elapsed_before:.2f}"})

    from tqdm import tqdm

    show = progress if progress is not None else sys.stderr.isatty()
    run.bar = tqdm(total=run.total_steps, initial=run.step, disable=not (show and info.is_main), desc="train",
                   dynamic_ncols=True)
    if info.is_main and not show:
        run.lines = _ProgressLines(run.total_steps, run.step, progress_every, run.log)


def _monitor_row(run: _Run, at_step: int, vals: dict[str, float]) -> dict[str, float]:
    """Monitor values (``mon/*``) merged into the logged row of ``at_step``, also to TensorBoard."""
    assert run.monitor is not None
    mon = {f"mon/{k}": v for k, v in run.monitor(run.model).items()}
    run.tb.write(at_step, {f"monitor/{k[4:]}": v for k, v in mon.items()})  # type: ignore[union-attr]
    return {**vals, **mon}


def _epoch_loader(run: _Run, epoch: int, pos: int):
    """The batches of ``epoch`` from batch ``pos`` on (this rank's shard; the order is a function of
    (seed, epoch))."""
    tc, info = run.cfg.train, run.info
    sampler = EpochBatchSampler(run.samples, tc.batch_size, int(run.cfg.seed), epoch, info.rank, info.world_size,
                                start_batch=pos, max_batches=run.steps_per_epoch)
    return make_train_loader(run.dataset, sampler, run.cfg.data.num_workers, pin_memory=run.device.type == "cuda")


def _step(run: _Run, batch: Any, epoch: int) -> None:
    """One optimiser step on ``batch`` (AMP, gradient clipping, schedule), then the progress bar /
    lines and, at log and monitor steps, the row of log.csv and TensorBoard."""
    tc = run.cfg.train
    inputs = batch_to_device(batch, run.device, non_blocking=True)
    with run.autocast():
        # step: optimiser steps taken so far (loss.automask_after); DDP passes keywords through
        loss, logs = run.ddp_model(inputs, step=run.step)
    if not torch.isfinite(loss):
        raise FloatingPointError(f"step {run.step + 1}: non-finite loss {loss.item()} "
                                 f"({ {k: float(v) for k, v in logs.items()} })")
    run.optimizer.zero_grad(set_to_none=True)
    run.scaler.scale(loss).backward()
    if tc.grad_clip > 0:
        run.scaler.unscale_(run.optimizer)
        torch.nn.utils.clip_grad_norm_(run.params, tc.grad_clip)
    run.scaler.step(run.optimizer)
    run.scaler.update()
    run.scheduler.step()
    run.step += 1
    run.bar.update(1)
    if run.lines is not None:
        run.lines.update(run.step, loss)
    _log_step(run, epoch, logs)


def _log_step(run: _Run, epoch: int, logs: dict[str, torch.Tensor]) -> None:
    """At log steps (``train.log_every``, the last step) and monitor steps: the ranks' mean of the
    logged terms, the monitor (rank 0), a log.csv row and TensorBoard scalars (rank 0)."""
    tc, info, step = run.cfg.train, run.info, run.step
    # every rank takes the same branch (all_reduce_mean); only rank 0 measures
    at_monitor = tc.monitor_every > 0 and (step % tc.monitor_every == 0 or step == run.total_steps)
    if not (step % tc.log_every == 0 or step == run.total_steps or at_monitor):
        return
    vals = {k: float(v) for k, v in logs.items()}
    vals = all_reduce_mean(vals, info, run.device)
    run.last_logs = vals
    if at_monitor and run.monitor is not None:
        vals = _monitor_row(run, step, vals)
        run.last_monitor = {k[4:]: v for k, v in vals.items() if k.startswith("mon/")}
    if info.is_main:
        lr = run.optimizer.param_groups[0]["lr"]
        row = {"step": step, "epoch": epoch, **{k: f"{v:.6g}" for k, v in vals.items()},
               "lr": f"{lr:.6g}", "time": f"{run.elapsed():.2f}"}
        run.csv_log.write(row)  # type: ignore[union-attr]
        run.tb.write(step, {f"train/{k}": v for k, v in vals.items() if not k.startswith("mon/")}  # type: ignore[union-attr]
                     | {"train/lr": lr})
        run.bar.set_postfix(loss=f"{vals.get('loss', math.nan):.4f}")


def _stop_requested(run: _Run, sig: _SignalFlag) -> bool:
    """Whether a rank received SIGTERM / SIGUSR1 (every rank gets the same answer)."""
    stop = sig.received is not None
    if run.info.enabled:
        import torch.distributed as dist

        t = torch.tensor([1.0 if stop else 0.0], device=run.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        stop = bool(t.item() > 0)
    return stop


def _checkpoint(run: _Run) -> None:
    """checkpoints/last.pt (rank 0) with every rank's RNG state (gathered)."""
    info = run.info
    rngs: Any = capture_rng()
    if info.enabled:
        import torch.distributed as dist

        gathered: list[Any] = [None] * info.world_size
        dist.all_gather_object(gathered, rngs)
        rngs = gathered
    if info.is_main:
        save_checkpoint(run.last_ck, {
            "step": run.step, "total_steps": run.total_steps, "steps_per_epoch": run.steps_per_epoch,
            "model": run.model.state_dict(), "optimizer": run.optimizer.state_dict(),
            "scheduler": run.scheduler.state_dict(), "scaler": run.scaler.state_dict(), "rng": rngs,
            "elapsed_s": run.elapsed(), "config": run.cfg.to_dict(),
            "world_size": info.world_size, "code": run.code,
        })


def _finish(run: _Run, status: str) -> TrainResult:
    """``preempted``: the exit-code-3 result (the checkpoint is written). ``done``: model.pt, then
    done.json (rank 0), and the replaced previous run removed."""
    run.bar.close()
    wall = run.elapsed()
    if run.tb is not None:
        run.tb.close()
    info, out, step, last_logs = run.info, run.out, run.step, run.last_logs
    if status == "preempted":
        if info.is_main:
            run.log(f"sa4depth train: signal received, checkpoint written at step {step} ({run.last_ck}); "
                    f"rerun the same command to resume (exit code {EXIT_PREEMPTED})")
        return TrainResult(status, step, out, EXIT_PREEMPTED, last_logs, wall)

    if info.is_main:
        from sa4depth.evaluate.provenance import git_info
        from sa4depth.models.io import save_model_file

        model_path = save_model_file(out / "model.pt", run.cfg, run.model.named_modules_for_saving(),
                                     extra={"step": step, "final_losses": last_logs})
        write_json_atomic(out / "done.json", {
            "status": "done", "steps": step, "epochs": math.ceil(step / run.steps_per_epoch),
            "wall_time_s": round(wall, 3), "final_losses": last_logs,
            "model": "model.pt", "model_sha256": sha256_file(model_path),
            "checkpoint": "checkpoints/last.pt", "checkpoint_sha256": sha256_file(run.last_ck),
            "device": str(run.device), "world_size": info.world_size, "seed": int(run.cfg.seed),
            "samples": run.samples, "steps_per_epoch": run.steps_per_epoch, **run.model.matcher_info,
            **({"monitor": run.last_monitor} if run.last_monitor else {}),
            "git": git_info(),  # the code that finished it: {"commit", "dirty"}
            "code": run.code,   # the code of every process that trained it, from which step
        })
        if (out / REPLACED_DIR).exists():  # the new result exists: the replaced run can go
            shutil.rmtree(out / REPLACED_DIR)
        run.log(f"sa4depth train: done, {step} steps in {wall:.1f} s, final loss "
                f"{last_logs.get('loss', math.nan):.4f} -> {out / 'model.pt'}")
    return TrainResult(status, step, out, 0, last_logs, wall)
