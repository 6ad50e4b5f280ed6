"""Losses against hand computations and their defining properties."""
import math

import pytest
import torch

from sa4depth import geometry as G
from sa4depth.losses import (
    SSIM,
    depth_noise,
    photometric_error,
    pose_consistency_loss,
    identity_errors,
    reprojection_loss,
    smoothness_loss,
    ssim,
    velocity_loss,
)

torch.set_num_threads(2)


def test_ssim_identical_is_zero_and_differs_otherwise():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 8, 10, generator=g)
    assert torch.allclose(ssim(x, x), torch.zeros_like(x), atol=1e-6)
    assert torch.allclose(SSIM()(x, x), torch.zeros_like(x), atol=1e-6)
    y = torch.rand(2, 3, 8, 10, generator=g)
    s = ssim(x, y)
    assert s.shape == x.shape and (s >= 0).all() and (s <= 1).all() and s.mean() > 0.1


def test_ssim_hand_computed_constant_patches():
    # constant images a and b: sigma = 0, SSIM = (2ab + C1) / (a^2 + b^2 + C1)
    a, b = 0.2, 0.6
    x, y = torch.full((1, 1, 4, 4), a, dtype=torch.float64), torch.full((1, 1, 4, 4), b, dtype=torch.float64)
    C1 = 0.01**2
    expected = (1 - (2 * a * b + C1) / (a * a + b * b + C1)) / 2
    assert torch.allclose(ssim(x, y), torch.full_like(x, expected))


def test_photometric_error_l1_part_by_hand():
    pred = torch.tensor([[[[0.0, 1.0]], [[0.5, 0.5]], [[1.0, 0.0]]]]).expand(1, 3, 2, 2)  # 2 equal rows
    target = torch.tensor([[[[0.5, 0.5]], [[0.5, 0.5]], [[0.5, 0.0]]]]).expand(1, 3, 2, 2)
    # per pixel mean over channels of |diff|: (0.5+0+0.5)/3, (0.5+0+0)/3
    l1 = photometric_error(pred, target, ssim_weight=0.0)
    assert torch.allclose(l1, torch.tensor([[[[1 / 3, 1 / 6]]]]).expand(1, 1, 2, 2))
    full = photometric_error(pred, target)
    assert torch.allclose(full, 0.85 * ssim(pred, target).mean(1, keepdim=True) + 0.15 * l1)
    with pytest.raises(ValueError, match="shapes differ"):
        photometric_error(pred, target[..., :1])


def _images():
    g = torch.Generator().manual_seed(1)
    target = torch.rand(1, 3, 6, 8, generator=g)
    return target, g


def test_min_reprojection_takes_per_pixel_minimum():
    target, g = _images()
    good = target.clone()
    bad = torch.rand(1, 3, 6, 8, generator=g)
    # left half: source -1 is right; right half: source 1 is right
    w_m1 = torch.cat([good[..., :4], bad[..., 4:]], -1)
    w_p1 = torch.cat([bad[..., :4], good[..., 4:]], -1)
    loss, info = reprojection_loss({-1: w_m1, 1: w_p1}, None, target, automask=False)
    pe = torch.cat([photometric_error(w_m1, target), photometric_error(w_p1, target)], 1)
    assert torch.allclose(loss, pe.min(1)[0].mean())
    assert torch.allclose(info["reprojection"], pe.min(1, keepdim=True)[0])
    assert info["automask"].all()
    avg, _ = reprojection_loss({-1: w_m1, 1: w_p1}, None, target, automask=False, min_reprojection=False)
    assert torch.allclose(avg, pe.mean())
    assert avg > loss


