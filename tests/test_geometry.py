"""Geometry against closed forms, scipy, matrix_exp, autograd and finite differences."""
import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from sa4depth import geometry as G

torch.set_num_threads(2)


def _hat(xi: torch.Tensor) -> torch.Tensor:
    """se(3) generator matrix of xi = [omega, rho] (4x4), written independently."""
    M = torch.zeros(*xi.shape[:-1], 4, 4, dtype=xi.dtype)
    w, r = xi[..., :3], xi[..., 3:]
    M[..., 0, 1], M[..., 0, 2], M[..., 1, 2] = -w[..., 2], w[..., 1], -w[..., 0]
    M[..., 1, 0], M[..., 2, 0], M[..., 2, 1] = w[..., 2], -w[..., 1], w[..., 0]
    M[..., :3, 3] = r
    return M


def test_skew_is_cross_product():
    g = torch.Generator().manual_seed(0)
    v, w = torch.randn(2, 5, 3, generator=g, dtype=torch.float64)
    assert torch.allclose(G.skew(v) @ w[..., None], torch.cross(v, w, dim=-1)[..., None])


def test_axis_angle_matches_scipy_and_round_trips():
    rng = np.random.default_rng(1)
    aa = rng.normal(size=(64, 3))
    aa *= (rng.uniform(0, math.pi - 1e-3, size=(64, 1)) / np.linalg.norm(aa, axis=1, keepdims=True))
    aa[0] = 0.0
    aa[1] = [1e-9, -2e-9, 0.5e-9]
    aa[2] = [0.0, 0.0, math.pi - 1e-6]  # near pi: axis from the symmetric part
    aa[3] = [2.0, -1.5, 1.2] / np.linalg.norm([2.0, -1.5, 1.2]) * 3.1
    R = G.axis_angle_to_matrix(torch.from_numpy(aa))
    np.testing.assert_allclose(R.numpy(), Rotation.from_rotvec(aa).as_matrix(), atol=1e-12)
    back = G.matrix_to_axis_angle(R).numpy()
    np.testing.assert_allclose(back, aa, atol=1e-7)


