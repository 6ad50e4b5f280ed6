"""Solver-based relative pose from sparse matches (Table VI rows 7-9).

``PoseMatcher(cfg).estimate_pose(img0, img1, K, depth0=None, T_init=None) -> T (B,4,4)`` returns
``T_{1<-0}`` (maps frame-0 camera points into frame 1, the convention of ``docs/DATA_LAYOUTS.md``).

- Matching (``cfg.matcher.method``): OpenCV ORB (Rublee et al. 2011; Hamming brute force with
  cross-check; patch size scaled to the image height, :func:`orb_patch_size`) or SIFT (Lowe 2004;
  L2 brute force with Lowe's 0.8 ratio test). ``superglue``: the
  paper's matcher; its network is not part of this project, so the adapter needs
  ``cfg.matcher.superglue_weights`` to point at a TorchScript export with the contract
  ``forward(gray0 (1,1,H,W), gray1 (1,1,H,W)) -> (kpts0 (M,2), kpts1 (M,2))`` (matched pixel
  coordinates); without it, ``ValueError("SuperGlue weights not provided ...")``.
- Solver (``cfg.matcher.solver``): ``essential`` = 5-point RANSAC (``cv2.findEssentialMat``) and
  ``cv2.recoverPose``: the translation has **unit norm**, i.e. an arbitrary scale unrelated to the
  depth net's; this scale discrepancy is what rows 7-8 expose. ``pnp`` = ``cv2.solvePnPRansac``
  on frame-0 keypoints back-projected with ``depth0`` (the predicted depth), so the translation
  carries the depth's scale (row 8).
- ``cfg.matcher.refine_posenet`` (row 9: "SG + RANSAC + pose net"): with ``essential``, the
  rotation and translation direction come from the matcher and the translation **norm** from the
  pose-net init (the only scale available); with ``pnp``, RANSAC-PnP starts from the pose-net init
  (``useExtrinsicGuess``). Either way the pose net supplies what the matcher cannot.
- When a pair has too few matches or RANSAC fails, the pose falls back to ``T_init`` (or the
  identity) and ``last_stats['matcher_failures']`` counts it.

OpenCV works on single numpy images, so this module loops over the batch in Python; it is a
baseline run on CPU per training step (as the paper's rows 7-9), not tensor code.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from sa4depth.config import Config

__all__ = ["PoseMatcher", "MIN_MATCHES", "orb_patch_size", "orb_detector"]

MIN_MATCHES = 8

#: OpenCV's ORB patch size (and the border it leaves without keypoints), meant for images of KITTI's
#: 192-px training height and up
ORB_PATCH, ORB_PATCH_HEIGHT = 31, 192


def orb_patch_size(height: int, patch: int | None = None) -> int:
    """ORB's patch size (also its ``edgeThreshold``) for an image ``height`` px tall: ``patch`` if given,
    else OpenCV's 31 scaled by height / 192 (at least 7, at most 31). At 64 px OpenCV's 31-px border
    leaves only the middle rows to detect in: on the synthetic benchmark's 192x64 frames it found
    about 10 keypoints a frame and RANSAC failed on most pairs; with 10 px about 300
    (``benchmarks/matcher_patch.py``)."""
    if patch is not None:
        return int(patch)
    return max(7, min(ORB_PATCH, round(ORB_PATCH * height / ORB_PATCH_HEIGHT)))


def orb_detector(height: int, nfeatures: int, patch: int | None = None):
    """OpenCV's ORB for images ``height`` px tall, its patch and border from :func:`orb_patch_size`."""
    import cv2

    size = orb_patch_size(height, patch)
    return cv2.ORB_create(nfeatures=nfeatures, edgeThreshold=size, patchSize=size)


def _to_gray_u8(img: torch.Tensor) -> np.ndarray:
    """(3,H,W) or (1,H,W) float in [0,1] -> uint8 (H,W) (ITU-R BT.601 luma, as cv2.cvtColor)."""
    a = img.detach().float().cpu().clamp(0, 1)
    if a.shape[0] == 3:
        a = 0.299 * a[0] + 0.587 * a[1] + 0.114 * a[2]
    else:
        a = a[0]
    return (a.numpy() * 255.0 + 0.5).astype(np.uint8)


