"""Analytic scene primitives, vectorised ray casting, solid textures and shading.

World frame: x east, y north, z up (metres), ground plane ``z = 0``. A camera ray is
``X(t) = o + t * d`` with ``d = R_wc @ K^-1 [u, v, 1]^T``, so the ray parameter ``t`` of a hit
is directly the camera z-depth (the quantity stored in KITTI depth maps).

Primitives (all in numpy arrays, intersected for all rays x all primitives at once):

* ground plane ``z = 0`` (optional),
* oriented boxes (buildings, parked / moving cars, furniture) and one optional *interior* box
  (a room seen from inside: the far slab hit is used),
* vertical cylinders with a top cap (poles, tree trunks, pedestrians),
* spheres (tree crowns, heads, lamps),
* the sky at infinity (``t = inf``).

Colour is a function of the 3-D hit point expressed in the primitive's *own* frame (so a
moving object carries its texture with it): a few octaves of 3-D value noise (Perlin-style
lattice noise with smoothstep interpolation) on a per-primitive palette, plus procedural
patterns (lane markings, facade windows, paving joints). Each octave is faded out when its
wavelength approaches the pixel footprint (distance band-limiting, as in mip-mapping), and the
renderer additionally averages 2x2 sub-pixel samples. Shading is Lambertian from a fixed sun
direction plus an ambient term; there is no view-dependent effect, so warping one frame into
another with true depth and pose reproduces it up to the band-limit and sampling error.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

__all__ = [
    "Materials",
    "Scene",
    "Hits",
    "SUN_DIR",
    "AMBIENT",
    "EDGE_PX",
    "value_noise3",
    "fractal_noise",
    "cast_rays",
    "shade",
    "sky_colour",
]

#: Sun direction in the world frame (unit vector towards the sun) and ambient light share.
SUN_DIR = np.array([0.45, 0.30, 0.84]) / np.linalg.norm([0.45, 0.30, 0.84])
AMBIENT = 0.45
#: Width (in pixels of the rendered image) of the smoothed edges of procedural patterns
#: (windows, lane markings, joints): band-limits them like the noise octaves.
EDGE_PX = 1.5
_EPS = 1e-4


class Materials:
    """Material ids; ``PARAMS[id] = (base noise frequency [1/m], noise amplitude)``."""

    SKY, ROAD, SIDEWALK, FACADE, CAR, POLE, TRUNK, FOLIAGE, PERSON, WALL, FLOOR, CEILING, FURNITURE, GRASS = range(14)
    PARAMS = {
        ROAD: (1.6, 0.55), SIDEWALK: (1.2, 0.45), FACADE: (0.9, 0.45), CAR: (1.4, 0.35),
        POLE: (3.0, 0.3), TRUNK: (4.0, 0.5), FOLIAGE: (2.0, 0.7), PERSON: (3.0, 0.5),
        WALL: (2.0, 0.45), FLOOR: (2.5, 0.55), CEILING: (1.5, 0.35), FURNITURE: (3.0, 0.5),
        GRASS: (2.0, 0.6),
    }


@dataclass
class Scene:
    """A static set of primitives (arrays). ``*_rgb`` are base albedos, ``*_mat`` material ids,
    ``*_dyn`` marks independently moving objects (for masks). Box axes are the columns of
    ``box_R`` (world = R @ local + centre)."""

    box_c: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    box_R: np.ndarray = field(default_factory=lambda: np.zeros((0, 3, 3)))
    box_h: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    box_rgb: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    box_mat: np.ndarray = field(default_factory=lambda: np.zeros(0, int))
    box_dyn: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    cyl_c: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))  # x, y of the axis
    cyl_z: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))  # z0, z1
    cyl_r: np.ndarray = field(default_factory=lambda: np.zeros(0))
    cyl_rgb: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    cyl_mat: np.ndarray = field(default_factory=lambda: np.zeros(0, int))
    cyl_dyn: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    sph_c: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    sph_r: np.ndarray = field(default_factory=lambda: np.zeros(0))
    sph_rgb: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    sph_mat: np.ndarray = field(default_factory=lambda: np.zeros(0, int))
    sph_dyn: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    ground: bool = True
    ground_fn: object = None  # callable(points (N,3)) -> (albedo (N,3), material (N,)) for z=0 hits
    room: tuple | None = None  # (centre (3,), half extents (3,)) of an interior box, axis-aligned
    room_rgb: np.ndarray = field(default_factory=lambda: np.array([[0.7, 0.68, 0.62], [0.5, 0.4, 0.3], [0.9, 0.9, 0.88]]))
    max_dist: float = 1e9
    box_id: np.ndarray | None = None  # stable global ids (texture seeds survive culling)
    cyl_id: np.ndarray | None = None
    sph_id: np.ndarray | None = None

    def __post_init__(self) -> None:
        for k in ("box", "cyl", "sph"):
            if getattr(self, f"{k}_id") is None:
                setattr(self, f"{k}_id", np.arange(len(getattr(self, f"{k}_c")), dtype=np.int64))

    _PER = {"box": ("c", "R", "h", "rgb", "mat", "dyn", "id"), "cyl": ("c", "z", "r", "rgb", "mat", "dyn", "id"),
            "sph": ("c", "r", "rgb", "mat", "dyn", "id")}

    @property
    def n_box(self) -> int:
        return len(self.box_c)

    @property
    def n_cyl(self) -> int:
        return len(self.cyl_c)

    @property
    def n_sph(self) -> int:
        return len(self.sph_c)

    def subset(self, box: np.ndarray, cyl: np.ndarray, sph: np.ndarray) -> "Scene":
        """A scene with only the selected primitives (boolean masks); ids stay local."""
        sel = {"box": box, "cyl": cyl, "sph": sph}
        kw = {f"{k}_{f}": getattr(self, f"{k}_{f}")[sel[k]] for k, fs in self._PER.items() for f in fs}
        return replace(self, **kw)

    def concat(self, other: "Scene", id_offset: int = 1_000_000) -> "Scene":
        """This scene plus the primitives of ``other`` (whose ids are shifted by ``id_offset``)."""
        kw = {}
        for k, fs in self._PER.items():
            for f in fs:
                b = getattr(other, f"{k}_{f}")
                kw[f"{k}_{f}"] = np.concatenate([getattr(self, f"{k}_{f}"), b + id_offset if f == "id" else b])
        return replace(self, **kw)

    def corners(self) -> np.ndarray:
        """(P_box + P_cyl + P_sph, 8, 3) world corners of each primitive's bounding box."""
        sgn = np.array([[i, j, k] for i in (-1, 1) for j in (-1, 1) for k in (-1, 1)], float)
        bc = self.box_c[:, None] + np.einsum("pij,pqj->pqi", self.box_R, sgn[None] * self.box_h[:, None]) \
            if self.n_box else np.zeros((0, 8, 3))
        cc = np.c_[self.cyl_c, self.cyl_z.mean(1)]
        ch = np.c_[self.cyl_r, self.cyl_r, 0.5 * (self.cyl_z[:, 1] - self.cyl_z[:, 0])]
        sc = self.sph_c
        sh = np.repeat(self.sph_r[:, None], 3, 1)
        return np.concatenate([bc, cc[:, None] + sgn[None] * ch[:, None], sc[:, None] + sgn[None] * sh[:, None]])

    def cull(self, origin: np.ndarray, forward: np.ndarray | None, radius: float) -> "Scene":
        """Keep primitives whose bounding sphere lies within ``radius`` of ``origin`` and not
        entirely behind the plane through ``origin`` with normal ``forward`` (None: all around)."""

        def keep(c: np.ndarray, r: np.ndarray) -> np.ndarray:
            d = c - origin
            ok = np.linalg.norm(d, axis=1) - r < radius
            if forward is not None:
                ok &= d @ forward > -r
            return ok

        bc = keep(self.box_c, np.linalg.norm(self.box_h, axis=1))
        cc3 = np.c_[self.cyl_c, self.cyl_z.mean(1)] if self.n_cyl else np.zeros((0, 3))
        cr = self.cyl_r + 0.5 * (self.cyl_z[:, 1] - self.cyl_z[:, 0]) if self.n_cyl else np.zeros(0)
        return self.subset(bc, keep(cc3, cr), keep(self.sph_c, self.sph_r))


