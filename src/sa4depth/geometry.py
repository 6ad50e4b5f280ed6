"""Pure, batched, differentiable camera geometry.

Conventions (see ``docs/DATA_LAYOUTS.md``):

* camera frame x right, y down, z forward (OpenCV / KITTI);
* a relative pose ``T`` (4x4) maps 3-D points of the target camera (frame 0) into the camera of
  a source frame ``f``: ``X_f = T @ X_0`` (Monodepth2's ``cam_points = T @ X``);
* intrinsics are Monodepth2-style 4x4 matrices ``K`` / ``inv_K`` in pixels at the working scale;
* twists ``xi`` are ordered ``[omega (3), rho (3)]`` (rotation first, then translation), with
  ``se3_exp(xi) = [[R, V rho], [0, 1]]`` (Barfoot, *State Estimation for Robotics*, Sec. 7.1.9,
  with the blocks swapped to put rotation first, as PixLoc's ``Pose.from_aa`` ordering).

Every function works on arbitrary leading batch dimensions unless its docstring gives a fixed
shape (the Monodepth2 ones take ``(B, ...)`` exactly as Monodepth2's ``layers.py``). Small-angle
cases use Taylor expansions so that values *and* gradients are finite at zero rotation.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = [
    "skew",
    "axis_angle_to_matrix",
    "matrix_to_axis_angle",
    "se3_exp",
    "se3_log",
    "invert_pose",
    "rot_from_axisangle",
    "get_translation_matrix",
    "transformation_from_parameters",
    "pixel_grid",
    "backproject",
    "project",
    "project_points",
    "warp",
    "disp_to_depth",
]

_SMALL = 1e-3  # below this angle (rad) the Taylor branches are used


# ----------------------------------------------------------------------------- so(3) / SE(3)
def skew(v: torch.Tensor) -> torch.Tensor:
    """``(..., 3) -> (..., 3, 3)`` skew-symmetric matrix ``[v]_x`` with ``[v]_x w = v x w``."""
    if v.shape[-1] != 3:
        raise ValueError(f"skew: expected a (..., 3) tensor, got shape {tuple(v.shape)}")
    x, y, z = v.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack([o, -z, y, z, o, -x, -y, x, o], dim=-1).reshape(*v.shape[:-1], 3, 3)


def _vee(M: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`skew` applied to ``(M - M^T) / 2``: ``(..., 3, 3) -> (..., 3)``."""
    return 0.5 * torch.stack(
        [M[..., 2, 1] - M[..., 1, 2], M[..., 0, 2] - M[..., 2, 0], M[..., 1, 0] - M[..., 0, 1]], dim=-1
    )