class PoseMatcher:
    """Feature matcher + RANSAC pose solver configured by ``cfg.matcher``."""

    def __init__(self, cfg: Config):
        mc = cfg.matcher
        self.method = mc.method
        self.solver = mc.solver
        self.refine_posenet = bool(mc.refine_posenet)
        self.threshold = float(mc.ransac_threshold)
        self.max_features = int(mc.max_features)
        patch = mc.get("orb_patch")  # absent from configs written before the key existed
        self.orb_patch = None if patch is None else int(patch)
        self.last_stats: dict[str, float | str] = {}
        self._superglue = None
        if self.method == "superglue":
            if mc.superglue_weights is None:
                raise ValueError(
                    "SuperGlue weights not provided (set matcher.superglue_weights to a TorchScript export; "
                    "Table VI rows 7-9 with SuperGlue: not run)"
                )
            path = Path(mc.superglue_weights)
            if not path.is_file():
                raise ValueError(f"matcher.superglue_weights={str(path)!r}: file not found")
            try:
                self._superglue = torch.jit.load(str(path), map_location="cpu").eval()
            except Exception as e:  # noqa: BLE001
                raise ValueError(f"matcher.superglue_weights={str(path)!r}: not a TorchScript matcher ({e})") from None
        elif self.method not in ("orb", "sift"):
            raise ValueError(f"matcher.method: unknown matcher {self.method!r} (orb | sift | superglue)")
        if self.solver not in ("essential", "pnp"):
            raise ValueError(f"matcher.solver: unknown solver {self.solver!r} (essential | pnp)")

    @property
    def name(self) -> str:
        return f"{self.method}+{self.solver}" + ("+posenet" if self.refine_posenet else "")

    # ------------------------------------------------------------------ matching
    def match(self, g0: np.ndarray, g1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Matched pixel coordinates (M,2) float64 in both uint8 gray images."""
        import cv2

        if self._superglue is not None:
            with torch.no_grad():
                t0 = torch.from_numpy(g0).float()[None, None] / 255.0
                t1 = torch.from_numpy(g1).float()[None, None] / 255.0
                k0, k1 = self._superglue(t0, t1)
            return k0.double().numpy().reshape(-1, 2), k1.double().numpy().reshape(-1, 2)
        if self.method == "orb":
            det = orb_detector(g0.shape[0], self.max_features, self.orb_patch)
            norm = cv2.NORM_HAMMING
        else:
            det = cv2.SIFT_create(nfeatures=self.max_features)
            norm = cv2.NORM_L2
        kp0, des0 = det.detectAndCompute(g0, None)
        kp1, des1 = det.detectAndCompute(g1, None)
        empty = np.zeros((0, 2))
        if des0 is None or des1 is None or len(kp0) < 2 or len(kp1) < 2:
            return empty, empty
        if self.method == "orb":
            matches = cv2.BFMatcher(norm, crossCheck=True).match(des0, des1)
        else:
            knn = cv2.BFMatcher(norm).knnMatch(des0, des1, k=2)
            matches = [m[0] for m in knn if len(m) == 2 and m[0].distance < 0.8 * m[1].distance]
        if not matches:
            return empty, empty
        p0 = np.array([kp0[m.queryIdx].pt for m in matches], dtype=np.float64)
        p1 = np.array([kp1[m.trainIdx].pt for m in matches], dtype=np.float64)
        return p0, p1

    # ------------------------------------------------------------------ solving
    def _solve_one(
        self, p0: np.ndarray, p1: np.ndarray, K3: np.ndarray, depth0: np.ndarray | None, T_init: np.ndarray | None
    ) -> tuple[np.ndarray | None, int]:
        """One pair -> (T_{1<-0} 4x4 or None on failure, number of inliers)."""
        import cv2

        if len(p0) < MIN_MATCHES:
            return None, 0
        T = np.eye(4)
        if self.solver == "essential":
            E, mask = cv2.findEssentialMat(p0, p1, K3, method=cv2.RANSAC, prob=0.999, threshold=self.threshold)
            if E is None or E.shape != (3, 3):
                return None, 0
            n_in, R, t, mask = cv2.recoverPose(E, p0, p1, K3, mask=mask)
            if n_in < 5:
                return None, int(n_in)
            t = t.reshape(3)
            if self.refine_posenet and T_init is not None:
                t = t / max(np.linalg.norm(t), 1e-12) * np.linalg.norm(T_init[:3, 3])
            T[:3, :3], T[:3, 3] = R, t
            return T, int(n_in)
        # PnP with the (predicted) depth of frame 0
        if depth0 is None:
            raise ValueError("matcher.solver=pnp needs depth0 (the predicted depth of frame 0)")
        H, W = depth0.shape
        ui = np.clip(np.round(p0[:, 0]).astype(int), 0, W - 1)
        vi = np.clip(np.round(p0[:, 1]).astype(int), 0, H - 1)
        z = depth0[vi, ui]
        ok = np.isfinite(z) & (z > 0)
        if ok.sum() < max(MIN_MATCHES, 6):
            return None, 0
        rays = np.linalg.solve(K3, np.stack([p0[ok, 0], p0[ok, 1], np.ones(ok.sum())]))
        obj = (rays * z[ok]).T
        guess = self.refine_posenet and T_init is not None
        rvec0 = tvec0 = None
        if guess:
            rvec0, _ = cv2.Rodrigues(T_init[:3, :3])
            tvec0 = T_init[:3, 3].reshape(3, 1).copy()
        success, rvec, tvec, inliers = cv2.solvePnPRansac(
            obj, p1[ok], K3, None, rvec=rvec0, tvec=tvec0, useExtrinsicGuess=guess,
            reprojectionError=self.threshold * 2, confidence=0.999, iterationsCount=200,
        )
        if not success or inliers is None or len(inliers) < 6:
            return None, 0 if inliers is None else len(inliers)
        T[:3, :3], _ = cv2.Rodrigues(rvec)
        T[:3, 3] = tvec.reshape(3)
        return T, len(inliers)

    def estimate_pose(
        self,
        img0: torch.Tensor,
        img1: torch.Tensor,
        K: torch.Tensor,
        depth0: torch.Tensor | None = None,
        T_init: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``T_{1<-0}`` (B,4,4) from images (B,3,H,W) in [0,1], pixel intrinsics K (B,4,4).

        ``depth0`` (B,1,H,W) is needed for ``solver = pnp``; ``T_init`` (B,4,4) for
        ``refine_posenet`` and as the fallback. The result is a constant (no gradient), like
        the paper's solver baselines. ``last_stats`` records the matcher that ran, the number of
        failures and the mean inlier count.
        """
        B = img0.shape[0]
        if img1.shape != img0.shape:
            raise ValueError(f"estimate_pose: img0 {tuple(img0.shape)} and img1 {tuple(img1.shape)} differ")
        if self.refine_posenet and T_init is None:
            raise ValueError("matcher.refine_posenet=true needs T_init (the pose-net poses)")
        Ks = K.detach().double().cpu().numpy()
        Ti = T_init.detach().double().cpu().numpy() if T_init is not None else None
        Ds = depth0.detach().double().cpu().numpy()[:, 0] if depth0 is not None else None
        out = np.tile(np.eye(4), (B, 1, 1))
        failures, inliers = 0, []
        for b in range(B):
            p0, p1 = self.match(_to_gray_u8(img0[b]), _to_gray_u8(img1[b]))
            T, n_in = self._solve_one(p0, p1, Ks[b, :3, :3], None if Ds is None else Ds[b], None if Ti is None else Ti[b])
            inliers.append(n_in)
            if T is None:
                failures += 1
                T = Ti[b] if Ti is not None else np.eye(4)
            out[b] = T
        self.last_stats = {
            "matcher": self.name,
            "matcher_failures": float(failures),
            "matcher_inliers": float(np.mean(inliers)) if inliers else 0.0,
        }
        return torch.as_tensor(out, dtype=img0.dtype, device=img0.device)
