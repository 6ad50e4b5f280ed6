"""The scale-alignment monitor: the paper's own diagnostic, logged while training.

SA4Depth's claim is that the refined pose's translation follows the scale of the predicted depth
more closely than the pose net's. Every ``train.monitor_every`` steps the trainer calls
:class:`ScaleMonitor` on a fixed subset of ``train.monitor_samples`` validation triplets that carry
GT depth and GT pose (synthetic data, VKITTI2, KITTI raw with poses); it measures, in eval mode and
without touching the training RNG:

* depth: ``abs_rel`` with per-image median scaling on the subset (valid GT in
  ``(eval.min_depth, eval.max_depth)``, no crop: a training-time signal, not the paper's protocol),
  and ``Var(depth scale)`` of Table I;
* for the pose-net pose (``net_``) and, with SA4Depth, the refined pose (``ref_``), per
  (sample, source frame) pair (:func:`pose_errors`): rotation error (deg), translation-direction
  error (deg), translation error against the *depth-scaled* GT translation ``s t_gt`` (relative to
  its norm), the alignment ``a = (|t| / |t_gt|) / s`` with its mean and std across pairs, and
  ``Var(pose scale)`` of Table I. ``s = median(D_pred) / median(D_gt)`` per sample: the scale the
  depth net predicts in. ``a = 1`` means the pose is expressed in the depth's scale.
* the LM cost before / after refinement, the fraction of pairs whose refined translation error is
  larger than the pose net's (``ref_worse_frac``) and whose LM cost grew (``lm_cost_worse_frac``),
  and the damping lambda (mean over the 6 degrees of freedom, and its rotation / translation parts).

Table I's ``Var(depth scale)`` and ``Var(pose scale)`` come from
:func:`sa4depth.evaluate.scale.evaluate_scale`, the code that writes Table I.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["ScaleMonitor", "pose_errors", "summarise_pairs"]


def pose_errors(T_pred: torch.Tensor, T_gt: torch.Tensor, depth_scale: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-pair errors of predicted relative poses (P,4,4) against GT (P,4,4).

    ``depth_scale`` (P,) is ``median(D_pred) / median(D_gt)`` of each pair's reference image: GT
    translations are compared after multiplying them by it. Returns (P,) tensors: ``rot_err``
    (deg), ``tdir_err`` (deg, angle between translations), ``trans_err`` (``|t - s t_gt| / |s t_gt|``),
    ``align`` (``(|t| / |t_gt|) / s``), ``t_norm`` and ``t_gt_norm``.
    """
    T_pred, T_gt = T_pred.double(), T_gt.double()
    s = depth_scale.double().reshape(-1)
    R = T_pred[:, :3, :3] @ T_gt[:, :3, :3].transpose(1, 2)
    cos = ((R.diagonal(dim1=-2, dim2=-1).sum(-1) - 1.0) / 2.0).clamp(-1.0, 1.0)
    t, tg = T_pred[:, :3, 3], T_gt[:, :3, 3]
    tn, tgn = t.norm(dim=1), tg.norm(dim=1)
    cos_t = ((t * tg).sum(1) / (tn * tgn).clamp_min(1e-12)).clamp(-1.0, 1.0)
    ts = tg * s[:, None]
    return {
        "rot_err": torch.rad2deg(torch.acos(cos)),
        "tdir_err": torch.rad2deg(torch.acos(cos_t)),
        "trans_err": (t - ts).norm(dim=1) / ts.norm(dim=1).clamp_min(1e-12),
        "align": (tn / tgn.clamp_min(1e-12)) / s,
        "t_norm": tn,
        "t_gt_norm": tgn,
    }


def summarise_pairs(err: Mapping[str, torch.Tensor], prefix: str) -> dict[str, float]:
    """Means of the per-pair errors and the alignment's std (ddof=0) across pairs."""
    a = err["align"]
    return {
        f"{prefix}rot_err": float(err["rot_err"].mean()),
        f"{prefix}tdir_err": float(err["tdir_err"].mean()),
        f"{prefix}trans_err": float(err["trans_err"].mean()),
        f"{prefix}align_mean": float(a.mean()),
        f"{prefix}align_std": float(a.std(unbiased=False)) if a.numel() > 1 else 0.0,
    }


