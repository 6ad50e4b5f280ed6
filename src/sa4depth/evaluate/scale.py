"""Pose-depth scale consistency on the validation split (SA4Depth Table I).

For each validation sample the depth scale factor is ``median(D_gt) / median(D_pred)`` over the
valid GT pixels (prediction upsampled bilinearly to the GT size, depth = 1 / scaled disparity as
Monodepth2), and the pose scale factor is ``|t_gt| / |t_pred|`` for every source frame
``f != 0`` (pose net on the temporally ordered pair, Monodepth2's ``predict_poses``). GT translation
comes from the sample's ``("pose_gt", f)`` (``inv(Twc_f) Twc_0``), or ``("trans_norm_gt", f)`` when
no pose is recorded. The variances of both factors are :func:`~sa4depth.evaluate.metrics.scale_variances`.

Per-sample medians are taken in batch with ``torch.nanmedian`` (invalid pixels set to NaN); it
returns the lower of the two middle values for an even count, where numpy would average them.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .metrics import scale_variances

__all__ = ["masked_median", "collect_scale_factors", "evaluate_scale"]


def masked_median(x, mask):
    """Per-row median of ``x`` (B, ...) over ``mask`` (same shape), batched (NaN where empty)."""
    import torch

    flat = x.reshape(x.shape[0], -1).float()
    m = mask.reshape(mask.shape[0], -1)
    vals = torch.where(m, flat, torch.full_like(flat, float("nan")))
    return torch.nanmedian(vals, dim=1).values


def collect_scale_factors(depth_net, pose_net, loader, cfg, device: str = "cpu", max_batches: int = 0
                          ) -> dict[str, np.ndarray]:
    """Run the nets over ``loader`` and return per-sample depth medians and per-(sample, frame)
    translation norms (arrays ``gt_depth_medians, pred_depth_medians, gt_trans_norms,
    pred_trans_norms``) plus ``trans_source`` ("pose_gt" or "trans_norm_gt")."""
    import torch
    import torch.nn.functional as F

    from sa4depth.geometry import disp_to_depth
    from sa4depth.models import predict_relative_pose

    frames = [f for f in cfg.data.frame_ids if f != 0]
    if not frames:
        raise ValueError("data.frame_ids has no source frame; pose scale is undefined")
    gd, pd, gt_t, pr_t = [], [], [], []
    source = None
    depth_net.eval()
    pose_net.eval()
    with torch.no_grad():
        for bi, batch in enumerate(loader):
            if max_batches and bi >= max_batches:
                break
            if "depth_gt" not in batch:
                raise ValueError("validation samples carry no 'depth_gt'; Table I needs GT depth")
            img = batch[("color", 0, 0)].to(device)
            gt = batch["depth_gt"].to(device).float()
            disp = depth_net(img)[("disp", 0)]
            disp = F.interpolate(disp, size=gt.shape[-2:], mode="bilinear", align_corners=False)
            _, depth = disp_to_depth(disp, cfg.model.min_depth, cfg.model.max_depth)
            valid = (gt > cfg.eval.min_depth) & (gt < cfg.eval.max_depth)
            gmed = masked_median(gt, valid)
            pmed = masked_median(depth, valid)
            keep = torch.isfinite(gmed)
            gd.append(gmed[keep].cpu().numpy())
            pd.append(pmed[keep].cpu().numpy())
            for f in frames:
                T = predict_relative_pose(pose_net, img, batch[("color", f, 0)].to(device), f)
                T = T.reshape(T.shape[0], 4, 4)
                if ("pose_gt", f) in batch:
                    tg = batch[("pose_gt", f)].to(device).float().reshape(-1, 4, 4)[:, :3, 3].norm(dim=1)
                    source = source or "pose_gt"
                elif ("trans_norm_gt", f) in batch:
                    tg = batch[("trans_norm_gt", f)].to(device).float().reshape(-1)
                    source = source or "trans_norm_gt"
                else:
                    raise ValueError(f"validation samples carry neither ('pose_gt', {f}) nor ('trans_norm_gt', {f})")
                gt_t.append(tg.cpu().numpy())
                pr_t.append(T[:, :3, 3].norm(dim=1).cpu().numpy())
    if not gd:
        raise ValueError("validation loader yielded no samples")
    return {"gt_depth_medians": np.concatenate(gd), "pred_depth_medians": np.concatenate(pd),
            "gt_trans_norms": np.concatenate(gt_t), "pred_trans_norms": np.concatenate(pr_t),
            "trans_source": source}


def evaluate_scale(factors: dict[str, Any]) -> dict[str, Any]:
    """Table I numbers from :func:`collect_scale_factors` output. The depth factor is per sample,
    the pose factor per (sample, source frame); variances are taken over each set separately."""
    g_d, p_d = factors["gt_depth_medians"], factors["pred_depth_medians"]
    g_t, p_t = factors["gt_trans_norms"], factors["pred_trans_norms"]
    # scale_variances pairs its inputs; evaluate depth and pose sets separately when counts differ
    d = scale_variances(g_d, p_d, g_d, p_d)
    t = scale_variances(g_t, p_t, g_t, p_t)
    return {
        "depth_scale_var": d["depth_scale_var"],
        "depth_scale_mean": d["depth_scale_mean"],
        "pose_scale_var": t["pose_scale_var"],
        "pose_scale_mean": t["pose_scale_mean"],
        # scale-free spreads (ours): std/mean of each factor, comparable across runs whose
        # predictions sit at different global scales (the variances above are not)
        "depth_scale_cv": float(d["depth_scale_var"] ** 0.5 / d["depth_scale_mean"]),
        "pose_scale_cv": float(t["pose_scale_var"] ** 0.5 / t["pose_scale_mean"]),
        "num_samples": d["num_samples"],
        "num_pose_pairs": t["num_samples"],
        "trans_source": factors.get("trans_source"),
    }
