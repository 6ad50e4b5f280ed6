"""Scene + trajectory generators of the three benchmark profiles and the in-memory render API.

* ``driving`` (KITTI-like): a curving street (gentle yaw rate) with facades on both sides,
  parked cars, poles and trees; the vehicle drives at 5-15 m/s, 10 Hz, camera 1.65 m high;
  KITTI's camera rig (cam0..cam3, velodyne, IMU) and normalised intrinsics
  ``fx = 0.58 W, fy = 1.92 H, cx = W/2, cy = H/2`` (Monodepth2's KITTI K).
* ``dynamic`` (Cityscapes-like, 17 Hz): straight streets with independently moving cars and
  pedestrians; Cityscapes intrinsics (normalised from the 2048x1024 camera).
* ``indoor`` (NYUv2-like): furnished box rooms, hand-held camera dominated by rotation,
  NYUv2 intrinsics (normalised from 640x480), depth <= 10 m.

Everything is a deterministic function of ``(seed, profile, split, index)`` via
``numpy.random.SeedSequence``.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace

import numpy as np
from scipy.spatial import cKDTree

from .scene import EDGE_PX, Material, Scene, cast_rays, shade
from .trajectories import VehicleTrajectory, handheld_trajectory, vehicle_trajectory

__all__ = [
    "PROFILES",
    "NOISE_SIGMA",
    "KittiRig",
    "Episode",
    "Frame",
    "make_episode",
    "render_sequence",
    "image_size",
    "episode_rng",
    "noise_stream",
]

PROFILES = ("driving", "dynamic", "indoor")
#: Standard deviation of the additive Gaussian sensor noise on [0, 1] intensities (2/255).
NOISE_SIGMA = 2.0 / 255.0
# Words of the SeedSequence of every generator (see :func:`episode_rng`); part of the data:
# changing a value changes every rendered benchmark.
_PROFILE_CODE = {"driving": 1, "dynamic": 2, "indoor": 3}
_SPLIT_CODE = {"train": 1, "test": 2, "odom": 3, "video": 4}
#: ``episode_rng`` stream of a sequence's scene and trajectory.
SCENE_STREAM = 0
#: ``episode_rng`` streams of the sensor noise: frame f of camera c (KITTI camera number; 0 for
#: the single-camera datasets) uses ``NOISE_STREAM + f + c * NOISE_CAMERA_STRIDE`` (:func:`noise_stream`).
NOISE_STREAM = 1000
NOISE_CAMERA_STRIDE = 100000
#: The texture seed of an episode (the render seed of :func:`.scene.shade`) is the sum of its
#: ``seed_tag`` modulo this.
TEXTURE_SEED_MODULUS = 100000

# normalised intrinsics (fx/W, fy/H, cx/W, cy/H)
KITTI_K = (0.58, 1.92, 0.5, 0.5)                      # Monodepth2 KITTIDataset.K
CITYSCAPES_K = (2262.52 / 2048, 2265.30 / 1024, 1096.98 / 2048, 513.137 / 1024)  # camera.json of aachen
NYU_K = (518.8579 / 640, 519.4696 / 480, 325.5824 / 640, 253.7362 / 480)      # NYUv2 toolbox
CITYSCAPES_BASELINE = 0.209313
CITYSCAPES_FPS = 17.0


def episode_rng(seed: int, profile: str, split: str, index: int, stream: int = SCENE_STREAM) -> np.random.Generator:
    """Independent generator for one (seed, profile, split, index, stream)."""
    return np.random.default_rng([int(seed), _PROFILE_CODE[profile], _SPLIT_CODE[split], int(index), int(stream)])


def noise_stream(frame: int, camera: int = 0) -> int:
    """The :func:`episode_rng` stream of the sensor noise of ``frame`` seen by ``camera``."""
    return NOISE_STREAM + int(frame) + NOISE_CAMERA_STRIDE * int(camera)


def image_size(profile: str, width: int, height: int, split: str = "train") -> tuple[int, int]:
    """(W, H) rendered for a profile from the scale preset's ``synth.width/height``: driving and
    the Cityscapes training triplets use them directly; Cityscapes test frames are 2:1
    (``W x W/2``); NYU frames are 4:3 at half the width (multiple of 16)."""
    if profile == "indoor":
        w = max(64, int(round(width / 2 / 16)) * 16)
        return w, w * 3 // 4
    if profile == "dynamic" and split == "test":
        return width, width // 2
    return width, height


def _K(norm: tuple[float, float, float, float], w: int, h: int) -> np.ndarray:
    return np.array([[norm[0] * w, 0, norm[2] * w], [0, norm[1] * h, norm[3] * h], [0, 0, 1.0]])


def _rt(R: np.ndarray, t) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = t
    return T


class KittiRig:
    """KITTI's sensor rig (values close to the 2011_09_26 calibration, rectified cameras with
    ``R_rect_00 = I``). Transforms ``T_a_b`` map coordinates in frame b to frame a."""

    #: velodyne -> cam0: axis permutation (velo x fwd, y left, z up -> cam x right, y down, z fwd)
    T_cam0_velo = _rt(np.array([[0.0, -1, 0], [0, 0, -1], [1, 0, 0]]), [0.0, -0.08, -0.27])
    #: IMU -> velodyne (velo is 0.81 m ahead, 0.32 m right, 0.80 m above the IMU)
    T_velo_imu = _rt(np.eye(3), [-0.81, 0.32, -0.80])
    #: rectified cam0 -> cam_i: translation along x (P_rect_0i[0,3] = fx * tx)
    CAM_TX = {0: 0.0, 1: -0.54, 2: 0.06, 3: -0.48}
    BASELINE = 0.54
    IMU_HEIGHT = 0.93  # -> camera height 0.93 + 0.80 - 0.08 = 1.65 m

    @classmethod
    def T_cam_cam0(cls, i: int) -> np.ndarray:
        return _rt(np.eye(3), [cls.CAM_TX[i], 0.0, 0.0])

    @classmethod
    def T_cam_imu(cls, i: int = 2) -> np.ndarray:
        return cls.T_cam_cam0(i) @ cls.T_cam0_velo @ cls.T_velo_imu


@dataclass
class Frame:
    """One rendered view: clean image (H,W,3 float in [0,1]), z-depth (H,W; inf = sky),
    mask of independently moving objects (H,W bool)."""

    image: np.ndarray
    depth: np.ndarray
    dynamic: np.ndarray


@dataclass
class Episode:
    """A scene plus a camera trajectory. ``poses``: (N,4,4) camera-to-world of the left camera
    (image_02 / leftImg8bit / rgb) in the world frame (z up)."""

    profile: str
    scene: Scene
    poses: np.ndarray
    K: np.ndarray
    width: int
    height: int
    times: np.ndarray
    seed_tag: tuple  # (seed, profile code, split code, index)
    traj: VehicleTrajectory | None = None
    movers: Scene | None = None
    mover_v: dict = field(default_factory=dict)
    cull_radius: float = 150.0

    @property
    def n_frames(self) -> int:
        return len(self.poses)

    @property
    def texture_seed(self) -> int:
        """Render seed of the textures (:func:`.scene.shade`), the same in every frame."""
        return int(sum(self.seed_tag)) % TEXTURE_SEED_MODULUS

    def poses_relative(self) -> np.ndarray:
        """Camera-to-world poses expressed in the first camera frame (first pose = I, KITTI)."""
        return np.einsum("ij,njk->nik", np.linalg.inv(self.poses[0]), self.poses)

    def scene_at(self, i: int) -> Scene:
        """The scene at frame ``i``'s time (moving objects advanced by velocity * time)."""
        if self.movers is None or (self.movers.n_box + self.movers.n_cyl + self.movers.n_sph) == 0:
            return self.scene
        t = self.times[i]
        mv = self.movers
        moved = replace(mv, box_c=mv.box_c + self.mover_v["box"] * t, cyl_c=mv.cyl_c + self.mover_v["cyl"] * t,
                        sph_c=mv.sph_c + self.mover_v["sph"] * t)
        return self.scene.concat(moved)

    def render(self, i: int, T_wc: np.ndarray | None = None, supersample: int = 2, K: np.ndarray | None = None,
               size: tuple[int, int] | None = None, tile: int = 8) -> Frame:
        """Render frame ``i`` (scene time of frame i) from pose ``T_wc`` (default: ``poses[i]``).

        Colour = mean of ``supersample**2`` sub-pixel rays (anti-aliasing); depth is the
        pixel-centre depth recovered from them (see :func:`_centre_depth`; pixel (x, y) has
        its centre at u = x, v = y as in OpenCV/Monodepth2), the dynamic mask is the majority."""
        T = self.poses[i] if T_wc is None else T_wc
        K = self.K if K is None else K
        W, H = (self.width, self.height) if size is None else size
        sc = self.scene_at(i).cull(T[:3, 3], T[:3, 2], self.cull_radius)
        Kinv = np.linalg.inv(K)
        o = T[:3, 3]
        Rwc = T[:3, :3]
        tag = self.texture_seed
        ss = max(1, int(supersample))
        g = (np.arange(ss) + 0.5) / ss - 0.5 if ss > 1 else np.zeros(1)
        gx, gy = (a.ravel() for a in np.meshgrid(g, g))
        # screen-space bounds of every primitive (8 bounding-box corners projected); primitives
        # straddling the camera plane cover every tile
        cam = (sc.corners() - o) @ Rwc
        Z = cam[..., 2]
        front = (Z > 0.05).all(1)
        behind = (Z <= 0.05).all(1)
        with np.errstate(divide="ignore", invalid="ignore"):
            u = K[0, 0] * cam[..., 0] / Z + K[0, 2]
            v = K[1, 1] * cam[..., 1] / Z + K[1, 2]
        umin = np.where(front, u.min(1), -np.inf)
        umax = np.where(front, u.max(1), np.inf)
        vmin = np.where(front, v.min(1), -np.inf)
        vmax = np.where(front, v.max(1), np.inf)
        nb, nc = sc.n_box, sc.n_cyl
        # screen tiles: each tile's rays see only the primitives overlapping it
        ntx, nty = -(-W // tile), -(-H // tile)
        ty, tx = np.divmod(np.arange(ntx * nty), ntx)
        x0, y0 = tx * tile, ty * tile
        x1, y1 = np.minimum(W, x0 + tile), np.minimum(H, y0 + tile)
        O = ~behind[None] & (umax[None] >= x0[:, None] - 1) & (umin[None] <= x1[:, None]) \
            & (vmax[None] >= y0[:, None] - 1) & (vmin[None] <= y1[:, None])
        ys, xs = np.mgrid[0:H, 0:W]
        pix = np.stack([xs.ravel(), ys.ravel()], 1).astype(float)      # raster order
        ptile = (ys // tile * ntx + xs // tile).ravel()
        Ob, Oc, Os = O[:, :nb], O[:, nb:nb + nc], O[:, nb + nc:]
        g0 = (ptile, Ob, Oc, Os)
        gs = (np.repeat(ptile, len(gx)), Ob, Oc, Os)
        M_ = Kinv.T @ Rwc.T

        def rays(ox: np.ndarray, oy: np.ndarray) -> np.ndarray:
            uu = (pix[:, 0:1] + ox).ravel()
            vv = (pix[:, 1:2] + oy).ravel()
            return np.stack([uu * M_[0, j] + vv * M_[1, j] + M_[2, j] for j in range(3)], 1)

        xi, yi = pix[:, 0].astype(int), pix[:, 1].astype(int)
        depth = np.zeros((H, W), np.float32)
        dyn = np.zeros((H, W), bool)
        img = np.zeros((H, W, 3), np.float32)
        if ss == 1:
            d0 = rays(np.zeros(1), np.zeros(1))
            h0 = cast_rays(o, d0, sc, g0)
            rgb, _ = shade(h0, d0, sc, K[0, 0], tag)
            depth[yi, xi] = h0.t
            dyn[yi, xi] = h0.dynamic
        else:
            ds = rays(gx, gy)
            hs = cast_rays(o, ds, sc, gs)
            rgb = _shade_supersampled(hs, ds, sc, K[0, 0], tag, len(gx))
            depth[yi, xi] = _centre_depth(hs, len(gx))
            dyn[yi, xi] = hs.dynamic.reshape(-1, len(gx)).mean(1) >= 0.5
        img[yi, xi] = rgb
        return Frame(img, depth, dyn)

    def lidar(self, i: int, T_world_velo: np.ndarray, beams: int = 64, n_azimuth: int = 1024,
              max_range: float = 120.0) -> np.ndarray:
        """A 64-beam-like scan (HDL-64E: elevations +2 .. -24.8 deg, ``n_azimuth`` steps per
        360 deg) from the velodyne pose; returns float32 (N,4) x, y, z, reflectance in the
        velodyne frame. Only the forward half (x >= 0) is simulated: it is the part KITTI
        depth tools keep (Monodepth2 ``generate_depth_map`` drops x < 0) and halves the cost."""
        el = np.deg2rad(np.linspace(2.0, -24.8, beams))
        az = np.linspace(-np.pi / 2, np.pi / 2, n_azimuth // 2, endpoint=False)  # forward half (x >= 0)
        n_azimuth = len(az)
        A, E = np.meshgrid(az, el, indexing="ij")          # azimuth-major: sectors are contiguous
        dv = np.stack([np.cos(E) * np.cos(A), np.cos(E) * np.sin(A), np.sin(E)], -1).reshape(-1, 3)
        R, o = T_world_velo[:3, :3], T_world_velo[:3, 3]
        dw = np.einsum("nj,ij->ni", dv, R)
        sc = self.scene_at(i).cull(o, R[:, 0], max_range)   # velodyne x = forward
        # azimuth-sector culling: a primitive is tested only by the sectors its corners span
        cv = (sc.corners() - o) @ R
        caz = np.arctan2(cv[..., 1], cv[..., 0])
        ref = caz[:, :1]
        rel = np.angle(np.exp(1j * (caz - ref)))           # unwrap around the first corner
        lo, hi = (ref[:, 0] + rel.min(1)), (ref[:, 0] + rel.max(1))
        span_all = (hi - lo > np.pi) | (np.linalg.norm(cv[..., :2], axis=2).min(1) < 3.0)
        per = 16
        n_sec = -(-n_azimuth // per)
        a0 = np.arange(n_sec) * per
        s_lo = az[a0]
        s_hi = az[np.minimum(n_azimuth, a0 + per) - 1] + np.pi / n_azimuth
        mid, half = 0.5 * (s_lo + s_hi), 0.5 * (s_hi - s_lo)
        c_mid, c_half = 0.5 * (lo + hi), 0.5 * (hi - lo)
        gap = np.abs(np.angle(np.exp(1j * (c_mid[None] - mid[:, None]))))
        O = span_all[None] | (gap <= half[:, None] + c_half[None] + 1e-3)
        nb, nc = sc.n_box, sc.n_cyl
        ray_sec = np.repeat(np.arange(n_azimuth) // per, beams)       # azimuth-major ray order
        groups = (ray_sec, O[:, :nb], O[:, nb:nb + nc], O[:, nb + nc:])
        h = cast_rays(o, dw, sc, groups)
        ok = np.isfinite(h.t) & (h.t < max_range)
        # reflectance: a cosine fall-off with the incidence angle (cheap, view-dependent like a
        # real lidar's intensity; nothing here uses it)
        refl = 0.15 + 0.7 * np.abs((h.normal * dw).sum(1)) / np.linalg.norm(dw, axis=1)
        pts = dv[ok] * h.t[ok, None]
        return np.c_[pts, refl[ok]].astype(np.float32)


# ----------------------------------------------------------------------------- builders
class _Builder:
    """Collects primitives, then freezes them into a :class:`Scene`."""

    def __init__(self) -> None:
        self.box: list = []
        self.cyl: list = []
        self.sph: list = []
        self.box_v: list = []
        self.cyl_v: list = []
        self.sph_v: list = []

    def add_box(self, c, yaw, half, rgb, mat, v=None) -> None:
        cy, sy = np.cos(yaw), np.sin(yaw)
        R = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1.0]])
        self.box.append((np.asarray(c, float), R, np.asarray(half, float), np.asarray(rgb, float), mat, v is not None))
        self.box_v.append(np.zeros(3) if v is None else np.asarray(v, float))

    def add_cyl(self, xy, z0, z1, r, rgb, mat, v=None) -> None:
        self.cyl.append((np.asarray(xy, float), np.array([z0, z1], float), float(r), np.asarray(rgb, float), mat, v is not None))
        self.cyl_v.append(np.zeros(2) if v is None else np.asarray(v, float)[:2])

    def add_sph(self, c, r, rgb, mat, v=None) -> None:
        self.sph.append((np.asarray(c, float), float(r), np.asarray(rgb, float), mat, v is not None))
        self.sph_v.append(np.zeros(3) if v is None else np.asarray(v, float))

    def build(self, **kw) -> Scene:
        if self.box:
            c, R, h, rgb, mat, dyn = zip(*self.box)
            kw.update(box_c=np.array(c), box_R=np.array(R), box_h=np.array(h), box_rgb=np.array(rgb),
                      box_mat=np.array(mat, int), box_dyn=np.array(dyn, bool))
        if self.cyl:
            c, z, r, rgb, mat, dyn = zip(*self.cyl)
            kw.update(cyl_c=np.array(c), cyl_z=np.array(z), cyl_r=np.array(r), cyl_rgb=np.array(rgb),
                      cyl_mat=np.array(mat, int), cyl_dyn=np.array(dyn, bool))
        if self.sph:
            c, r, rgb, mat, dyn = zip(*self.sph)
            kw.update(sph_c=np.array(c), sph_r=np.array(r), sph_rgb=np.array(rgb),
                      sph_mat=np.array(mat, int), sph_dyn=np.array(dyn, bool))
        return Scene(**kw)

    def velocities(self) -> dict:
        return {"box": np.array(self.box_v).reshape(-1, 3), "cyl": np.array(self.cyl_v).reshape(-1, 2),
                "sph": np.array(self.sph_v).reshape(-1, 3)}


class Road:
    """A street following a 2-D centreline (the vehicle path, extended at both ends).

    Lateral coordinate ``l`` (metres, positive to the left of the driving direction):
    right parking lane [-4, -1.75], ego lane [-1.75, 1.75], opposite lane [1.75, 5.25], left
    parking lane [5.25, 7.5], sidewalks [-7, -4] and [7.5, 10.5], grass beyond."""

    ROAD = (-4.0, 7.5)
    WALK = (-7.0, 10.5)

    def __init__(self, xy: np.ndarray, back: float = 40.0, ahead: float = 160.0, ds: float = 0.5):
        seg = np.linalg.norm(np.diff(xy, axis=0), axis=1)
        if len(xy) < 2 or seg.sum() < 1e-6:
            xy = np.array([[0.0, 0.0], [1.0, 0.0]])
            seg = np.array([1.0])
        s = np.concatenate([[0.0], np.cumsum(seg)])
        keep = np.concatenate([[True], seg > 1e-9])
        xy, s = xy[keep], s[keep]
        h0 = np.arctan2(*(xy[1] - xy[0])[::-1])
        h1 = np.arctan2(*(xy[-1] - xy[-2])[::-1])
        sq = np.arange(-back, s[-1] + ahead, ds)
        x = np.interp(sq, s, xy[:, 0])
        y = np.interp(sq, s, xy[:, 1])
        pre, post = sq < 0, sq > s[-1]
        x[pre] = xy[0, 0] + sq[pre] * np.cos(h0)
        y[pre] = xy[0, 1] + sq[pre] * np.sin(h0)
        x[post] = xy[-1, 0] + (sq[post] - s[-1]) * np.cos(h1)
        y[post] = xy[-1, 1] + (sq[post] - s[-1]) * np.sin(h1)
        self.s = sq
        self.xy = np.stack([x, y], 1)
        g = np.gradient(self.xy, axis=0)
        self.heading = np.arctan2(g[:, 1], g[:, 0])
        self.tree = cKDTree(self.xy)

    def at(self, s: float, lateral: float) -> tuple[np.ndarray, float]:
        """World (x, y) of arc length ``s`` and lateral offset, and the heading there."""
        j = int(np.clip(np.searchsorted(self.s, s), 0, len(self.s) - 1))
        h = self.heading[j]
        return self.xy[j] + lateral * np.array([-np.sin(h), np.cos(h)]), float(h)

    def coords(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(arc length, lateral offset) of world points (N,>=2)."""
        _, j = self.tree.query(p[:, :2])
        h = self.heading[j]
        dp = p[:, :2] - self.xy[j]
        along = dp[:, 0] * np.cos(h) + dp[:, 1] * np.sin(h)
        lat = -dp[:, 0] * np.sin(h) + dp[:, 1] * np.cos(h)
        return self.s[j] + along, lat

    def ground(self, p: np.ndarray, foot: np.ndarray):
        """Ground albedo, material and pattern factor for points on z = 0 (see :meth:`Scene`)."""
        s, lat = self.coords(p)
        n = len(p)
        alb = np.empty((n, 3))
        mat = np.empty(n, np.int64)
        pat = np.ones(n)
        road = (lat >= self.ROAD[0]) & (lat <= self.ROAD[1])
        walk = ~road & (lat >= self.WALK[0]) & (lat <= self.WALK[1])
        grass = ~road & ~walk
        alb[road], mat[road] = (0.36, 0.36, 0.37), Material.ROAD
        alb[walk], mat[walk] = (0.62, 0.58, 0.54), Material.SIDEWALK
        alb[grass], mat[grass] = (0.30, 0.42, 0.20), Material.GRASS
        w = np.maximum(foot * EDGE_PX, 0.02)

        def band(x, lo, hi):
            return np.clip((x - lo) / w + 0.5, 0, 1) * np.clip((hi - x) / w + 0.5, 0, 1)

        dash = band(np.mod(s, 9.0), 0.0, 3.0)
        mark = np.maximum.reduce([band(lat, 1.67, 1.83) * dash, band(lat, -3.9, -3.78), band(lat, 7.28, 7.4),
                                  band(lat, -1.81, -1.69) * band(np.mod(s + 4.0, 12.0), 0.0, 2.0),
                                  band(lat, 5.19, 5.31) * band(np.mod(s + 1.0, 12.0), 0.0, 2.0)])
        pat = np.where(road, 1.0 + 1.4 * mark, pat)
        joints = 1.0 - 0.3 * np.maximum(band(np.mod(s, 1.2), 0.0, 0.06), band(np.mod(lat, 1.2), 0.0, 0.06))
        pat = np.where(walk, joints, pat)
        return alb, mat, pat


_FACADE = np.array([[0.75, 0.68, 0.58], [0.62, 0.42, 0.35], [0.80, 0.78, 0.72], [0.55, 0.57, 0.60],
                    [0.70, 0.60, 0.45], [0.50, 0.45, 0.42]])
_CARS = np.array([[0.65, 0.10, 0.10], [0.15, 0.25, 0.55], [0.85, 0.85, 0.85], [0.15, 0.15, 0.15],
                  [0.45, 0.47, 0.50], [0.80, 0.65, 0.20], [0.20, 0.45, 0.30]])
_CLOTHES = np.array([[0.20, 0.20, 0.35], [0.55, 0.15, 0.15], [0.75, 0.70, 0.55], [0.25, 0.40, 0.25], [0.10, 0.10, 0.10]])


def _jitter(rng: np.random.Generator, rgb: np.ndarray, amt: float = 0.08) -> np.ndarray:
    return np.clip(rgb * (1 + rng.uniform(-amt, amt, 3)), 0.03, 1.0)


def _street(rng: np.random.Generator, road: Road, b: _Builder, s0: float, s1: float) -> None:
    """Buildings, parked cars, poles and trees along ``road`` between arc lengths s0..s1."""
    for side in (-1, 1):
        near = -7.5 if side < 0 else 11.0
        s = s0 + rng.uniform(0, 4)
        while s < s1:  # buildings
            L, D, Hh = rng.uniform(6, 16), rng.uniform(8, 14), rng.uniform(5, 18)
            lat = near + side * (rng.uniform(0, 1.5) + D / 2)
            xy, h = road.at(s + L / 2, lat)
            b.add_box([xy[0], xy[1], Hh / 2], h, [L / 2, D / 2, Hh / 2], _jitter(rng, _FACADE[rng.integers(len(_FACADE))]),
                      Material.FACADE)
            s += L + (rng.uniform(1, 5) if rng.random() < 0.35 else 0.2)
        s = s0 + rng.uniform(0, 6)
        lat = -2.9 if side < 0 else 6.4
        while s < s1:  # parked cars: body + cabin
            if rng.random() < 0.6:
                xy, h = road.at(s, lat + rng.uniform(-0.15, 0.15))
                h += rng.uniform(-0.05, 0.05)
                col = _jitter(rng, _CARS[rng.integers(len(_CARS))])
                L = rng.uniform(3.9, 4.6)
                b.add_box([xy[0], xy[1], 0.6], h, [L / 2, 0.88, 0.4], col, Material.CAR)
                off = rng.uniform(-0.3, 0.1)
                b.add_box([xy[0] + off * np.cos(h), xy[1] + off * np.sin(h), 1.225], h, [L * 0.27, 0.8, 0.225], col * 0.9,
                          Material.CAR)
                s += L + rng.uniform(0.8, 3)
            else:
                s += rng.uniform(4, 9)
        s = s0 + rng.uniform(0, 10)
        while s < s1:  # poles
            xy, _ = road.at(s, -4.5 if side < 0 else 8.0)
            b.add_cyl(xy, 0.0, rng.uniform(5, 8), rng.uniform(0.09, 0.15), _jitter(rng, np.array([0.45, 0.45, 0.48])),
                      Material.POLE)
            s += rng.uniform(15, 30)
        s = s0 + rng.uniform(0, 8)
        while s < s1:  # trees: trunk + crown
            if rng.random() < 0.7:
                xy, _ = road.at(s, (-5.7 if side < 0 else 9.3) + rng.uniform(-0.3, 0.3))
                th, cr = rng.uniform(2.0, 3.5), rng.uniform(1.2, 2.2)
                b.add_cyl(xy, 0.0, th + 0.3, rng.uniform(0.14, 0.25), _jitter(rng, np.array([0.40, 0.30, 0.20])), Material.TRUNK)
                b.add_sph([xy[0], xy[1], th + cr * 0.8], cr, _jitter(rng, np.array([0.25, 0.45, 0.18]), 0.2), Material.FOLIAGE)
            s += rng.uniform(8, 20)


def _movers(rng: np.random.Generator, road: Road, b: _Builder, s0: float, s1: float, duration: float) -> None:
    """Independently moving cars (both lanes) and pedestrians (sidewalks) on a straight road."""
    s = s0 + rng.uniform(10, 30)
    while s < s1 + 12 * duration:  # oncoming traffic, lateral 3.5, 6..12 m/s
        xy, h = road.at(s, 3.5)
        v = -rng.uniform(6, 12) * np.array([np.cos(h), np.sin(h), 0.0])
        col = _jitter(rng, _CARS[rng.integers(len(_CARS))])
        b.add_box([xy[0], xy[1], 0.6], h, [2.2, 0.88, 0.4], col, Material.CAR, v)
        b.add_box([xy[0], xy[1], 1.225], h, [1.2, 0.8, 0.225], col * 0.9, Material.CAR, v)
        s += rng.uniform(20, 45)
    s = s0 + rng.uniform(25, 40)
    while s < s1:  # lead cars in the ego lane, faster than the ego vehicle (<= 10 m/s)
        xy, h = road.at(s, rng.uniform(-0.2, 0.2))
        v = rng.uniform(11, 13) * np.array([np.cos(h), np.sin(h), 0.0])
        col = _jitter(rng, _CARS[rng.integers(len(_CARS))])
        b.add_box([xy[0], xy[1], 0.6], h, [2.2, 0.88, 0.4], col, Material.CAR, v)
        b.add_box([xy[0], xy[1], 1.225], h, [1.2, 0.8, 0.225], col * 0.9, Material.CAR, v)
        s += rng.uniform(30, 60)
    for side in (-1, 1):
        s = s0 + rng.uniform(0, 6)
        while s < s1:  # pedestrians: body cylinder + head sphere
            xy, h = road.at(s, (-5.0 if side < 0 else 9.0) + rng.uniform(-0.8, 0.8))
            v = rng.choice([-1, 1]) * rng.uniform(0.8, 1.6) * np.array([np.cos(h), np.sin(h), 0.0])
            height = rng.uniform(1.35, 1.6)
            b.add_cyl(xy, 0.0, height, rng.uniform(0.2, 0.28), _jitter(rng, _CLOTHES[rng.integers(len(_CLOTHES))]),
                      Material.PERSON, v)
            b.add_sph([xy[0], xy[1], height + 0.14], 0.13, _jitter(rng, np.array([0.80, 0.62, 0.50])), Material.PERSON, v)
            s += rng.uniform(5, 15)


def _same_face(h, k: int) -> np.ndarray:
    """(n_pixels,) True where all ``k`` sub-samples of a pixel hit the same primitive face."""
    kind, idx, nrm = h.kind.reshape(-1, k), h.index.reshape(-1, k), h.normal.reshape(-1, k, 3)
    return (kind == kind[:, :1]).all(1) & (idx == idx[:, :1]).all(1) & (np.abs(nrm - nrm[:, :1]).max((1, 2)) < 1e-6)


def _shade_supersampled(h, d: np.ndarray, sc: Scene, focal: float, tag: int, k: int) -> np.ndarray:
    """Pixel colours from ``k`` symmetric sub-samples per pixel.

    Pixels whose sub-samples all hit one face (or all the sky) are shaded once at the mean
    sub-sample hit point along the pixel-centre ray: the textures are band-limited below the
    pixel Nyquist rate, so this point sample equals the box-filtered average up to second
    order. Pixels on silhouettes (samples on different surfaces) average ``k`` shaded samples."""
    from .scene import Hits

    same = _same_face(h, k)
    n = len(same)
    out = np.empty((n, 3))
    if same.any():
        sel = np.repeat(same, k)
        dc = d[sel].reshape(-1, k, 3).mean(1)
        pt = h.point[sel].reshape(-1, k, 3).mean(1)
        tt = h.t[sel].reshape(-1, k).mean(1)
        hc = Hits(tt, h.kind[sel][::k], h.index[sel][::k], h.normal[sel][::k], pt, h.dynamic[sel][::k])
        out[same], _ = shade(hc, dc, sc, focal, tag)
    if (~same).any():
        sel = np.repeat(~same, k)
        he = Hits(h.t[sel], h.kind[sel], h.index[sel], h.normal[sel], h.point[sel], h.dynamic[sel])
        rgb, _ = shade(he, d[sel], sc, focal, tag)
        out[~same] = rgb.reshape(-1, k, 3).mean(1)
    return out


def _centre_depth(h, k: int) -> np.ndarray:
    """Pixel-centre z-depth from ``k`` symmetric sub-pixel samples per pixel.

    Where all samples hit the same planar face, inverse depth is affine in the pixel
    coordinates, so the mean of the samples' inverse depths is exactly the centre's; at
    curved surfaces this is a second-order approximation. Where the samples disagree (an
    occlusion edge or the sky) the nearest sample's depth is used (inf = sky)."""
    t = h.t.reshape(-1, k)
    same = _same_face(h, k)
    with np.errstate(divide="ignore"):
        inv = (1.0 / t).mean(1)
        planar = 1.0 / inv
    return np.where(same & np.isfinite(t).all(1), planar, t.min(1))


class _Wall(enum.IntEnum):
    """The room wall an object is put against (drawn as ``rng.integers(4)``)."""

    NORTH = 0  # y = +half[1]
    SOUTH = 1  # y = -half[1]
    WEST = 2   # x = -half[0]
    EAST = 3   # x = +half[0]


#: Yaw of an object standing against each wall (indexed by _Wall): its local x runs along the wall.
_WALL_YAW = (0.0, np.pi, np.pi / 2, -np.pi / 2)


def _indoor_scene(rng: np.random.Generator) -> tuple[Scene, np.ndarray, np.ndarray]:
    """A furnished room: (scene, room centre, room half extents)."""
    L, Wd, Ht = rng.uniform(4.0, 7.0), rng.uniform(3.5, 6.0), rng.uniform(2.5, 3.0)
    half = np.array([L / 2, Wd / 2, Ht / 2])
    centre = np.array([0.0, 0.0, Ht / 2])
    b = _Builder()
    furn = np.array([[0.55, 0.35, 0.20], [0.75, 0.72, 0.65], [0.30, 0.30, 0.35], [0.50, 0.20, 0.20],
                     [0.35, 0.45, 0.55], [0.65, 0.55, 0.35]])
    for _ in range(int(rng.integers(6, 11))):  # furniture against the walls
        # size of a low wide piece (sofa, bed, desk), a tall narrow one (shelf, wardrobe) or a
        # small one (chair, cabinet); all nine sizes are drawn whichever shape is chosen
        shape = rng.integers(3)
        sx, sy, sz = [(rng.uniform(0.8, 2.0), rng.uniform(0.4, 0.9), rng.uniform(0.4, 0.9)),
                      (rng.uniform(0.6, 1.4), rng.uniform(0.3, 0.5), rng.uniform(1.4, 2.2)),
                      (rng.uniform(0.4, 0.8), rng.uniform(0.4, 0.8), rng.uniform(0.4, 1.0))][shape]
        wall = rng.integers(4)
        yaw = _WALL_YAW[wall]
        if wall in (_Wall.NORTH, _Wall.SOUTH):
            x = rng.uniform(-half[0] + sx / 2 + 0.05, half[0] - sx / 2 - 0.05)
            y = (half[1] - sy / 2 - 0.02) * (1 if wall == _Wall.NORTH else -1)
        else:
            y = rng.uniform(-half[1] + sx / 2 + 0.05, half[1] - sx / 2 - 0.05)
            x = (half[0] - sy / 2 - 0.02) * (1 if wall == _Wall.EAST else -1)
        b.add_box([x, y, sz / 2], yaw, [sx / 2, sy / 2, sz / 2], _jitter(rng, furn[rng.integers(len(furn))], 0.15),
                  Material.FURNITURE)
    for _ in range(int(rng.integers(2, 5))):  # pictures / posters: thin boxes on the walls
        wall = rng.integers(4)
        pw, ph = rng.uniform(0.4, 1.2), rng.uniform(0.3, 0.9)
        z = rng.uniform(1.3, min(2.1, Ht - ph / 2 - 0.1))
        yaw = _WALL_YAW[wall]
        if wall in (_Wall.NORTH, _Wall.SOUTH):
            x, y = rng.uniform(-half[0] + 0.6, half[0] - 0.6), (half[1] - 0.015) * (1 if wall == _Wall.NORTH else -1)
        else:
            x, y = (half[0] - 0.015) * (1 if wall == _Wall.EAST else -1), rng.uniform(-half[1] + 0.6, half[1] - 0.6)
        b.add_box([x, y, z], yaw, [pw / 2, 0.012, ph / 2], rng.uniform(0.1, 0.9, 3), Material.FURNITURE)
    # a low table near the centre (below the camera height) and a lamp / ball
    b.add_box([rng.uniform(-0.5, 0.5), rng.uniform(-0.5, 0.5), 0.25], rng.uniform(0, np.pi), [0.6, 0.4, 0.25],
              _jitter(rng, furn[0], 0.2), Material.FURNITURE)
    cx, cy = rng.uniform(-half[0] + 0.4, half[0] - 0.4), half[1] - 0.4
    b.add_cyl([cx, cy], 0.0, 1.5, 0.05, np.array([0.3, 0.3, 0.3]), Material.POLE)
    b.add_sph([cx, cy, 1.65], 0.22, np.array([0.9, 0.85, 0.7]), Material.FURNITURE)
    face_rgb = np.stack([_jitter(rng, np.array([0.78, 0.74, 0.66]), 0.15),   # one row per RoomFace: wall,
                         _jitter(rng, np.array([0.55, 0.42, 0.30]), 0.15),   # floor,
                         np.array([0.9, 0.9, 0.88])])                        # ceiling
    sc = b.build(ground=False, room=(centre, half), room_rgb=face_rgb, max_dist=20.0)
    return sc, centre, half


# ----------------------------------------------------------------------------- episodes
def make_episode(profile: str, seed: int, split: str, index: int, n_frames: int, width: int, height: int) -> Episode:
    """Build the scene and trajectory of one sequence (nothing is rendered yet).

    ``split``: ``train`` / ``test`` / ``odom`` (driving KITTI odometry sequences); the
    generators of different splits are independent, so test scenes differ from training ones."""
    if profile not in PROFILES:
        raise ValueError(f"synth profile {profile!r}: must be one of {PROFILES}")
    if n_frames < 1:
        raise ValueError(f"synth: n_frames must be >= 1, got {n_frames}")
    rng = episode_rng(seed, profile, split, index)
    W, H = image_size(profile, width, height, split)
    tag = (int(seed), _PROFILE_CODE[profile], _SPLIT_CODE[split], int(index))
    if profile == "driving":
        traj = vehicle_trajectory(rng, n_frames, dt=0.1, speed=(5.0, 15.0),
                                  yaw_rate=0.08 if split == "odom" else 0.05, imu_height=KittiRig.IMU_HEIGHT)
        road = Road(traj.pos[:, :2])
        b = _Builder()
        _street(rng, road, b, road.s[0], road.s[-1])
        sc = b.build(ground=True, ground_fn=road.ground, max_dist=400.0)
        T_imu_cam2 = np.linalg.inv(KittiRig.T_cam_imu(2))
        poses = np.einsum("nij,jk->nik", traj.T_world_imu, T_imu_cam2)
        return Episode(profile, sc, poses, _K(KITTI_K, W, H), W, H, traj.times, tag, traj=traj, cull_radius=150.0)
    if profile == "dynamic":
        dt = 1.0 / CITYSCAPES_FPS
        traj = vehicle_trajectory(rng, n_frames, dt=dt, speed=(3.0, 10.0), yaw_rate=0.0,
                                  imu_height=KittiRig.IMU_HEIGHT, wobble_deg=0.2)
        road = Road(traj.pos[:, :2])
        b = _Builder()
        _street(rng, road, b, road.s[0], road.s[-1])
        mv = _Builder()
        dur = n_frames * dt
        _movers(rng, road, mv, road.s[0], road.s[-1], dur)
        sc = b.build(ground=True, ground_fn=road.ground, max_dist=400.0)
        movers = mv.build(ground=False)
        T_imu_cam2 = np.linalg.inv(KittiRig.T_cam_imu(2))
        poses = np.einsum("nij,jk->nik", traj.T_world_imu, T_imu_cam2)
        norm = CITYSCAPES_K
        if split != "test":  # training triplets: top 75% of the 2:1 frame resized to W x H
            norm = (CITYSCAPES_K[0], CITYSCAPES_K[1] / 0.75, CITYSCAPES_K[2], CITYSCAPES_K[3] / 0.75)
        return Episode(profile, sc, poses, _K(norm, W, H), W, H, traj.times, tag, traj=traj,
                       movers=movers, mover_v=mv.velocities(), cull_radius=150.0)
    sc, centre, half = _indoor_scene(rng)
    poses = handheld_trajectory(rng, n_frames, centre, half)
    return Episode(profile, sc, poses, _K(NYU_K, W, H), W, H, np.arange(n_frames) / 30.0, tag, cull_radius=30.0)


def add_noise(img: np.ndarray, rng: np.random.Generator, sigma: float = NOISE_SIGMA) -> np.ndarray:
    """8-bit image: clean [0,1] image + N(0, sigma^2) per pixel and channel, rounded."""
    noisy = img + rng.normal(0.0, sigma, img.shape)
    return np.clip(np.round(noisy * 255.0), 0, 255).astype(np.uint8)


def render_sequence(profile: str = "driving", n_frames: int = 5, width: int = 160, height: int = 48, seed: int = 0,
                    split: str = "train", index: int = 0, frames: list[int] | None = None, supersample: int = 2,
                    noise_sigma: float = 0.0) -> dict:
    """Render a sequence in memory.

    Returns a dict with ``images`` (F,H,W,3 float32 in [0,1]; with ``noise_sigma > 0`` the
    noisy 8-bit image / 255), ``depth`` (F,H,W float32 z-depth, inf = sky), ``dynamic``
    (F,H,W bool), ``poses`` (F,4,4 camera-to-world, first rendered frame = identity), ``K``
    (3,3 pixels), ``times`` (F,), ``frames`` (indices) and ``episode``."""
    ep = make_episode(profile, seed, split, index, n_frames, width, height)
    idx = list(range(n_frames)) if frames is None else [int(f) for f in frames]
    imgs, depths, dyns = [], [], []
    for i in idx:
        fr = ep.render(i, supersample=supersample)
        img = fr.image
        if noise_sigma > 0:
            img = add_noise(img, episode_rng(seed, profile, split, index, noise_stream(i)), noise_sigma).astype(np.float32) / 255.0
        imgs.append(img)
        depths.append(fr.depth)
        dyns.append(fr.dynamic)
    P = ep.poses[idx]
    P = np.einsum("ij,njk->nik", np.linalg.inv(P[0]), P)
    return {"images": np.stack(imgs), "depth": np.stack(depths), "dynamic": np.stack(dyns), "poses": P,
            "K": ep.K.copy(), "times": ep.times[idx], "frames": idx, "episode": ep}
