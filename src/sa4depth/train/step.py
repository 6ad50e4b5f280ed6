"""One self-supervised training step: Monodepth2's losses, Table I pose sources, SA4Depth.

:class:`SelfSupModel` is an ``nn.Module`` whose ``forward(inputs, step=...)`` returns the total loss
and the logged terms, so the whole step (depth net, pose net, refiner) sits under one
``DistributedDataParallel`` wrapper (which passes the keyword through). ``step`` is the number of
optimiser steps taken so far (``loss.automask_after``), given by the caller on every call.

Monodepth2 (Godard et al., ICCV 2019, ``trainer.py``) conventions followed here:

* monocular training on frames ``cfg.data.frame_ids`` (default ``[0, -1, 1]``), target frame 0;
* the depth net sees ``("color_aug", 0, 0)``; the pose net sees colour-augmented pairs in temporal
  order, ``[f, 0]`` for ``f < 0`` (prediction inverted) and ``[0, f]`` for ``f > 0``
  (:func:`sa4depth.models.networks.predict_relative_pose`);
* the disparity of every scale ``s`` is upsampled (bilinear, ``align_corners=False``) to the input
  resolution and the *un-augmented* full-resolution source images are warped with it
  (``v1_multiscale`` off); per-pixel minimum reprojection and automasking
  (:func:`sa4depth.losses.reprojection_loss`);
* the edge-aware smoothness on the mean-normalised disparity of scale ``s`` against the image of
  scale ``s``, weighted ``cfg.loss.smoothness / 2**s``; the loss is averaged over scales.

Poses (``T_{f<-0}``, maps frame-0 camera points into frame f, docs/DATA_LAYOUTS.md):

* Table I (``cfg.pose.source``, one function each in :data:`POSE_SOURCES`): ``net``; ``gt`` (warp with ``("pose_gt", f)``, no pose net);
  ``gt_scaled`` (GT pose whose translation is multiplied by the detached per-sample ratio
  median(predicted depth) / median(GT depth) over valid GT pixels, so the pose scale follows the
  depth's); ``gt_supervised`` (pose net + ``supervision_weight * pose_consistency_loss(T_net,
  T_gt)``); ``velocity_supervised`` (pose net + ``supervision_weight * velocity_loss(|t_net|,
  v*dt)``, PackNet's velocity supervision).
* SA4Depth (``cfg.refine.enabled``): the refiner aligns learned features of the frames with the
  predicted frame-0 depth starting from the pose-net pose (``refine.init posenet``) or from
  identity (``coarse``, no pose net); the refined pose is used for warping when
  ``refine.use_for_warp`` (row 11 uses it only to supervise the pose net); pose self-supervision
  ``loss.pose_self_sup * pose_consistency_loss(T_net, T_refined.detach())`` (Eq. 15; with
  ``loss.pose_self_detach`` false the target is not detached and Eq. 15 also trains the refinement), velocity loss
  ``loss.velocity`` on the refined translation (Eq. 16); total as Eq. 17.
* Matcher rows (``cfg.matcher.enabled``, Table VI rows 7-9): the refinement stage is the OpenCV
  matcher (:func:`sa4depth.refine.matcher.estimate_pose`) instead of feature-metric LM; without
  ``matcher.refine_posenet`` it replaces the pose net (rows 7-8), with it, it refines the pose-net
  estimate (row 9) and the result is used exactly like a refined pose.
* Table VII (``loss.depth_noise_std``): the depth used for warping (and for the refiner's
  reprojection) is perturbed as ``D (1 + eps)`` during training.
"""
from __future__ import annotations

from typing import Callable, Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F

from sa4depth.config import Config, ConfigError

__all__ = ["SelfSupModel", "check_train_config", "uses_pose_net", "batch_to_device", "median_depth_ratio",
           "POSE_SOURCES"]

_POSE_NET_SOURCES = ("net", "gt_supervised", "velocity_supervised")


