"""Camera / vehicle trajectories of the synthetic benchmark.

* Driving: a planar vehicle model sampled at 10 Hz (KITTI). Speed and yaw rate are smooth
  random signals (sums of low-frequency sinusoids); the IMU position is integrated with the
  *exact* per-frame displacement ``p[i+1] = p[i] + v_world[i] * dt`` so that the OXTS velocity
  of frame i times dt equals the distance to frame i+1 (the relation the velocity loss uses).
  Orientation follows KITTI's OXTS convention ``R = Rz(yaw) Ry(pitch) Rx(roll)``
  (vehicle frame x forward, y left, z up; yaw 0 = east, counter-clockwise).
* Hand-held (indoor): smooth random rotation (1-3 deg/frame) and small translation
  (1-3 cm/frame), NYUv2-like.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["VehicleTrajectory", "smooth_signal", "rot_xyz", "vehicle_trajectory", "handheld_trajectory"]


def rot_xyz(roll: np.ndarray, pitch: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    """(N,3,3) rotations ``Rz(yaw) @ Ry(pitch) @ Rx(roll)`` (KITTI devkit convertOxtsToPose)."""
    cr, sr, cp, sp, cy, sy = np.cos(roll), np.sin(roll), np.cos(pitch), np.sin(pitch), np.cos(yaw), np.sin(yaw)
    R = np.empty(np.shape(roll) + (3, 3))
    R[..., 0, 0] = cy * cp
    R[..., 0, 1] = cy * sp * sr - sy * cr
    R[..., 0, 2] = cy * sp * cr + sy * sr
    R[..., 1, 0] = sy * cp
    R[..., 1, 1] = sy * sp * sr + cy * cr
    R[..., 1, 2] = sy * sp * cr - cy * sr
    R[..., 2, 0] = -sp
    R[..., 2, 1] = cp * sr
    R[..., 2, 2] = cp * cr
    return R


def smooth_signal(rng: np.random.Generator, t: np.ndarray, lo: float, hi: float,
                  periods: tuple[float, float] = (4.0, 20.0), n: int = 3) -> np.ndarray:
    """A smooth random signal in [lo, hi]: normalised sum of ``n`` sinusoids whose periods
    (seconds) are drawn from ``periods``."""
    s = np.zeros_like(t, dtype=float)
    for _ in range(n):
        T = rng.uniform(*periods)
        s += rng.uniform(0.5, 1.0) * np.sin(2 * np.pi * t / T + rng.uniform(0, 2 * np.pi))
    s = s / max(np.abs(s).max(), 1e-9) if len(t) > 1 else s * 0
    return lo + (hi - lo) * 0.5 * (s + 1.0)


@dataclass
class VehicleTrajectory:
    """Per-frame vehicle (IMU) state in the world frame (x east, y north, z up)."""

    times: np.ndarray     # (N,) seconds
    pos: np.ndarray       # (N,3) IMU position
    rpy: np.ndarray       # (N,3) roll, pitch, yaw (rad)
    v_world: np.ndarray   # (N,3) velocity, world frame
    v_body: np.ndarray    # (N,3) velocity in the vehicle frame (vf, vl, vu)
    w_body: np.ndarray    # (N,3) angular rate in the vehicle frame (wf, wl, wu)
    a_body: np.ndarray    # (N,3) acceleration in the vehicle frame (af, al, au)

    @property
    def R(self) -> np.ndarray:
        return rot_xyz(self.rpy[:, 0], self.rpy[:, 1], self.rpy[:, 2])

    @property
    def T_world_imu(self) -> np.ndarray:
        T = np.tile(np.eye(4), (len(self.times), 1, 1))
        T[:, :3, :3] = self.R
        T[:, :3, 3] = self.pos
        return T

    @property
    def speed(self) -> np.ndarray:
        return np.linalg.norm(self.v_world, axis=1)


def vehicle_trajectory(rng: np.random.Generator, n: int, dt: float = 0.1, speed: tuple[float, float] = (5.0, 15.0),
                       yaw_rate: float = 0.06, imu_height: float = 0.93, wobble_deg: float = 0.3,
                       yaw0: float | None = None) -> VehicleTrajectory:
    """Random smooth drive of ``n`` frames. ``yaw_rate`` (rad/s) bounds |yaw rate|; ``wobble_deg``
    is the amplitude of the small roll/pitch oscillation (suspension)."""
    t = np.arange(n) * dt
    tf = np.arange(n + 1) * dt
    v = smooth_signal(rng, tf, *speed, periods=(6.0, 25.0))
    w = smooth_signal(rng, tf, -yaw_rate, yaw_rate, periods=(5.0, 30.0)) if yaw_rate > 0 else np.zeros(n + 1)
    yaw = (rng.uniform(-np.pi, np.pi) if yaw0 is None else yaw0) + np.concatenate([[0.0], np.cumsum(w[:-1] * dt)])
    wob = np.deg2rad(wobble_deg)
    roll = wob * np.sin(2 * np.pi * tf / rng.uniform(1.5, 3.0) + rng.uniform(0, 6.3))
    pitch = wob * np.sin(2 * np.pi * tf / rng.uniform(1.5, 3.0) + rng.uniform(0, 6.3))
    # displacement over [i, i+1]: speed v_i along the mid-interval heading
    mid = yaw[:-1] + 0.5 * w[:-1] * dt
    step = np.stack([np.cos(mid), np.sin(mid), np.zeros(n)], 1) * (v[:-1] * dt)[:, None]
    pos = np.concatenate([np.zeros((1, 3)), np.cumsum(step, 0)])
    pos[:, 2] = imu_height
    v_world = (pos[1:] - pos[:-1]) / dt          # exact: |v_world[i]| dt = |p[i+1] - p[i]|
    R = rot_xyz(roll, pitch, yaw)
    v_body = np.einsum("nji,nj->ni", R[:n], v_world)
    # angular rates (body frame) from the relative rotation of consecutive frames
    dR = np.einsum("nji,njk->nik", R[:-1], R[1:])
    ang = np.stack([dR[:, 2, 1] - dR[:, 1, 2], dR[:, 0, 2] - dR[:, 2, 0], dR[:, 1, 0] - dR[:, 0, 1]], 1) * 0.5
    w_body = ang[:n] / dt
    vb_next = np.einsum("nji,nj->ni", R[1:n + 1], np.concatenate([v_world[1:], v_world[-1:]]))
    a_body = (vb_next - v_body) / dt
    rpy = np.stack([roll, pitch, yaw], 1)[:n]
    return VehicleTrajectory(t, pos[:n], rpy, v_world, v_body, w_body, a_body)


def handheld_trajectory(rng: np.random.Generator, n: int, centre: np.ndarray, half: np.ndarray,
                        rot_deg: tuple[float, float] = (1.0, 3.0), trans_m: tuple[float, float] = (0.01, 0.03)) -> np.ndarray:
    """(n,4,4) camera-to-world poses (OpenCV camera: x right, y down, z forward) of a hand-held
    camera in a room (world z up) of centre ``centre`` and half extents ``half``."""
    # rotation: yaw sweeps, pitch and roll oscillate; per-frame angular step in rot_deg
    k = np.arange(n, dtype=float)
    step = smooth_signal(rng, k, *np.deg2rad(rot_deg), periods=(20.0, 80.0))
    direction = np.sign(rng.uniform(-1, 1)) or 1.0
    yaw = rng.uniform(-np.pi, np.pi) + direction * np.concatenate([[0.0], np.cumsum(step[:-1] * 0.8)])
    pitch = np.deg2rad(-8.0) + np.deg2rad(6.0) * np.sin(2 * np.pi * k / rng.uniform(25, 60) + rng.uniform(0, 6.3))
    roll = np.deg2rad(2.0) * np.sin(2 * np.pi * k / rng.uniform(20, 50) + rng.uniform(0, 6.3))
    # translation: smooth random direction, speed in trans_m per frame, kept inside the room
    sp = smooth_signal(rng, k, *trans_m, periods=(15.0, 50.0))
    hd = rng.uniform(0, 2 * np.pi) + np.cumsum(smooth_signal(rng, k, -0.08, 0.08, periods=(10.0, 40.0)))
    vz = 0.2 * np.sin(2 * np.pi * k / rng.uniform(30, 70))
    dirs = np.stack([np.cos(hd), np.sin(hd), vz], 1)
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    pos = np.zeros((n, 3))
    start = centre + np.array([rng.uniform(-0.3, 0.3) * half[0], rng.uniform(-0.3, 0.3) * half[1], 0.0])
    start[2] = rng.uniform(1.2, 1.6)
    limit = half - np.array([0.6, 0.6, 0.0])
    p = start.copy()
    for i in range(n):  # sequential reflection at the room bounds (a loop over frames, not pixels)
        pos[i] = p
        nxt = p + dirs[i] * sp[i]
        out = np.abs(nxt[:2] - centre[:2]) > limit[:2]
        dirs[i:, :2][:, out] *= -1
        p = p + dirs[i] * sp[i]
    # camera orientation: world from camera. Camera z = viewing direction, y = down.
    fwd = np.stack([np.cos(yaw) * np.cos(pitch), np.sin(yaw) * np.cos(pitch), np.sin(pitch)], 1)
    up = np.array([0.0, 0.0, 1.0])
    right = np.cross(fwd, up)
    right /= np.linalg.norm(right, axis=1, keepdims=True)
    down = np.cross(fwd, right)
    # roll about the viewing axis
    cr, sr = np.cos(roll)[:, None], np.sin(roll)[:, None]
    right, down = cr * right + sr * down, -sr * right + cr * down
    T = np.tile(np.eye(4), (n, 1, 1))
    T[:, :3, 0], T[:, :3, 1], T[:, :3, 2], T[:, :3, 3] = right, down, fwd, pos
    return T
