"""How well the Table VI rows 7-8 matcher (ORB + RANSAC) finds the pose at a given ORB patch size.

    python benchmarks/matcher_patch.py --paths data/synthetic/long/driving.paths.yaml \\
        [--scale long] [--pairs 32] [--patches 31 21 15 10 7] [--out benchmarks/matcher_patch_synth_long.json]

``--paths`` is the data-roots file the workflow writes (rule ``synth_paths``). On the validation
triplets of that data (frame 0 and frame +1, every other sample up to ``--pairs``, at the scale's
training size), for each patch size (``matcher.orb_patch``; ``auto`` = ``orb_patch_size`` of the
image height, the default): the keypoints ORB finds per frame, the pairs RANSAC failed on, the mean inliers, and against the GT pose
the median rotation error and translation-direction error (essential matrix, whose translation has
unit norm) and the median relative translation error of PnP on the GT depth (row 8's solver, given
the true depth instead of the predicted one). Writes one JSON with the commit, the matcher config and the data.
"""
from __future__ import annotations

import argparse
import math
import platform
import sys


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--paths", required=True, help="the data-roots YAML the workflow writes")
    ap.add_argument("--data", default="synthetic")
    ap.add_argument("--scale", default="long")
    ap.add_argument("--pairs", type=int, default=32)
    ap.add_argument("--patches", nargs="+", default=["31", "21", "15", "auto", "7"])
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)

    import torch
    import torch.nn.functional as F

    from sa4depth.config import load_config
    from sa4depth.data.factory import build_dataset
    from sa4depth.evaluate.provenance import git_info
    from sa4depth.files import write_json_atomic
    from sa4depth.refine.matcher import PoseMatcher, _to_gray_u8, orb_detector, orb_patch_size
    from sa4depth.train.monitor import pose_errors

    cfg = load_config(data=args.data, scale=args.scale, row="experiments:md2_18_abl08_matcher_pnp",
                      files=[args.paths])
    ds = build_dataset(cfg, "val", load_depth=True)
    idx = list(range(0, len(ds), 2))[: args.pairs]
    items = [ds[i] for i in idx]
    img0 = torch.stack([it[("color", 0, 0)] for it in items])
    img1 = torch.stack([it[("color", 1, 0)] for it in items])
    K = torch.stack([it[("K", 0)] for it in items])
    T_gt = torch.stack([it[("pose_gt", 1)] for it in items])
    depth = F.interpolate(torch.stack([it["depth_gt"] for it in items]), size=img0.shape[-2:], mode="nearest")
    height = int(img0.shape[-2])
    rows = []
    for p in args.patches:
        patch = orb_patch_size(height) if p == "auto" else int(p)
        orb = orb_detector(height, int(cfg.matcher.max_features), patch)
        row = {"patch": p, "patch_px": patch,
               "keypoints_per_frame": sum(len(orb.detect(_to_gray_u8(x), None)) for x in img0) / len(img0)}
        for solver in ("essential", "pnp"):
            c = load_config(data=args.data, scale=args.scale, row="experiments:md2_18_abl08_matcher_pnp",
                            files=[args.paths], overrides=[f"matcher.solver={solver}", f"matcher.orb_patch={patch}"])
            m = PoseMatcher(c)
            T = m.estimate_pose(img0, img1, K, depth0=depth)
            err = pose_errors(T, T_gt, torch.ones(len(T)))  # translation against the GT's own scale
            rot, tdir, rel_t = err["rot_err"], err["tdir_err"], err["trans_err"]
            ok = torch.tensor([not torch.equal(T[b], torch.eye(4, dtype=T.dtype)) for b in range(len(T))])
            med = (lambda x: float(x[ok].median()) if ok.any() else math.nan)
            row[solver] = {"failures": int(m.last_stats["matcher_failures"]), "pairs": len(T),
                           "mean_inliers": float(m.last_stats["matcher_inliers"]),
                           "rot_err_deg_median": med(rot), "tdir_err_deg_median": med(tdir),
                           **({"rel_t_err_median": med(rel_t)} if solver == "pnp" else {})}
        rows.append(row)
        e, n = row["essential"], row["pnp"]
        print(f"patch {p:>4} ({patch:2d} px): {row['keypoints_per_frame']:.0f} keypoints; essential {e['failures']}/{e['pairs']} failed, "
              f"{e['mean_inliers']:.1f} inliers, rot {e['rot_err_deg_median']:.2f} deg, "
              f"t dir {e['tdir_err_deg_median']:.1f} deg; pnp {n['failures']} failed, "
              f"rel t err {n['rel_t_err_median']:.3f}  (medians over the pairs that did not fail)")
    out = {"what": "ORB + RANSAC pose against the GT pose, by ORB patch size (benchmarks/matcher_patch.py)",
           "data": args.data, "scale": args.scale, "paths": args.paths, "image_hw": list(img0.shape[-2:]),
           "val_samples": idx, "auto_patch_px": orb_patch_size(height), "matcher": dict(cfg.matcher), "rows": rows,
           "git": git_info(), "python": sys.version.split()[0], "torch": torch.__version__,
           "platform": platform.platform()}
    try:
        import cv2
        out["opencv"] = cv2.__version__
    except ImportError:
        pass
    if args.out:
        write_json_atomic(args.out, out)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
