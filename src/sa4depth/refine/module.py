"""``SA4DepthRefiner``: the trainable pose-refinement module of SA4Depth (Sec. V, Fig. 2).

Given the frames of a training sample, the predicted depth of the reference (centre) frame 0 and
the pose-net poses ``T_{f<-0}``, it extracts features/confidences (Eq. 7), samples N reference
points with valid depth, and runs the batched LM refinement of :mod:`sa4depth.refine.lm`
(Eqs. 8-13) for all (sample, query frame) pairs at once: the pairs are stacked frame-major into
the batch dimension (``[f_1 samples..., f_2 samples...]``).

Switches (``cfg.refine``; Table VI rows in brackets):

- ``init``: ``posenet`` starts from ``T_init`` (row 4+); ``coarse`` ignores the pose net and
  starts from the identity, refining coarse-to-fine over ``coarse_levels`` pyramid levels as
  PixLoc does (rows 2-3). Our pyramid average-pools the single feature/confidence map by
  ``2**l`` (and re-normalises the features) instead of PixLoc's per-level decoder heads.
- ``depth_source``: ``pred`` back-projects with the predicted depth (the paper's method);
  ``lidar`` with sparse GT points (row 2); only pixels with depth > 0 are sampled.
- ``detach_depth`` (row 10): the depth is detached before back-projection, so no gradient flows
  from the refined pose into the depth net.
- ``features``: ``learned`` (FeatureNet, trained jointly), ``image`` (row 12: RGB intensities,
  average-pooled to the feature stride, no confidence), ``mast3r``/``pixloc`` (rows 15-16: a frozen
  TorchScript extractor from ``feature_weights``, see :mod:`sa4depth.refine.pretrained`).
- ``confidence: false`` (row 13): W of Eq. 11 keeps only the robust-loss weights.
- ``learnable_damping: false`` (row 14): lambda is a fixed buffer at ``damping_init``.

Damping (Eq. 10, ours where the paper is silent): PixLoc's parameterisation,
``lambda = 10 ** (lo + sigmoid(p) * (hi - lo))`` with ``lo, hi = log10(damping_min),
log10(damping_max)`` and one ``p`` per degree of freedom, initialised so that lambda equals
``damping_init``. The trainer gives ``p`` the learning rate ``train.lr * refine.damping_lr_mult``
(PixLoc trains it 100x faster than the network): with ``ln lambda`` under Adam at the network's
1e-4, a 300-step run moved lambda from 1.000e-3 to 1.002e-3, so the learnable and the fixed
damping (row 14) could not differ.
- ``use_for_warp`` (row 11) is applied by the trainer: when false, the trainer warps with the
  pose-net pose and uses the refined pose only as the Eq. 15 target; this module always returns
  the refined pose.

Sampling (``sampling``): ``random`` draws N distinct pixels uniformly among valid depths for every
sample (fresh points each step cover the image over training, as PixLoc samples its 3-D points);
``grid`` takes a regular grid of about N pixels (deterministic), invalid ones being masked.
"""
from __future__ import annotations

import math
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from sa4depth.config import Config
from sa4depth.geometry import backproject
from sa4depth.refine.jacobians import image_to_feature_coords, interpolate_with_gradient, intrinsics_at_stride
from sa4depth.refine.lm import LMOptions, refine_pose

__all__ = ["SA4DepthRefiner", "sample_reference_pixels"]


def sample_reference_pixels(valid: torch.Tensor, num_points: int, mode: str = "random") -> torch.Tensor:
    """Indices (B,N) into the flattened H*W grid of the reference image.

    ``valid`` (B,1,H,W) bool. ``random``: N distinct pixels per sample, uniform over valid ones
    (``torch.multinomial`` without replacement, batched; if fewer than N are valid, the rest are
    invalid pixels that the caller masks). ``grid``: a regular gh x gw grid with gh*gw ~ N.
    """
    B, _, H, W = valid.shape
    n = min(num_points, H * W)
    if mode == "random":
        probs = valid.reshape(B, H * W).to(torch.float32)
        probs = probs + 1e-6 * (1.0 - probs)  # invalid pixels only when valid ones run out
        return torch.multinomial(probs, n, replacement=False)
    if mode == "grid":
        gh = max(1, min(H, round(math.sqrt(n * H / W))))
        gw = max(1, min(W, round(n / gh)))
        ys = torch.linspace(0, H - 1, gh, device=valid.device).round().long()
        xs = torch.linspace(0, W - 1, gw, device=valid.device).round().long()
        idx = (ys[:, None] * W + xs[None, :]).reshape(1, -1)
        return idx.expand(B, -1)
    raise ValueError(f"refine.sampling: unknown mode {mode!r} (random | grid)")


