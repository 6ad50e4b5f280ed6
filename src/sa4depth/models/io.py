"""Build the depth/pose models from a config, and save/load sa4depth model files.

A model file is one ``torch.save`` dict (written atomically: ``path.tmp`` then ``os.replace``)::

    {"format": "sa4depth-model-v1",
     "config": cfg.to_dict(),                 # the resolved config the models were built from
     "state_dicts": {"depth": ..., "pose": ..., <other modules, e.g. "feature">: ...},
     **extra}                                 # e.g. step, epoch, optimiser state (trainer's)

Like Monodepth2 saving ``opt.json`` beside its weights, the config travels with the weights so
that evaluation rebuilds exactly the trained architecture.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn as nn

from sa4depth.config import Config, ConfigError
from sa4depth.files import torch_save_atomic
from sa4depth.models.networks import DepthNet, PoseNet

__all__ = [
    "MODEL_FORMAT",
    "run_model_path",
    "build_models",
    "load_state_dicts",
    "save_model_file",
    "read_model_file",
    "load_model_file",
    "load_depth_model",
]

MODEL_FORMAT = "sa4depth-model-v1"


def _pretrained_paths(cfg: Config) -> tuple[str | None, str | None]:
    """ImageNet weight files for the depth and pose encoders (``model.pretrained`` and
    ``model.pose_pretrained``; the latter defaults to the former when the depths agree)."""
    m = cfg.model
    depth_p = m.get("pretrained")
    pose_p = m.get("pose_pretrained")
    if pose_p is None and depth_p is not None:
        if int(m.pose_layers) != int(m.depth_layers):
            raise ConfigError(
                f"model.pretrained={depth_p!r} holds ResNet-{m.depth_layers} weights but model.pose_layers="
                f"{m.pose_layers}: set model.pose_pretrained to a ResNet-{m.pose_layers} file (or null)"
            )
        pose_p = depth_p
    return depth_p, pose_p


def build_models(cfg: Config, load_pretrained: bool = True) -> dict[str, nn.Module]:
    """``{"depth": DepthNet, "pose": PoseNet}`` from ``cfg.model``.

    ``load_pretrained=False`` skips the ImageNet files (used when weights come from a model file).
    Only the Monodepth2 ResNet depth architecture is available.
    """
    m = cfg.model
    if m.depth_arch != "resnet":
        raise ValueError(
            f"model.depth_arch={m.depth_arch!r}: the MonoViT / Hybrid-depth architectures are not implemented "
            f"in this reproduction (only 'resnet', i.e. Monodepth2 Md2-18/Md2-50); the table shows the row as "
            f"not implemented"
        )
    depth_p, pose_p = _pretrained_paths(cfg) if load_pretrained else (None, None)
    depth = DepthNet(int(m.depth_layers), depth_p, scales=list(m.scales))
    pose = PoseNet(int(m.pose_layers), pose_p)
    return {"depth": depth, "pose": pose}


def _unwrap_module(mod: nn.Module) -> nn.Module:
    """Strip DistributedDataParallel / DataParallel / torch.compile wrappers."""
    while True:
        if hasattr(mod, "module") and isinstance(mod.module, nn.Module):
            mod = mod.module
        elif hasattr(mod, "_orig_mod") and isinstance(mod._orig_mod, nn.Module):
            mod = mod._orig_mod
        else:
            return mod


def save_model_file(
    path: str | os.PathLike,
    cfg: Config | Mapping,
    modules: Mapping[str, nn.Module | Mapping[str, torch.Tensor]],
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``{"format", "config", "state_dicts", **extra}`` atomically to ``path``.

    ``modules`` maps names to modules (wrappers such as DDP are stripped) or to state dicts.
    ``extra`` may not use the reserved keys ``format``, ``config``, ``state_dicts``.
    """
    path = Path(path)
    extra = dict(extra or {})
    clash = {"format", "config", "state_dicts"} & set(extra)
    if clash:
        raise ValueError(f"save_model_file({path}): extra uses reserved keys {sorted(clash)}")
    sds = {}
    for name, mod in modules.items():
        if isinstance(mod, nn.Module):
            sds[name] = {k: v.detach().cpu() for k, v in _unwrap_module(mod).state_dict().items()}
        elif isinstance(mod, Mapping):
            sds[name] = dict(mod)
        else:
            raise ValueError(f"save_model_file({path}): modules[{name!r}] is a {type(mod).__name__}, not a module")
    cfg_dict = cfg.to_dict() if isinstance(cfg, Config) else Config(cfg).to_dict()
    payload = {"format": MODEL_FORMAT, "config": cfg_dict, "state_dicts": sds, **extra}
    return torch_save_atomic(path, payload)


