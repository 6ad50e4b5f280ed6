"""Training losses of the Monodepth2 baseline and of SA4Depth.

* photometric error, SSIM + L1 (Monodepth2 ``compute_reprojection_loss``; SA4Depth Eq. 4);
* per-pixel minimum reprojection + auto-masking (Monodepth2 ``compute_losses``);
* edge-aware smoothness on mean-normalised disparity (Monodepth2 ``get_smooth_loss``);
* pose self-supervision between the pose-net and the refined pose (SA4Depth Eq. 15);
* velocity supervision of the translation norm (PackNet-SfM, Guizilini et al. 2020; SA4Depth Eq. 16);
* multiplicative depth noise of the robustness study (SA4Depth Table VII, Eq. 18).

All tensors are batched; the functions return scalars (mean over the batch and pixels) unless
stated otherwise.
"""
from __future__ import annotations

import contextlib
from typing import Mapping, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    "ssim",
    "SSIM",
    "photometric_error",
    "photometric_errors",
    "identity_errors",
    "reprojection_loss",
    "smoothness_loss",
    "rotation_angle",
    "pose_consistency_loss",
    "velocity_loss",
    "depth_noise",
]

SSIM_C1 = 0.01**2
SSIM_C2 = 0.03**2


def ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-pixel SSIM dissimilarity ``clamp((1 - SSIM) / 2, 0, 1)``, ``(B, C, H, W)``.

    Local statistics from a 3x3 mean pool after reflection padding of 1 pixel, ``C1 = 0.01^2``,
    ``C2 = 0.03^2`` (Monodepth2 ``layers.SSIM``)."""
    # the five local means in one call over stacked channels, as a depthwise 3x3 convolution with
    # weights 1/9: the same means as avg_pool2d(3, 1) up to float rounding (~1e-7), and on CPU the
    # pooling about 3.5x faster forward + backward (benchmarks/README.md, "Where a step's time goes").
    # Outside autocast, in the inputs' precision as avg_pool2d was: under AMP a convolution would run
    # in half precision, where the variances E[x^2] - E[x]^2 below cancel.
    c = x.shape[1]
    stats = F.pad(torch.cat([x, y, x * x, y * y, x * y], dim=1), (1, 1, 1, 1), mode="reflect")
    box = torch.full((5 * c, 1, 3, 3), 1.0 / 9.0, dtype=stats.dtype, device=stats.device)
    no_amp = (torch.autocast(device_type=stats.device.type, enabled=False)
              if stats.device.type in ("cpu", "cuda") else contextlib.nullcontext())
    with no_amp:
        means = F.conv2d(stats, box, groups=5 * c)
    mu_x, mu_y, e_xx, e_yy, e_xy = means.split(c, dim=1)
    sigma_x = e_xx - mu_x * mu_x
    sigma_y = e_yy - mu_y * mu_y
    sigma_xy = e_xy - mu_x * mu_y
    n = (2 * mu_x * mu_y + SSIM_C1) * (2 * sigma_xy + SSIM_C2)
    d = (mu_x * mu_x + mu_y * mu_y + SSIM_C1) * (sigma_x + sigma_y + SSIM_C2)
    return torch.clamp((1 - n / d) / 2, 0, 1)


class SSIM(nn.Module):
    """Module form of :func:`ssim` (no parameters)."""

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return ssim(x, y)


def photometric_error(pred: torch.Tensor, target: torch.Tensor, ssim_weight: float = 0.85) -> torch.Tensor:
    """``pe = a * SSIM_dissim + (1 - a) * |pred - target|``, each averaged over channels,
    ``a = ssim_weight`` (0.85 in Monodepth2 / SA4Depth Eq. 4). Returns ``(B, 1, H, W)``."""
    if pred.shape != target.shape:
        raise ValueError(f"photometric_error: shapes differ, {tuple(pred.shape)} vs {tuple(target.shape)}")
    l1 = (pred - target).abs().mean(1, keepdim=True)
    if ssim_weight == 0:
        return l1
    return ssim_weight * ssim(pred, target).mean(1, keepdim=True) + (1 - ssim_weight) * l1


def photometric_errors(preds: Sequence[torch.Tensor], target: torch.Tensor, ssim_weight: float = 0.85
                       ) -> torch.Tensor:
    """:func:`photometric_error` of each of ``preds`` against ``target``, as channels ``(B, n, H, W)``
    in the order given; computed in one batched call (the same numbers as one call per image)."""
    n = len(preds)
    if n == 1:
        return photometric_error(preds[0], target, ssim_weight)
    B, _, H, W = target.shape
    pe = photometric_error(torch.cat(list(preds), 0), target.repeat(n, 1, 1, 1), ssim_weight)
    return pe.view(n, B, H, W).transpose(0, 1)


def identity_errors(identity: Mapping[int, torch.Tensor], target: torch.Tensor, frames: Sequence[int],
                    min_reprojection: bool = True, ssim_weight: float = 0.85) -> torch.Tensor:
    """The automask's photometric errors of the unwarped sources (``(B, n, H, W)``, or their mean
    with ``min_reprojection=False``). They depend on the images only: compute them once per batch
    and pass them to :func:`reprojection_loss` of every scale."""
    if any(f not in identity for f in frames):
        raise ValueError(f"reprojection_loss: automask needs identity images for frames {list(frames)}, "
                         f"have {sorted(identity)}")
    idt = photometric_errors([identity[f] for f in frames], target, ssim_weight)
    return idt if min_reprojection else idt.mean(1, keepdim=True)


def reprojection_loss(
    warped: Mapping[int, torch.Tensor],
    identity: Mapping[int, torch.Tensor] | torch.Tensor | None,
    target: torch.Tensor,
    automask: bool = True,
    min_reprojection: bool = True,
    ssim_weight: float = 0.85,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Monodepth2's photometric loss for one scale.

    ``warped[f]`` is source frame f warped into the target view, ``identity[f]`` the unwarped
    source frame f (used only when ``automask``), or the tensor :func:`identity_errors` made of
    them. Per pixel:

    * ``min_reprojection``: minimum over sources of the photometric error, else their mean;
    * ``automask``: the identity errors (min or mean alike) get ``1e-5 * randn`` tie-break noise
      and join the minimum, so pixels where an unwarped source already matches better (static
      camera, objects moving with it) are dropped (Monodepth2 ``compute_losses``).

    Returns ``(loss, info)``: ``loss`` is the mean of the per-pixel minimum; ``info`` has
    ``"automask"`` ``(B,1,H,W)`` = 1 where a warped source was selected (all ones without
    automasking), and ``"reprojection"`` ``(B,1,H,W)`` the per-pixel loss that was averaged.
    """
    if not warped:
        raise ValueError("reprojection_loss: no warped source frames")
    frames = list(warped)
    rep = photometric_errors([warped[f] for f in frames], target, ssim_weight)
    if not min_reprojection:
        rep = rep.mean(1, keepdim=True)
    if automask:
        if identity is None:
            raise ValueError(f"reprojection_loss: automask needs identity images for frames {frames}, have []")
        if isinstance(identity, torch.Tensor):
            idt = identity
            if idt.shape != rep.shape:
                raise ValueError(f"reprojection_loss: identity errors of shape {tuple(idt.shape)}, "
                                 f"expected {tuple(rep.shape)}")
        else:
            idt = identity_errors(identity, target, frames, min_reprojection, ssim_weight)
        gen_dev = generator.device if generator is not None else idt.device
        noise = torch.randn(idt.shape, generator=generator, dtype=idt.dtype, device=gen_dev).to(idt.device)
        idt = idt + 1e-5 * noise
        combined = torch.cat([idt, rep], dim=1)
    else:
        combined = rep
    if combined.shape[1] == 1:
        per_pixel = combined
        idx = torch.zeros_like(combined, dtype=torch.long)
    else:
        per_pixel, idx = combined.min(dim=1, keepdim=True)
    if automask:
        mask = (idx >= combined.shape[1] - rep.shape[1]).to(target.dtype)
    else:
        mask = torch.ones_like(per_pixel)
    return per_pixel.mean(), {"automask": mask.detach(), "reprojection": per_pixel.detach()}