class SA4DepthRefiner(nn.Module):
    """Feature-metric LM pose refinement; see the module docstring for the switches."""

    def __init__(self, cfg: Config):
        super().__init__()
        rc = cfg.refine
        self.rc = rc
        for key in ("damping_min", "damping_max"):
            if not rc[key] > 0:
                raise ValueError(f"refine.{key}: must be > 0, got {rc[key]!r}")
        if not rc.damping_min <= rc.damping_init <= rc.damping_max:
            raise ValueError(
                f"refine.damping_init={rc.damping_init} must lie in [refine.damping_min={rc.damping_min}, "
                f"refine.damping_max={rc.damping_max}]"
            )
        self.features = rc.features
        self.extractor: nn.Module | None = None
        if rc.features == "learned":
            from sa4depth.models.feature_net import FeatureNet

            self.extractor = FeatureNet.from_config(rc)
        elif rc.features in ("mast3r", "pixloc"):
            from sa4depth.refine.pretrained import load_pretrained_extractor

            self.extractor = load_pretrained_extractor(rc.features, rc.feature_weights)
        elif rc.features != "image":
            raise ValueError(f"refine.features: unknown feature type {rc.features!r}")
        lo, hi = math.log10(rc.damping_min), math.log10(rc.damping_max)
        if not hi > lo:
            raise ValueError(f"refine.damping_max={rc.damping_max} must be > refine.damping_min={rc.damping_min}")
        u = (math.log10(rc.damping_init) - lo) / (hi - lo)
        u = min(max(u, 1e-6), 1.0 - 1e-6)  # damping_init at a bound: just inside it
        logit_init = torch.full((6,), math.log(u / (1.0 - u)))
        if rc.learnable_damping:
            self.damping_logit = nn.Parameter(logit_init)
        else:
            self.register_buffer("damping_logit", logit_init)
        self.opts = LMOptions(
            iterations=rc.iterations,
            robust=rc.robust,
            robust_scale=rc.robust_scale,
            irls=rc.irls,
            irls_clip=rc.irls_clip,
        )

    # ------------------------------------------------------------------ pieces
    @property
    def damping(self) -> torch.Tensor:
        """lambda of Eq. 10 per degree of freedom [omega, rho], in (damping_min, damping_max)."""
        lo, hi = math.log10(self.rc.damping_min), math.log10(self.rc.damping_max)
        return torch.pow(10.0, lo + torch.sigmoid(self.damping_logit) * (hi - lo))

    def extract(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Images (B,3,H,W) in [0,1] -> (features (B,C,h,w), confidence (B,1,h,w) or None)."""
        if self.features == "image":
            s = 2**self.rc.feature_level
            feats = F.avg_pool2d(images, s) if s > 1 else images
            conf = None
        else:
            assert self.extractor is not None
            feats, conf = self.extractor(images)
        if not self.rc.confidence:
            conf = None
        return feats, conf

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        images: Mapping[int, torch.Tensor],
        depth: torch.Tensor,
        K: torch.Tensor,
        T_init: Mapping[int, torch.Tensor] | None = None,
        lidar_depth: torch.Tensor | None = None,
    ) -> tuple[dict[int, torch.Tensor], dict[str, float]]:
        """Refine ``T_{f<-0}`` for every query frame f != 0 of ``images``.

        Args:
            images: frame id -> (B,3,H,W) in [0,1]; must contain the reference frame 0.
            depth: (B,1,H,W) predicted depth of frame 0 (same resolution as the images).
            K: (B,4,4) pixel intrinsics of those images.
            T_init: frame id -> (B,4,4) pose-net poses (required when ``init = posenet``).
            lidar_depth: (B,1,H,W) sparse depth, 0 = invalid (required when ``depth_source = lidar``).

        Returns:
            ``(T_refined: frame id -> (B,4,4), stats: dict of floats)``.
        """
        rc = self.rc
        if 0 not in images:
            raise ValueError(f"SA4DepthRefiner: images must contain the reference frame 0, got frames {sorted(images)}")
        ref = images[0]
        B, _, H, W = ref.shape
        qids = [f for f in images if f != 0]
        if not qids:
            raise ValueError("SA4DepthRefiner: no query frame (images has only frame 0)")
        for f in qids:
            if images[f].shape != ref.shape:
                raise ValueError(f"SA4DepthRefiner: frame {f} has shape {tuple(images[f].shape)}, frame 0 {tuple(ref.shape)}")
        if depth.shape != (B, 1, H, W):
            raise ValueError(f"SA4DepthRefiner: depth must be {(B, 1, H, W)}, got {tuple(depth.shape)}")
        if K.shape[-2:] != (4, 4) or K.shape[0] != B:
            raise ValueError(f"SA4DepthRefiner: K must be (B,4,4) with B={B}, got {tuple(K.shape)}")
        nq = len(qids)

        # depth used for the reprojection (Eq. 8) and the points to sample
        if rc.depth_source == "lidar":
            if lidar_depth is None:
                raise ValueError("refine.depth_source=lidar needs lidar_depth (sparse GT depth), got None")
            if lidar_depth.shape != (B, 1, H, W):
                raise ValueError(f"SA4DepthRefiner: lidar_depth must be {(B, 1, H, W)}, got {tuple(lidar_depth.shape)}")
            D = lidar_depth
        else:
            D = depth.detach() if rc.detach_depth else depth
        valid_map = torch.isfinite(D) & (D > 0)
        D = torch.where(valid_map, D, torch.ones_like(D))  # finite everywhere, invalid ones masked below

        # initial poses, stacked frame-major
        if rc.init == "posenet":
            if T_init is None:
                raise ValueError("refine.init=posenet needs T_init (the pose-net poses), got None")
            missing = [f for f in qids if f not in T_init]
            if missing:
                raise ValueError(f"SA4DepthRefiner: T_init lacks frames {missing}")
            T0 = torch.cat([T_init[f] for f in qids], dim=0).to(ref.dtype)
        else:
            T0 = torch.eye(4, dtype=ref.dtype, device=ref.device).expand(B * nq, 4, 4)

        # features of all frames in one pass: [frame 0, query frames...]
        feats, conf = self.extract(torch.cat([ref] + [images[f] for f in qids], dim=0))
        F_r, F_q = feats[:B], feats[B:]
        C_r = conf[:B] if conf is not None else None
        C_q = conf[B:] if conf is not None else None

        # reference points: sampled pixels, back-projected with the depth
        with torch.no_grad():
            idx = sample_reference_pixels(valid_map, rc.num_points, rc.sampling)  # (B,N)
        inv_K = torch.linalg.inv(K.to(ref.dtype))
        cam = backproject(D, inv_K)[:, :3]  # (B,3,HW)
        P = torch.gather(cam, 2, idx[:, None, :].expand(-1, 3, -1)).transpose(1, 2)  # (B,N,3)
        valid_ref = torch.gather(valid_map.reshape(B, H * W), 1, idx)
        uv_img = torch.stack([(idx % W).to(ref.dtype), torch.div(idx, W, rounding_mode="floor").to(ref.dtype)], -1)

        P = P.repeat(nq, 1, 1)
        valid_ref = valid_ref.repeat(nq, 1)
        uv_img = uv_img.repeat(nq, 1, 1)
        Kq = K.to(ref.dtype).repeat(nq, 1, 1)
        F_r = F_r.repeat(nq, 1, 1, 1)
        C_r = C_r.repeat(nq, 1, 1, 1) if C_r is not None else None

        levels = list(range(rc.coarse_levels - 1, -1, -1)) if rc.init == "coarse" else [0]
        damping = self.damping
        T = T0
        totals: dict[str, torch.Tensor] = {}
        cost_init = None
        for lvl in levels:
            k = 2**lvl
            Fr_l, Fq_l, Cr_l, Cq_l = F_r, F_q, C_r, C_q
            if k > 1:
                Fr_l, Fq_l = F.avg_pool2d(F_r, k, ceil_mode=True), F.avg_pool2d(F_q, k, ceil_mode=True)
                if self.features != "image":
                    Fr_l, Fq_l = F.normalize(Fr_l, dim=1), F.normalize(Fq_l, dim=1)
                Cr_l = F.avg_pool2d(C_r, k, ceil_mode=True) if C_r is not None else None
                Cq_l = F.avg_pool2d(C_q, k, ceil_mode=True) if C_q is not None else None
            sy, sx = H / Fr_l.shape[-2], W / Fr_l.shape[-1]
            uv_f = image_to_feature_coords(uv_img, sx, sy)
            f_ref, _, _ = interpolate_with_gradient(Fr_l, uv_f, with_gradient=False)
            c_ref = None
            if Cr_l is not None:
                c_ref = interpolate_with_gradient(Cr_l, uv_f, with_gradient=False)[0].squeeze(-1)
            T, st = refine_pose(
                T, P, valid_ref, f_ref, c_ref, Fq_l, Cq_l, intrinsics_at_stride(Kq, sx, sy), damping, self.opts
            )
            if cost_init is None:
                cost_init = st["cost_init"]
            for key in ("fallbacks", "retries"):
                totals[key] = totals.get(key, 0) + st[key].sum()
            totals["cost_final"] = st["cost_final"]
            totals["valid_frac"] = st["valid_frac"]

        T_refined = {f: T[i * B : (i + 1) * B] for i, f in enumerate(qids)}
        #: per-pair LM costs (B*nq,), frame-major like T; read by the scale-alignment monitor
        self.last_pair_costs = (cost_init.detach(), totals["cost_final"].detach())
        stats = {
            "refine_cost_init": float(cost_init.mean()),
            "refine_cost_final": float(totals["cost_final"].mean()),
            "refine_fallbacks": float(totals["fallbacks"]),
            "refine_retries": float(totals["retries"]),
            "refine_valid_frac": float(totals["valid_frac"].mean()),
            "refine_damping": float(damping.detach().mean()),
            "refine_pairs": float(B * nq),
            "refine_lm_steps": float(len(levels) * self.opts.iterations),
        }
        return T_refined, stats
