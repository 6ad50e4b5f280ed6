"""Solver-based pose baselines of Table VI rows 7-9 (ORB/SIFT + RANSAC essential / PnP)."""
from __future__ import annotations

import pytest
import torch

from sa4depth.config import load_config
from sa4depth.geometry import se3_exp
from sa4depth.refine.matcher import PoseMatcher

H, W = 192, 512


def make_K(B: int) -> torch.Tensor:
    K = torch.eye(4, dtype=torch.float64).repeat(B, 1, 1)
    K[:, 0, 0] = K[:, 1, 1] = 0.6 * W
    K[:, 0, 2], K[:, 1, 2] = (W - 1) / 2, (H - 1) / 2
    return K


def blocky(a: torch.Tensor, b: torch.Tensor, seed: int) -> torch.Tensor:
    """Random grey-level checker texture (0.25 m cells) with corners that ORB/SIFT can find."""
    g = torch.Generator().manual_seed(seed)
    table = torch.rand(256, 256, generator=g)
    i = torch.floor(a / 0.25).long() % 256
    j = torch.floor(b / 0.25).long() % 256
    return table[i, j]


def render(T: torch.Tensor, K: torch.Tensor, ss: int = 1):
    """A wall at z = 12 m, a floor at y = 1.5 m and a panel at z = 6 m (reference frame), all
    textured: three planes, so the essential matrix is well defined. ``ss`` x ``ss`` supersampling (anti-aliasing; odd ``ss`` keeps the depth samples on pixel centres).
    Returns (image (B,3,H,W), z-depth (B,1,H,W))."""
    B = T.shape[0]
    h, w = H * ss, W * ss
    v, u = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    u, v = (u + 0.5) / ss - 0.5, (v + 0.5) / ss - 0.5  # sub-pixel sample positions
    pix = torch.stack([u.reshape(-1), v.reshape(-1), torch.ones(h * w, dtype=torch.float64)])
    rays = torch.linalg.inv(K[:, :3, :3]) @ pix
    Rt = T[:, :3, :3].transpose(1, 2)
    d, o = Rt @ rays, -(Rt @ T[:, :3, 3:])
    lam_wall = (12.0 - o[:, 2]) / d[:, 2]
    lam_floor = torch.where(d[:, 1] > 1e-6, (1.5 - o[:, 1]) / d[:, 1].clamp_min(1e-6), torch.full_like(lam_wall, 1e9))
    lam_panel = (6.0 - o[:, 2]) / d[:, 2]  # a panel at z = 6 m for x in [-3, 0.5]: 3 planes, no planar degeneracy
    x_panel = o[:, 0] + lam_panel * d[:, 0]
    lam_panel = torch.where((x_panel > -3.0) & (x_panel < 0.5), lam_panel, torch.full_like(lam_panel, 1e9))
    lam = torch.minimum(torch.minimum(lam_wall, lam_floor), lam_panel)
    floor, panel = lam == lam_floor, lam == lam_panel
    X = o + lam[:, None] * d
    tex = torch.where(floor, blocky(X[:, 0], X[:, 2], 1), blocky(X[:, 0], X[:, 1], 2))
    tex = torch.where(panel, blocky(X[:, 0] + 0.1, X[:, 1] + 0.1, 3), tex)
    img = torch.nn.functional.avg_pool2d(tex.reshape(B, 1, h, w), ss).expand(B, 3, H, W).float()
    depth = (lam[:, None] * rays[:, 2:3]).reshape(B, 1, h, w)[:, :, ss // 2 :: ss, ss // 2 :: ss]
    return img, depth.float()


XI = torch.tensor([[0.0, 0.02, 0.0, 0.5, 0.0, -0.4], [0.01, -0.015, 0.0, -0.4, 0.05, -0.5]], dtype=torch.float64)


def rot_err(T, T_gt):
    from sa4depth.geometry import matrix_to_axis_angle

    return matrix_to_axis_angle(T[:, :3, :3].double() @ T_gt[:, :3, :3].double().transpose(1, 2)).norm(dim=-1)


@pytest.fixture(scope="module")
def pair():
    K = make_K(2)
    T_gt = se3_exp(XI)
    img0, depth0 = render(torch.eye(4, dtype=torch.float64).repeat(2, 1, 1), K, ss=3)
    img1, _ = render(T_gt, K, ss=3)
    return img0, img1, depth0, K.float(), T_gt.float()


def matcher(**over):
    cfg = load_config(data="synthetic", scale="tiny", overrides=[f"matcher.{k}={v}" for k, v in over.items()])
    return PoseMatcher(cfg)


@pytest.mark.parametrize("method", ["orb", "sift"])
def test_essential_matrix_pose_has_unit_translation(pair, method):
    img0, img1, _, K, T_gt = pair
    m = matcher(method=method, solver="essential")
    T = m.estimate_pose(img0, img1, K)
    print(m.last_stats, rot_err(T, T_gt).tolist())
    assert m.last_stats["matcher"] == f"{method}+essential" and m.last_stats["matcher_failures"] == 0
    assert (rot_err(T, T_gt) < 0.01).all()
    t, t_gt = T[:, :3, 3], T_gt[:, :3, 3]
    torch.testing.assert_close(t.norm(dim=-1), torch.ones(2), atol=1e-4, rtol=0)  # scale lost (rows 7)
    cos = (t * t_gt).sum(-1) / t_gt.norm(dim=-1)
    assert (cos > 0.98).all(), cos


def test_pnp_with_depth_and_posenet_refinement(pair):
    img0, img1, depth0, K, T_gt = pair
    m = matcher(solver="pnp")
    T = m.estimate_pose(img0, img1, K, depth0=depth0)
    err_t = (T[:, :3, 3] - T_gt[:, :3, 3]).norm(dim=-1)
    print(m.last_stats, err_t.tolist())
    assert (err_t < 0.05).all() and (rot_err(T, T_gt) < 0.01).all()  # metric scale from the depth (row 8)
    # row 9: the pose-net scale with the matcher's direction/rotation
    T_init = T_gt.clone()
    T_init[:, :3, 3] *= 2.0
    m = matcher(refine_posenet="true")
    T = m.estimate_pose(img0, img1, K, T_init=T_init)
    torch.testing.assert_close(T[:, :3, 3].norm(dim=-1), 2.0 * T_gt[:, :3, 3].norm(dim=-1), atol=1e-3, rtol=1e-3)
    with pytest.raises(ValueError, match="depth0"):
        matcher(solver="pnp").estimate_pose(img0, img1, K)


def test_failure_falls_back_and_superglue_needs_weights(pair):
    img0, _, _, K, T_gt = pair
    flat = torch.full_like(img0, 0.5)  # no features at all
    m = matcher()
    T = m.estimate_pose(flat, flat, K, T_init=T_gt)
    assert m.last_stats["matcher_failures"] == 2
    torch.testing.assert_close(T, T_gt)
    with pytest.raises(ValueError, match="SuperGlue weights not provided"):
        matcher(method="superglue")
    with pytest.raises(ValueError, match="file not found"):
        matcher(method="superglue", superglue_weights="/nonexistent/sg.pt")


def test_orb_patch_scales_with_the_image_height(pair):
    """At 64 px OpenCV's 31-px ORB patch (and border) leaves a few middle rows to detect in; scaled
    with the height (10 px) the matcher finds the pose again."""
    from sa4depth.refine.matcher import orb_patch_size

    assert [orb_patch_size(h) for h in (20, 64, 96, 192, 375)] == [7, 10, 16, 31, 31]
    assert orb_patch_size(64, 31) == 31
    img0, img1, _, K, T_gt = pair
    small0, small1 = (torch.nn.functional.avg_pool2d(x, 3) for x in (img0, img1))  # 64 x 170
    Ks = K.clone()
    Ks[:, :2, :2] /= 3
    Ks[:, :2, 2] = (K[:, :2, 2] + 0.5) / 3 - 0.5
    stats = {}
    for patch in (None, 31):
        m = matcher(solver="essential", **({} if patch is None else {"orb_patch": patch}))
        T = m.estimate_pose(small0, small1, Ks)
        t, t_gt = T[:, :3, 3], T_gt[:, :3, 3]
        stats[patch] = (m.last_stats, rot_err(T, T_gt), (t * t_gt).sum(-1) / (t.norm(dim=-1) * t_gt.norm(dim=-1)))
    print(stats)
    (auto, err, cos), (fixed, _, _) = stats[None], stats[31]
    assert auto["matcher_failures"] == 0 and (err < 0.1).all() and (cos > 0.8).all()  # a coarse pose at 1/3 size
    assert fixed["matcher_failures"] >= 1 and fixed["matcher_inliers"] < 0.5 * auto["matcher_inliers"]