@dataclass
class Hits:
    """Result of :func:`cast_rays` for N rays."""

    t: np.ndarray        # (N,) ray parameter (inf = sky)
    kind: np.ndarray     # (N,) 0 sky, 1 ground, 2 box, 3 cylinder, 4 sphere, 5 room
    index: np.ndarray    # (N,) primitive index inside its kind (-1 for sky/ground)
    normal: np.ndarray   # (N, 3) world normal (unit)
    point: np.ndarray    # (N, 3) world hit point (0 for sky)
    dynamic: np.ndarray  # (N,) bool, hit an independently moving object


# ----------------------------------------------------------------------------- intersection
def _segment_min(t: np.ndarray, pr: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-ray minimum over (ray, primitive) pairs sorted by ray: (t_min (n,), pair index or -1)."""
    tout = np.full(n, np.inf)
    aout = np.full(n, -1, np.int64)
    if len(t) == 0:
        return tout, aout
    starts = np.flatnonzero(np.r_[True, pr[1:] != pr[:-1]])
    mins = np.minimum.reduceat(t, starts)
    counts = np.diff(np.r_[starts, len(t)])
    idx = np.where(t == np.repeat(mins, counts), np.arange(len(t)), len(t))
    arg = np.minimum.reduceat(idx, starts)
    rays = pr[starts]
    tout[rays] = mins
    aout[rays] = np.where(np.isfinite(mins), arg, -1)
    return tout, aout


def _box_pairs(o: np.ndarray, d: np.ndarray, pr: np.ndarray, pp: np.ndarray, sc: Scene) -> np.ndarray:
    """Slab test (Kay & Kajiya) of ray pr[i] against oriented box pp[i]: entry t, inf = miss.

    float32 (these arrays dominate the render time); the caller refines winners in float64."""
    OL = np.einsum("pj,pjk->pk", o[None] - sc.box_c, sc.box_R)
    lo_b = (-sc.box_h - OL).astype(np.float32)      # slab bounds relative to the origin, box axes
    hi_b = (sc.box_h - OL).astype(np.float32)
    R = sc.box_R
    if np.all(R[:, 2, 2] == 1.0):  # yaw-only boxes (all generated ones): 2-D rotation + z slab
        d32 = [np.ascontiguousarray(d[:, k], dtype=np.float32)[pr] for k in range(3)]
        c = R[:, 0, 0].astype(np.float32)[pp]
        s_ = R[:, 1, 0].astype(np.float32)[pp]
        dl = (d32[0] * c + d32[1] * s_, d32[1] * c - d32[0] * s_, d32[2])
    else:
        m = np.einsum("mj,mjk->mk", d[pr].astype(np.float32), R[pp].astype(np.float32))
        dl = (m[:, 0], m[:, 1], m[:, 2])
    tmin = tmax = None
    with np.errstate(divide="ignore", invalid="ignore"):
        for k in range(3):
            inv = np.float32(1.0) / dl[k]
            t1 = np.ascontiguousarray(lo_b[:, k])[pp] * inv
            t2 = np.ascontiguousarray(hi_b[:, k])[pp] * inv
            lo, hi = np.fmin(t1, t2), np.fmax(t1, t2)
            tmin = lo if tmin is None else np.fmax(tmin, lo)
            tmax = hi if tmax is None else np.fmin(tmax, hi)
    return np.where((tmax >= tmin) & (tmin > _EPS), tmin, np.float32(np.inf))


def _cyl_pairs(o: np.ndarray, d: np.ndarray, pr: np.ndarray, pp: np.ndarray, sc: Scene) -> tuple[np.ndarray, np.ndarray]:
    """Vertical capped cylinders: (t, cap-hit flag) per pair."""
    ox = o[0] - sc.cyl_c[pp, 0]
    oy = o[1] - sc.cyl_c[pp, 1]
    dx, dy, dz = d[pr, 0], d[pr, 1], d[pr, 2]
    r2 = sc.cyl_r[pp] ** 2
    z0, z1 = sc.cyl_z[pp, 0], sc.cyl_z[pp, 1]
    a = dx * dx + dy * dy
    b = 2 * (ox * dx + oy * dy)
    c = ox * ox + oy * oy - r2
    disc = b * b - 4 * a * c
    with np.errstate(divide="ignore", invalid="ignore"):
        ts = (-b - np.sqrt(np.maximum(disc, 0))) / (2 * np.maximum(a, 1e-12))
        z = o[2] + ts * dz
        side = (disc > 0) & (ts > _EPS) & (z >= z0) & (z <= z1)
        tc = (z1 - o[2]) / np.where(np.abs(dz) < 1e-12, 1e-12, dz)
        cx = ox + tc * dx
        cy = oy + tc * dy
        cap = (tc > _EPS) & (cx * cx + cy * cy <= r2) & (dz < 0)
    t_side = np.where(side, ts, np.inf)
    t_cap = np.where(cap, tc, np.inf)
    return np.minimum(t_side, t_cap), t_cap < t_side


def _sph_pairs(o: np.ndarray, d: np.ndarray, pr: np.ndarray, pp: np.ndarray, sc: Scene) -> np.ndarray:
    oc = o[None] - sc.sph_c[pp]
    dd = d[pr]
    a = (dd * dd).sum(1)
    b = 2 * (oc * dd).sum(1)
    c = (oc * oc).sum(1) - sc.sph_r[pp] ** 2
    disc = b * b - 4 * a * c
    t = (-b - np.sqrt(np.maximum(disc, 0))) / (2 * a)
    return np.where((disc > 0) & (t > _EPS), t, np.inf)


def _pairs(tile: np.ndarray, O: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ray-major (ray, primitive) index pairs: ray r is paired with every primitive p with
    ``O[tile[r], p]`` (a CSR expansion, fully vectorised)."""
    if O.shape[1] == 0 or len(tile) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    rows, cols = np.nonzero(O)                      # row-major: sorted by tile
    per_tile = np.bincount(rows, minlength=O.shape[0])
    indptr = np.concatenate([[0], np.cumsum(per_tile)])
    cnt = per_tile[tile]
    total = int(cnt.sum())
    pr = np.repeat(np.arange(len(tile)), cnt)
    first = np.cumsum(cnt) - cnt
    pp = cols[np.repeat(indptr[tile] - first, cnt) + np.arange(total)]
    return pr, pp


def cast_rays(o: np.ndarray, d: np.ndarray, sc: Scene, tiles: tuple | None = None,
              max_rays: int = 8192, max_pairs: int = 600_000) -> Hits:
    """Closest hit of rays ``o + t d`` from one origin ``o`` (3,); ``d`` (N,3) need not be unit.

    ``tiles = (ray_tile (N,), O_box, O_cyl, O_sph)`` (optional) restricts ray r to the
    primitives p with ``O_x[ray_tile[r], p]`` (screen-tile / sector culling; boolean
    matrices tiles x primitives). Without it every ray is tested against every primitive."""
    n = len(d)
    o = np.asarray(o, float).reshape(3)
    if tiles is None:
        tiles = (np.zeros(n, np.int64), np.ones((1, sc.n_box), bool), np.ones((1, sc.n_cyl), bool),
                 np.ones((1, sc.n_sph), bool))
    ray_tile, Ob, Oc, Os = tiles
    # batches of consecutive rays with at most max_rays rays and about max_pairs pairs
    per_ray = (Ob.sum(1) + Oc.sum(1) + Os.sum(1))[ray_tile]
    cum = np.cumsum(per_ray)
    bounds = [0]
    while bounds[-1] < n:
        s0 = bounds[-1]
        base = cum[s0 - 1] if s0 else 0
        s1 = int(np.searchsorted(cum, base + max_pairs, side="right"))
        bounds.append(min(n, max(s0 + 1, min(s1, s0 + max_rays))))
    batches = list(zip(bounds[:-1], bounds[1:]))

    t = np.full(n, np.inf)
    kind = np.zeros(n, np.int8)
    index = np.full(n, -1, np.int64)
    normal = np.zeros((n, 3))
    for s0, s1 in batches:
        sl = slice(s0, s1)
        bt = ray_tile[sl]
        dd = d[sl]
        m = len(dd)
        rows = np.arange(m)
        tt = np.full(m, np.inf)
        kk = np.zeros(m, np.int8)
        ii = np.full(m, -1, np.int64)
        nn = np.zeros((m, 3))
        if sc.ground:
            with np.errstate(divide="ignore", invalid="ignore"):
                tg = -o[2] / dd[:, 2]
            ok = (dd[:, 2] < 0) & (tg > _EPS)
            tt = np.where(ok, tg, np.inf)
            kk[ok] = 1
            nn[ok] = (0.0, 0.0, 1.0)
        if sc.room is not None:
            rc, rh = np.asarray(sc.room[0]), np.asarray(sc.room[1])
            with np.errstate(divide="ignore"):
                inv = 1.0 / np.where(np.abs(dd) < 1e-12, 1e-12, dd)
            tf = np.maximum((rc - rh - o) * inv, (rc + rh - o) * inv)
            ax = np.argmin(tf, 1)
            tr = tf[rows, ax]
            better = tr < tt
            tt = np.where(better, tr, tt)
            kk[better] = 5
            ii[better] = ax[better]
            nrm = np.zeros((m, 3))
            nrm[rows, ax] = -np.sign(dd[rows, ax])
            nn[better] = nrm[better]
        if sc.n_box:
            pr, pp = _pairs(bt, Ob)
            tb, arg = _segment_min(_box_pairs(o, dd, pr, pp, sc), pr, m)
            better = tb < tt
            if better.any():
                pb = pp[arg[better]]
                R = sc.box_R[pb]
                db = dd[better]
                ol = np.einsum("kj,kjc->kc", o[None] - sc.box_c[pb], R)
                dl = np.einsum("kj,kjc->kc", db, R)
                hb = sc.box_h[pb]
                with np.errstate(divide="ignore", invalid="ignore"):
                    tn = np.fmin((-hb - ol) / dl, (hb - ol) / dl)   # float64 refinement
                ax = np.argmax(np.where(np.isnan(tn), -np.inf, tn), 1)
                k = np.arange(len(pb))
                tref = tn[k, ax]
                t32 = tb[better]
                tt[better] = np.where(np.abs(tref - t32) < 1e-3 * (1 + t32), tref, t32)
                kk[better] = 2
                ii[better] = pb
                nn[better] = R[k, :, ax] * -np.sign(dl[k, ax])[:, None]
        if sc.n_cyl:
            pr, pp = _pairs(bt, Oc)
            tcp, capp = _cyl_pairs(o, dd, pr, pp, sc)
            tc, arg = _segment_min(tcp, pr, m)
            better = tc < tt
            if better.any():
                pb = pp[arg[better]]
                hp = o + tc[better, None] * dd[better]
                radial = np.c_[hp[:, :2] - sc.cyl_c[pb], np.zeros(len(pb))]
                radial /= np.maximum(np.linalg.norm(radial, axis=1, keepdims=True), 1e-9)
                radial[capp[arg[better]]] = (0.0, 0.0, 1.0)
                tt[better] = tc[better]
                kk[better] = 3
                ii[better] = pb
                nn[better] = radial
        if sc.n_sph:
            pr, pp = _pairs(bt, Os)
            ts, arg = _segment_min(_sph_pairs(o, dd, pr, pp, sc), pr, m)
            better = ts < tt
            if better.any():
                pb = pp[arg[better]]
                hp = o + ts[better, None] * dd[better]
                tt[better] = ts[better]
                kk[better] = 4
                ii[better] = pb
                nn[better] = (hp - sc.sph_c[pb]) / sc.sph_r[pb, None]
        far = tt * np.linalg.norm(dd, axis=1) > sc.max_dist
        tt[far] = np.inf
        kk[far] = 0
        ii[far] = -1
        t[sl], kind[sl], index[sl], normal[sl] = tt, kk, ii, nn
    hit = np.isfinite(t)
    point = np.zeros((n, 3))
    point[hit] = o + t[hit, None] * d[hit]
    dyn = np.zeros(n, bool)
    for k, arr in ((2, sc.box_dyn), (3, sc.cyl_dyn), (4, sc.sph_dyn)):
        sel = kind == k
        if sel.any() and len(arr):
            dyn[sel] = arr[index[sel]]
    return Hits(t, kind, index, normal, point, dyn)


# ----------------------------------------------------------------------------- textures
_P = (np.uint32(0x8DA6B343), np.uint32(0xD8163841), np.uint32(0xCB1AB31F), np.uint32(0x9E3779B9))


def _mix32(h: np.ndarray) -> np.ndarray:
    """lowbias32 integer finaliser (C. Wellons' hash-prospector): uint32 -> well-mixed uint32."""
    h = h ^ (h >> np.uint32(16))
    h *= np.uint32(0x7FEB352D)
    h ^= h >> np.uint32(15)
    h *= np.uint32(0x846CA68B)
    h ^= h >> np.uint32(16)
    return h


def value_noise3(p: np.ndarray, seed: np.ndarray | int = 0) -> np.ndarray:
    """3-D value noise in [0, 1): hashed lattice values, smoothstep-trilinear interpolation
    (the classic Perlin/Quilez value-noise construction). ``p``: (N, 3); float32 result."""
    p = np.asarray(p, float)
    seed = np.broadcast_to(np.asarray(seed, np.int64), p.shape[:1])
    fl = np.floor(p)
    f = (p - fl).astype(np.float32)
    i = fl.astype(np.int64).astype(np.uint32)   # wraps negative lattice coordinates
    u = f * f * (np.float32(3.0) - np.float32(2.0) * f)
    with np.errstate(over="ignore"):
        hx = (i[:, 0] * _P[0], (i[:, 0] + np.uint32(1)) * _P[0])
        hy = (i[:, 1] * _P[1], (i[:, 1] + np.uint32(1)) * _P[1])
        hz = (i[:, 2] * _P[2], (i[:, 2] + np.uint32(1)) * _P[2])
        hs = seed.astype(np.uint32) * _P[3]
        scale = np.float32(1.0 / 4294967296.0)
        c = {}
        for a in (0, 1):
            hxy = [hx[a] ^ hy[b] ^ hs for b in (0, 1)]
            for b in (0, 1):
                for k in (0, 1):
                    c[a, b, k] = _mix32(hxy[b] ^ hz[k]).astype(np.float32) * scale
    ux, uy, uz = u[:, 0], u[:, 1], u[:, 2]
    cx = {(b, k): c[0, b, k] + ux * (c[1, b, k] - c[0, b, k]) for b in (0, 1) for k in (0, 1)}
    cy = {k: cx[0, k] + uy * (cx[1, k] - cx[0, k]) for k in (0, 1)}
    return cy[0] + uz * (cy[1] - cy[0])


def fractal_noise(p: np.ndarray, freq: np.ndarray, footprint: np.ndarray, seed: np.ndarray,
                  octaves: int = 3) -> np.ndarray:
    """Zero-mean fractal value noise in about [-1, 1], band-limited by the pixel footprint.

    Octave k has frequency ``freq * 2**k`` (cycles/m) and amplitude ``0.5**k``; it is faded
    linearly from full weight at ``f * footprint = 0.15`` to zero at ``0.35`` (below the Nyquist
    limit 0.5, so that bilinear resampling of the image stays accurate); ``footprint`` = metres
    per pixel at the hit point."""
    out = np.zeros(len(p))
    seed = np.broadcast_to(np.asarray(seed, np.int64), (len(p),))
    norm = 0.0
    for k in range(octaves):
        f = freq * (2.0 ** k)
        w = np.clip((0.35 - f * footprint) / 0.2, 0.0, 1.0)
        amp = 0.5 ** k
        on = w > 0  # evaluate the octave only where it survives the band limit
        if on.any():
            out[on] += amp * w[on] * (2.0 * value_noise3(p[on] * f[on, None], seed[on] + 7919 * k) - 1.0)
        norm += amp
    return out / norm * 1.6


def _smooth_band(x: np.ndarray, lo: float, hi: float, width: np.ndarray) -> np.ndarray:
    """Smoothed indicator of lo <= x <= hi with edge half-width ``width`` (anti-aliased)."""
    w = np.maximum(width, 1e-3)
    return np.clip((x - lo) / w + 0.5, 0, 1) * np.clip((hi - x) / w + 0.5, 0, 1)


def sky_colour(d: np.ndarray) -> np.ndarray:
    """Sky radiance for world ray directions (a function of direction only: infinitely far)."""
    dn = d / np.linalg.norm(d, axis=1, keepdims=True)
    e = np.clip(dn[:, 2], -0.2, 1.0)[:, None]
    horizon = np.array([0.80, 0.86, 0.92])
    zenith = np.array([0.35, 0.55, 0.85])
    return horizon + (zenith - horizon) * np.sqrt(np.clip(e, 0, 1))


def shade(h: Hits, d: np.ndarray, sc: Scene, focal: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Linear-ish RGB in [0, 1] (N, 3) and a reflectance (N,) for the hits ``h`` of rays ``d``.

    ``focal`` (pixels) sets the footprint used to band-limit textures: metres per pixel
    ``= t |d| / (focal |cos(incidence)|)``."""
    n = len(d)
    rgb = sky_colour(d)
    refl = np.zeros(n)
    hit = h.kind > 0
    if not hit.any():
        return rgb, refl
    kind, idx, P = h.kind[hit], h.index[hit], h.point[hit]
    N = h.normal[hit]
    dd = d[hit]
    dist = h.t[hit] * np.linalg.norm(dd, axis=1)
    cosi = np.abs((dd * N).sum(1)) / np.linalg.norm(dd, axis=1)
    foot = dist / (focal * np.maximum(cosi, 0.15))
    m = len(P)
    local = P.copy()              # texture coordinates in the primitive's own frame
    base = np.zeros((m, 3))
    mat = np.zeros(m, np.int64)
    pseed = np.full(m, seed * 1000003, np.int64)
    extra = np.ones(m)            # multiplicative pattern (windows, joints, markings)

    g = kind == 1
    if g.any():
        if sc.ground_fn is not None:
            alb, gm, pat = sc.ground_fn(P[g], foot[g])
            base[g], mat[g], extra[g] = alb, gm, pat
        else:
            base[g], mat[g] = (0.45, 0.45, 0.42), Materials.ROAD
        pseed[g] += 11
    b = kind == 2
    if b.any():
        pb = idx[b]
        local[b] = np.einsum("kj,kjc->kc", P[b] - sc.box_c[pb], sc.box_R[pb])
        base[b], mat[b] = sc.box_rgb[pb], sc.box_mat[pb]
        pseed[b] += 101 + sc.box_id[pb] * 13
        fac = b.copy()
        fac[b] = sc.box_mat[pb] == Materials.FACADE
        if fac.any():
            lp = local[fac]
            nl = np.abs(np.einsum("kj,kjc->kc", N[fac], sc.box_R[idx[fac]]))
            u = np.where(nl[:, 0] > 0.5, lp[:, 1], lp[:, 0])  # along the face
            zz = lp[:, 2] + sc.box_h[idx[fac], 2]              # height above the box bottom
            fu = np.mod(u, 2.6)
            fz = np.mod(zz, 3.1)
            wwin = foot[fac] * EDGE_PX
            win = _smooth_band(fu, 0.7, 1.9, wwin) * _smooth_band(fz, 1.0, 2.3, wwin) * (zz > 0.9)
            win *= nl[:, 2] < 0.5
            extra[fac] = 1.0 - 0.55 * win
        car = b.copy()
        car[b] = sc.box_mat[pb] == Materials.CAR
        if car.any():
            lp = local[car]
            zz = lp[:, 2] + sc.box_h[idx[car], 2]
            # dark window band and bumper stripe in car-local coordinates
            w = foot[car] * EDGE_PX
            extra[car] = 1.0 - 0.5 * _smooth_band(zz, 1.0, 1.35, w) - 0.3 * _smooth_band(zz, 0.25, 0.4, w)
    c = kind == 3
    if c.any():
        pc = idx[c]
        local[c] = np.c_[P[c][:, :2] - sc.cyl_c[pc], P[c][:, 2:]]
        base[c], mat[c] = sc.cyl_rgb[pc], sc.cyl_mat[pc]
        pseed[c] += 50021 + sc.cyl_id[pc] * 17
    s = kind == 4
    if s.any():
        ps = idx[s]
        local[s] = P[s] - sc.sph_c[ps]
        base[s], mat[s] = sc.sph_rgb[ps], sc.sph_mat[ps]
        pseed[s] += 90001 + sc.sph_id[ps] * 19
    r = kind == 5
    if r.any():
        ax = idx[r]
        face = np.where(ax == 2, np.where(N[r][:, 2] > 0, 1, 2), 0)
        base[r] = sc.room_rgb[face]
        mat[r] = np.choose(face, [Materials.WALL, Materials.FLOOR, Materials.CEILING])
        pseed[r] += 70001 + face * 3 + ax * 5
        wl = r.copy()
        wl[r] = face == 0
        if wl.any():  # wallpaper: soft vertical stripes every 0.4 m and a dark skirting board
            w = foot[wl] * EDGE_PX
            nrm = N[wl]
            u = np.where(np.abs(nrm[:, 0]) > 0.5, P[wl][:, 1], P[wl][:, 0])
            zz = P[wl][:, 2] - (sc.room[0][2] - sc.room[1][2])
            extra[wl] = (1.0 - 0.12 * _smooth_band(np.mod(u, 0.4), 0.0, 0.15, w)) \
                * (1.0 - 0.45 * _smooth_band(zz, -1.0, 0.12, w))
        fl = r.copy()
        fl[r] = face == 1
        if fl.any():  # floor tiles: joints every 0.6 m
            w = foot[fl] * EDGE_PX
            jx = 1 - _smooth_band(np.mod(P[fl][:, 0], 0.6), 0.0, 0.04, w)
            jy = 1 - _smooth_band(np.mod(P[fl][:, 1], 0.6), 0.0, 0.04, w)
            extra[fl] = 0.65 + 0.35 * jx * jy

    freq = np.array([Materials.PARAMS.get(int(k), (1.0, 0.4))[0] for k in range(14)])[mat]
    amp = np.array([Materials.PARAMS.get(int(k), (1.0, 0.4))[1] for k in range(14)])[mat]
    nz = fractal_noise(local, freq, foot, pseed)
    nz2 = fractal_noise(local + 17.3, freq * 0.37, foot, pseed + 3, octaves=2)
    albedo = base * (1.0 + amp[:, None] * (0.6 * nz[:, None] + 0.25 * nz2[:, None] * np.array([1.0, 0.8, 0.6])))
    albedo = np.clip(albedo * extra[:, None], 0.02, 1.0)
    lam = np.clip(N[:, 0] * SUN_DIR[0] + N[:, 1] * SUN_DIR[1] + N[:, 2] * SUN_DIR[2], 0.0, 1.0)
    light = AMBIENT + (1.0 - AMBIENT) * lam
    if sc.room is not None:  # indoor: a soft overhead light instead of the sun
        light = 0.55 + 0.45 * np.clip(N[:, 2] * -0.3 + 0.7 + 0.3 * np.abs(N[:, 0]), 0, 1)
    out = np.clip(albedo * light[:, None], 0.0, 1.0)
    rgb[hit] = out
    refl[hit] = albedo.mean(1)
    return rgb, refl
