"""KITTI raw calibration, velodyne projection and OXTS poses (numpy, float64).

Conventions follow the KITTI raw devkit (``readCalibration``, ``convertOxtsToPose``,
``project``) and Monodepth2's ``kitti_utils.generate_depth_map``:

- ``calib_cam_to_cam.txt``: ``P_rect_0k = K_k [I | t_k]`` projects points given in the
  *rectified camera-0* frame into rectified image k; ``R_rect_00`` rotates camera-0 points into
  the rectified frame; ``S_rect_0k`` is the rectified image size (width, height).
- ``calib_velo_to_cam.txt``: ``R``, ``T`` map velodyne points into (unrectified) camera 0.
- ``calib_imu_to_velo.txt``: ``R``, ``T`` map IMU/GPS points into the velodyne frame.
- OXTS -> pose: Mercator projection with ``scale = cos(lat0 * pi / 180)`` and earth radius
  6378137 m, rotation ``Rz(yaw) Ry(pitch) Rx(roll)`` (KITTI devkit ``convertOxtsToPose``).
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from .io import calib_matrix, file_stamp, read_calib_file, read_velodyne
from .io import OXTS_ALT, OXTS_LAT, OXTS_LON, OXTS_PITCH, OXTS_ROLL, OXTS_VF, OXTS_VL, OXTS_VU, OXTS_YAW

__all__ = [
    "MONODEPTH2_KITTI_K",
    "KittiCalib",
    "load_kitti_calib",
    "velo_to_depth_map",
    "generate_depth_map",
    "oxts_to_pose",
    "oxts_speed",
]

#: Monodepth2's fixed normalised KITTI intrinsics (``KITTIDataset.K``): an average over the raw
#: drives, normalised by the full image size 1242 x 375. Used only with ``data.kitti_fixed_K``.
MONODEPTH2_KITTI_K = np.array([[0.58, 0, 0.5, 0],
                               [0, 1.92, 0.5, 0],
                               [0, 0, 1, 0],
                               [0, 0, 0, 1]], dtype=np.float64)

EARTH_RADIUS = 6378137.0  # KITTI devkit latToScale / latlonToMercator


def _h(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = np.asarray(t).reshape(3)
    return T


class KittiCalib:
    """Calibration of one KITTI raw date folder (the three calib files)."""

    def __init__(self, calib_dir: str | Path):
        d = Path(calib_dir)
        self.dir = d
        c2c_path = d / "calib_cam_to_cam.txt"
        v2c_path = d / "calib_velo_to_cam.txt"
        c2c = read_calib_file(c2c_path)
        self.P_rect = {k: calib_matrix(c2c, f"P_rect_0{k}", (3, 4), c2c_path) for k in (2, 3)}
        self.R_rect_00 = _h(calib_matrix(c2c, "R_rect_00", (3, 3), c2c_path), np.zeros(3))
        self.im_size = {}
        for k in (2, 3):  # (width, height) of the rectified image
            s = calib_matrix(c2c, f"S_rect_0{k}", (2,), c2c_path)
            self.im_size[k] = (int(round(s[0])), int(round(s[1])))
            if min(self.im_size[k]) <= 0:
                raise ValueError(f"{c2c_path}: S_rect_0{k} = {s.tolist()} is not a positive image size")
        v2c = read_calib_file(v2c_path)
        self.T_cam0_velo = _h(calib_matrix(v2c, "R", (3, 3), v2c_path), calib_matrix(v2c, "T", (3,), v2c_path))
        self._imu_path = d / "calib_imu_to_velo.txt"

    def K(self, cam: int) -> np.ndarray:
        """3x3 pixel intrinsics of rectified camera ``cam`` (2 = left colour, 3 = right colour)."""
        return self.P_rect[cam][:, :3].copy()

    def t_rect(self, cam: int) -> np.ndarray:
        """Position offset of rectified camera ``cam`` from rectified camera 0: ``K^-1 P[:, 3]``."""
        P = self.P_rect[cam]
        return np.linalg.solve(P[:, :3], P[:, 3])

    def T_cam_rect0(self, cam: int) -> np.ndarray:
        """Rectified camera-0 frame -> rectified camera ``cam`` frame (a pure translation)."""
        return _h(np.eye(3), self.t_rect(cam))

    def T_cam_velo(self, cam: int) -> np.ndarray:
        """Velodyne frame -> rectified camera ``cam`` frame (metric, 4x4)."""
        return self.T_cam_rect0(cam) @ self.R_rect_00 @ self.T_cam0_velo

    def T_cam_imu(self, cam: int) -> np.ndarray:
        """IMU/GPS (OXTS) frame -> rectified camera ``cam`` frame (4x4)."""
        i2v = read_calib_file(self._imu_path)
        T_velo_imu = _h(calib_matrix(i2v, "R", (3, 3), self._imu_path), calib_matrix(i2v, "T", (3,), self._imu_path))
        return self.T_cam_velo(cam) @ T_velo_imu

    def K_normalised(self, cam: int, image_size: tuple[int, int] | None = None) -> np.ndarray:
        """Monodepth2-style 4x4 normalised K: row 0 / width, row 1 / height.

        ``image_size`` = (width, height) of the stored image; defaults to ``S_rect_0k``.
        """
        w, h = image_size or self.im_size[cam]
        K = np.eye(4)
        K[:3, :3] = self.K(cam)
        K[0, :] /= w
        K[1, :] /= h
        return K


def load_kitti_calib(calib_dir: str) -> KittiCalib:
    """Cached :class:`KittiCalib` for a date folder (re-read when one of its files changes)."""
    d = Path(calib_dir)
    stamps = tuple(file_stamp(d / n) for n in ("calib_cam_to_cam.txt", "calib_velo_to_cam.txt"))
    return _load_kitti_calib_cached(str(calib_dir), stamps)


@functools.lru_cache(maxsize=64)
def _load_kitti_calib_cached(calib_dir: str, _stamps) -> KittiCalib:
    return KittiCalib(calib_dir)


def velo_to_depth_map(calib: KittiCalib, velo: np.ndarray, cam: int = 2,
                      out_size: tuple[int, int] | None = None, vel_depth: bool = False,
                      index_offset: int = -1) -> np.ndarray:
    """Project velodyne points into camera ``cam`` and keep the nearest depth per pixel.

    Monodepth2 ``generate_depth_map`` convention: points with velodyne ``x < 0`` (behind) are
    dropped; the projection uses ``P_rect_0k @ R_rect_00 @ T_cam0_velo``; pixel indices are
    ``round(u) - 1``, ``round(v) - 1`` (its MATLAB-derived offset); depth is the projected ``z``;
    duplicates keep the smallest depth. ``out_size`` (width, height) rescales the pixel
    coordinates from the calibrated image size (for a sparse map at the network resolution).
    ``vel_depth=True`` stores the velodyne ``x`` (forward) coordinate instead of the camera ``z``,
    as Monodepth2's ``export_gt_depths.py`` does for the ``eigen`` split. ``index_offset=0`` puts
    a point at pixel ``round(u)``, the convention of the network's pixel grid (used for
    ``lidar_depth``, which feeds geometry rather than evaluation).
    Returns float32 ``(H, W)`` metres, 0 = no point.
    """
    w0, h0 = calib.im_size[cam]
    velo = np.asarray(velo, np.float64)
    velo = velo[velo[:, 0] >= 0]
    pts = np.concatenate([velo[:, :3], np.ones((len(velo), 1))], 1)
    P = calib.P_rect[cam] @ calib.R_rect_00 @ calib.T_cam0_velo
    im = pts @ P.T
    keep = im[:, 2] > 0
    im, velo = im[keep], velo[keep]
    u = im[:, 0] / im[:, 2]
    v = im[:, 1] / im[:, 2]
    z = velo[:, 0] if vel_depth else im[:, 2]
    W, H = (w0, h0) if out_size is None else out_size
    if out_size is not None:
        u = u * (W / w0)
        v = v * (H / h0)
    x = np.round(u).astype(np.int64) + index_offset
    y = np.round(v).astype(np.int64) + index_offset
    ok = (x >= 0) & (y >= 0) & (x < W) & (y < H)
    x, y, z = x[ok], y[ok], z[ok]
    depth = np.zeros((H, W), np.float64)
    # nearest point wins: write far-to-near so the last (nearest) write stays
    order = np.argsort(-z, kind="stable")
    depth[y[order], x[order]] = z[order]
    depth[depth < 0] = 0
    return depth.astype(np.float32)


def generate_depth_map(calib_dir: str | Path, velo_path: str | Path, cam: int = 2,
                       out_size: tuple[int, int] | None = None, vel_depth: bool = False,
                       index_offset: int = -1) -> np.ndarray:
    """Sparse GT depth for one frame from its velodyne scan (Monodepth2 ``generate_depth_map``)."""
    return velo_to_depth_map(load_kitti_calib(str(Path(calib_dir))), read_velodyne(velo_path), cam,
                             out_size, vel_depth, index_offset)


def oxts_to_pose(packet: np.ndarray, scale: float) -> np.ndarray:
    """OXTS packet -> 4x4 IMU-to-world pose (KITTI devkit ``convertOxtsToPose``, Mercator)."""
    lat, lon, alt = packet[OXTS_LAT], packet[OXTS_LON], packet[OXTS_ALT]
    tx = scale * lon * np.pi * EARTH_RADIUS / 180.0
    ty = scale * EARTH_RADIUS * np.log(np.tan((90.0 + lat) * np.pi / 360.0))
    rx, ry, rz = packet[OXTS_ROLL], packet[OXTS_PITCH], packet[OXTS_YAW]
    Rx = np.array([[1, 0, 0], [0, np.cos(rx), -np.sin(rx)], [0, np.sin(rx), np.cos(rx)]])
    Ry = np.array([[np.cos(ry), 0, np.sin(ry)], [0, 1, 0], [-np.sin(ry), 0, np.cos(ry)]])
    Rz = np.array([[np.cos(rz), -np.sin(rz), 0], [np.sin(rz), np.cos(rz), 0], [0, 0, 1]])
    return _h(Rz @ Ry @ Rx, np.array([tx, ty, alt]))


def mercator_scale(lat0_deg: float) -> float:
    """KITTI devkit ``latToScale``."""
    return float(np.cos(lat0_deg * np.pi / 180.0))


def oxts_speed(packet: np.ndarray) -> float:
    """Speed (m/s) from the OXTS body-frame velocities ``vf, vl, vu``."""
    v = packet[[OXTS_VF, OXTS_VL, OXTS_VU]]
    return float(np.sqrt(np.sum(v * v)))
