"""Backbones, Monodepth2 networks and the model-file format."""
import pytest
import torch

from sa4depth.config import load_config
from sa4depth.geometry import transformation_from_parameters
from sa4depth.models import (
    DepthDecoder,
    DepthNet,
    PoseDecoder,
    PoseNet,
    ResnetEncoder,
    build_models,
    load_depth_model,
    load_imagenet_weights,
    load_model_file,
    predict_relative_pose,
    read_model_file,
    resnet18,
    resnet50,
    save_model_file,
)

torch.set_num_threads(2)


def _bn(prefix, c):
    return {f"{prefix}.weight": (c,), f"{prefix}.bias": (c,), f"{prefix}.running_mean": (c,),
            f"{prefix}.running_var": (c,), f"{prefix}.num_batches_tracked": ()}


def _expected_resnet18():
    """torchvision resnet18 state-dict keys/shapes, written from the published architecture."""
    exp = {"conv1.weight": (64, 3, 7, 7), **_bn("bn1", 64)}
    cin = 64
    for li, c in enumerate([64, 128, 256, 512], start=1):
        for b in range(2):
            p = f"layer{li}.{b}"
            exp[f"{p}.conv1.weight"] = (c, cin if b == 0 else c, 3, 3)
            exp.update(_bn(f"{p}.bn1", c))
            exp[f"{p}.conv2.weight"] = (c, c, 3, 3)
            exp.update(_bn(f"{p}.bn2", c))
            if b == 0 and li > 1:
                exp[f"{p}.downsample.0.weight"] = (c, cin, 1, 1)
                exp.update(_bn(f"{p}.downsample.1", c))
        cin = c
    exp["fc.weight"], exp["fc.bias"] = (1000, 512), (1000,)
    return exp


def test_resnet18_keys_shapes_and_param_counts():
    m = resnet18()
    got = {k: tuple(v.shape) for k, v in m.state_dict().items()}
    assert got == _expected_resnet18()
    assert list(got) == list(_expected_resnet18())  # same order as torchvision too
    assert sum(p.numel() for p in m.parameters()) == 11_689_512
    r50 = resnet50()
    assert sum(p.numel() for p in r50.parameters()) == 25_557_032
    sd = r50.state_dict()
    assert tuple(sd["layer1.0.downsample.0.weight"].shape) == (256, 64, 1, 1)
    assert tuple(sd["layer4.2.conv3.weight"].shape) == (2048, 512, 1, 1)
    assert tuple(sd["layer2.0.conv2.weight"].shape) == (128, 128, 3, 3)  # v1.5: stride on conv2
    assert m(torch.rand(1, 3, 64, 64)).shape == (1, 1000)


