"""Video depth evaluation with per-sequence scale-and-shift alignment (SA4Depth Table VIII).

Protocol (DepthCrafter's benchmark as re-implemented in Video-Depth-Anything
``benchmark/eval/eval.py``, function ``eval_depthcrafter``): for each sequence, all frames'
valid pixels (``1e-3 < gt < max_depth``) are stacked and ONE scale ``s`` and shift ``t`` are fitted
by least squares; the reference fits them **in disparity space** (``s * pred_disp + t ~ 1/gt``,
predictions clipped to >= 1e-3 first), then converts the aligned disparity to depth
(``1 / max(aligned, 1e-3)``) clipped to ``[1e-3, max_depth]``; metrics are computed per frame and
averaged over the frames of a sequence, then over sequences. We follow that reference by default
(``space="disparity"``); ``space="depth"`` fits ``s * pred_depth + t ~ gt`` in depth space instead
(as the brief's wording suggests) and is recorded in the result.

Sequence scale std (SA4Depth Eq. 19): ``std(s_k) / mean(s_k)`` over the per-sequence scales
``s_k`` (population std), i.e. the std of the mean-normalised scales. With disparity-space
alignment ``s_k`` is the disparity scale (about the inverse of a depth scale); the normalised
spread is the same to first order but not identical.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Sequence

import numpy as np

from .metrics import METRIC_NAMES, compute_depth_errors, fit_scale_shift

__all__ = ["align_sequence", "evaluate_video", "sequence_scale_std", "group_by_sequence"]

_EPS = 1e-3


def sequence_scale_std(scales: Sequence[float]) -> float:
    """SA4Depth Eq. 19: ``std(s) / mean(s)`` (``ddof=0``)."""
    s = np.asarray(scales, dtype=np.float64)
    if s.size == 0:
        raise ValueError("sequence_scale_std: no sequences")
    m = abs(s.mean())  # |mean|: an (untrained) model may fit a negative scale; keep the std >= 0
    if m == 0:
        raise ValueError("sequence_scale_std: mean scale is 0")
    return float(s.std() / m)


def _resize(m: np.ndarray, h: int, w: int) -> np.ndarray:
    import cv2

    if m.shape == (h, w):
        return m.astype(np.float64)
    return cv2.resize(m.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float64)


def align_sequence(preds: Sequence[np.ndarray], gts: Sequence[np.ndarray], *, pred_kind: str = "disp",
                   space: str = "disparity", max_depth: float = 80.0, min_depth: float = _EPS
                   ) -> tuple[list[np.ndarray], list[np.ndarray], float, float]:
    """Fit one (scale, shift) for a whole sequence; return (aligned depths, valid masks, s, t)."""
    if space not in ("disparity", "depth"):
        raise ValueError(f"alignment space must be 'disparity' or 'depth', got {space!r}")
    if pred_kind not in ("disp", "depth"):
        raise ValueError(f"pred_kind must be 'disp' or 'depth', got {pred_kind!r}")
    P, G, M = [], [], []
    for p, g in zip(preds, gts):
        g = np.asarray(g, dtype=np.float64)
        p = _resize(np.asarray(p, dtype=np.float64), *g.shape)
        if space == "disparity":
            x = p if pred_kind == "disp" else 1.0 / p
        else:
            x = 1.0 / p if pred_kind == "disp" else p
        P.append(np.maximum(x, _EPS) if space == "disparity" else x)
        G.append(g)
        M.append((g > min_depth) & (g < max_depth))
    xs = np.concatenate([x[m] for x, m in zip(P, M)])
    ys = np.concatenate([g[m] for g, m in zip(G, M)])
    if xs.size < 2:
        raise ValueError("sequence has fewer than 2 valid GT pixels")
    if space == "disparity":
        s, t = fit_scale_shift(xs, 1.0 / ys)
        depths = [np.clip(1.0 / np.maximum(s * x + t, _EPS), _EPS, max_depth) for x in P]
    else:
        s, t = fit_scale_shift(xs, ys)
        depths = [np.clip(s * x + t, _EPS, max_depth) for x in P]
    return depths, M, s, t


def group_by_sequence(names: Sequence[str]) -> "OrderedDict[str, list[int]]":
    """Indices of the images of each sequence, in first-appearance order."""
    groups: "OrderedDict[str, list[int]]" = OrderedDict()
    for i, n in enumerate(names):
        groups.setdefault(n, []).append(i)
    return groups


def evaluate_video(preds: Sequence[np.ndarray], gts: Sequence[np.ndarray], sequence_of: Sequence[str], *,
                   pred_kind: str = "disp", space: str = "disparity", max_depth: float = 80.0,
                   max_len: int | None = None, pred_source: str = "predictions") -> dict[str, Any]:
    """Score per-sequence-aligned predictions. ``sequence_of[i]`` names image i's sequence;
    ``max_len`` keeps at most that many first frames per sequence (DepthCrafter: 110)."""
    if not (len(preds) == len(gts) == len(sequence_of)):
        raise ValueError(f"{pred_source}: {len(preds)} predictions, {len(gts)} GT maps and "
                         f"{len(sequence_of)} sequence labels must match")
    per_seq = []
    for name, idx in group_by_sequence(sequence_of).items():
        if max_len:
            idx = idx[:max_len]
        depths, masks, s, t = align_sequence([preds[i] for i in idx], [gts[i] for i in idx], pred_kind=pred_kind,
                                             space=space, max_depth=max_depth)
        frame_errs = [compute_depth_errors(gts[i][m], d[m]) for i, d, m in zip(idx, depths, masks) if m.any()]
        if not frame_errs:
            raise ValueError(f"sequence {name!r}: no frame has valid GT")
        per_seq.append({"sequence": name, "frames": len(frame_errs), "scale": s, "shift": t,
                        **{k: float(np.mean([e[k] for e in frame_errs])) for k in METRIC_NAMES}})
    scales = [p["scale"] for p in per_seq]
    return {
        "metrics": {k: float(np.mean([p[k] for p in per_seq])) for k in METRIC_NAMES},
        "seq_scale_std": sequence_scale_std(scales),
        "num_sequences": len(per_seq),
        "alignment_space": space,
        "per_sequence": per_seq,
    }
