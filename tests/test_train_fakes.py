"""In-memory stand-in for a training split (helpers for the trainer tests; no tests here).

A textured fronto-parallel scene seen by a camera moving forward: frame f is rendered by warping
a base texture with the exact plane homography, so the samples carry a consistent GT pose and
v*dt. Used where the synthetic renderer's files are not needed (DDP, resume, pose sources).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


class PlaneDataset(torch.utils.data.Dataset):
    def __init__(self, n: int = 8, height: int = 32, width: int = 96, frame_ids=(0, -1, 1), num_scales: int = 4,
                 step_m: float = 0.5, plane_depth: float = 8.0, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.n, self.h, self.w, self.frame_ids, self.num_scales = n, height, width, list(frame_ids), num_scales
        self.step, self.z = step_m, plane_depth
        big = torch.rand(n, 3, height // 4, width // 4, generator=g)
        self.tex = F.interpolate(big, size=(height * 2, width * 2), mode="bicubic", align_corners=False).clamp(0, 1)
        K = np.array([[0.58 * width, 0, 0.5 * width, 0], [0, 1.92 * height, 0.5 * height, 0], [0, 0, 1, 0],
                      [0, 0, 0, 1]], np.float32)
        self.K = K

    def __len__(self) -> int:
        return self.n

    def _render(self, i: int, f: int) -> torch.Tensor:
        # camera at z = f*step looking at a plane at distance z - f*step: a zoom about the centre
        s = self.z / (self.z - f * self.step)
        theta = torch.tensor([[1 / s, 0, 0], [0, 1 / s, 0]], dtype=torch.float32)[None] * 0.5
        grid = F.affine_grid(theta, (1, 3, self.h, self.w), align_corners=False)
        return F.grid_sample(self.tex[i:i + 1], grid, align_corners=False)[0]

    def __getitem__(self, i: int) -> dict:
        out: dict = {"index": i, "key": f"plane {i} l"}
        jitter = 0.9 + 0.2 * float(np.random.rand())  # global-RNG augmentation (seeded by the trainer)
        for f in self.frame_ids:
            img = self._render(i, f)
            for s in range(self.num_scales):
                im = F.interpolate(img[None], size=(self.h // 2 ** s, self.w // 2 ** s), mode="area")[0] if s else img
                out[("color", f, s)] = im
                out[("color_aug", f, s)] = (im * jitter).clamp(0, 1)
            if f != 0:
                T = np.eye(4, dtype=np.float32)
                T[2, 3] = -f * self.step
                out[("pose_gt", f)] = torch.from_numpy(T)
                out[("trans_norm_gt", f)] = torch.tensor(abs(f) * self.step, dtype=torch.float32)
        for s in range(self.num_scales):
            K = self.K.copy()
            K[:2] /= 2 ** s
            out[("K", s)] = torch.from_numpy(K)
            out[("inv_K", s)] = torch.from_numpy(np.linalg.inv(K).astype(np.float32))
        out["depth_gt"] = torch.full((1, self.h, self.w), self.z)
        return out


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ddp_worker(rank: int, world: int, port: int, cfg_dict: dict, out_dir: str, n: int) -> None:
    """torch.multiprocessing.spawn target: one DDP rank training on PlaneDataset (gloo, CPU)."""
    import os

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from sa4depth.config import Config
    from sa4depth.train import train

    train(Config(cfg_dict), out_dir, resume="never", progress=False, dataset=PlaneDataset(n=n), log=lambda *_: None)
