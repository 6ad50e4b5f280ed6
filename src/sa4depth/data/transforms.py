"""Image transforms used by the loaders (no torchvision): resize, colour jitter, flips, K.

Conventions (Monodepth2 ``MonoDataset``):

- scale 0 is the image resized to (H, W) with a Lanczos/antialias filter; scale s is resized
  from scale s-1 to (H / 2^s, W / 2^s) with the same filter;
- colour augmentation (``ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.1)``)
  draws ONE set of parameters per sample and applies it to every frame and scale; torchvision
  applies the four operations in a random order, which is reproduced here;
- intrinsics: the normalised 4x4 K is scaled to pixels at scale s by ``K[0, :] *= W_s`` and
  ``K[1, :] *= H_s``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

__all__ = [
    "ColorJitterParams",
    "sample_color_jitter",
    "apply_color_jitter",
    "pil_to_tensor",
    "resize_pyramid",
    "scaled_K",
    "flip_K",
    "mirror_pose",
]

LANCZOS = Image.Resampling.LANCZOS


@dataclass(frozen=True)
class ColorJitterParams:
    """One draw of torchvision-style ``ColorJitter`` parameters."""

    order: tuple[int, int, int, int]  # permutation of (brightness, contrast, saturation, hue)
    brightness: float
    contrast: float
    saturation: float
    hue: float


def sample_color_jitter(rng: np.random.Generator, brightness: float = 0.2, contrast: float = 0.2,
                        saturation: float = 0.2, hue: float = 0.1) -> ColorJitterParams:
    """Draw factors like torchvision ``ColorJitter.get_params`` (Monodepth2's values by default)."""
    order = tuple(int(i) for i in rng.permutation(4))
    return ColorJitterParams(
        order=order,  # type: ignore[arg-type]
        brightness=float(rng.uniform(max(0.0, 1 - brightness), 1 + brightness)),
        contrast=float(rng.uniform(max(0.0, 1 - contrast), 1 + contrast)),
        saturation=float(rng.uniform(max(0.0, 1 - saturation), 1 + saturation)),
        hue=float(rng.uniform(-hue, hue)),
    )


def _gray(img: np.ndarray) -> np.ndarray:
    # ITU-R 601-2 luma, as torchvision's rgb_to_grayscale
    return (0.299 * img[..., 0, :, :] + 0.587 * img[..., 1, :, :] + 0.114 * img[..., 2, :, :])[..., None, :, :]


def _blend(a: np.ndarray, b: np.ndarray, f: float) -> np.ndarray:
    return np.clip(f * a + (1.0 - f) * b, 0.0, 1.0)


def _rgb_to_hsv(img: np.ndarray) -> np.ndarray:
    r, g, b = img[..., 0, :, :], img[..., 1, :, :], img[..., 2, :, :]
    maxc = img.max(-3)
    minc = img.min(-3)
    eqc = maxc == minc
    cr = maxc - minc
    s = cr / np.where(eqc, 1.0, maxc)
    cr_div = np.where(eqc, 1.0, cr)
    rc = (maxc - r) / cr_div
    gc = (maxc - g) / cr_div
    bc = (maxc - b) / cr_div
    h = np.where(maxc == r, bc - gc, np.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    h = np.where(eqc, 0.0, h)
    h = np.mod(h / 6.0 + 1.0, 1.0)
    return np.stack((h, s, maxc), -3)


def _hsv_to_rgb(img: np.ndarray) -> np.ndarray:
    h, s, v = img[..., 0, :, :], img[..., 1, :, :], img[..., 2, :, :]
    i = np.floor(h * 6.0)
    f = h * 6.0 - i
    i = i.astype(np.int64) % 6
    p = np.clip(v * (1.0 - s), 0.0, 1.0)
    q = np.clip(v * (1.0 - s * f), 0.0, 1.0)
    t = np.clip(v * (1.0 - s * (1.0 - f)), 0.0, 1.0)
    r = np.choose(i, (v, q, p, p, t, v))
    g = np.choose(i, (t, v, v, q, p, p))
    b = np.choose(i, (p, p, t, v, v, q))
    return np.stack((r, g, b), -3)


def apply_color_jitter(img, p: ColorJitterParams):
    """Apply one jitter draw to ``(..., 3, H, W)`` images in [0, 1] (numpy array or tensor).

    torchvision semantics: brightness scales, contrast blends with the mean grey level of each
    image, saturation blends with the grey image, hue rotates the HSV hue; clamp after each.
    Computed in numpy (tiny per-sample tensors are dominated by torch's threading overhead).
    """
    is_tensor = isinstance(img, torch.Tensor)
    x = img.detach().cpu().numpy() if is_tensor else np.asarray(img)
    x = x.astype(np.float32, copy=True)
    for op in p.order:
        if op == 0:
            x = np.clip(x * p.brightness, 0.0, 1.0)
        elif op == 1:
            mean = _gray(x).mean(axis=(-3, -2, -1), keepdims=True)
            x = _blend(x, mean, p.contrast)
        elif op == 2:
            x = _blend(x, _gray(x), p.saturation)
        else:
            hsv = _rgb_to_hsv(x)
            hsv[..., 0, :, :] = np.mod(hsv[..., 0, :, :] + p.hue, 1.0)
            x = np.clip(_hsv_to_rgb(hsv), 0.0, 1.0)
    x = x.astype(np.float32, copy=False)
    return torch.from_numpy(x) if is_tensor else x


def pil_to_array(im: Image.Image) -> np.ndarray:
    """RGB PIL image -> float32 numpy ``3 x H x W`` in [0, 1]."""
    return np.ascontiguousarray(np.asarray(im, dtype=np.uint8).transpose(2, 0, 1), dtype=np.float32) / 255.0


def pil_to_tensor(im: Image.Image) -> torch.Tensor:
    """RGB PIL image -> float32 ``3 x H x W`` in [0, 1]."""
    return torch.from_numpy(pil_to_array(im))


def resize_pyramid(im: Image.Image, height: int, width: int, num_scales: int) -> list[Image.Image]:
    """Monodepth2 resizing: scale 0 = (H, W) from the input, scale s from scale s-1 (Lanczos).

    An input already at (H, W) (e.g. from the resized-image cache) is used as is, so cached and
    uncached loading give identical pixels.
    """
    out = []
    cur = im if im.size == (width, height) else im.resize((width, height), LANCZOS)
    out.append(cur)
    for s in range(1, num_scales):
        cur = cur.resize((width // 2 ** s, height // 2 ** s), LANCZOS)
        out.append(cur)
    return out


def scaled_K(K_norm: np.ndarray, width: int, height: int) -> np.ndarray:
    """Normalised 4x4 K -> pixel K at (width, height) (Monodepth2: rows 0/1 times W/H)."""
    K = np.array(K_norm, dtype=np.float64, copy=True)
    K[0, :] *= width
    K[1, :] *= height
    return K


def flip_K(K_pix: np.ndarray, width: int) -> np.ndarray:
    """K of a horizontally mirrored image: pixel column u -> W - 1 - u, so cx -> W - 1 - cx.

    (Monodepth2 leaves K unchanged because its K has cx = W/2; the exact mirror keeps
    non-centred principal points, e.g. from real calibration, geometrically consistent.)
    """
    K = np.array(K_pix, dtype=np.float64, copy=True)
    K[0, 2] = (width - 1) - K[0, 2]
    return K


_S = np.diag([-1.0, 1.0, 1.0, 1.0])


def mirror_pose(T: np.ndarray) -> np.ndarray:
    """Rigid motion seen in a horizontally mirrored camera: ``S T S`` with ``S = diag(-1,1,1,1)``
    (x -> -x conjugation: translation x flips sign, rotations about y and z reverse)."""
    return _S @ np.asarray(T, np.float64) @ _S