class ScaleMonitor:
    """Measures the model on a fixed validation subset; see the module docstring.

    ``dataset``: the validation dataset (GT depth and poses loaded). The subset is
    ``num_samples`` indices spread evenly over it, loaded once.
    """

    def __init__(self, dataset: Any, num_samples: int, cfg: Any, device: torch.device, seed: int = 0):
        n = len(dataset)
        if n == 0:
            raise ValueError("scale monitor: the validation split is empty")
        idx = sorted(set(np.linspace(0, n - 1, min(num_samples, n)).round().astype(int).tolist()))
        from torch.utils.data import default_collate

        batch = default_collate([dataset[i] for i in idx])
        self.indices = idx
        self.batch = {k: v.to(device) for k, v in batch.items() if torch.is_tensor(v)}
        self.cfg = cfg
        self.device = device
        self.seed = seed
        self.sources = [int(f) for f in cfg.data.frame_ids if f != 0]
        self.has_depth = "depth_gt" in self.batch
        self.has_pose = all(("pose_gt", f) in self.batch for f in self.sources)

    @classmethod
    def from_config(cls, cfg: Any, device: torch.device, log: Any = print) -> "ScaleMonitor | None":
        """The monitor of a training config, or None (with a message) when its data cannot support it."""
        if int(cfg.train.monitor_every) <= 0:
            return None
        from sa4depth.data.factory import build_dataset

        try:
            ds = build_dataset(cfg, "val", load_depth=True)
            mon = cls(ds, int(cfg.train.monitor_samples), cfg, device, seed=int(cfg.seed))
        except (OSError, ValueError) as e:
            log(f"sa4depth train: scale monitor off: the validation split cannot be read ({e})")
            return None
        if not mon.has_depth:
            log(f"sa4depth train: scale monitor off: dataset {cfg.data.dataset!r} has no validation GT depth")
            return None
        if not mon.has_pose:
            log(f"sa4depth train: scale monitor: dataset {cfg.data.dataset!r} has no GT poses; depth only")
        return mon

    @torch.no_grad()
    def __call__(self, model: Any) -> dict[str, float]:
        """Monitor values (names without prefix) of ``model`` (a :class:`SelfSupModel`)."""
        was_training = model.training
        model.eval()
        devices = [self.device] if self.device.type == "cuda" else []
        try:
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(self.seed)  # same sampled LM points at every call
                return self._measure(model)
        finally:
            model.train(was_training)

    def _measure(self, model: Any) -> dict[str, float]:
        from sa4depth.evaluate.metrics import compute_depth_errors
        from sa4depth.evaluate.scale import evaluate_scale, masked_median
        from sa4depth.geometry import disp_to_depth

        cfg, b = self.cfg, self.batch
        img = b[("color", 0, 0)]
        B, _, H, W = img.shape
        disp = model.depth(img)[("disp", 0)]
        if disp.shape[-2:] != (H, W):
            disp = F.interpolate(disp, size=(H, W), mode="bilinear", align_corners=False)
        depth = disp_to_depth(disp, cfg.model.min_depth, cfg.model.max_depth)[1]
        gt = b["depth_gt"].float()
        pred_gt = F.interpolate(depth, size=gt.shape[-2:], mode="bilinear", align_corners=False)
        valid = (gt > cfg.eval.min_depth) & (gt < cfg.eval.max_depth)
        gmed, pmed = masked_median(gt, valid), masked_median(pred_gt, valid)
        keep = torch.isfinite(gmed) & torch.isfinite(pmed) & (pmed > 0)
        out: dict[str, float] = {}
        errs = []
        for i in torch.nonzero(keep).flatten().tolist():
            m = valid[i]
            g = gt[i][m].cpu().numpy()
            p = (pred_gt[i][m] * (gmed[i] / pmed[i])).clamp(cfg.eval.min_depth, cfg.eval.max_depth).cpu().numpy()
            errs.append(compute_depth_errors(g, p)["abs_rel"])
        out["abs_rel"] = float(np.mean(errs)) if errs else math.nan
        if not self.has_pose or not bool(keep.any()):
            return out
        s = (pmed / gmed)  # the depth net's scale: predicted units per metre
        kidx = torch.nonzero(keep).flatten()
        T_gt = torch.cat([b[("pose_gt", f)].float()[kidx] for f in self.sources])
        s_pairs = s[kidx].repeat(len(self.sources))

        def table_i_vars(T: torch.Tensor) -> dict[str, float]:
            res = evaluate_scale({
                "gt_depth_medians": gmed[kidx].cpu().numpy(), "pred_depth_medians": pmed[kidx].cpu().numpy(),
                "gt_trans_norms": T_gt[:, :3, 3].norm(dim=1).cpu().numpy(),
                "pred_trans_norms": T[:, :3, 3].norm(dim=1).clamp_min(1e-12).cpu().numpy()})
            return {"depth_scale_var": res["depth_scale_var"], "pose_scale_var": res["pose_scale_var"]}

        T_net = None
        if getattr(model, "use_pose_net", False):
            T_net_d = model._pose_net_poses(b)
            T_net = torch.cat([T_net_d[f].float()[kidx] for f in self.sources])
            e_net = pose_errors(T_net, T_gt, s_pairs)
            out.update(summarise_pairs(e_net, "net_"))
            tv = table_i_vars(T_net)
            out["depth_scale_var"] = tv["depth_scale_var"]
            out["net_pose_scale_var"] = tv["pose_scale_var"]
        refiner = getattr(model, "refiner", None)
        if refiner is not None and not model.cfg.matcher.enabled:
            images = {f: b[("color", f, 0)].float() for f in [0] + self.sources}
            K = b[("K", 0)].float()
            T_init = None
            if model.cfg.refine.init != "coarse" and getattr(model, "use_pose_net", False):
                T_init = {f: T_net_d[f].float() for f in self.sources}
            lidar = b.get("lidar_depth") if model.cfg.refine.depth_source == "lidar" else None
            if model.cfg.refine.depth_source == "lidar" and lidar is None:
                return out
            T_ref_d, _ = refiner(images, depth.float(), K, T_init, lidar)
            T_ref = torch.cat([T_ref_d[f].float()[kidx] for f in self.sources])
            e_ref = pose_errors(T_ref, T_gt, s_pairs)
            out.update(summarise_pairs(e_ref, "ref_"))
            tv = table_i_vars(T_ref)
            out["ref_pose_scale_var"] = tv["pose_scale_var"]
            out.setdefault("depth_scale_var", tv["depth_scale_var"])
            c0, c1 = refiner.last_pair_costs
            sel = torch.cat([kidx + i * B for i in range(len(self.sources))])
            c0, c1 = c0[sel], c1[sel]
            out["lm_cost_init"] = float(c0.mean())
            out["lm_cost_final"] = float(c1.mean())
            out["lm_cost_worse_frac"] = float((c1 > c0).double().mean())
            if T_net is not None:
                out["ref_worse_frac"] = float((e_ref["trans_err"] > e_net["trans_err"]).double().mean())
            lam = refiner.damping.detach()
            out["damping"] = float(lam.mean())
            out["damping_rot"] = float(lam[:3].mean())
            out["damping_trans"] = float(lam[3:].mean())
        return out
