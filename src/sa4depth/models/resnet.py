"""ResNet-18 / ResNet-50 with torchvision-identical ``state_dict`` keys and shapes.

torchvision cannot be imported in this project, so the backbones are written here from the
published architecture (He et al., "Deep Residual Learning for Image Recognition", CVPR 2016,
Table 1) using torchvision's module names (``conv1, bn1, layer1.0.conv1, ..., layerN.0.downsample.0/1,
fc``) and its "ResNet v1.5" choice of putting the stride of a Bottleneck on the 3x3 conv. A
``.pth`` file saved from ``torchvision.models.resnet18/50().state_dict()`` (e.g. the ImageNet
weights) loads with :func:`load_imagenet_weights`.

Parameter counts (incl. ``fc``): ResNet-18 11,689,512; ResNet-50 25,557,032.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import torch
import torch.nn as nn

__all__ = [
    "BasicBlock",
    "Bottleneck",
    "ResNet",
    "resnet18",
    "resnet50",
    "build_resnet",
    "RESNET_SPECS",
    "read_state_dict",
    "load_imagenet_weights",
]


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False)


def _conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convs with identity (or 1x1-conv + BN ``downsample``) shortcut."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = _conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (strided, v1.5) -> 1x1 (x4 channels) with a projection shortcut."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = _conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = _conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


RESNET_SPECS: dict[int, tuple[type, list[int]]] = {
    18: (BasicBlock, [2, 2, 2, 2]),
    50: (Bottleneck, [3, 4, 6, 3]),
}


class ResNet(nn.Module):
    """ImageNet ResNet. ``in_channels`` > 3 gives the multi-image conv1 of Monodepth2's
    ``ResNetMultiImageInput``; ``include_fc=False`` drops ``avgpool``/``fc`` (encoders)."""

    def __init__(
        self,
        block: type,
        layers: list[int],
        num_classes: int = 1000,
        in_channels: int = 3,
        include_fc: bool = True,
    ):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.include_fc = include_fc
        if include_fc:
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(512 * block.expansion, num_classes)
        # torchvision's initialisation
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def _make_layer(self, block: type, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                _conv1x1(self.inplanes, planes * block.expansion, stride), nn.BatchNorm2d(planes * block.expansion)
            )
        mods = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        mods += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        if not self.include_fc:
            return x
        return self.fc(torch.flatten(self.avgpool(x), 1))


def build_resnet(num_layers: int, in_channels: int = 3, include_fc: bool = True, num_classes: int = 1000) -> ResNet:
    """ResNet-``num_layers`` (18 or 50)."""
    if num_layers not in RESNET_SPECS:
        raise ValueError(f"ResNet depth {num_layers!r} is not available (choose from {sorted(RESNET_SPECS)})")
    block, layers = RESNET_SPECS[num_layers]
    return ResNet(block, layers, num_classes=num_classes, in_channels=in_channels, include_fc=include_fc)


def resnet18(**kw) -> ResNet:
    return build_resnet(18, **kw)


def resnet50(**kw) -> ResNet:
    return build_resnet(50, **kw)


# ----------------------------------------------------------------------------- weights
def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a torchvision-format ``.pth`` (a plain state dict, or one wrapped under
    ``"state_dict"``/``"model"``) on the CPU. Errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: ImageNet weights file not found (model.pretrained expects a local torchvision-format "
            f".pth, e.g. resnet18-f37072fd.pth; nothing is downloaded at run time; use model.pretrained=null "
            f"for random initialisation)"
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle/zip errors: report the file
        raise ValueError(f"{path}: cannot be read as a torch weights file ({type(e).__name__}: {e})") from None
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model"):
            if key in obj and isinstance(obj[key], Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{path}: not a state dict of tensors (got {type(obj).__name__})")
    return dict(obj)


def load_imagenet_weights(model: ResNet, path: str | os.PathLike | Mapping[str, torch.Tensor]) -> ResNet:
    """Load torchvision ImageNet weights into ``model`` (in place) and return it.

    * keys and shapes must match torchvision's exactly; otherwise a ``ValueError`` names the file
      and the first mismatching keys (missing, unexpected, or with the wrong shape);
    * ``fc.*`` in the file is skipped when the model has no ``fc`` (encoders);
    * ``*.num_batches_tracked`` may be absent (older torchvision files), as BatchNorm allows;
    * a model whose ``conv1`` takes ``3n`` channels (Monodepth2's multi-image encoder) gets the
      3-channel ``conv1.weight`` repeated ``n`` times along the input channels and divided by ``n``
      (Monodepth2 ``resnet_multiimage_input``).
    """
    src = str(path) if not isinstance(path, Mapping) else "<state dict>"
    loaded = dict(path) if isinstance(path, Mapping) else read_state_dict(path)
    own = model.state_dict()
    if not getattr(model, "include_fc", True):
        loaded = {k: v for k, v in loaded.items() if not k.startswith("fc.")}
    w = loaded.get("conv1.weight")
    n_in = own["conv1.weight"].shape[1]
    if w is not None and w.dim() == 4 and w.shape[1] == 3 and n_in != 3 and n_in % 3 == 0:
        n = n_in // 3
        loaded["conv1.weight"] = torch.cat([w] * n, dim=1) / n
    missing = [k for k in own if k not in loaded and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in loaded if k not in own]
    wrong = [
        f"{k} (file {tuple(loaded[k].shape)} vs model {tuple(own[k].shape)})"
        for k in own
        if k in loaded and tuple(loaded[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing keys {missing[:5]}" + (f" (+{len(missing) - 5} more)" if len(missing) > 5 else ""))
        if unexpected:
            parts.append(
                f"unexpected keys {unexpected[:5]}" + (f" (+{len(unexpected) - 5} more)" if len(unexpected) > 5 else "")
            )
        if wrong:
            parts.append(f"shape mismatches {wrong[:5]}")
        depth = "?"
        for d, (block, layers) in RESNET_SPECS.items():
            if isinstance(model.layer1[0], block) and [len(getattr(model, f"layer{i}")) for i in range(1, 5)] == layers:
                depth = str(d)
        raise ValueError(f"{src}: not torchvision ResNet-{depth} weights: " + "; ".join(parts))
    model.load_state_dict(loaded, strict=False)
    return model
