"""Monodepth2's depth and pose networks (Godard et al., ICCV 2019; ``networks/`` of
nianticlabs/monodepth2), re-implemented on the ResNets of :mod:`sa4depth.models.resnet`.

* :class:`ResnetEncoder` -- five feature maps at strides 2, 4, 8, 16, 32;
* :class:`DepthDecoder` -- U-Net decoder with sigmoid disparity heads at ``scales``;
* :class:`PoseDecoder` -- axis-angle + translation, scaled by 0.01;
* :class:`DepthNet`, :class:`PoseNet` -- the "separate ResNet" pose and depth models;
* :func:`predict_relative_pose` -- Monodepth2's frame ordering / inversion giving ``T_{f<-0}``.
"""
from __future__ import annotations

import os
from typing import Iterable

import torch
import torch.nn as nn
import torch.nn.functional as F

from sa4depth.geometry import transformation_from_parameters
from sa4depth.models.resnet import build_resnet, load_imagenet_weights

__all__ = [
    "ResnetEncoder",
    "Conv3x3",
    "ConvBlock",
    "upsample",
    "DepthDecoder",
    "PoseDecoder",
    "DepthNet",
    "PoseNet",
    "predict_relative_pose",
]

# Monodepth2 normalises inputs with these constants (networks/resnet_encoder.py).
IMAGE_MEAN = 0.45
IMAGE_STD = 0.225


class ResnetEncoder(nn.Module):
    """Monodepth2 ``ResnetEncoder``: returns ``[relu(bn1(conv1 x)), layer1(maxpool .), layer2,
    layer3, layer4]`` with channels ``num_ch_enc = [64, 64, 128, 256, 512]`` (ResNet-18) or
    ``[64, 256, 512, 1024, 2048]`` (ResNet-50). Input in [0, 1], normalised by
    ``(x - 0.45) / 0.225``. ``num_input_images = n`` gives a ``3n``-channel ``conv1`` whose
    pretrained weights are repeated and divided by ``n``."""

    def __init__(self, num_layers: int, pretrained_path: str | os.PathLike | None = None, num_input_images: int = 1):
        super().__init__()
        if num_input_images < 1:
            raise ValueError(f"ResnetEncoder: num_input_images must be >= 1, got {num_input_images}")
        self.num_layers = num_layers
        self.num_input_images = num_input_images
        self.encoder = build_resnet(num_layers, in_channels=3 * num_input_images, include_fc=False)
        if pretrained_path is not None:
            load_imagenet_weights(self.encoder, pretrained_path)
        self.num_ch_enc = [64, 64, 128, 256, 512]
        if num_layers > 34:
            self.num_ch_enc[1:] = [c * 4 for c in self.num_ch_enc[1:]]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if x.dim() != 4 or x.shape[1] != 3 * self.num_input_images:
            raise ValueError(
                f"ResnetEncoder: expected (B, {3 * self.num_input_images}, H, W) input, got {tuple(x.shape)}"
            )
        e = self.encoder
        x = (x - IMAGE_MEAN) / IMAGE_STD
        f0 = e.relu(e.bn1(e.conv1(x)))
        f1 = e.layer1(e.maxpool(f0))
        f2 = e.layer2(f1)
        f3 = e.layer3(f2)
        f4 = e.layer4(f3)
        return [f0, f1, f2, f3, f4]


class Conv3x3(nn.Module):
    """Reflection pad 1 + 3x3 conv (Monodepth2 ``layers.Conv3x3``).

    Reflection is undefined on a 1-pixel-wide map (the stride-32 features of inputs 32 pixels
    high, e.g. the ``tiny`` test scale); such maps are padded by replication instead, which is
    what reflection would give if it were defined. Larger maps are exactly Monodepth2's."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mode = "reflect" if min(x.shape[-2:]) > 1 else "replicate"
        return self.conv(F.pad(x, (1, 1, 1, 1), mode=mode))


class ConvBlock(nn.Module):
    """Conv3x3 + ELU (Monodepth2 ``layers.ConvBlock``)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = Conv3x3(cin, cout)
        self.nonlin = nn.ELU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.nonlin(self.conv(x))