def smoothness_loss(disp: torch.Tensor, img: torch.Tensor) -> torch.Tensor:
    """Edge-aware smoothness (Monodepth2 ``get_smooth_loss``) of the mean-normalised disparity
    ``d* = disp / (mean(disp) + 1e-7)`` (per image, Monodepth2 / Wang et al. 2018):
    ``mean|dx d*| e^{-mean_c|dx I|} + mean|dy d*| e^{-mean_c|dy I|}``. The caller weighs it by
    ``cfg.loss.smoothness / 2**scale`` (Monodepth2)."""
    if disp.shape[0] != img.shape[0] or disp.shape[-2:] != img.shape[-2:]:
        raise ValueError(f"smoothness_loss: disparity {tuple(disp.shape)} and image {tuple(img.shape)} differ in size")
    d = disp / (disp.mean(dim=(2, 3), keepdim=True) + 1e-7)
    gdx = (d[:, :, :, :-1] - d[:, :, :, 1:]).abs()
    gdy = (d[:, :, :-1, :] - d[:, :, 1:, :]).abs()
    gix = (img[:, :, :, :-1] - img[:, :, :, 1:]).abs().mean(1, keepdim=True)
    giy = (img[:, :, :-1, :] - img[:, :, 1:, :]).abs().mean(1, keepdim=True)
    return (gdx * torch.exp(-gix)).mean() + (gdy * torch.exp(-giy)).mean()