def test_rodrigues_gradients_finite_at_zero_and_correct():
    # d(R x)/d(omega) at omega = 0 is -[x]_x (R = I + [omega]_x + O(|omega|^2))
    x = torch.tensor([0.3, -1.2, 2.0], dtype=torch.float64)
    J = torch.autograd.functional.jacobian(lambda w: G.axis_angle_to_matrix(w) @ x, torch.zeros(3, dtype=torch.float64))
    assert torch.isfinite(J).all()
    assert torch.allclose(J, -G.skew(x), atol=1e-12)
    for w0 in ([0.3, -0.2, 0.5], [1e-4, 2e-4, -1e-4], [1.0, 2.0, -0.5]):
        w = torch.tensor(w0, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(G.axis_angle_to_matrix, (w,))
        R = torch.tensor(Rotation.from_rotvec(w0).as_matrix(), requires_grad=True)
        assert torch.autograd.gradcheck(G.matrix_to_axis_angle, (R,))


def test_se3_exp_matches_matrix_exponential_and_log_inverts():
    g = torch.Generator().manual_seed(2)
    xi = torch.randn(32, 6, generator=g, dtype=torch.float64)
    xi[:, :3] *= 0.9
    xi[0] = 0
    xi[1, :3] = 1e-8
    T = G.se3_exp(xi)
    assert torch.allclose(T, torch.linalg.matrix_exp(_hat(xi)), atol=1e-10)
    assert torch.allclose(G.se3_log(T), xi, atol=1e-8)
    # log(exp) of an arbitrary pose is the pose again
    assert torch.allclose(G.se3_exp(G.se3_log(T)), T, atol=1e-10)


def test_se3_exp_small_xi_first_order():
    g = torch.Generator().manual_seed(3)
    d = torch.randn(6, generator=g, dtype=torch.float64)
    for eps in (1e-2, 1e-3, 1e-4):
        err = (G.se3_exp(eps * d) - (torch.eye(4, dtype=torch.float64) + _hat(eps * d))).abs().max()
        assert err < 2 * (eps * d.norm()) ** 2  # second-order remainder


def test_se3_gradcheck():
    xi = torch.tensor([0.2, -0.4, 0.1, 1.0, -2.0, 0.5], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(G.se3_exp, (xi,))
    small = torch.tensor([1e-5, 0, -2e-5, 0.1, 0.2, 0.3], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(G.se3_exp, (small,))
    T = G.se3_exp(xi.detach()).requires_grad_(True)
    assert torch.autograd.gradcheck(G.se3_log, (T,))


def test_transformation_from_parameters_and_inverse():
    g = torch.Generator().manual_seed(4)
    aa = 0.3 * torch.randn(5, 1, 3, generator=g, dtype=torch.float64)
    t = torch.randn(5, 1, 3, generator=g, dtype=torch.float64)
    M = G.transformation_from_parameters(aa, t)
    Minv = G.transformation_from_parameters(aa, t, invert=True)
    eye = torch.eye(4, dtype=torch.float64).expand(5, 4, 4)
    assert torch.allclose(M @ Minv, eye, atol=1e-12)
    assert torch.allclose(Minv, G.invert_pose(M), atol=1e-12)
    # rotate first, then translate: M x = R x + t
    x = torch.randn(5, 3, generator=g, dtype=torch.float64)
    R = torch.from_numpy(Rotation.from_rotvec(aa[:, 0].numpy()).as_matrix())
    y = (M[:, :3, :3] @ x[..., None])[..., 0] + M[:, :3, 3]
    assert torch.allclose(y, (R @ x[..., None])[..., 0] + t[:, 0], atol=1e-12)
    assert torch.allclose(G.get_translation_matrix(t)[:, :3, 3], t[:, 0])
    assert torch.allclose(G.rot_from_axisangle(aa)[:, :3, :3], R, atol=1e-12)


def _intrinsics(B=2, H=12, W=20, dtype=torch.float64):
    K = torch.tensor([[15.0, 0, 9.5, 0], [0, 14.0, 5.5, 0], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=dtype)
    K = K.expand(B, 4, 4).clone()
    return K, torch.linalg.inv(K)


def test_backproject_project_identity_gives_pixel_grid():
    B, H, W = 2, 12, 20
    K, inv_K = _intrinsics(B, H, W)
    depth = 1 + 9 * torch.rand(B, 1, H, W, dtype=torch.float64)
    pts = G.backproject(depth, inv_K)
    assert pts.shape == (B, 4, H * W)
    assert torch.allclose(pts[:, 2], depth.reshape(B, -1))  # z is the depth
    grid = G.project(pts, K, torch.eye(4, dtype=torch.float64).expand(B, 4, 4), H, W, eps=0)
    v, u = torch.meshgrid(torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64), indexing="ij")
    expected = torch.stack([2 * u / (W - 1) - 1, 2 * v / (H - 1) - 1], -1).expand(B, H, W, 2)
    assert torch.allclose(grid, expected, atol=1e-12)
    # project_points gives the same pixels (3x3 and 4x4 K)
    uv, z = G.project_points(pts[:, :3].transpose(1, 2), K[:, :3, :3])
    assert torch.allclose(uv, torch.stack([u, v], -1).reshape(1, -1, 2).expand(B, -1, 2), atol=1e-9)
    uv4, _ = G.project_points(pts[:, :3].transpose(1, 2), K)
    assert torch.allclose(uv, uv4)
    assert torch.allclose(z, depth.reshape(B, -1))


def test_project_points_jacobian_finite_differences():
    K, _ = _intrinsics(1)
    X = torch.tensor([[[0.5, -0.3, 4.0], [1.0, 2.0, 7.0]]], dtype=torch.float64, requires_grad=True)
    f = lambda X_: G.project_points(X_, K[:, :3, :3])[0]
    J = torch.autograd.functional.jacobian(f, X)[0, 0, :, 0, 0, :]  # d uv_0 / d X_0
    fx, fy = 15.0, 14.0
    x, y, z = 0.5, -0.3, 4.0
    analytic = torch.tensor([[fx / z, 0, -fx * x / z**2], [0, fy / z, -fy * y / z**2]], dtype=torch.float64)
    assert torch.allclose(J, analytic, atol=1e-10)
    assert torch.autograd.gradcheck(f, (X,))


def test_warp_identity_is_identity():
    B, H, W = 2, 12, 20
    K, inv_K = _intrinsics(B, H, W)
    img = torch.rand(B, 3, H, W, dtype=torch.float64)
    depth = 1 + 9 * torch.rand(B, 1, H, W, dtype=torch.float64)
    out = G.warp(img, depth, torch.eye(4, dtype=torch.float64).expand(B, 4, 4), K, inv_K)
    # Monodepth2's eps = 1e-7 in the perspective division shifts pixels by u * 1e-7 / z < 2e-6 px
    assert torch.allclose(out, img, atol=1e-5)


def test_warp_plane_translation_is_analytic_shift():
    # fronto-parallel plane at depth Z; T moves frame-0 points by tx along x into the source
    # camera: u_src = u + fx * tx / Z. With fx * tx / Z = 2 px the warp is an exact 2-px shift.
    B, H, W = 1, 12, 20
    K, inv_K = _intrinsics(B, H, W)
    Z, shift = 5.0, 2
    tx = shift * Z / K[0, 0, 0].item()
    T = torch.eye(4, dtype=torch.float64).expand(B, 4, 4).clone()
    T[:, 0, 3] = tx
    src = torch.rand(B, 3, H, W, dtype=torch.float64)
    depth = torch.full((B, 1, H, W), Z, dtype=torch.float64)
    out, grid = G.warp(src, depth, T, K, inv_K, return_grid=True)
    assert torch.allclose(out[..., : W - shift], src[..., shift:], atol=1e-5)
    assert torch.allclose(out[..., W - shift :], src[..., W - 1 :].expand(-1, -1, -1, shift), atol=1e-5)  # border
    assert grid.shape == (B, H, W, 2)


def _pixels(grid: torch.Tensor, H: int, W: int) -> tuple[torch.Tensor, torch.Tensor]:
    """grid_sample's [-1, 1] grid (align_corners=True) back to pixel coordinates u, v."""
    return (grid[..., 0] + 1) / 2 * (W - 1), (grid[..., 1] + 1) / 2 * (H - 1)


def _smooth_warp_problem():
    """A float64 warp whose sampled coordinates all stay inside the image and at least 0.02 px away
    from integer positions, where bilinear sampling (and the border clamp) has its kinks; the warp is
    then differentiable in depth and pose, and central differences are meaningful.
    Returns ``(f, inputs)`` with ``f(depth, axisangle, translation) -> warped image``."""
    B, H, W = 1, 5, 7
    dt = torch.float64
    K = torch.tensor([[6.0, 0, 3.2, 0], [0, 5.0, 2.1, 0], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=dt).expand(B, 4, 4)
    inv_K = torch.linalg.inv(K)
    v, u = torch.meshgrid(torch.arange(H, dtype=dt), torch.arange(W, dtype=dt), indexing="ij")
    img = torch.stack([0.5 + 0.3 * torch.sin(0.7 * u + 0.4 * v), 0.5 + 0.3 * torch.cos(0.5 * u - 0.6 * v + 0.3),
                       0.4 + 0.01 * (u - 3) ** 2 + 0.02 * v])[None]
    depth = (3.0 + 0.4 * torch.sin(0.7 * u + 0.5 * v))[None, None]
    aa = torch.tensor([[[0.01, -0.015, 0.02]]], dtype=dt)
    t = torch.tensor([[[0.08, -0.03, 0.6]]], dtype=dt)  # forward motion: samples contract to the epipole

    def f(depth_, aa_, t_):
        return G.warp(img, depth_, G.transformation_from_parameters(aa_, t_), K, inv_K)

    _, grid = G.warp(img, depth, G.transformation_from_parameters(aa, t), K, inv_K, return_grid=True)
    for c, size in zip(_pixels(grid, H, W), (W, H)):
        assert 0.05 < c.min() and c.max() < size - 1.05, "samples must stay off the border clamp"
        assert (c - c.round()).abs().min() > 0.02, "samples must stay off the pixel boundaries"
    return f, tuple(x.clone().requires_grad_(True) for x in (depth, aa, t))


def test_warp_gradient_matches_finite_differences_in_depth_and_pose():
    """Autograd's Jacobian of the warped image w.r.t. depth, axis-angle and translation equals the
    float64 central-difference Jacobian (every entry; a 10% error in any of them fails)."""
    f, inputs = _smooth_warp_problem()
    depth, aa, t = inputs
    J = torch.autograd.functional.jacobian(f, inputs)
    # not trivially zero: every depth entry and every component of t moves the warped image
    assert (J[0].reshape(-1, depth.numel()).abs().amax(0) > 1e-3).all()
    assert (J[2].reshape(-1, 3).abs().amax(0) > 1e-1).all()
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-8, rtol=1e-6)


def test_disp_to_depth_closed_form():
    disp = torch.tensor([0.0, 0.5, 1.0])
    scaled, depth = G.disp_to_depth(disp, 0.1, 100.0)
    assert torch.allclose(depth[[0, 2]], torch.tensor([100.0, 0.1]))
    assert torch.allclose(scaled[1], torch.tensor(0.01 + 0.5 * (10 - 0.01)))
    assert torch.allclose(scaled * depth, torch.ones(3))
    with pytest.raises(ValueError, match="min_depth"):
        G.disp_to_depth(disp, 1.0, 0.5)
