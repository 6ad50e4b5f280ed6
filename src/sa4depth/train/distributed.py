"""Distributed data parallel (torchrun) helpers and batch-norm synchronisation.

Launch: ``torchrun --nproc_per_node N -m sa4depth train ...`` (or ``.venv/bin/torchrun``);
torchrun sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``.
Backend: ``nccl`` on CUDA, ``gloo`` on CPU. The global batch ``cfg.train.batch_size`` is split
evenly across ranks; only rank 0 writes files.

Why batch norm needs care. Monodepth2's ResNet encoders use BatchNorm. Under plain DDP each rank
normalises with the statistics of its *local* sub-batch, so a 2-process run is a different model
from a 1-process run with the same global batch (and the running statistics differ). With
``cfg.train.sync_bn`` (default true) BatchNorm layers compute their statistics over the global
batch: on CUDA with :class:`torch.nn.SyncBatchNorm`; on CPU (where torch's SyncBatchNorm refuses
to run) with :class:`GlobalBatchNorm2d` below, which all-reduces the per-channel sums through
``torch.distributed.nn.functional.all_reduce`` (differentiable: its backward all-reduces the
gradient, like SyncBatchNorm's). Then N ranks x B/N samples compute the same function, the same
gradients (DDP averages the ranks' mean losses = the global mean) and the same running statistics
as one process with B samples, up to float summation order.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
import torch.nn as nn

# the autograd-aware collective below is the one SyncBatchNorm-style layers need; its successor in
# torch.distributed._functional_collectives is private API
warnings.filterwarnings("ignore", message=r"torch\.distributed\.nn\.functional\.all_reduce is deprecated")

__all__ = ["DistInfo", "init_distributed", "cleanup_distributed", "GlobalBatchNorm2d",
           "convert_batchnorm", "all_reduce_mean"]


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    bn_group: Any = None  # process group used by GlobalBatchNorm2d

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device_type: str) -> DistInfo:
    """Initialise the default process group from torchrun's environment (no-op when absent)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        if device_type == "cuda":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend, rank=rank, world_size=world)
    # a separate group for batch-norm collectives keeps them apart from DDP's gradient buckets
    bn_group = dist.new_group(backend="gloo" if device_type != "cuda" else None)
    return DistInfo(rank=rank, world_size=world, local_rank=local_rank, bn_group=bn_group)


def cleanup_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics span all ranks (CPU-capable SyncBatchNorm).

    Same parameters, buffers and state-dict keys as ``nn.BatchNorm2d``. Statistics are computed
    in two passes (global mean, then global mean squared deviation) for the same numerics as
    the single-process layer; running variance uses the unbiased estimate like PyTorch.
    """

    group: Any = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized()
                and dist.get_world_size(self.group) > 1):
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        dims = (0, 2, 3)
        count = torch.tensor([x.shape[0] * x.shape[2] * x.shape[3]], dtype=x.dtype, device=x.device)
        n = all_reduce(count.detach(), group=self.group)
        mean = all_reduce(x.sum(dims), group=self.group) / n
        xc = x - mean[None, :, None, None]
        var = all_reduce((xc * xc).sum(dims), group=self.group) / n
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                unbiased = var * (n / (n - 1).clamp(min=1))
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(unbiased.detach(), alpha=m)
        y = xc * torch.rsqrt(var + self.eps)[None, :, None, None]
        if self.affine:
            y = y * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        return y


def convert_batchnorm(module: nn.Module, info: DistInfo, device_type: str) -> nn.Module:
    """Replace every BatchNorm2d by its global-statistics version (in place where possible)."""
    if not info.enabled:
        return module
    if device_type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module, process_group=info.bn_group)

    def swap(m: nn.Module) -> nn.Module:
        if type(m) is nn.BatchNorm2d:
            new = GlobalBatchNorm2d(m.num_features, m.eps, m.momentum, m.affine, m.track_running_stats)
            new.load_state_dict(m.state_dict())
            new.train(m.training)
            new.group = info.bn_group
            new.to(next(m.buffers()).device if list(m.buffers()) else "cpu")
            return new
        for name, child in m.named_children():
            setattr(m, name, swap(child))
        return m

    return swap(module)


def all_reduce_mean(values: dict[str, float], info: DistInfo, device: torch.device) -> dict[str, float]:
    """Average logged scalars over ranks (for logging only)."""
    if not info.enabled or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    t /= info.world_size
    return dict(zip(keys, t.tolist()))