def test_automask_selects_identity_where_lower():
    target, g = _images()
    # the unwarped source equals the target on the top rows (static scene), the warped one
    # equals it on the bottom rows
    noise = torch.rand(1, 3, 6, 8, generator=g)
    identity = torch.cat([target[..., :3, :], noise[..., 3:, :]], -2)
    warped = torch.cat([noise[..., :3, :], target[..., 3:, :]], -2)
    loss, info = reprojection_loss({1: warped}, {1: identity}, target, automask=True,
                                   generator=torch.Generator().manual_seed(0))
    mask = info["automask"][0, 0]
    # interior rows away from the 3x3 SSIM window crossing the seam
    assert (mask[:2] == 0).all() and (mask[4:] == 1).all()
    pw = photometric_error(warped, target)
    pi = photometric_error(identity, target)
    assert torch.allclose(loss, torch.minimum(pw, pi).mean(), atol=1e-5)
    with pytest.raises(ValueError, match="identity images"):
        reprojection_loss({1: warped}, {}, target, automask=True)


def test_smoothness_zero_for_constant_and_hand_computed():
    img = torch.rand(2, 3, 5, 7)
    assert smoothness_loss(torch.full((2, 1, 5, 7), 0.3), img) == 0
    disp = torch.tensor([[[[1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [1.0, 1.0, 1.0]]]])
    im = torch.zeros(1, 3, 3, 3)
    im[:, :, :, 2] = 1.0  # a vertical edge between columns 1 and 2, same in all channels
    mean = disp.mean().item()  # 15 / 9
    d = disp[0, 0] / mean
    dx = (d[:, :-1] - d[:, 1:]).abs()  # 3x2
    wx = torch.tensor([[1.0, math.exp(-1)]] * 3)
    dy = (d[:-1] - d[1:]).abs()  # 2x3, image has no vertical gradient
    expected = (dx * wx).mean() + dy.mean()
    assert torch.allclose(smoothness_loss(disp, im), expected)
    # invariant to the scale of the disparity (mean normalisation)
    assert torch.allclose(smoothness_loss(5 * disp, im), expected)


def test_pose_consistency_loss():
    g = torch.Generator().manual_seed(2)
    xi = 0.2 * torch.randn(4, 6, generator=g, dtype=torch.float64)
    T = G.se3_exp(xi)
    assert pose_consistency_loss(T, T.clone()).abs() < 1e-7
    # pure translation offset: loss = |dt|
    T2 = T.clone()
    T2[:, :3, 3] += torch.tensor([0.3, 0.0, -0.4], dtype=torch.float64)
    assert torch.allclose(pose_consistency_loss(T2, T), torch.tensor(0.5, dtype=torch.float64))
    # pure rotation offset by angle a about z: loss = w * a
    a = 0.25
    Rz = G.axis_angle_to_matrix(torch.tensor([0, 0, a], dtype=torch.float64))
    T3 = T.clone()
    T3[:, :3, :3] = T[:, :3, :3] @ Rz
    assert torch.allclose(pose_consistency_loss(T3, T, rot_weight=2.0), torch.tensor(2 * a, dtype=torch.float64))
    # gradients reach the prediction only, and are finite at equality
    Tp = T.clone().requires_grad_(True)
    Tr = T.clone().requires_grad_(True)
    pose_consistency_loss(Tp, Tr).backward()
    assert torch.isfinite(Tp.grad).all() and Tr.grad is None
    Tp = T2.clone().requires_grad_(True)
    pose_consistency_loss(Tp, T).backward()
    assert Tp.grad.abs().sum() > 0


def test_velocity_loss():
    t = torch.tensor([[3.0, 4.0, 0.0], [0.0, 0.0, 1.0]], requires_grad=True)
    v = torch.tensor([4.0, 1.0])
    loss = velocity_loss(t, v)
    assert torch.allclose(loss, torch.tensor(0.5))  # (|5-4| + |1-1|) / 2
    loss.backward()
    assert torch.allclose(t.grad[0], torch.tensor([3.0, 4.0, 0.0]) / 5 / 2)
    assert torch.allclose(velocity_loss(t[:, None], v), loss)
    with pytest.raises(ValueError, match="ground-truth norms"):
        velocity_loss(t, v[:1])


def test_depth_noise_statistics_and_gradient():
    d = torch.full((1, 1, 200, 200), 2.0, requires_grad=True)
    assert depth_noise(d, 0.0) is d
    n = depth_noise(d, 0.1, generator=torch.Generator().manual_seed(0))
    rel = n / 2.0 - 1
    assert abs(rel.mean().item()) < 0.003 and abs(rel.std().item() - 0.1) < 0.003
    n.sum().backward()
    assert torch.allclose(d.grad, (n / 2.0).detach())
    with pytest.raises(ValueError):
        depth_noise(d, -0.1)


def _smooth_loss_problem():
    """Monodepth2's photometric loss of one scale (two warped sources, min reprojection, automask with
    a fixed tie-break noise) as a float64 function of the target depth and the two translations.

    Images are smooth analytic textures; the sources are the target texture as seen after roughly
    the given motions, plus a brightness offset. The inputs keep the loss away from its kinks, so
    central differences are meaningful: sampled coordinates stay inside the image and >= 0.02 px
    off integer positions, |warped - target| > 1e-3 (the L1 term), and the per-pixel minimum over
    {identity, warped} candidates leads the runner-up by > 1e-4 (>> the 1e-5 tie-break noise).
    Returns ``(f, inputs)`` with ``f(depth, t_m1, t_p1) -> loss``."""
    B, H, W = 1, 6, 8
    dt = torch.float64
    fx, fy, cx, cy = 7.0, 6.0, 3.6, 2.4
    K = torch.tensor([[fx, 0, cx, 0], [0, fy, cy, 0], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=dt).expand(B, 4, 4)
    inv_K = torch.linalg.inv(K)
    v, u = torch.meshgrid(torch.arange(H, dtype=dt), torch.arange(W, dtype=dt), indexing="ij")

    def tex(uu, vv):
        return torch.stack([0.5 + 0.3 * torch.sin(0.8 * uu + 0.5 * vv),
                            0.5 + 0.25 * torch.cos(0.6 * uu - 0.7 * vv + 0.4),
                            0.45 + 0.2 * torch.sin(0.075 * uu * vv + 0.9 * vv)])[None]

    target = tex(u, v)
    Z = 3.0
    # forward motions (samples contract towards the epipole, so they stay inside the image) whose
    # epipoles fall on half-pixels, (5.5, 3.5) and (1.5, 1.5): a pixel in the epipole's row or column
    # would sample its own, integer, row or column
    t = {-1: torch.tensor([[[0.076, 0.05136, 0.28]]], dtype=dt), 1: torch.tensor([[[-0.108, -0.054, 0.36]]], dtype=dt)}
    src = {}
    for f_, tf in t.items():
        tx, ty, tz = tf[0, 0]
        src[f_] = tex(cx + ((u - cx) * (Z + tz) - fx * tx) / Z, cy + ((v - cy) * (Z + tz) - fy * ty) / Z) + 0.05
    depth = (Z + 0.5 * torch.sin(0.9 * u + 1.1 * v + 2.0))[None, None]
    zero = torch.zeros(B, 1, 3, dtype=dt)

    def warped_of(depth_, t_m1, t_p1, return_grid=False):
        return {f_: G.warp(src[f_], depth_, G.transformation_from_parameters(zero, tf), K, inv_K,
                           return_grid=return_grid)
                for f_, tf in ((-1, t_m1), (1, t_p1))}

    def f(depth_, t_m1, t_p1):
        loss, _ = reprojection_loss(warped_of(depth_, t_m1, t_p1), src, target, automask=True,
                                    generator=torch.Generator().manual_seed(0))
        return loss

    # the preconditions
    out = warped_of(depth, t[-1], t[1], return_grid=True)
    for w, grid in out.values():
        for c, size in (((grid[..., 0] + 1) / 2 * (W - 1), W), ((grid[..., 1] + 1) / 2 * (H - 1), H)):
            assert 0.05 < c.min() and c.max() < size - 1.05, "samples must stay off the border clamp"
            assert (c - c.round()).abs().min() > 0.02, "samples must stay off the pixel boundaries"
        assert (w - target).abs().min() > 1e-3
        s = ssim(w, target)
        assert 0 < s.min() and s.max() < 1  # inside SSIM's clamp
    cands = torch.cat([photometric_error(src[f_], target) for f_ in (-1, 1)]
                      + [photometric_error(w, target) for w, _ in out.values()], 1)
    ranked = cands.sort(1)[0]
    assert (ranked[:, 1] - ranked[:, 0]).min() > 1e-4
    wins = (cands.argmin(1) >= 2).double().mean()
    assert 0.5 < wins < 1  # both the warped sources and (on some pixels) the automask take part
    _, info = reprojection_loss({f_: w for f_, (w, _) in out.items()}, src, target,
                                generator=torch.Generator().manual_seed(0))
    assert info["automask"].mean() == wins
    return f, tuple(x.clone().requires_grad_(True) for x in (depth, t[-1], t[1]))


def test_photometric_loss_gradient_through_warp_matches_finite_differences():
    """d(loss)/d(depth) and d(loss)/d(translation) through warp + SSIM/L1 + min reprojection + automask
    equal float64 central differences entry by entry (a 10% error in any entry fails)."""
    f, inputs = _smooth_loss_problem()
    depth, t_m1, t_p1 = inputs
    g_depth, g_m1, g_p1 = torch.autograd.grad(f(*inputs), inputs)
    # not trivially zero (through the 3x3 SSIM window even automasked pixels' depths move the loss)
    assert (g_depth.abs() > 1e-7).all() and g_depth.abs().max() > 1e-5
    assert (g_m1.abs() > 1e-4).all() and (g_p1.abs() > 1e-4).all()
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-9, rtol=1e-6)


# ----------------------------------------------------------------------------- batched = per-image
def _ssim_reference(x, y):
    """Monodepth2's layers.SSIM written out: one pooling call per statistic, one image pair at a time."""
    import torch.nn.functional as F

    x = F.pad(x, (1, 1, 1, 1), mode="reflect")
    y = F.pad(y, (1, 1, 1, 1), mode="reflect")
    mu_x, mu_y = F.avg_pool2d(x, 3, 1), F.avg_pool2d(y, 3, 1)
    sigma_x = F.avg_pool2d(x * x, 3, 1) - mu_x ** 2
    sigma_y = F.avg_pool2d(y * y, 3, 1) - mu_y ** 2
    sigma_xy = F.avg_pool2d(x * y, 3, 1) - mu_x * mu_y
    n = (2 * mu_x * mu_y + 0.01 ** 2) * (2 * sigma_xy + 0.03 ** 2)
    d = (mu_x ** 2 + mu_y ** 2 + 0.01 ** 2) * (sigma_x + sigma_y + 0.03 ** 2)
    return torch.clamp((1 - n / d) / 2, 0, 1)


def _pe_reference(pred, target, a=0.85):
    return a * _ssim_reference(pred, target).mean(1, True) + (1 - a) * (pred - target).abs().mean(1, True)


def _reprojection_reference(warped, identity, target, automask, gen):
    rep = torch.cat([_pe_reference(warped[f], target) for f in warped], 1)
    if not automask:
        return rep.min(1, keepdim=True)[0].mean()
    idt = torch.cat([_pe_reference(identity[f], target) for f in warped], 1)
    idt = idt + 1e-5 * torch.randn(idt.shape, generator=gen)
    return torch.cat([idt, rep], 1).min(1, keepdim=True)[0].mean()


def test_batched_photometric_loss_equals_the_per_image_reference():
    g = torch.Generator().manual_seed(3)
    target = torch.rand(3, 3, 12, 20, generator=g)
    warped = {f: torch.rand(3, 3, 12, 20, generator=g, requires_grad=True) for f in (-1, 1)}
    identity = {f: torch.rand(3, 3, 12, 20, generator=g) for f in (-1, 1)}
    for automask in (False, True):
        ref = _reprojection_reference(warped, identity, target, automask, torch.Generator().manual_seed(9))
        got, _ = reprojection_loss(warped, identity, target, automask=automask, generator=torch.Generator().manual_seed(9))
        assert abs(got.item() - ref.item()) < 1e-6
        # the identity errors precomputed once (as the training step does) give the same loss
        pre = identity_errors(identity, target, [-1, 1])
        got2, _ = reprojection_loss(warped, pre, target, automask=automask, generator=torch.Generator().manual_seed(9))
        assert got2.item() == got.item()
        g_ref = torch.autograd.grad(ref, [warped[-1], warped[1]])
        g_got = torch.autograd.grad(got2, [warped[-1], warped[1]])
        for a, b in zip(g_ref, g_got):
            assert torch.allclose(a, b, atol=1e-7, rtol=1e-5)


def test_training_loss_of_a_fixed_batch_is_unchanged_by_the_batched_losses(monkeypatch):
    """The whole Monodepth2 loss (4 scales, automask, SA4Depth refinement) of a fixed batch equals the
    loss with the per-image reference functions patched in, to 1e-6."""
    import sa4depth.losses as L
    from sa4depth.benchmarks.train import random_batch
    from sa4depth.config import load_config
    from sa4depth.train.trainer import build_train_model

    for sa in (False, True):
        over = ["refine.enabled=true", "loss.pose_self_sup=1.0"] if sa else []
        cfg = load_config(scale="tiny", overrides=over)
        torch.manual_seed(0)
        model = build_train_model(cfg).train()
        batch = random_batch(cfg, "cpu")
        torch.manual_seed(1)
        fast, _ = model(batch, step=10 ** 6)  # automask on
        with monkeypatch.context() as m:
            m.setattr(L, "photometric_errors",
                      lambda preds, target, a=0.85: torch.cat([_pe_reference(p, target, a) for p in preds], 1))
            torch.manual_seed(1)
            slow, _ = model(batch, step=10 ** 6)
        assert abs(fast.item() - slow.item()) < 1e-6, (sa, fast.item(), slow.item())


def test_ssim_keeps_full_precision_under_autocast():
    """The SSIM means are a convolution, which autocast would run in half precision; they must not be
    (E[x^2] - E[x]^2 cancels): under CPU bfloat16 autocast the result is float32 and equal to 1e-6."""
    g = torch.Generator().manual_seed(5)
    x, y = torch.rand(2, 3, 10, 14, generator=g), torch.rand(2, 3, 10, 14, generator=g)
    ref = ssim(x, y)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        got = ssim(x, y)
    assert got.dtype == torch.float32
    assert torch.allclose(got, ref, atol=1e-6, rtol=0)
    assert torch.allclose(ref, _ssim_reference(x, y), atol=1e-5, rtol=0)  # per pixel: 2e-6 seen


@pytest.mark.parametrize("use_for_warp,detach", [(True, True), (False, True), (False, False)])
def test_only_a_refined_pose_that_warps_trains_the_refinement(use_for_warp, detach):
    """Eq. 15's target is the detached refined pose: with ``refine.use_for_warp=false`` (Table VI row 11)
    and no velocity loss, no loss term reaches the feature net, its confidence or the damping, which
    keep their initial values (README, values that are ours); used for warping, they all get gradients.
    With ``loss.pose_self_detach=false`` (claim C4u's row 11) Eq. 15 alone reaches them."""
    from sa4depth.benchmarks.train import random_batch
    from sa4depth.config import load_config
    from sa4depth.train.trainer import build_train_model

    cfg = load_config(scale="tiny", overrides=["refine.enabled=true", "loss.pose_self_sup=1.0", "loss.velocity=0",
                                               f"refine.use_for_warp={str(use_for_warp).lower()}",
                                               f"loss.pose_self_detach={str(detach).lower()}"])
    torch.manual_seed(0)
    model = build_train_model(cfg).train()
    loss, logs = model(random_batch(cfg, "cpu"), step=0)
    assert "pose_self" in logs
    loss.backward()
    ref = model.refiner
    grads = {"damping": ref.damping_logit.grad, "features": ref.extractor.feature_head.weight.grad,
             "confidence": ref.extractor.confidence_head.weight.grad}
    for name, g in grads.items():
        reached = g is not None and bool(g.abs().sum() > 0)
        assert reached == (use_for_warp or not detach), name
    pose_grad = [p.grad for p in model.pose.parameters() if p.grad is not None]
    assert pose_grad and any(g.abs().sum() > 0 for g in pose_grad)  # the pose net learns either way
