"""The three factors of the feature-metric Jacobian (SA4Depth Eq. 9, after PixLoc [25]).

    dr/dxi = dF_q/dp'  x  dp'/dX  x  dX/dxi

- :func:`interpolate_with_gradient`: bilinear interpolation of a feature map at sub-pixel points
  together with the exact spatial derivative of the *bilinear interpolant* (``dF_q/dp'``). PixLoc
  instead interpolates a finite-difference gradient image; we use the exact derivative of the
  function that is actually evaluated, so the analytic Jacobian equals autograd's.
- :func:`projection_jacobian`: the pinhole derivative ``dp'/dX`` (2x3), KITTI/OpenCV camera
  (x right, y down, z forward).
- :func:`point_jacobian_left`: ``dX/dxi`` for a **left** perturbation ``T <- exp(xi) T`` of the
  transform applied to the point, with xi = [omega, rho] (rotation first, as
  ``sa4depth.geometry.se3_exp``): ``exp(xi) X ~ X + omega x X + rho``, hence ``[-[X]x, I]``.

Pixel convention: pixel ``(u, v)`` is the centre of column ``u`` / row ``v`` (Monodepth2 / OpenCV
integer-centred pixels). A feature map of stride ``s`` has its pixel ``j`` centred on image
coordinate ``s * (j + 0.5) - 0.5``; :func:`intrinsics_at_stride` folds that into K.
"""
from __future__ import annotations

import torch

__all__ = [
    "interpolate_with_gradient",
    "projection_jacobian",
    "point_jacobian_left",
    "intrinsics_at_stride",
    "image_to_feature_coords",
]


def intrinsics_at_stride(K: torch.Tensor, sx: float, sy: float) -> torch.Tensor:
    """Pixel intrinsics (B,4,4) of an image -> intrinsics of a map with stride (sx, sy).

    With integer-centred pixels, image coordinate u maps to map coordinate
    ``u_f = (u + 0.5) / sx - 0.5``, i.e. ``fx_f = fx / sx`` and ``cx_f = (cx + 0.5) / sx - 0.5``.
    """
    Kf = K.clone()
    Kf[..., 0, :3] = K[..., 0, :3] / sx
    Kf[..., 1, :3] = K[..., 1, :3] / sy
    Kf[..., 0, 2] = (K[..., 0, 2] + 0.5) / sx - 0.5
    Kf[..., 1, 2] = (K[..., 1, 2] + 0.5) / sy - 0.5
    return Kf


def image_to_feature_coords(uv: torch.Tensor, sx: float, sy: float) -> torch.Tensor:
    """Image pixel coordinates (...,2) -> coordinates of a map of stride (sx, sy)."""
    scale = uv.new_tensor([sx, sy])
    return (uv + 0.5) / scale - 0.5


def interpolate_with_gradient(
    fmap: torch.Tensor, uv: torch.Tensor, with_gradient: bool = True
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """Bilinearly sample ``fmap`` (B,C,H,W) at points ``uv`` (B,N,2) given in map pixels.

    Returns ``(values (B,N,C), grad (B,N,C,2) or None, valid (B,N) bool)``. ``grad[..., 0]`` is
    dF/du and ``grad[..., 1]`` dF/dv of the bilinear interpolant inside the cell containing the
    point: with ``a = u - floor(u)``, ``b = v - floor(v)``,
    ``dF/du = (1-b)(F10-F00) + b(F11-F01)`` and ``dF/dv = (1-a)(F01-F00) + a(F11-F10)``.
    Points outside ``[0, W-1] x [0, H-1]`` are invalid; their values come from the clamped
    border cell (finite, so masked-out terms never produce NaN gradients).
    Everything is differentiable w.r.t. ``fmap`` and ``uv``.
    """
    B, C, H, W = fmap.shape
    u, v = uv[..., 0], uv[..., 1]
    valid = (u >= 0) & (u <= W - 1) & (v >= 0) & (v <= H - 1) & torch.isfinite(u) & torch.isfinite(v)
    # keep the sample inside the map so that indices and weights stay finite
    u = torch.nan_to_num(u, nan=0.0).clamp(0, W - 1)
    v = torch.nan_to_num(v, nan=0.0).clamp(0, H - 1)
    x0 = torch.floor(u.detach()).clamp(0, max(W - 2, 0))
    y0 = torch.floor(v.detach()).clamp(0, max(H - 2, 0))
    a = (u - x0).unsqueeze(-1)  # (B,N,1)
    b = (v - y0).unsqueeze(-1)
    x0i, y0i = x0.long(), y0.long()
    x1i = (x0i + 1).clamp(max=W - 1)
    y1i = (y0i + 1).clamp(max=H - 1)
    flat = fmap.reshape(B, C, H * W).transpose(1, 2)  # (B,HW,C)

    def gather(yi: torch.Tensor, xi: torch.Tensor) -> torch.Tensor:
        idx = (yi * W + xi).unsqueeze(-1).expand(-1, -1, C)
        return torch.gather(flat, 1, idx)  # (B,N,C)

    f00, f10 = gather(y0i, x0i), gather(y0i, x1i)
    f01, f11 = gather(y1i, x0i), gather(y1i, x1i)
    values = (1 - a) * (1 - b) * f00 + a * (1 - b) * f10 + (1 - a) * b * f01 + a * b * f11
    grad = None
    if with_gradient:
        du = (1 - b) * (f10 - f00) + b * (f11 - f01)
        dv = (1 - a) * (f01 - f00) + a * (f11 - f10)
        grad = torch.stack([du, dv], dim=-1)  # (B,N,C,2)
    return values, grad, valid


def projection_jacobian(X: torch.Tensor, K: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """d(u, v)/d(X, Y, Z) of the pinhole projection ``u = fx X/Z + cx``, ``v = fy Y/Z + cy``.

    ``X`` (B,N,3) in the camera frame, ``K`` (B,4,4) or (B,3,3) pixel intrinsics (zero skew).
    Returns (B,N,2,3). Depths are clamped to ``eps`` (points behind the camera are masked by the
    caller), so the result is always finite.
    """
    fx = K[..., 0, 0].unsqueeze(-1)
    fy = K[..., 1, 1].unsqueeze(-1)
    x, y = X[..., 0], X[..., 1]
    z = X[..., 2].clamp_min(eps)
    iz = 1.0 / z
    zero = torch.zeros_like(z)
    row_u = torch.stack([fx * iz, zero, -fx * x * iz * iz], dim=-1)
    row_v = torch.stack([zero, fy * iz, -fy * y * iz * iz], dim=-1)
    return torch.stack([row_u, row_v], dim=-2)


def point_jacobian_left(X: torch.Tensor) -> torch.Tensor:
    """dX'/dxi at xi = 0 for ``X' = exp(xi) X`` (left perturbation), xi = [omega, rho].

    ``X`` (...,3) is the point **after** the current transform (query camera frame).
    Returns (...,3,6) = ``[-[X]x, I]``.
    """
    x, y, z = X[..., 0], X[..., 1], X[..., 2]
    o = torch.zeros_like(x)
    one = torch.ones_like(x)
    # -[X]x = [[0, z, -y], [-z, 0, x], [y, -x, 0]]
    rows = [
        torch.stack([o, z, -y, one, o, o], dim=-1),
        torch.stack([-z, o, x, o, one, o], dim=-1),
        torch.stack([y, -x, o, o, o, one], dim=-1),
    ]
    return torch.stack(rows, dim=-2)
