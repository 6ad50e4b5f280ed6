"""Deterministic, resumable, shardable training data order.

Exact resume (and DDP == single process) needs the data stream to be a pure function of
``(seed, epoch, position)``:

* :class:`EpochBatchSampler` draws the epoch's permutation from ``(seed, epoch)`` only, cuts it
  into *global* batches of ``cfg.train.batch_size`` (drop_last, as Monodepth2's train loader),
  gives rank ``r`` of ``W`` the contiguous slice ``[r*B/W, (r+1)*B/W)`` of every global batch, and
  can start at any batch position (resume skips consumed batches without loading them).
  The union of the ranks' batches at step ``i`` is exactly the single-process batch ``i``.
* :class:`SeededDataset` wraps a dataset and re-seeds python ``random``, numpy's global RNG and
  torch's CPU generator from ``(seed, epoch, index)`` around each ``__getitem__`` (restoring the
  caller's RNG states afterwards), so random augmentation (Monodepth2 colour jitter and flips)
  is identical whatever the worker count, the rank split or a resume point, and the training
  loop's own RNG stream is untouched by data loading.
"""
from __future__ import annotations

import random
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, default_collate

__all__ = ["EpochBatchSampler", "SeededDataset", "epoch_permutation", "make_train_loader"]


def _seed_from(*parts: int) -> int:
    """A 32-bit seed from integers via numpy's SeedSequence (well mixed, platform independent)."""
    return int(np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(1)[0])


def epoch_permutation(n: int, seed: int, epoch: int, shuffle: bool = True) -> np.ndarray:
    """The order of the ``n`` samples in ``epoch``: a permutation drawn from (seed, epoch) only."""
    if not shuffle:
        return np.arange(n)
    return np.random.default_rng(_seed_from(seed, epoch, 0x5A4D)).permutation(n)


class EpochBatchSampler(Sampler[list]):
    """Yields, for one epoch, this rank's share of each global batch as ``[(epoch, idx), ...]``.

    Args:
        n: dataset length.
        global_batch: samples per optimiser step over all ranks (``cfg.train.batch_size``).
        seed, epoch: define the permutation (:func:`epoch_permutation`).
        rank, world_size: this process's slice of every global batch.
        start_batch: first batch position to yield (resume).
        max_batches: cap on the batches of the epoch (``cfg.train.steps_per_epoch``), 0 = all.
    """

    def __init__(self, n: int, global_batch: int, seed: int, epoch: int = 0, rank: int = 0,
                 world_size: int = 1, start_batch: int = 0, max_batches: int = 0, shuffle: bool = True):
        if global_batch % world_size:
            raise ValueError(f"train.batch_size={global_batch} is not divisible by the "
                             f"world size {world_size} (the global batch is split across ranks)")
        if n < global_batch:
            raise ValueError(f"the training split has {n} samples, fewer than one batch "
                             f"(train.batch_size={global_batch})")
        self.n, self.global_batch, self.seed, self.epoch = n, global_batch, seed, epoch
        self.rank, self.world_size, self.shuffle = rank, world_size, shuffle
        self.local_batch = global_batch // world_size
        self.start_batch = start_batch
        self.max_batches = max_batches

    @property
    def batches_per_epoch(self) -> int:
        full = self.n // self.global_batch
        return min(full, self.max_batches) if self.max_batches > 0 else full

    def __len__(self) -> int:
        return max(0, self.batches_per_epoch - self.start_batch)

    def __iter__(self) -> Iterator[list]:
        perm = epoch_permutation(self.n, self.seed, self.epoch, self.shuffle)
        lo = self.rank * self.local_batch
        for b in range(self.start_batch, self.batches_per_epoch):
            g = perm[b * self.global_batch:(b + 1) * self.global_batch]
            yield [(self.epoch, int(i)) for i in g[lo:lo + self.local_batch]]


class SeededDataset(Dataset):
    """Dataset wrapper taking ``(epoch, index)`` keys; augmentation RNG seeded per sample.

    The RNG states of the calling process are saved before and restored after each sample, so
    loading data in the main process (``num_workers=0``) does not perturb the training RNG.
    """

    def __init__(self, dataset: Dataset, seed: int):
        self.dataset = dataset
        self.seed = int(seed)

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: Sequence[int]) -> Any:
        epoch, index = key
        s = _seed_from(self.seed, epoch, index)
        py_state, np_state, t_state = random.getstate(), np.random.get_state(), torch.get_rng_state()
        if hasattr(self.dataset, "set_epoch"):  # datasets seeding augmentation by (seed, epoch, index)
            self.dataset.set_epoch(epoch)
        try:
            random.seed(s)
            np.random.seed(s)
            torch.default_generator.manual_seed(s)
            return self.dataset[index]
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)
            torch.set_rng_state(t_state)


def make_train_loader(dataset: Dataset, sampler: EpochBatchSampler, num_workers: int,
                      pin_memory: bool = False) -> DataLoader:
    """DataLoader over a :class:`SeededDataset` with the given batch sampler.

    A private ``torch.Generator`` is passed so that creating the iterator does not draw the
    workers' base seed from the global torch RNG (that would make the training RNG depend on
    where an epoch was resumed).
    """
    gen = torch.Generator()
    gen.manual_seed(_seed_from(sampler.seed, sampler.epoch, 0xDA7A))
    return DataLoader(dataset, batch_sampler=sampler, num_workers=num_workers,
                      collate_fn=default_collate, pin_memory=pin_memory, generator=gen,
                      worker_init_fn=_ignore_stop_signals if num_workers > 0 else None)


def _ignore_stop_signals(_worker_id: int) -> None:
    """Loader workers ignore SIGTERM / SIGUSR1. Slurm preemption (and ``pkill``) signals every
    process of the job; a worker that died of it made the main process fail with "DataLoader worker
    killed" instead of finishing its step and writing the checkpoint. The main process handles the
    signal and shuts the workers down itself."""
    import signal

    for name in ("SIGTERM", "SIGUSR1"):
        sig = getattr(signal, name, None)
        if sig is not None:
            signal.signal(sig, signal.SIG_IGN)
