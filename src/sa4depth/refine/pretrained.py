"""Frozen pretrained feature extractors for Table VI rows 15 (MASt3R) and 16 (PixLoc).

Neither network can be built here from its original code (MASt3R is a ViT-L with its own repo,
PixLoc's extractor lives in ``pixlib``) and nothing is downloaded at run time. The adapter
therefore loads a **TorchScript** export of the extractor from the local file
``cfg.refine.feature_weights`` (e.g. ``torch.jit.trace(pixloc_model.extractor, example)`` or the
MASt3R encoder+head). Contract of the exported module:

- input: images (B,3,H,W) in [0, 1] (the export includes its own normalisation),
- output: a feature tensor (B,C,h,w), or a tuple/list ``(features, confidence)`` with confidence
  (B,1,h,w) in [0, 1]; PixLoc returns several levels: export the level you want to use.

Features are L2-normalised per pixel (as the learned features) and the module is frozen
(``requires_grad_(False)``, eval mode). Without a weights file :func:`load_pretrained_extractor`
raises ``ValueError`` early, so a table can report the row as "not run: weights not provided".
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["PretrainedFeatures", "load_pretrained_extractor"]


class PretrainedFeatures(nn.Module):
    """Wrap a frozen TorchScript extractor; ``forward(images) -> (F, C or None)``."""

    def __init__(self, module: nn.Module, name: str, source: str):
        super().__init__()
        self.name = name
        self.source = source
        self.module = module
        self.module.eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    def train(self, mode: bool = True) -> "PretrainedFeatures":
        super().train(mode)
        self.module.eval()  # always frozen
        return self

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        out = self.module(images)
        conf = None
        if isinstance(out, (tuple, list)):
            if not 1 <= len(out) <= 2:
                raise ValueError(f"{self.name} features ({self.source}): expected (features[, confidence]), got {len(out)} outputs")
            feats = out[0]
            conf = out[1] if len(out) == 2 else None
        else:
            feats = out
        if not isinstance(feats, torch.Tensor) or feats.dim() != 4 or feats.shape[0] != images.shape[0]:
            shape = tuple(feats.shape) if isinstance(feats, torch.Tensor) else type(feats).__name__
            raise ValueError(f"{self.name} features ({self.source}): expected (B,C,h,w) features, got {shape}")
        if conf is not None and (conf.dim() != 4 or conf.shape[1] != 1 or conf.shape[-2:] != feats.shape[-2:]):
            raise ValueError(
                f"{self.name} features ({self.source}): confidence must be (B,1,h,w) like the features, got {tuple(conf.shape)}"
            )
        return F.normalize(feats, dim=1), conf


def load_pretrained_extractor(name: str, weights: str | os.PathLike | None) -> PretrainedFeatures:
    """Load the frozen extractor for ``refine.features = name`` (``mast3r`` or ``pixloc``).

    Raises ``ValueError`` when ``weights`` is None ("not run: weights not provided"), missing, or
    not a TorchScript archive.
    """
    if name not in ("mast3r", "pixloc"):
        raise ValueError(f"refine.features={name!r}: no pretrained adapter (choose mast3r or pixloc)")
    if weights is None:
        raise ValueError(
            f"refine.features={name} not run: weights not provided (set refine.feature_weights to a "
            f"TorchScript export of the {name} feature extractor)"
        )
    path = Path(weights)
    if not path.is_file():
        raise ValueError(f"refine.feature_weights={str(path)!r}: file not found (features={name})")
    try:
        module = torch.jit.load(str(path), map_location="cpu")
    except Exception as e:  # noqa: BLE001 - name the file whatever the loader complains about
        raise ValueError(
            f"refine.feature_weights={str(path)!r}: not a TorchScript feature extractor for {name} ({e})"
        ) from None
    return PretrainedFeatures(module, name, str(path))
