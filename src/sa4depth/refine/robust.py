"""Robust losses rho(s) of the squared residual norm s = ||r||^2 (SA4Depth Eq. 8 and Eq. 11).

Each function returns ``(rho(s), rho'(s))``. ``rho'`` is the IRLS weight that multiplies the
confidence weights in the diagonal weighting matrix W of Eq. 11 (as in PixLoc's
``pixlib/geometry/losses.py``, which also works on the squared norm). ``c`` is
``cfg.refine.robust_scale`` (the residual norm at which the loss starts to saturate).

- ``l2``:     rho(s) = s,                           rho'(s) = 1
- ``cauchy``: rho(s) = c^2 log(1 + s / c^2),        rho'(s) = 1 / (1 + s / c^2)
- ``huber``:  rho(s) = s                 (s <= c^2) rho'(s) = 1
              rho(s) = 2 c sqrt(s) - c^2 (s >  c^2) rho'(s) = c / sqrt(s)

All three satisfy rho(0) = 0, rho'(0) = 1 and are continuous with a continuous first derivative.
"""
from __future__ import annotations

from typing import Callable

import torch

__all__ = ["robust_cost", "ROBUST_LOSSES", "l2_loss", "cauchy_loss", "huber_loss"]


def l2_loss(s: torch.Tensor, c: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain least squares: rho(s) = s."""
    return s, torch.ones_like(s)


def cauchy_loss(s: torch.Tensor, c: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Cauchy (Lorentzian) loss, scale ``c``."""
    c2 = c * c
    return c2 * torch.log1p(s / c2), 1.0 / (1.0 + s / c2)


def huber_loss(s: torch.Tensor, c: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Huber loss on the residual norm, threshold ``c``."""
    c2 = c * c
    inlier = s <= c2
    # clamp inside the sqrt so the unused branch never produces inf/NaN gradients at s = 0
    root = torch.sqrt(s.clamp_min(c2))
    rho = torch.where(inlier, s, 2.0 * c * root - c2)
    w = torch.where(inlier, torch.ones_like(s), c / root)
    return rho, w


ROBUST_LOSSES: dict[str, Callable[[torch.Tensor, float], tuple[torch.Tensor, torch.Tensor]]] = {
    "l2": l2_loss,
    "cauchy": cauchy_loss,
    "huber": huber_loss,
}


def robust_cost(s: torch.Tensor, name: str, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply the robust loss ``name`` (``cfg.refine.robust``) to squared norms ``s``."""
    try:
        fn = ROBUST_LOSSES[name]
    except KeyError:
        raise ValueError(f"refine.robust: unknown robust loss {name!r} (choose from {sorted(ROBUST_LOSSES)})") from None
    if not scale > 0:
        raise ValueError(f"refine.robust_scale: must be > 0, got {scale!r}")
    return fn(s, float(scale))