def rotation_angle(R: torch.Tensor) -> torch.Tensor:
    """Geodesic angle (rad, in [0, pi]) of rotation matrices ``(..., 3, 3)``, computed as
    ``atan2(|vee(R)|, (tr R - 1) / 2)``, which stays differentiable at the identity (unlike acos)."""
    w = 0.5 * torch.stack(
        [R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0], R[..., 1, 0] - R[..., 0, 1]], dim=-1
    )
    cos_t = (R[..., 0, 0] + R[..., 1, 1] + R[..., 2, 2] - 1) / 2
    return torch.atan2(w.norm(dim=-1), cos_t)


def pose_consistency_loss(T_pred: torch.Tensor, T_ref: torch.Tensor, rot_weight: float = 1.0,
                          detach_ref: bool = True) -> torch.Tensor:
    """Pose self-supervision (SA4Depth Eq. 15): the pose-net estimate ``T_pred`` is pulled to the
    refined pose ``T_ref`` (detached here unless ``detach_ref`` is false; then the loss pulls both):
    ``mean_b ||t_pred - t_ref||_2 + rot_weight * angle(R_pred^T R_ref)``. Shapes ``(B, 4, 4)``."""
    if T_pred.shape != T_ref.shape or T_pred.shape[-2:] != (4, 4):
        raise ValueError(f"pose_consistency_loss: expected two (B,4,4), got {tuple(T_pred.shape)}, {tuple(T_ref.shape)}")
    if detach_ref:
        T_ref = T_ref.detach()
    t_err = (T_pred[..., :3, 3] - T_ref[..., :3, 3]).norm(dim=-1)
    r_err = rotation_angle(T_pred[..., :3, :3].transpose(-1, -2) @ T_ref[..., :3, :3])
    return (t_err + rot_weight * r_err).mean()


def velocity_loss(translation: torch.Tensor, trans_norm_gt: torch.Tensor) -> torch.Tensor:
    """Velocity supervision (PackNet-SfM; SA4Depth Eq. 16): ``mean_b | ||t_b|| - v_b dt_b |``.

    ``translation`` ``(B, 3)`` (or ``(B, 1, 3)`` / ``(B, 4, 4)`` poses, whose translation is
    used), ``trans_norm_gt`` ``(B,)`` = speed x time interval, in metres."""
    if translation.shape[-2:] == (4, 4):
        translation = translation[..., :3, 3]
    t = translation.reshape(-1, 3)
    gt = trans_norm_gt.reshape(-1).to(t.dtype)
    if gt.shape[0] != t.shape[0]:
        raise ValueError(f"velocity_loss: {t.shape[0]} translations but {gt.shape[0]} ground-truth norms")
    return (t.norm(dim=-1) - gt).abs().mean()


def depth_noise(depth: torch.Tensor, sigma: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """SA4Depth Table VII / Eq. 18: ``D' = D * (1 + eps)``, ``eps ~ N(0, sigma^2)`` per pixel.

    Gradients flow through ``D``. The factor ``1 + eps`` is clamped at 0.01 so depths stay
    positive (reached only beyond 9.9 sigma for the paper's largest sigma = 0.1).
    ``sigma == 0`` returns ``depth`` unchanged."""
    if sigma < 0:
        raise ValueError(f"depth_noise: sigma must be >= 0, got {sigma}")
    if sigma == 0:
        return depth
    gen_dev = generator.device if generator is not None else depth.device
    eps = torch.randn(depth.shape, generator=generator, dtype=depth.dtype, device=gen_dev).to(depth.device)
    return depth * (1 + sigma * eps).clamp_min(0.01)