@pytest.mark.parametrize("layers,chans", [(18, [64, 64, 128, 256, 512]), (50, [64, 256, 512, 1024, 2048])])
def test_depth_and_pose_shapes_tiny(layers, chans):
    cfg = load_config(data="synthetic", scale="tiny")
    H, W = cfg.data.height, cfg.data.width
    enc = ResnetEncoder(layers)
    assert enc.num_ch_enc == chans
    x = torch.rand(2, 3, H, W)
    with torch.no_grad():
        feats = enc(x)
        assert [f.shape[1] for f in feats] == chans
        assert [f.shape[-2:] for f in feats] == [(H // 2**i, W // 2**i) for i in range(1, 6)]
        out = DepthDecoder(chans)(feats)
        assert sorted(out) == [("disp", s) for s in range(4)]
        for s in range(4):
            d = out[("disp", s)]
            assert d.shape == (2, 1, H // 2**s, W // 2**s) and (d > 0).all() and (d < 1).all()
        aa, t = PoseNet(layers)(x, x)
    assert aa.shape == (2, 1, 3) and t.shape == (2, 1, 3)


@pytest.mark.parametrize("layers", [18, 50])
def test_full_size_shapes(layers):
    net = DepthNet(layers, scales=[0, 3]).eval()
    with torch.no_grad():
        out = net(torch.rand(1, 3, 192, 640))
    assert out[("disp", 0)].shape == (1, 1, 192, 640) and out[("disp", 3)].shape == (1, 1, 24, 80)


def test_pretrained_loading_round_trip_and_errors(tmp_path):
    src = resnet18()
    for p in src.parameters():
        torch.nn.init.normal_(p)
    sd = src.state_dict()
    sd = {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}  # old torchvision files
    path = tmp_path / "resnet18.pth"
    torch.save(sd, path)
    enc = ResnetEncoder(18, pretrained_path=path)
    own = enc.encoder.state_dict()
    assert "fc.weight" not in own
    for k, v in own.items():
        if not k.endswith("num_batches_tracked"):
            assert torch.equal(v, sd[k]), k
    # 6-channel conv1 of the pose encoder: duplicated along input channels and halved
    pose_enc = ResnetEncoder(18, pretrained_path=path, num_input_images=2)
    w = pose_enc.encoder.conv1.weight
    assert w.shape == (64, 6, 7, 7)
    assert torch.allclose(w, torch.cat([sd["conv1.weight"]] * 2, 1) / 2)
    assert torch.equal(pose_enc.encoder.layer3[1].conv2.weight, sd["layer3.1.conv2.weight"])
    # a deliberately wrong key is named in the error, with the file
    bad = dict(sd)
    bad["layer2.0.conv9.weight"] = bad.pop("layer2.0.conv2.weight")
    bad_path = tmp_path / "bad.pth"
    torch.save(bad, bad_path)
    with pytest.raises(ValueError, match=r"bad\.pth.*layer2\.0\.conv2\.weight.*layer2\.0\.conv9\.weight"):
        ResnetEncoder(18, pretrained_path=bad_path)
    # ResNet-18 weights into a ResNet-50: shape mismatch named
    with pytest.raises(ValueError, match="ResNet-50"):
        load_imagenet_weights(resnet50(), path)
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        ResnetEncoder(18, pretrained_path=tmp_path / "nope.pth")


def test_encoder_normalises_input():
    enc = ResnetEncoder(18).eval()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        e = enc.encoder
        f0 = e.relu(e.bn1(e.conv1((x - 0.45) / 0.225)))
        assert torch.allclose(enc(x)[0], f0)


def test_pose_decoder_scaling_and_frames():
    dec = PoseDecoder([64, 64, 128, 256, 512], num_input_features=1, num_frames_to_predict_for=2)
    captured = {}
    dec.pose2.register_forward_hook(lambda m, i, o: captured.setdefault("raw", o))
    feats = [torch.rand(3, c, 2, 4) for c in [64, 64, 128, 256, 512]]
    aa, t = dec([feats])
    raw = captured["raw"].mean(dim=(2, 3)).view(3, 2, 6)
    assert aa.shape == (3, 2, 3) and t.shape == (3, 2, 3)
    assert torch.allclose(aa, 0.01 * raw[..., :3]) and torch.allclose(t, 0.01 * raw[..., 3:])


def test_predict_relative_pose_inverts_backward_frames():
    torch.manual_seed(0)
    net = PoseNet(18).eval()
    a, b = torch.rand(2, 3, 32, 64), torch.rand(2, 3, 32, 64)
    with torch.no_grad():
        T_back = predict_relative_pose(net, a, b, -1)  # pair [b, a], inverted
        T_fwd = predict_relative_pose(net, b, a, +1)  # pair [b, a]
        aa, t = net(b, a)
    assert torch.allclose(T_back @ T_fwd, torch.eye(4).expand(2, 4, 4), atol=1e-5)
    assert torch.allclose(T_fwd, transformation_from_parameters(aa, t))


def test_build_models_and_model_file_round_trip(tmp_path):
    cfg = load_config(data="synthetic", scale="tiny", overrides=["model.scales=[0, 2]"])
    models = build_models(cfg)
    assert set(models) == {"depth", "pose"}
    feature_sd = {"w": torch.arange(3.0)}
    path = save_model_file(tmp_path / "m" / "model.pt", cfg, {**models, "feature": feature_sd}, {"step": 7})
    assert not (tmp_path / "m" / "model.pt.tmp").exists()
    assert read_model_file(path)["step"] == 7
    cfg2, mods = load_model_file(path)
    assert cfg2.model.scales == [0, 2] and cfg2.to_dict()["model"] == cfg.to_dict()["model"]
    assert torch.equal(mods["extra"]["feature"]["w"], feature_sd["w"])
    x = torch.rand(1, 3, cfg.data.height, cfg.data.width)
    models["depth"].eval()
    depth, _ = load_depth_model(path, "cpu")
    assert not depth.training
    with torch.no_grad():
        assert torch.equal(depth(x)[("disp", 0)], models["depth"](x)[("disp", 0)])
        assert torch.equal(mods["pose"].eval()(x, x)[1], models["pose"].eval()(x, x)[1])
    other = tmp_path / "other.pt"
    torch.save({"weights": 1}, other)
    with pytest.raises(ValueError, match="other.pt.*not a sa4depth model file"):
        load_model_file(other)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_model_file(tmp_path / "missing.pt")


def test_build_models_rejects_unavailable_architectures(tmp_path):
    cfg = load_config(data="synthetic", scale="tiny", overrides=["model.depth_arch=monovit"])
    with pytest.raises(ValueError, match="MonoViT.*not implemented"):
        build_models(cfg)
    cfg = load_config(data="synthetic", scale="tiny",
                      overrides={"model.pose_layers": 50, "model.pretrained": str(tmp_path / "r18.pth")})
    with pytest.raises(ValueError, match="pose_pretrained"):
        build_models(cfg)
