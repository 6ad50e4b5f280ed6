"""Batched, differentiable Levenberg-Marquardt feature-metric pose refinement (SA4Depth Sec. V).

One call of :func:`refine_pose` runs K iterations of

1. residuals (Eq. 8): ``r_i = F_q(pi(T P_i)) - F_r(p_i)`` for the N sampled reference points,
2. weights (Eq. 11): ``w_i = C_r(p_i) C_q(p'_i) rho'(||r_i||^2) m_i`` (``m_i``: IRLS multiplier),
3. Jacobian (Eq. 9): ``J_i = dF_q/dp' . dp'/dX . dX/dxi`` (:mod:`sa4depth.refine.jacobians`),
4. LM step (Eq. 10): ``delta = -(H + lambda diag(H))^-1 g``, ``H = J^T W J``, ``g = J^T W r``,
5. pose update (Eq. 13): ``T <- exp(delta) T`` (left update, matching ``dX/dxi = [-[X]x, I]``).

IRLS (Eq. 12). The paper multiplies the next weights by the ratio of the previous cost over the
updated cost. Our exact rule, per point i, with ``c_k,i = rho(||r_k,i||^2)`` the robust cost of
the point before step k and ``c_k+1,i`` after it::

    m_0,i = 1,   m_k+1,i = m_k,i * clamp((c_k,i + eps) / (c_k+1,i + eps), 1/clip, clip)

so points whose cost the step reduced (they agree with the new pose) gain weight, points whose
cost grew lose it; ``clip`` = ``cfg.refine.irls_clip`` bounds a single-step change. The ratio
stays in the graph (it is a differentiable function of depth, features and pose). Points not
valid at both iterations keep their multiplier.

Everything is batched over the leading dimension (samples x frame pairs); there is no Python
loop over the batch. The solver never returns NaN: see :func:`damped_solve`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from sa4depth.geometry import project_points, se3_exp
from sa4depth.refine.jacobians import interpolate_with_gradient, point_jacobian_left, projection_jacobian
from sa4depth.refine.robust import robust_cost

__all__ = ["LMOptions", "damped_solve", "evaluate_residuals", "irls_update", "refine_pose"]


@dataclass
class LMOptions:
    """Solver settings (from ``cfg.refine``)."""

    iterations: int = 5
    robust: str = "cauchy"
    robust_scale: float = 0.1
    irls: bool = True
    irls_clip: float = 2.0
    min_depth: float = 1e-3  # points with z <= min_depth in the query camera are invalid
    max_retries: int = 3  # Cholesky retries, each multiplying the damping by retry_factor
    retry_factor: float = 10.0
    irls_eps: float = 1e-8


def damped_solve(
    H: torch.Tensor, g: torch.Tensor, damping: torch.Tensor, max_retries: int = 3, retry_factor: float = 10.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Solve ``(H + lambda diag(H)) delta = -g`` per batch element with Cholesky (Eq. 10).

    ``H`` (B,6,6), ``g`` (B,6), ``damping`` (6,) or (B,6) (one lambda per degree of freedom, like
    PixLoc's learned damping). An element whose factorisation fails (``info != 0``; e.g. a
    rank-deficient H from textureless features) or whose inputs/step are not finite is retried
    with ``lambda * retry_factor**k``; after ``max_retries`` retries it falls back to
    ``delta = 0`` (the previous pose). Failed elements are swapped for an identity system before
    the differentiable factorisation, so neither the values nor the gradients become NaN.

    Returns ``(delta (B,6), fallback (B,) bool, retried (B,) bool)``.
    """
    B = H.shape[0]
    eye = torch.eye(6, dtype=H.dtype, device=H.device).expand(B, 6, 6)
    diag = H.diagonal(dim1=-2, dim2=-1)
    delta = torch.zeros_like(g)
    solved = torch.zeros(B, dtype=torch.bool, device=H.device)
    retried = torch.zeros_like(solved)
    finite_in = torch.isfinite(H).all(-1).all(-1) & torch.isfinite(g).all(-1)
    for attempt in range(max_retries + 1):
        lam = damping * (retry_factor**attempt)
        Hd = H + torch.diag_embed(lam * diag)
        with torch.no_grad():
            Hd_check = torch.where(finite_in[:, None, None], Hd, eye)
            _, info = torch.linalg.cholesky_ex(Hd_check)
        ok = (info == 0) & finite_in & ~solved
        if not bool(ok.any()):
            if bool(solved.all()):
                break
            continue
        m = ok[:, None, None]
        L, _ = torch.linalg.cholesky_ex(torch.where(m, Hd, eye))
        rhs = torch.where(ok[:, None], -g, torch.zeros_like(g)).unsqueeze(-1)
        step = torch.cholesky_solve(rhs, L).squeeze(-1)
        ok = ok & torch.isfinite(step).all(-1)
        delta = torch.where(ok[:, None], step, delta)
        if attempt > 0:
            retried = retried | ok
        solved = solved | ok
        if bool(solved.all()):
            break
    return delta, ~solved, retried


def irls_update(
    mult: torch.Tensor, prev_cost: torch.Tensor, cost: torch.Tensor, both_valid: torch.Tensor, clip: float, eps: float = 1e-8
) -> torch.Tensor:
    """Eq. 12 (our exact rule, see the module docstring): per point
    ``m <- m * clamp((c_prev + eps) / (c + eps), 1/clip, clip)`` where both costs are valid."""
    ratio = ((prev_cost + eps) / (cost + eps)).clamp(1.0 / clip, clip)
    return torch.where(both_valid, mult * ratio, mult)