def upsample(x: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour x2 upsampling (Monodepth2 ``layers.upsample``)."""
    return F.interpolate(x, scale_factor=2, mode="nearest")


class DepthDecoder(nn.Module):
    """Monodepth2 ``DepthDecoder``: for i = 4..0, ``upconv(i,0)`` -> x2 nearest -> concat skip
    ``features[i-1]`` -> ``upconv(i,1)``; a sigmoid disparity head at every ``i in scales``.
    Decoder channels ``[16, 32, 64, 128, 256]``. Returns ``{("disp", s): (B, 1, H/2^s, W/2^s)}``."""

    num_ch_dec = (16, 32, 64, 128, 256)

    def __init__(self, num_ch_enc: list[int], scales: Iterable[int] = range(4), num_output_channels: int = 1,
                 use_skips: bool = True):
        super().__init__()
        self.scales = [int(s) for s in scales]
        bad = [s for s in self.scales if not 0 <= s <= 4]
        if bad or not self.scales:
            raise ValueError(f"DepthDecoder: scales must be a non-empty subset of 0..4, got {list(scales)}")
        self.use_skips = use_skips
        self.num_ch_enc = list(num_ch_enc)
        dec = self.num_ch_dec
        self.upconv0 = nn.ModuleList()
        self.upconv1 = nn.ModuleList()
        for i in range(5):  # index i = decoder level (kept in order 0..4 for readable keys)
            cin = self.num_ch_enc[-1] if i == 4 else dec[i + 1]
            self.upconv0.append(ConvBlock(cin, dec[i]))
            cin = dec[i] + (self.num_ch_enc[i - 1] if use_skips and i > 0 else 0)
            self.upconv1.append(ConvBlock(cin, dec[i]))
        self.dispconv = nn.ModuleDict({str(s): Conv3x3(dec[s], num_output_channels) for s in self.scales})

    def forward(self, features: list[torch.Tensor]) -> dict[tuple[str, int], torch.Tensor]:
        out: dict[tuple[str, int], torch.Tensor] = {}
        x = features[-1]
        for i in range(4, -1, -1):
            x = upsample(self.upconv0[i](x))
            if self.use_skips and i > 0:
                x = torch.cat([x, features[i - 1]], dim=1)
            x = self.upconv1[i](x)
            if i in self.scales:
                out[("disp", i)] = torch.sigmoid(self.dispconv[str(i)](x))
        return out


class PoseDecoder(nn.Module):
    """Monodepth2 ``PoseDecoder``: ``squeeze`` 1x1 (->256) + ReLU per input, concat, two 3x3
    convs (256) + ReLU, 1x1 conv to ``6 * frames``, spatial mean, times 0.01.
    Returns ``(axisangle, translation)``, each ``(B, frames, 3)``."""

    def __init__(self, num_ch_enc: list[int], num_input_features: int = 1, num_frames_to_predict_for: int = 1,
                 stride: int = 1):
        super().__init__()
        self.num_input_features = num_input_features
        self.num_frames = num_frames_to_predict_for
        self.squeeze = nn.Conv2d(num_ch_enc[-1], 256, 1)
        self.pose0 = nn.Conv2d(num_input_features * 256, 256, 3, stride, 1)
        self.pose1 = nn.Conv2d(256, 256, 3, stride, 1)
        self.pose2 = nn.Conv2d(256, 6 * num_frames_to_predict_for, 1)
        self.relu = nn.ReLU()

    def forward(self, input_features: list[list[torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
        if len(input_features) != self.num_input_features:
            raise ValueError(
                f"PoseDecoder: expected {self.num_input_features} feature lists, got {len(input_features)}"
            )
        x = torch.cat([self.relu(self.squeeze(f[-1])) for f in input_features], dim=1)
        x = self.relu(self.pose0(x))
        x = self.relu(self.pose1(x))
        x = self.pose2(x).mean(dim=(2, 3))
        x = 0.01 * x.view(-1, self.num_frames, 6)
        return x[..., :3], x[..., 3:]


class DepthNet(nn.Module):
    """ResNet encoder + depth decoder. ``forward(img (B,3,H,W) in [0,1]) -> {("disp", s): ...}``
    (sigmoid disparity; convert with :func:`sa4depth.geometry.disp_to_depth`)."""

    def __init__(self, num_layers: int = 18, pretrained_path: str | os.PathLike | None = None,
                 scales: Iterable[int] = range(4)):
        super().__init__()
        self.encoder = ResnetEncoder(num_layers, pretrained_path, num_input_images=1)
        self.decoder = DepthDecoder(self.encoder.num_ch_enc, scales)
        self.scales = self.decoder.scales

    def forward(self, img: torch.Tensor) -> dict[tuple[str, int], torch.Tensor]:
        return self.decoder(self.encoder(img))


class PoseNet(nn.Module):
    """Monodepth2's "separate_resnet" pose model: a 6-channel ResNet encoder on two images
    concatenated along channels, a :class:`PoseDecoder` for one frame.

    ``forward(pair (B,6,H,W))`` or ``forward(img_a, img_b)`` -> ``(axisangle (B,1,3),
    translation (B,1,3))``; turn into a matrix with :func:`predict_relative_pose` or
    :func:`sa4depth.geometry.transformation_from_parameters`."""

    def __init__(self, num_layers: int = 18, pretrained_path: str | os.PathLike | None = None):
        super().__init__()
        self.encoder = ResnetEncoder(num_layers, pretrained_path, num_input_images=2)
        self.decoder = PoseDecoder(self.encoder.num_ch_enc, num_input_features=1, num_frames_to_predict_for=1)

    def forward(self, img_a: torch.Tensor, img_b: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        x = img_a if img_b is None else torch.cat([img_a, img_b], dim=1)
        return self.decoder([self.encoder(x)])


def predict_relative_pose(pose_net: PoseNet, img0: torch.Tensor, img_f: torch.Tensor, frame_id: int) -> torch.Tensor:
    """``T_{f<-0}`` (B,4,4) from the pose net, as Monodepth2's ``predict_poses``: the pair is fed in
    temporal order (``[img_f, img0]`` for ``f < 0``, ``[img0, img_f]`` for ``f > 0``) and the
    prediction inverted for ``f < 0``; the result maps frame-0 camera points into frame f."""
    if frame_id == 0:
        raise ValueError("predict_relative_pose: frame_id 0 is the target frame itself")
    pair = torch.cat([img_f, img0], 1) if frame_id < 0 else torch.cat([img0, img_f], 1)
    axisangle, translation = pose_net(pair)
    return transformation_from_parameters(axisangle[:, :1], translation[:, :1], invert=frame_id < 0)
