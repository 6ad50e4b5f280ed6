"""VGG-19 trunk (torchvision keys), FeatureNet (Eq. 7) and the pretrained-feature adapters."""
from __future__ import annotations

import pytest
import torch

from sa4depth.config import load_config
from sa4depth.models.feature_net import FeatureNet
from sa4depth.models.vgg import VGG19Features, load_vgg19_weights
from sa4depth.refine.module import SA4DepthRefiner

torch.set_num_threads(2)
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")

# torchvision vgg19 'features' conv indices (cfgs['E'] with ReLU after every conv, max-pool per block)
TV_CONV_IDX = [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]


def test_vgg19_keys_match_torchvision_layout():
    keys = set(VGG19Features(5).state_dict())
    expected = {f"features.{i}.{p}" for i in TV_CONV_IDX for p in ("weight", "bias")}
    assert keys == expected
    m = VGG19Features(3)
    assert set(m.state_dict()) == {f"features.{i}.{p}" for i in TV_CONV_IDX[:8] for p in ("weight", "bias")}
    outs = m(torch.rand(1, 3, 32, 64))
    assert [tuple(o.shape[1:]) for o in outs] == [(64, 32, 64), (128, 16, 32), (256, 8, 16)]


def test_vgg19_weight_loading(tmp_path):
    full = VGG19Features(3)
    state = {k: v.clone() for k, v in full.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(2, 2)  # a full torchvision file has a classifier
    f = tmp_path / "vgg19.pth"
    torch.save(state, f)
    small = VGG19Features(2)
    load_vgg19_weights(small, f)
    torch.testing.assert_close(small.features[7].weight, full.features[7].weight)
    state["features.5.weight"] = torch.zeros(3, 3)
    torch.save(state, f)
    with pytest.raises(ValueError, match="features.5.weight"):
        load_vgg19_weights(small, f)
    del state["features.5.weight"]
    torch.save(state, f)
    with pytest.raises(ValueError, match="missing key 'features.5.weight'"):
        load_vgg19_weights(small, f)
    with pytest.raises(ValueError, match="not found"):
        load_vgg19_weights(small, tmp_path / "nope.pth")


@pytest.mark.parametrize("level,blocks", [(0, 2), (1, 3), (2, 3)])
def test_feature_net_outputs(level, blocks):
    net = FeatureNet(feature_dim=8, feature_level=level, vgg_blocks=blocks, decoder_channels=32)
    x = torch.rand(2, 3, 32, 96)
    f, c = net(x)
    s = 2**level
    assert f.shape == (2, 8, 32 // s, 96 // s) and c.shape == (2, 1, 32 // s, 96 // s)
    torch.testing.assert_close(f.norm(dim=1), torch.ones(2, 32 // s, 96 // s))
    assert ((c > 0) & (c < 1)).all()
    with pytest.raises(ValueError, match="vgg_blocks"):
        FeatureNet(feature_level=2, vgg_blocks=2)


def test_feature_net_half_width_trunk(tmp_path):
    """refine.vgg_width scales the VGG trunk's channels (smoke scale) and refuses ImageNet weights."""
    full = FeatureNet(feature_dim=8, feature_level=1, vgg_blocks=2, decoder_channels=32)
    half = FeatureNet(feature_dim=8, feature_level=1, vgg_blocks=2, decoder_channels=32, vgg_width=0.5)
    assert half.encoder.channels == [32, 64] and full.encoder.channels == [64, 128]
    assert half.encoder.features[0].weight.shape == (32, 3, 3, 3)
    n_full = sum(p.numel() for p in full.encoder.parameters())
    n_half = sum(p.numel() for p in half.encoder.parameters())
    assert 0.2 < n_half / n_full < 0.3  # conv weights scale with width**2
    f, c = half(torch.rand(2, 3, 32, 96))
    assert f.shape == (2, 8, 16, 48) and c.shape == (2, 1, 16, 48)
    weights = tmp_path / "vgg19.pth"
    torch.save(VGG19Features(2).state_dict(), weights)
    with pytest.raises(ValueError, match="vgg_width=1.0"):
        FeatureNet(feature_dim=8, feature_level=1, vgg_blocks=2, vgg_weights=weights, vgg_width=0.5)
    with pytest.raises(ValueError, match="width"):
        VGG19Features(2, width=0.0)


class _TinyExtractor(torch.nn.Module):
    """Stands in for an exported MASt3R / PixLoc extractor (features only, or with confidence)."""

    def __init__(self, with_conf: bool):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1, stride=2)
        self.with_conf = with_conf

    def forward(self, x: torch.Tensor):
        f = self.conv(x)
        return (f, torch.sigmoid(f[:, :1])) if self.with_conf else f


@pytest.mark.parametrize("name", ["mast3r", "pixloc"])
def test_pretrained_features_need_weights(tmp_path, name):
    cfg = load_config(data="synthetic", scale="tiny", overrides=[f"refine.features={name}"])
    with pytest.raises(ValueError, match="not run: weights not provided"):
        SA4DepthRefiner(cfg)
    bad = tmp_path / "bad.pt"
    bad.write_text("not a model")
    cfg = load_config(data="synthetic", scale="tiny", overrides=[f"refine.features={name}", f"refine.feature_weights={bad}"])
    with pytest.raises(ValueError, match="bad.pt"):
        SA4DepthRefiner(cfg)
    for with_conf in (False, True):
        f = tmp_path / f"ext{int(with_conf)}.pt"
        torch.jit.trace(_TinyExtractor(with_conf), torch.rand(1, 3, 32, 96)).save(str(f))
        cfg = load_config(data="synthetic", scale="tiny", overrides=[f"refine.features={name}", f"refine.feature_weights={f}"])
        ref = SA4DepthRefiner(cfg)
        assert not any(p.requires_grad for p in ref.extractor.parameters())  # frozen
        feats, conf = ref.extract(torch.rand(2, 3, 32, 96))
        assert feats.shape == (2, 4, 16, 48) and (conf is not None) == with_conf
        torch.testing.assert_close(feats.norm(dim=1), torch.ones(2, 16, 48))
        K = torch.eye(4).repeat(2, 1, 1)
        K[:, 0, 0] = K[:, 1, 1] = 80.0
        K[:, 0, 2], K[:, 1, 2] = 47.5, 15.5
        img = torch.rand(2, 3, 32, 96)
        T, st = ref({0: img, 1: img}, torch.full((2, 1, 32, 96), 5.0), K, {1: torch.eye(4).repeat(2, 1, 1)})
        assert torch.isfinite(T[1]).all() and st["refine_fallbacks"] == 0
