"""VGG-19 convolutional trunk with torchvision-compatible parameter names.

Layer indices follow torchvision's ``vgg19`` (Simonyan & Zisserman 2015, configuration "E";
``torchvision.models.vgg.cfgs['E']``): ``features.0`` conv 3->64, ``features.1`` ReLU,
``features.2`` conv 64->64, ``features.3`` ReLU, ``features.4`` max-pool, ... so that the
``features.*`` entries of an ImageNet ``vgg19`` state dict stored in a local file load directly
(:func:`load_vgg19_weights`). torchvision itself is not imported.

The trunk can be truncated after ``num_blocks`` of the five blocks (PixLoc's UNet also uses only
the first VGG blocks); :meth:`VGG19Features.forward` returns the output of every kept block
*before* its max-pool, i.e. feature maps at strides 1, 2, 4, 8, 16 with 64, 128, 256, 512, 512
channels, as skip connections for a UNet decoder.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

__all__ = ["VGG19_CFG", "VGG19Features", "load_vgg19_weights", "IMAGENET_MEAN", "IMAGENET_STD"]

#: torchvision ``cfgs['E']`` split into the five blocks (each block is followed by a max-pool).
VGG19_CFG: list[list[int]] = [[64, 64], [128, 128], [256, 256, 256, 256], [512, 512, 512, 512], [512, 512, 512, 512]]
#: ImageNet normalisation expected by torchvision's VGG weights.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class VGG19Features(nn.Module):
    """``features`` part of VGG-19 truncated to the first ``num_blocks`` (1..5) blocks.

    Input: images (B,3,H,W) already ImageNet-normalised. Output: list of ``num_blocks`` maps.
    ``width < 1`` scales every layer's channels (at least 8): a cheaper trunk for CPU-scale runs
    that cannot load ImageNet weights (ours; the paper's VGG-19 is ``width=1``).
    """

    def __init__(self, num_blocks: int = 5, width: float = 1.0):
        super().__init__()
        if not 1 <= num_blocks <= len(VGG19_CFG):
            raise ValueError(f"VGG19Features: num_blocks must be in 1..5, got {num_blocks}")
        if not 0.0 < width <= 1.0:
            raise ValueError(f"VGG19Features: width must be in (0, 1], got {width}")
        self.num_blocks = num_blocks
        self.width = float(width)
        layers: list[nn.Module] = []
        self.block_ends: list[int] = []  # index (exclusive) of the last ReLU of each block
        self.channels: list[int] = []  # output channels of each kept block
        cin = 3
        for b, widths in enumerate(VGG19_CFG[:num_blocks]):
            if b > 0:
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            for c in widths:
                cout = max(8, int(round(c * width)))
                layers += [nn.Conv2d(cin, cout, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
                cin = cout
            self.block_ends.append(len(layers))
            self.channels.append(cin)
        self.features = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs: list[torch.Tensor] = []
        start = 0
        for end in self.block_ends:
            for layer in self.features[start:end]:
                x = layer(x)
            outs.append(x)
            start = end
        return outs


def load_vgg19_weights(module: VGG19Features, path: str | os.PathLike) -> None:
    """Load the ``features.*`` tensors of a torchvision ``vgg19`` state dict from ``path``.

    Accepts a plain state dict or one nested under ``state_dict``/``model``. Keys of deeper
    layers than the truncated trunk and ``classifier.*`` are ignored; a missing key or a shape
    mismatch raises ``ValueError`` naming the file and the key.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"VGG-19 weights {path}: file not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - report any unpickling problem with the file name
        raise ValueError(f"VGG-19 weights {path}: cannot be read as a torch state dict ({e})") from None
    for nest in ("state_dict", "model"):
        if isinstance(state, dict) and nest in state and isinstance(state[nest], dict):
            state = state[nest]
    if not isinstance(state, dict):
        raise ValueError(f"VGG-19 weights {path}: expected a state dict, got {type(state).__name__}")
    own = module.state_dict()
    new: dict[str, torch.Tensor] = {}
    for key, ref in own.items():
        if key not in state:
            raise ValueError(f"VGG-19 weights {path}: missing key {key!r} (not a torchvision vgg19 state dict?)")
        t = state[key]
        if not isinstance(t, torch.Tensor) or t.shape != ref.shape:
            shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(f"VGG-19 weights {path}: key {key!r} has shape {shape}, expected {tuple(ref.shape)}")
        new[key] = t
    module.load_state_dict(new)