def uses_pose_net(cfg: Config) -> bool:
    """Whether the pose net is part of the model trained by this config."""
    if cfg.pose.source not in _POSE_NET_SOURCES:
        return False
    if cfg.matcher.enabled:
        return bool(cfg.matcher.refine_posenet)
    if cfg.refine.enabled and cfg.refine.init == "coarse":
        return False
    return True


def check_train_config(cfg: Config) -> None:
    """Reject switch combinations that have no meaning, naming the keys."""
    if 0 not in cfg.data.frame_ids:
        raise ConfigError(f"data.frame_ids={cfg.data.frame_ids}: must contain the target frame 0")
    if len([f for f in cfg.data.frame_ids if f != 0]) == 0:
        raise ConfigError(f"data.frame_ids={cfg.data.frame_ids}: monocular training needs a source frame")
    if 0 not in cfg.model.scales:
        raise ConfigError(f"model.scales={cfg.model.scales}: must contain scale 0")
    if cfg.pose.source not in POSE_SOURCES:
        raise ConfigError(f"pose.source={cfg.pose.source!r}: expected one of {', '.join(POSE_SOURCES)}")
    stage = cfg.refine.enabled or cfg.matcher.enabled
    if stage and cfg.pose.source in ("gt", "gt_scaled"):
        raise ConfigError(f"pose.source={cfg.pose.source!r} with refine/matcher enabled: the refinement "
                          f"stage needs a learned pose (use pose.source net)")
    if stage and not uses_pose_net(cfg) and not cfg.refine.use_for_warp:
        raise ConfigError("refine.use_for_warp=false needs a pose net to warp with, but this config has "
                          "none (refine.init coarse / matcher without refine_posenet)")


def batch_to_device(batch: Mapping, device: torch.device, non_blocking: bool = False) -> dict:
    return {k: (v.to(device, non_blocking=non_blocking) if torch.is_tensor(v) else v) for k, v in batch.items()}


def median_depth_ratio(pred_depth: torch.Tensor, gt_depth: torch.Tensor) -> torch.Tensor:
    """Per-sample median(pred)/median(GT) over valid GT pixels (GT > 0); (B,). No grad.

    ``pred_depth (B,1,h,w)`` is resized (bilinear) to the GT resolution first. A sample without
    valid GT gets ratio 1.
    """
    with torch.no_grad():
        pred = F.interpolate(pred_depth.float(), size=gt_depth.shape[-2:], mode="bilinear", align_corners=False)
        valid = gt_depth > 0
        nan = torch.full_like(pred, float("nan"))
        mp = torch.nanmedian(torch.where(valid, pred, nan).flatten(1), dim=1).values
        mg = torch.nanmedian(torch.where(valid, gt_depth.float(), nan).flatten(1), dim=1).values
        r = mp / mg
        return torch.where(torch.isfinite(r), r, torch.ones_like(r))