def run_model_path(run: str | os.PathLike) -> Path:
    """``RUN_DIR/model.pt`` of a run directory, or the model file itself; an error names it."""
    p = Path(run)
    if p.is_dir():
        p = p / "model.pt"
    if not p.is_file():
        raise FileNotFoundError(f"{p}: model file not found (expected RUN_DIR/model.pt; is the run finished?)")
    return p


def read_model_file(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The raw, validated payload of a model file (for resuming: optimiser state, step...)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: model file not found")
    try:
        from sa4depth.safeio import torch_load

        payload = torch_load(path, map_location=map_location)  # weights_only: a file never runs code
    except Exception as e:
        raise ValueError(f"{path}: not a sa4depth model file (cannot be read: {type(e).__name__}: {e})") from None
    if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
        fmt = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise ValueError(f"{path}: not a sa4depth model file (format {fmt!r}, expected {MODEL_FORMAT!r})")
    for key, typ in (("config", dict), ("state_dicts", dict)):
        if not isinstance(payload.get(key), typ):
            raise ValueError(f"{path}: sa4depth model file without a {key!r} mapping")
    return payload


def load_state_dicts(modules: Mapping[str, nn.Module], state_dicts: Mapping[str, Any],
                     path: str | os.PathLike) -> None:
    """Load each of ``modules`` from its entry of a model file's ``state_dicts``; a missing entry or
    one that does not fit the module (another architecture than the stored config's) names ``path``."""
    for name, net in modules.items():
        if name not in state_dicts:
            raise ValueError(f"{path}: no {name!r} weights in the model file (has {sorted(state_dicts)})")
        try:
            net.load_state_dict(state_dicts[name])
        except RuntimeError as e:
            raise ValueError(f"{path}: {name!r} weights do not match the stored config's architecture: {e}") from None


def load_model_file(
    path: str | os.PathLike, map_location: str | torch.device = "cpu"
) -> tuple[Config, dict[str, Any]]:
    """Rebuild the depth and pose nets of a model file: ``(cfg, modules)``.

    ``modules["depth"]`` / ``modules["pose"]`` are the loaded networks (on ``map_location`` when it
    is a device), and ``modules["extra"]`` maps every other stored name (e.g. ``"feature"``, owned
    by the SA4Depth refinement) to its raw state dict. Non-state-dict entries of the file are in
    :func:`read_model_file`'s payload.
    """
    payload = read_model_file(path, map_location)
    cfg = Config(payload["config"])
    try:
        nets = build_models(cfg, load_pretrained=False)
    except (KeyError, AttributeError) as e:
        raise ValueError(f"{path}: stored config lacks a model key ({e})") from None
    sds = payload["state_dicts"]
    load_state_dicts(nets, sds, path)
    if isinstance(map_location, (str, torch.device)):
        for net in nets.values():
            net.to(map_location)
    modules: dict[str, Any] = dict(nets)
    modules["extra"] = {k: v for k, v in sds.items() if k not in nets}
    return cfg, modules


def load_depth_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[DepthNet, Config]:
    """``(DepthNet in eval mode on device, cfg)`` for evaluation / inference."""
    cfg, modules = load_model_file(path, map_location="cpu")
    depth = modules["depth"].to(device).eval()
    return depth, cfg