def _transform(T: torch.Tensor, P: torch.Tensor) -> torch.Tensor:
    """Apply (B,4,4) rigid transforms to points (B,N,3)."""
    return P @ T[:, :3, :3].transpose(1, 2) + T[:, None, :3, 3]


def evaluate_residuals(
    T: torch.Tensor,
    P_ref: torch.Tensor,
    valid_ref: torch.Tensor,
    f_ref: torch.Tensor,
    F_q: torch.Tensor,
    C_q: torch.Tensor | None,
    K_q: torch.Tensor,
    min_depth: float,
    with_jacobian: bool = True,
) -> dict[str, torch.Tensor]:
    """Residuals, query confidences, validity and (optionally) the Jacobian (B,N,C,6) at pose T.

    ``P_ref`` (B,N,3) reference-camera points, ``f_ref`` (B,N,C) reference features, ``F_q``
    (B,C,h,w) query features, ``C_q`` (B,1,h,w) query confidence or None, ``K_q`` intrinsics of
    the query feature map (see :func:`sa4depth.refine.jacobians.intrinsics_at_stride`).
    """
    X = _transform(T, P_ref)
    uv, z = project_points(X, K_q)
    f_q, grad, inside = interpolate_with_gradient(F_q, uv, with_gradient=with_jacobian)
    valid = valid_ref & inside & (z > min_depth)
    out = {"r": f_q - f_ref, "valid": valid, "uv": uv}
    if C_q is not None:
        c_q, _, _ = interpolate_with_gradient(C_q, uv, with_gradient=False)
        out["c_q"] = c_q.squeeze(-1)
    if with_jacobian:
        J_proj = projection_jacobian(X, K_q)  # (B,N,2,3)
        J_pt = point_jacobian_left(X)  # (B,N,3,6)
        out["J"] = grad @ (J_proj @ J_pt)  # (B,N,C,6)
    return out


def refine_pose(
    T_init: torch.Tensor,
    P_ref: torch.Tensor,
    valid_ref: torch.Tensor,
    f_ref: torch.Tensor,
    c_ref: torch.Tensor | None,
    F_q: torch.Tensor,
    C_q: torch.Tensor | None,
    K_q: torch.Tensor,
    damping: torch.Tensor,
    opts: LMOptions,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Run ``opts.iterations`` LM iterations from ``T_init`` (B,4,4) (``T_{q<-r}``).

    ``c_ref`` (B,N) / ``C_q`` are the confidences of Eq. 11, or None for "no confidence"
    (Table VI row 13: weights from the robust loss only).

    Returns the refined pose (B,4,4) and per-element statistics (tensors, detached):
    ``cost_init``/``cost_final`` (mean robust cost over valid points, confidence-weighted),
    ``fallbacks``/``retries`` (number of LM steps per element that fell back / needed extra
    damping), ``valid_frac`` (fraction of valid points at the last iteration).
    """
    B = T_init.shape[0]
    T = T_init
    fallbacks = torch.zeros(B, device=T.device)
    retries = torch.zeros(B, device=T.device)
    irls_mult = torch.ones_like(valid_ref, dtype=f_ref.dtype)
    prev_cost: torch.Tensor | None = None
    prev_valid: torch.Tensor | None = None
    cost_init = None

    def weighted_mean_cost(rho: torch.Tensor, conf: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        vf = valid.to(rho.dtype)
        return ((conf * rho * vf).sum(-1) / vf.sum(-1).clamp_min(1.0)).detach()

    for _ in range(opts.iterations):
        res = evaluate_residuals(T, P_ref, valid_ref, f_ref, F_q, C_q, K_q, opts.min_depth)
        r, valid = res["r"], res["valid"]
        s = (r * r).sum(-1)
        rho, rho_w = robust_cost(s, opts.robust, opts.robust_scale)
        conf = torch.ones_like(s)
        if c_ref is not None:
            conf = conf * c_ref
        if "c_q" in res:
            conf = conf * res["c_q"]
        if opts.irls and prev_cost is not None:
            irls_mult = irls_update(irls_mult, prev_cost, rho, valid & prev_valid, opts.irls_clip, opts.irls_eps)
        if cost_init is None:
            cost_init = weighted_mean_cost(rho, conf, valid)
        w = conf * rho_w * irls_mult * valid.to(s.dtype)  # Eq. 11 (x IRLS multiplier, Eq. 12)
        J = res["J"]
        Jw = J * w[..., None, None]
        H = torch.einsum("bnci,bncj->bij", Jw, J)
        g = torch.einsum("bnci,bnc->bi", Jw, r)
        delta, failed, retried = damped_solve(H, g, damping, opts.max_retries, opts.retry_factor)
        fallbacks = fallbacks + failed.to(fallbacks.dtype)
        retries = retries + retried.to(retries.dtype)
        T = se3_exp(delta) @ T  # Eq. 13, left update
        prev_cost, prev_valid = rho, valid

    with torch.no_grad():
        res = evaluate_residuals(T, P_ref, valid_ref, f_ref, F_q, C_q, K_q, opts.min_depth, with_jacobian=False)
        s = (res["r"] ** 2).sum(-1)
        rho, _ = robust_cost(s, opts.robust, opts.robust_scale)
        conf = torch.ones_like(s)
        if c_ref is not None:
            conf = conf * c_ref
        if "c_q" in res:
            conf = conf * res["c_q"]
        cost_final = weighted_mean_cost(rho, conf, res["valid"])
        valid_frac = res["valid"].to(s.dtype).mean(-1)
    stats = {
        "cost_init": cost_init,
        "cost_final": cost_final,
        "fallbacks": fallbacks,
        "retries": retries,
        "valid_frac": valid_frac,
    }
    return T, stats