def _scaled_translation(T: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
    S = torch.ones_like(T)
    S[:, :3, 3] = ratio[:, None].to(T.dtype)
    return T * S


class SelfSupModel(nn.Module):
    """Depth net + pose net (+ SA4Depth refiner) and the training objective.

    ``forward(inputs, step=n) -> (loss, logs)``: ``loss`` is the scalar to back-propagate, ``logs``
    maps names to detached 0-d tensors (``photo``, ``smooth``, ``pose_sup``, ``pose_self``,
    ``velocity``, ``refine/*`` statistics...); ``n`` is the number of optimiser steps taken so far
    (automasking starts at ``loss.automask_after``; it does not matter in eval mode).
    """

    def __init__(self, cfg: Config, depth: nn.Module, pose: nn.Module | None, refiner: nn.Module | None = None):
        super().__init__()
        check_train_config(cfg)
        self.cfg = cfg
        self.depth = depth
        self.pose = pose
        self.refiner = refiner
        self.frame_ids = [int(f) for f in cfg.data.frame_ids]
        self.sources = [f for f in self.frame_ids if f != 0]
        self.scales = [int(s) for s in cfg.model.scales]
        self.use_pose_net = uses_pose_net(cfg) and pose is not None
        if uses_pose_net(cfg) and pose is None:
            raise ValueError("this config trains a pose net but none was given")
        if cfg.refine.enabled and not cfg.matcher.enabled and refiner is None:
            raise ValueError("refine.enabled is true but no SA4DepthRefiner was given")
        self.matcher = None
        self.matcher_info: dict[str, str] = {}  # e.g. {"matcher": "orb+essential"}, reported in done.json
        if cfg.matcher.enabled:
            from sa4depth.refine.matcher import PoseMatcher

            self.matcher = PoseMatcher(cfg)

    # ------------------------------------------------------------------ poses
    def _pose_net_poses(self, inputs: Mapping) -> dict[int, torch.Tensor]:
        from sa4depth.models.networks import predict_relative_pose

        img0 = inputs[("color_aug", 0, 0)]
        return {f: predict_relative_pose(self.pose, img0, inputs[("color_aug", f, 0)], f) for f in self.sources}

    def _gt_poses(self, inputs: Mapping) -> dict[int, torch.Tensor]:
        try:
            return {f: inputs[("pose_gt", f)].float() for f in self.sources}
        except KeyError as e:
            raise ValueError(f"pose.source={self.cfg.pose.source!r} needs GT poses but the batch has no {e.args[0]!r} "
                             f"(dataset {self.cfg.data.dataset!r} provides none)") from None

    def _trans_norm(self, inputs: Mapping, f: int) -> torch.Tensor:
        key = ("trans_norm_gt", f)
        if key not in inputs:
            raise ValueError(f"the velocity loss needs {key!r} (v*dt) but dataset {self.cfg.data.dataset!r} "
                             f"provides none")
        return inputs[key].float().reshape(-1)

    def _refine(self, inputs: Mapping, depth0: torch.Tensor, T_net: dict[int, torch.Tensor] | None,
                logs: dict[str, torch.Tensor]) -> dict[int, torch.Tensor]:
        cfg = self.cfg
        K = inputs[("K", 0)].float()
        if cfg.matcher.enabled:
            img0 = inputs[("color", 0, 0)]
            out: dict[int, torch.Tensor] = {}
            for f in self.sources:  # OpenCV solvers: constant poses (no gradient), rows 7-9
                T_init = T_net[f].detach() if (T_net is not None and cfg.matcher.refine_posenet) else None
                out[f] = self.matcher.estimate_pose(img0, inputs[("color", f, 0)], K, depth0=depth0.detach(),
                                                    T_init=T_init).to(depth0.dtype)
                for k, v in self.matcher.last_stats.items():
                    if isinstance(v, str):
                        self.matcher_info[k] = v
                    else:
                        logs[f"refine/{k}"] = torch.tensor(float(v))
            return out
        images = {f: inputs[("color", f, 0)].float() for f in self.frame_ids}
        lidar = None
        if cfg.refine.depth_source == "lidar":
            if "lidar_depth" not in inputs:
                raise ValueError("refine.depth_source=lidar needs 'lidar_depth' in the batch (KITTI raw with "
                                 "velodyne points)")
            lidar = inputs["lidar_depth"].float()
        T_init = None if (cfg.refine.init == "coarse" or T_net is None) else {f: T_net[f].float() for f in self.sources}
        device_type = depth0.device.type
        with torch.autocast(device_type=device_type, enabled=False):  # LM solves need fp32
            T_ref, stats = self.refiner(images, depth0.float(), K, T_init, lidar)
        for k, v in (stats or {}).items():
            if torch.is_tensor(v) and v.numel() == 1:
                logs[f"refine/{k}"] = v.detach().float().reshape(())
            elif isinstance(v, (int, float)) and not isinstance(v, bool):
                logs[f"refine/{k}"] = torch.tensor(float(v))
        return {f: T_ref[f] for f in self.sources}

    # ------------------------------------------------------------------ forward
    def forward(self, inputs: Mapping, *, step: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        from sa4depth.geometry import disp_to_depth, warp
        from sa4depth.losses import (depth_noise, identity_errors, pose_consistency_loss, reprojection_loss,
                                     smoothness_loss, velocity_loss)

        cfg = self.cfg
        lc = cfg.loss
        logs: dict[str, torch.Tensor] = {}
        target = inputs[("color", 0, 0)]
        B, _, H, W = target.shape
        K, inv_K = inputs[("K", 0)], inputs[("inv_K", 0)]

        disps = self.depth(inputs[("color_aug", 0, 0)])
        depths: dict[int, torch.Tensor] = {}
        for s in self.scales:
            d = disps[("disp", s)]
            if d.shape[-2:] != (H, W):
                d = F.interpolate(d, size=(H, W), mode="bilinear", align_corners=False)
            depths[s] = disp_to_depth(d, cfg.model.min_depth, cfg.model.max_depth)[1]
        warp_depths = depths
        if lc.depth_noise_std > 0 and self.training:
            warp_depths = {s: depth_noise(d, lc.depth_noise_std) for s, d in depths.items()}

        # ---- poses (Table I)
        source = cfg.pose.source
        T_net = self._pose_net_poses(inputs) if self.use_pose_net else None
        T_warp, pose_loss, pose_logs = POSE_SOURCES[source](self, inputs, depths[0], T_net)
        logs.update(pose_logs)
        extra = torch.zeros((), device=target.device)
        if pose_loss is not None:
            extra = extra + pose_loss

        # ---- SA4Depth refinement / matcher stage
        T_vel = T_net  # translation the velocity loss acts on (Eq. 16: the refined one when refining)
        if cfg.refine.enabled or cfg.matcher.enabled:
            T_ref = self._refine(inputs, warp_depths[0], T_net, logs)
            T_vel = T_ref
            if cfg.refine.use_for_warp or T_net is None:
                T_warp = T_ref
            if T_net is not None and lc.pose_self_sup > 0:
                l_ps = torch.stack([pose_consistency_loss(T_net[f], T_ref[f], lc.pose_rot_weight,
                                                          detach_ref=lc.pose_self_detach)
                                    for f in self.sources]).mean()
                logs["pose_self"] = l_ps.detach()
                extra = extra + lc.pose_self_sup * l_ps
        if lc.velocity > 0:
            if T_vel is None:
                raise ConfigError(f"loss.velocity={lc.velocity} needs a predicted pose (pose.source "
                                  f"{source!r} has none)")
            l_v = torch.stack([velocity_loss(T_vel[f][:, :3, 3], self._trans_norm(inputs, f))
                               for f in self.sources]).mean()
            logs["velocity"] = l_v.detach()
            extra = extra + lc.velocity * l_v

        # ---- photometric + smoothness (Monodepth2 compute_losses)
        automask = bool(lc.automask) and (not self.training or step >= int(lc.automask_after))
        # the unwarped sources' errors are the same at every scale (full-resolution images): once
        identity = (identity_errors({f: inputs[("color", f, 0)] for f in self.sources}, target, self.sources,
                                    lc.min_reprojection, lc.ssim_weight) if automask else None)
        photo_total = torch.zeros((), device=target.device)
        smooth_total = torch.zeros((), device=target.device)
        for s in self.scales:
            warped = {f: warp(inputs[("color", f, 0)], warp_depths[s], T_warp[f].to(target.dtype), K, inv_K)
                      for f in self.sources}
            l_photo, _ = reprojection_loss(warped, identity, target, automask=automask,
                                           min_reprojection=lc.min_reprojection, ssim_weight=lc.ssim_weight)
            disp_s = disps[("disp", s)]
            l_smooth = smoothness_loss(disp_s, inputs[("color", 0, s)])
            photo_total = photo_total + l_photo
            smooth_total = smooth_total + lc.smoothness * l_smooth / (2 ** s)
        n = len(self.scales)
        photo, smooth = photo_total / n, smooth_total / n
        loss = photo + smooth + extra
        logs["photo"] = photo.detach()
        logs["smooth"] = smooth.detach()
        logs = {"loss": loss.detach(), **logs}
        return loss, logs

    def named_modules_for_saving(self) -> dict[str, nn.Module]:
        """Modules written to model.pt (``depth``, ``pose``, and ``refiner`` when present)."""
        out: dict[str, nn.Module] = {"depth": self.depth}
        if self.pose is not None:
            out["pose"] = self.pose
        if self.refiner is not None:
            out["refiner"] = self.refiner
        return out


# ----------------------------------------------------------------------------- Table I pose sources
# pose.source -> f(model, inputs, depth0, T_net) -> (T_warp, extra loss or None, logs)
# ``depth0``: the predicted full-resolution depth of frame 0 (not noised); ``T_net``: the pose-net poses
# {f: T_{f<-0}} or None when this config has no pose net. The refinement stage (SelfSupModel.forward)
# may replace T_warp afterwards.
PoseSource = Callable[[SelfSupModel, Mapping, torch.Tensor, "dict[int, torch.Tensor] | None"],
                      "tuple[dict[int, torch.Tensor], torch.Tensor | None, dict[str, torch.Tensor]]"]


def _net_poses(T_net: dict[int, torch.Tensor] | None) -> dict[int, torch.Tensor]:
    return dict(T_net) if T_net is not None else {}


def _pose_net(model: SelfSupModel, inputs: Mapping, depth0: torch.Tensor, T_net):
    """``net``: warp with the pose net's poses (none with refine.init coarse: the refiner's are used)."""
    return _net_poses(T_net), None, {}


def _pose_gt(model: SelfSupModel, inputs: Mapping, depth0: torch.Tensor, T_net):
    """``gt``: warp with the GT poses ``("pose_gt", f)``; no pose net."""
    return model._gt_poses(inputs), None, {}


def _pose_gt_scaled(model: SelfSupModel, inputs: Mapping, depth0: torch.Tensor, T_net):
    """``gt_scaled``: GT poses whose translation is scaled by median(pred depth) / median(GT depth)."""
    if "depth_gt" not in inputs:
        cfg = model.cfg
        raise ValueError("pose.source=gt_scaled needs 'depth_gt' in the training batch "
                         f"(dataset {cfg.data.dataset!r} split {cfg.data.split!r} has none)")
    ratio = median_depth_ratio(depth0, inputs["depth_gt"])
    logs = {"gt_scale_ratio": ratio.mean().detach()}
    return {f: _scaled_translation(T, ratio) for f, T in model._gt_poses(inputs).items()}, None, logs


def _pose_gt_supervised(model: SelfSupModel, inputs: Mapping, depth0: torch.Tensor, T_net):
    """``gt_supervised``: pose net + ``supervision_weight * pose_consistency_loss(T_net, T_gt)``."""
    from sa4depth.losses import pose_consistency_loss

    if T_net is None:
        return {}, None, {}
    cfg = model.cfg
    T_gt = model._gt_poses(inputs)
    l_sup = torch.stack([pose_consistency_loss(T_net[f], T_gt[f], cfg.loss.pose_rot_weight)
                         for f in model.sources]).mean()
    return _net_poses(T_net), cfg.pose.supervision_weight * l_sup, {"pose_sup": l_sup.detach()}


def _pose_velocity_supervised(model: SelfSupModel, inputs: Mapping, depth0: torch.Tensor, T_net):
    """``velocity_supervised``: pose net + ``supervision_weight * velocity_loss(|t_net|, v*dt)``."""
    from sa4depth.losses import velocity_loss

    if T_net is None:
        return {}, None, {}
    l_sup = torch.stack([velocity_loss(T_net[f][:, :3, 3], model._trans_norm(inputs, f))
                         for f in model.sources]).mean()
    return _net_poses(T_net), model.cfg.pose.supervision_weight * l_sup, {"pose_sup": l_sup.detach()}


#: ``pose.source`` -> its function (params/constraints.yaml lists the same names)
POSE_SOURCES: dict[str, PoseSource] = {
    "net": _pose_net,
    "gt": _pose_gt,
    "gt_scaled": _pose_gt_scaled,
    "gt_supervised": _pose_gt_supervised,
    "velocity_supervised": _pose_velocity_supervised,
}