def _theta(aa: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Angle squared, a safe angle (never 0, for the exact branch) and the small-angle mask."""
    theta2 = (aa * aa).sum(-1)
    small = theta2 < _SMALL**2
    theta = torch.sqrt(torch.where(small, torch.ones_like(theta2), theta2))
    return theta2, theta, small


def _rodrigues_coeffs(aa: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``A = sin t / t``, ``B = (1 - cos t) / t^2``, ``C = (t - sin t) / t^3`` and ``t^2``."""
    theta2, theta, small = _theta(aa)
    s, c = torch.sin(theta), torch.cos(theta)
    A = torch.where(small, 1 - theta2 / 6 + theta2 * theta2 / 120, s / theta)
    B = torch.where(small, 0.5 - theta2 / 24 + theta2 * theta2 / 720, (1 - c) / (theta * theta))
    C = torch.where(small, 1.0 / 6 - theta2 / 120 + theta2 * theta2 / 5040, (theta - s) / theta**3)
    return A, B, C, theta2


def axis_angle_to_matrix(aa: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula ``R = I + A [w]_x + B [w]_x^2``: ``(..., 3) -> (..., 3, 3)``.

    Stable (value and gradient) at and near zero rotation through Taylor expansions.
    """
    if aa.shape[-1] != 3:
        raise ValueError(f"axis_angle_to_matrix: expected (..., 3), got shape {tuple(aa.shape)}")
    A, B, _, _ = _rodrigues_coeffs(aa)
    Kx = skew(aa)
    eye = torch.eye(3, dtype=aa.dtype, device=aa.device).expand(Kx.shape)
    return eye + A[..., None, None] * Kx + B[..., None, None] * (Kx @ Kx)


def matrix_to_axis_angle(R: torch.Tensor) -> torch.Tensor:
    """Logarithm of a rotation matrix: ``(..., 3, 3) -> (..., 3)`` axis-angle, angle in [0, pi].

    ``theta = atan2(|vee(R)|, (tr R - 1) / 2)``; the axis comes from ``vee(R) = sin(theta) a`` for
    angles below pi/2 and from the symmetric part ``(R + R^T)/2 = cos t I + (1 - cos t) a a^T``
    above, so that angles close to pi stay accurate.
    """
    if R.shape[-2:] != (3, 3):
        raise ValueError(f"matrix_to_axis_angle: expected (..., 3, 3), got shape {tuple(R.shape)}")
    w = _vee(R)  # sin(theta) * axis
    sin_t = w.norm(dim=-1)
    cos_t = ((R[..., 0, 0] + R[..., 1, 1] + R[..., 2, 2]) - 1) / 2
    theta = torch.atan2(sin_t, cos_t)
    # branch 1: theta < pi/2 -> aa = w * theta / sin(theta)
    small = theta < _SMALL
    safe_sin = torch.where(small, torch.ones_like(sin_t), sin_t)
    safe_theta = torch.where(small, torch.ones_like(theta), theta)
    factor = torch.where(small, 1 + theta * theta / 6, safe_theta / safe_sin)
    aa_small = w * factor[..., None]
    # branch 2: theta >= pi/2 -> axis from the column of a a^T with the largest diagonal
    big = cos_t < 0
    one_m_cos = torch.where(big, 1 - cos_t, torch.full_like(cos_t, 2.0))
    S = 0.5 * (R + R.transpose(-1, -2))
    eye = torch.eye(3, dtype=R.dtype, device=R.device)
    aat = (S - cos_t[..., None, None] * eye) / one_m_cos[..., None, None]
    diag = torch.diagonal(aat, dim1=-2, dim2=-1)
    idx = diag.argmax(-1)
    col = torch.gather(aat, -1, idx[..., None, None].expand(*aat.shape[:-1], 1)).squeeze(-1)
    dmax = torch.gather(diag, -1, idx[..., None]).clamp_min(1e-12)
    axis = col / dmax.sqrt()
    sign = torch.where((axis * w).sum(-1, keepdim=True) < 0, -1.0, 1.0).to(R.dtype)
    aa_big = axis * sign * theta[..., None]
    return torch.where(big[..., None], aa_big, aa_small)


def se3_exp(xi: torch.Tensor) -> torch.Tensor:
    """Exponential map ``(..., 6) [omega, rho] -> (..., 4, 4)``, ``T = [[R, V rho], [0, 1]]``.

    ``V = I + B [w]_x + C [w]_x^2`` (Barfoot Eq. 7.86), Taylor-expanded near zero.
    """
    if xi.shape[-1] != 6:
        raise ValueError(f"se3_exp: expected (..., 6) [omega, rho], got shape {tuple(xi.shape)}")
    omega, rho = xi[..., :3], xi[..., 3:]
    A, B, C, _ = _rodrigues_coeffs(omega)
    Kx = skew(omega)
    K2 = Kx @ Kx
    eye = torch.eye(3, dtype=xi.dtype, device=xi.device).expand(Kx.shape)
    R = eye + A[..., None, None] * Kx + B[..., None, None] * K2
    V = eye + B[..., None, None] * Kx + C[..., None, None] * K2
    t = (V @ rho[..., None])[..., 0]
    return _compose_rt(R, t)


def se3_log(T: torch.Tensor) -> torch.Tensor:
    """Logarithm map ``(..., 4, 4) -> (..., 6) [omega, rho]``, inverse of :func:`se3_exp`.

    ``rho = V^{-1} t`` with ``V^{-1} = I - [w]_x / 2 + D [w]_x^2``,
    ``D = (1 - A / (2 B)) / theta^2`` (Barfoot Eq. 7.87), Taylor-expanded near zero.
    """
    if T.shape[-2:] != (4, 4):
        raise ValueError(f"se3_log: expected (..., 4, 4), got shape {tuple(T.shape)}")
    omega = matrix_to_axis_angle(T[..., :3, :3])
    theta2, theta, small = _theta(omega)
    s, c = torch.sin(theta), torch.cos(theta)
    D_exact = (1 - theta * s / (2 * (1 - c).clamp_min(1e-12))) / (theta * theta)
    D = torch.where(small, 1.0 / 12 + theta2 / 720 + theta2 * theta2 / 30240, D_exact)
    Kx = skew(omega)
    eye = torch.eye(3, dtype=T.dtype, device=T.device).expand(Kx.shape)
    Vinv = eye - 0.5 * Kx + D[..., None, None] * (Kx @ Kx)
    rho = (Vinv @ T[..., :3, 3:4])[..., 0]
    return torch.cat([omega, rho], dim=-1)


def _compose_rt(R: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``R (..., 3, 3)``, ``t (..., 3)`` -> homogeneous ``(..., 4, 4)``."""
    top = torch.cat([R, t[..., None]], dim=-1)
    bottom = torch.zeros(*R.shape[:-2], 1, 4, dtype=R.dtype, device=R.device)
    bottom[..., 0, 3] = 1
    return torch.cat([top, bottom], dim=-2)


def invert_pose(T: torch.Tensor) -> torch.Tensor:
    """Closed-form inverse of rigid transforms ``(..., 4, 4)``: ``[[R^T, -R^T t], [0, 1]]``."""
    Rt = T[..., :3, :3].transpose(-1, -2)
    return _compose_rt(Rt, -(Rt @ T[..., :3, 3:4])[..., 0])


# ----------------------------------------------------------------------------- Monodepth2 pose
def rot_from_axisangle(vec: torch.Tensor) -> torch.Tensor:
    """``(B, 1, 3)`` axis-angle -> ``(B, 4, 4)`` homogeneous rotation (Monodepth2 ``layers.py``).

    Computed with :func:`axis_angle_to_matrix` (exact Rodrigues, Taylor near 0) instead of
    Monodepth2's ``axis = vec / (angle + 1e-7)``; both agree to ~1e-7.
    """
    R = axis_angle_to_matrix(vec[:, 0])
    return _compose_rt(R, torch.zeros_like(vec[:, 0]))


def get_translation_matrix(translation_vector: torch.Tensor) -> torch.Tensor:
    """``(B, 1, 3)`` (or ``(B, 3)``) translation -> ``(B, 4, 4)`` (Monodepth2 ``layers.py``)."""
    t = translation_vector.reshape(-1, 3)
    eye = torch.eye(3, dtype=t.dtype, device=t.device).expand(t.shape[0], 3, 3)
    return _compose_rt(eye, t)


def transformation_from_parameters(
    axisangle: torch.Tensor, translation: torch.Tensor, invert: bool = False
) -> torch.Tensor:
    """Pose-net output -> 4x4 matrix exactly as Monodepth2: ``M = T(t) @ R`` (rotate, then
    translate); with ``invert=True``: ``M = R^T @ T(-t)`` = the inverse of the former.

    Shapes: ``axisangle``, ``translation`` ``(B, 1, 3)`` -> ``(B, 4, 4)``.
    """
    R = rot_from_axisangle(axisangle)
    t = translation.clone()
    if invert:
        R = R.transpose(1, 2)
        t = -t
    T = get_translation_matrix(t)
    return R @ T if invert else T @ R


# ----------------------------------------------------------------------------- projection
def pixel_grid(height: int, width: int, dtype=torch.float32, device=None) -> torch.Tensor:
    """Homogeneous pixel coordinates ``(3, H*W)``: rows ``u`` (column index), ``v`` (row index),
    1, in row-major order; pixel centres at integers (Monodepth2 ``BackprojectDepth``)."""
    v, u = torch.meshgrid(
        torch.arange(height, dtype=dtype, device=device),
        torch.arange(width, dtype=dtype, device=device),
        indexing="ij",
    )
    return torch.stack([u.reshape(-1), v.reshape(-1), torch.ones(height * width, dtype=dtype, device=device)])


def backproject(depth: torch.Tensor, inv_K: torch.Tensor) -> torch.Tensor:
    """Depth ``(B, 1, H, W)`` -> homogeneous camera points ``(B, 4, H*W)``:
    ``X = D(p) K^{-1} p`` (Monodepth2 ``BackprojectDepth``)."""
    if depth.dim() != 4 or depth.shape[1] != 1:
        raise ValueError(f"backproject: depth must be (B, 1, H, W), got {tuple(depth.shape)}")
    B, _, H, W = depth.shape
    pix = pixel_grid(H, W, depth.dtype, depth.device)
    rays = inv_K[:, :3, :3].to(depth.dtype) @ pix  # (B, 3, HW)
    cam = depth.reshape(B, 1, H * W) * rays
    return torch.cat([cam, torch.ones_like(cam[:, :1])], dim=1)


def project(
    points: torch.Tensor, K: torch.Tensor, T: torch.Tensor, height: int, width: int, eps: float = 1e-7
) -> torch.Tensor:
    """Homogeneous points ``(B, 4, N=H*W)`` -> sampling grid ``(B, H, W, 2)`` in [-1, 1] for
    ``F.grid_sample(..., align_corners=True)`` (Monodepth2 ``Project3D``):
    ``p = K T X``, ``uv = p_xy / (p_z + eps)``, ``grid = 2 uv / (size - 1) - 1``."""
    B = points.shape[0]
    P = (K @ T)[:, :3, :]
    cam = P @ points
    pix = cam[:, :2] / (cam[:, 2:3] + eps)
    pix = pix.reshape(B, 2, height, width).permute(0, 2, 3, 1)
    scale = torch.tensor([width - 1, height - 1], dtype=pix.dtype, device=pix.device)
    return (pix / scale - 0.5) * 2


def project_points(X: torch.Tensor, K: torch.Tensor, eps: float = 1e-7) -> tuple[torch.Tensor, torch.Tensor]:
    """Pinhole projection of camera points ``X (..., N, 3)`` with ``K (..., 3, 3)`` or
    ``(..., 4, 4)`` -> ``(uv (..., N, 2) in pixels, z (..., N))``.

    The division uses ``z.clamp(min=eps)`` (as PixLoc's ``Camera.project``); the raw ``z`` is
    returned so that callers mask points with ``z <= eps`` (behind the camera).
    """
    if X.shape[-1] != 3:
        raise ValueError(f"project_points: X must be (..., N, 3), got {tuple(X.shape)}")
    K3 = K[..., :3, :3].to(X.dtype)
    p = X @ K3.transpose(-1, -2)
    z = X[..., 2]
    uv = p[..., :2] / z.clamp(min=eps)[..., None]
    return uv, z


def warp(
    img: torch.Tensor,
    depth: torch.Tensor,
    T: torch.Tensor,
    K: torch.Tensor,
    inv_K: torch.Tensor,
    padding_mode: str = "border",
    return_grid: bool = False,
):
    """Inverse-warp a source image into the target view (Monodepth2 ``generate_images_pred``).

    ``img (B, C, H, W)`` is the source frame f, ``depth (B, 1, H, W)`` the target-frame depth,
    ``T (B, 4, 4) = T_{f<-0}`` maps target camera points into the source camera. Sampling is
    bilinear with ``align_corners=True`` and ``padding_mode="border"`` as Monodepth2.
    Returns the warped image, and also the grid ``(B, H, W, 2)`` if ``return_grid``.
    """
    B, _, H, W = depth.shape
    if img.shape[0] != B or img.shape[-2:] != depth.shape[-2:]:
        raise ValueError(f"warp: image {tuple(img.shape)} and depth {tuple(depth.shape)} sizes differ")
    grid = project(backproject(depth, inv_K), K, T, H, W)
    out = F.grid_sample(img, grid.to(img.dtype), mode="bilinear", padding_mode=padding_mode, align_corners=True)
    return (out, grid) if return_grid else out


def disp_to_depth(disp: torch.Tensor, min_depth: float, max_depth: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Sigmoid output -> ``(scaled_disp, depth)`` (Monodepth2 ``layers.disp_to_depth``):
    ``scaled = 1/max + (1/min - 1/max) disp``, ``depth = 1 / scaled``."""
    if not (0 < min_depth < max_depth) or math.isinf(max_depth):
        raise ValueError(f"disp_to_depth: need 0 < min_depth < max_depth < inf, got {min_depth}, {max_depth}")
    min_disp = 1.0 / max_depth
    max_disp = 1.0 / min_depth
    scaled = min_disp + (max_disp - min_disp) * disp
    return scaled, 1.0 / scaled
