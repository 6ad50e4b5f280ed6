"""Feature net of SA4Depth (Eq. 7): image -> (feature map F, confidence map C).

A VGG-19 encoder (:mod:`sa4depth.models.vgg`) and a UNet-style decoder with skip connections, in
the style of PixLoc's ``UNet`` extractor (Sarlin et al., CVPR 2021): the decoder upsamples the
deepest block bilinearly, concatenates the encoder skip of the next finer block, applies two
3x3 conv + ReLU, and stops at stride ``2**feature_level``. Two 1x1 heads give

- F: ``feature_dim`` channels, L2-normalised per pixel (as PixLoc's ``normalize_features``),
- C: one channel through a sigmoid, in (0, 1) (PixLoc's "uncertainty" head, read as confidence).

The encoder keeps only ``vgg_blocks`` VGG blocks (PixLoc also truncates VGG) so the net stays
light enough for CPU tests at the ``tiny`` scale. Inputs are images in [0, 1]; the ImageNet
normalisation expected by torchvision's VGG weights is applied inside.
"""
from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn

from sa4depth.models.vgg import IMAGENET_MEAN, IMAGENET_STD, VGG19Features, load_vgg19_weights

__all__ = ["FeatureNet"]


def _conv_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True))


class FeatureNet(nn.Module):
    """VGG-19 UNet giving ``(F (B,feature_dim,H/s,W/s), C (B,1,H/s,W/s))`` with ``s = 2**feature_level``.

    Args:
        feature_dim: channels of F (``cfg.refine.feature_dim``).
        feature_level: output stride exponent (``cfg.refine.feature_level``, 0..3).
        vgg_blocks: VGG blocks kept in the encoder (> feature_level; ``cfg.refine.vgg_blocks``).
        decoder_channels: upper bound on decoder widths (``cfg.refine.decoder_channels``).
        vgg_width: channel multiplier of the VGG trunk (``cfg.refine.vgg_width``; 1 = VGG-19).
        vgg_weights: optional local torchvision ``vgg19`` state-dict file (ImageNet init).
    """

    def __init__(
        self,
        feature_dim: int = 32,
        feature_level: int = 1,
        vgg_blocks: int = 4,
        decoder_channels: int = 128,
        vgg_weights: str | os.PathLike | None = None,
        vgg_width: float = 1.0,
    ):
        super().__init__()
        if vgg_blocks <= feature_level:
            raise ValueError(
                f"FeatureNet: refine.vgg_blocks={vgg_blocks} must exceed refine.feature_level={feature_level}"
            )
        self.feature_level = feature_level
        self.encoder = VGG19Features(vgg_blocks, width=vgg_width)
        if vgg_weights is not None:
            if vgg_width != 1.0:
                raise ValueError(f"FeatureNet: refine.vgg_weights={vgg_weights} are ImageNet VGG-19 weights, which "
                                 f"need refine.vgg_width=1.0 (got {vgg_width})")
            load_vgg19_weights(self.encoder, vgg_weights)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        ch = self.encoder.channels
        cin = ch[-1]
        self.decoder = nn.ModuleList()
        for lvl in range(vgg_blocks - 2, feature_level - 1, -1):
            cout = min(ch[lvl], decoder_channels)
            self.decoder.append(nn.Sequential(_conv_relu(cin + ch[lvl], cout), _conv_relu(cout, cout)))
            cin = cout
        if not len(self.decoder):  # vgg_blocks == feature_level + 1: a 3x3 adaptation only
            self.decoder.append(_conv_relu(cin, min(cin, decoder_channels)))
            cin = min(cin, decoder_channels)
        self.feature_head = nn.Conv2d(cin, feature_dim, 1)
        self.confidence_head = nn.Conv2d(cin, 1, 1)

    @classmethod
    def from_config(cls, refine, load_weights: bool = True) -> "FeatureNet":
        """The feature net described by ``cfg.refine``. ``load_weights=False`` skips the ImageNet
        file (the weights then come from a model file); keys missing from an older run's config
        take the values they had before they existed."""
        return cls(
            feature_dim=refine["feature_dim"],
            feature_level=refine["feature_level"],
            vgg_blocks=refine.get("vgg_blocks", 4),
            decoder_channels=refine.get("decoder_channels", 128),
            vgg_weights=refine.get("vgg_weights") if load_weights else None,
            vgg_width=refine.get("vgg_width", 1.0),
        )

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = (images - self.mean) / self.std
        skips = self.encoder(x)
        y = skips[-1]
        n_up = len(skips) - 1 - self.feature_level
        if n_up == 0:
            y = self.decoder[0](y)
        for i in range(n_up):
            skip = skips[len(skips) - 2 - i]
            y = F.interpolate(y, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            y = self.decoder[i](torch.cat([y, skip], dim=1))
        feats = F.normalize(self.feature_head(y), dim=1)
        conf = torch.sigmoid(self.confidence_head(y))
        return feats, conf
