"""Analytic scene primitives, vectorised ray casting, solid textures and shading.

World frame: x east, y north, z up (metres), ground plane ``z = 0``. A camera ray is
``X(t) = o + t * d`` (``o``: ray origin (3,), the camera centre; ``d``: ray direction, not
unit) with ``d = R_wc @ K^-1 [u, v, 1]^T``, so the ray parameter ``t`` of a hit is directly the
camera z-depth (the quantity stored in KITTI depth maps).

Primitives (all in numpy arrays, intersected for all rays x all primitives at once):

* ground plane ``z = 0`` (optional),
* oriented boxes (buildings, parked / moving cars, furniture) and one optional *interior* box
  (a room seen from inside: the far slab hit is used),
* vertical cylinders with a top cap (poles, tree trunks, pedestrians),
* spheres (tree crowns, heads, lamps),
* the sky at infinity (``t = inf``).

What a ray hit is a :class:`Hit`; what a surface is made of a :class:`Material`.

Colour is a function of the 3-D hit point expressed in the primitive's *own* frame (so a
moving object carries its texture with it): a few octaves of 3-D value noise (Perlin-style
lattice noise with smoothstep interpolation) on a per-primitive palette, plus procedural
patterns (lane markings, facade windows, paving joints). Each octave is faded out when its
wavelength approaches the pixel footprint (distance band-limiting, as in mip-mapping), and the
renderer additionally averages 2x2 sub-pixel samples. Shading is Lambertian from a fixed sun
direction plus an ambient term; there is no view-dependent effect, so warping one frame into
another with true depth and pose reproduces it up to the band-limit and sampling error.

The integer values of :class:`Hit`, :class:`Material` and :class:`RoomFace` and the texture
seed constants below are part of the rendered data: changing any of them changes the bytes of
every rendered benchmark.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace

import numpy as np

__all__ = [
    "Hit",
    "Material",
    "RoomFace",
    "MATERIAL_NOISE",
    "Scene",
    "Hits",
    "SUN_DIR",
    "AMBIENT",
    "EDGE_PX",
    "MOVER_ID_OFFSET",
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
#: Smallest ray parameter counted as a hit (avoids self-intersection at the ray origin).
_EPS = 1e-4


class Hit(enum.IntEnum):
    """What a ray hit: the values of :attr:`Hits.kind` (stored as int8).

    :attr:`Hits.index` says which one: the row of the ``Scene.box_* / cyl_* / sph_*`` arrays
    for BOX / CYLINDER / SPHERE, the axis (0 x, 1 y, 2 z) of the face for ROOM, -1 otherwise."""

    SKY = 0       # nothing, or only surfaces beyond Scene.max_dist (t = inf)
    GROUND = 1    # the ground plane z = 0
    BOX = 2       # an oriented box (outside)
    CYLINDER = 3  # a vertical cylinder: its side or its top cap
    SPHERE = 4    # a sphere
    ROOM = 5      # the inside of the interior room box (a wall, the floor or the ceiling)


class RoomFace(enum.IntEnum):
    """The face of the interior room a ROOM hit lies on; also the row of ``Scene.room_rgb``."""

    WALL = 0     # any of the four vertical faces
    FLOOR = 1    # z = room bottom (inward normal +z)
    CEILING = 2  # z = room top (inward normal -z)


class Material(enum.IntEnum):
    """Material ids (``Scene.*_mat``, the ground callback's materials): select the texture noise
    parameters (:data:`MATERIAL_NOISE`) and, for FACADE and CAR boxes, a procedural pattern."""

    SKY = 0         # reserved: the sky has no surface (never given to a primitive)
    ROAD = 1        # asphalt of the lanes and parking lanes (ground; lane markings)
    SIDEWALK = 2    # paving slabs (ground; joints)
    FACADE = 3      # building boxes (windows on the vertical faces)
    CAR = 4         # car body and cabin boxes (dark window band, bumper stripe)
    POLE = 5        # street poles, the indoor lamp stand (cylinders)
    TRUNK = 6       # tree trunks (cylinders)
    FOLIAGE = 7     # tree crowns (spheres)
    PERSON = 8      # pedestrian bodies (cylinders) and heads (spheres)
    WALL = 9        # room walls (wallpaper stripes, skirting board)
    FLOOR = 10      # room floor (tiles)
    CEILING = 11    # room ceiling
    FURNITURE = 12  # furniture, pictures, the table, the lamp globe (boxes, spheres)
    GRASS = 13      # verges beyond the sidewalks (ground)


#: ``(base noise frequency [1/m], noise amplitude)`` of each material's texture.
MATERIAL_NOISE = {
    Material.ROAD: (1.6, 0.55), Material.SIDEWALK: (1.2, 0.45), Material.FACADE: (0.9, 0.45),
    Material.CAR: (1.4, 0.35), Material.POLE: (3.0, 0.3), Material.TRUNK: (4.0, 0.5),
    Material.FOLIAGE: (2.0, 0.7), Material.PERSON: (3.0, 0.5), Material.WALL: (2.0, 0.45),
    Material.FLOOR: (2.5, 0.55), Material.CEILING: (1.5, 0.35), Material.FURNITURE: (3.0, 0.5),
    Material.GRASS: (2.0, 0.6),
}
#: Noise parameters of a material missing from :data:`MATERIAL_NOISE` (only SKY).
DEFAULT_MATERIAL_NOISE = (1.0, 0.4)
# lookup tables indexed by material id
_NOISE_FREQ = np.array([MATERIAL_NOISE.get(m, DEFAULT_MATERIAL_NOISE)[0] for m in Material])
_NOISE_AMP = np.array([MATERIAL_NOISE.get(m, DEFAULT_MATERIAL_NOISE)[1] for m in Material])

# ----------------------------------------------------------------------------- texture seeds
# Every surface's texture noise has its own integer seed, the same in every frame, so that
# primitives look different from each other but stay put:
#     seed = render_seed * RENDER_SEED_STRIDE + <kind>_SEED + primitive id * <kind>_SEED_STRIDE
# (``render_seed``: the ``seed`` argument of :func:`shade`; primitive ids: ``Scene.*_id``).
#: Spacing of the texture seeds of different render seeds (a prime above any per-kind offset).
RENDER_SEED_STRIDE = 1000003
#: Offset of the ground plane's texture seed.
GROUND_SEED = 11
#: Offset and per-id stride of box texture seeds.
BOX_SEED, BOX_SEED_STRIDE = 101, 13
#: Offset and per-id stride of cylinder texture seeds.
CYLINDER_SEED, CYLINDER_SEED_STRIDE = 50021, 17
#: Offset and per-id stride of sphere texture seeds.
SPHERE_SEED, SPHERE_SEED_STRIDE = 90001, 19
#: Offset of the room's texture seeds, plus RoomFace * ROOM_FACE_SEED_STRIDE + axis * ROOM_AXIS_SEED_STRIDE.
ROOM_SEED, ROOM_FACE_SEED_STRIDE, ROOM_AXIS_SEED_STRIDE = 70001, 3, 5
#: :func:`fractal_noise`: octave k uses ``seed + k * OCTAVE_SEED_STRIDE``.
OCTAVE_SEED_STRIDE = 7919
#: The second, coarse noise layer (colour variation) of :func:`shade` uses ``seed +
#: COLOUR_NOISE_SEED`` at points shifted by COLOUR_NOISE_SHIFT metres (decorrelates the layers).
COLOUR_NOISE_SEED = 3
COLOUR_NOISE_SHIFT = 17.3
#: :meth:`Scene.concat` shifts the ids (texture seeds) of the added primitives (the moving
#: objects) by this much, so that they never share a texture with a static primitive.
MOVER_ID_OFFSET = 1_000_000


@dataclass
class Scene:
    """A static set of primitives (arrays). ``*_rgb`` are base albedos, ``*_mat`` material ids,
    ``*_dyn`` marks independently moving objects (for masks). Box axes are the columns of
    ``box_R`` (world = R @ local + centre)."""

    box_c: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))  # centres
    box_R: np.ndarray = field(default_factory=lambda: np.zeros((0, 3, 3)))  # rotations (local -> world)
    box_h: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))  # half extents along the box axes
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
    # callable(points (N,3), footprint (N,)) -> (albedo (N,3), Material (N,), pattern (N,)) for z=0 hits
    ground_fn: object = None
    room: tuple | None = None  # (centre (3,), half extents (3,)) of an interior box, axis-aligned
    # albedo of the room's faces, one row per RoomFace (wall, floor, ceiling)
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

    def concat(self, other: "Scene", id_offset: int = MOVER_ID_OFFSET) -> "Scene":
        """This scene plus the primitives of ``other`` (whose ids are shifted by ``id_offset``)."""
        kw = {}
        for k, fs in self._PER.items():
            for f in fs:
                theirs = getattr(other, f"{k}_{f}")
                kw[f"{k}_{f}"] = np.concatenate([getattr(self, f"{k}_{f}"), theirs + id_offset if f == "id" else theirs])
        return replace(self, **kw)

    def corners(self) -> np.ndarray:
        """(P_box + P_cyl + P_sph, 8, 3) world corners of each primitive's bounding box."""
        signs = np.array([[i, j, k] for i in (-1, 1) for j in (-1, 1) for k in (-1, 1)], float)
        box_corners = self.box_c[:, None] + np.einsum("pij,pqj->pqi", self.box_R, signs[None] * self.box_h[:, None]) \
            if self.n_box else np.zeros((0, 8, 3))
        cyl_centre = np.c_[self.cyl_c, self.cyl_z.mean(1)]
        cyl_half = np.c_[self.cyl_r, self.cyl_r, 0.5 * (self.cyl_z[:, 1] - self.cyl_z[:, 0])]
        sph_half = np.repeat(self.sph_r[:, None], 3, 1)
        return np.concatenate([box_corners, cyl_centre[:, None] + signs[None] * cyl_half[:, None],
                               self.sph_c[:, None] + signs[None] * sph_half[:, None]])

    def cull(self, origin: np.ndarray, forward: np.ndarray | None, radius: float) -> "Scene":
        """Keep primitives whose bounding sphere lies within ``radius`` of ``origin`` and not
        entirely behind the plane through ``origin`` with normal ``forward`` (None: all around)."""

        def keep(centre: np.ndarray, r: np.ndarray) -> np.ndarray:
            offset = centre - origin
            ok = np.linalg.norm(offset, axis=1) - r < radius
            if forward is not None:
                ok &= offset @ forward > -r
            return ok

        keep_box = keep(self.box_c, np.linalg.norm(self.box_h, axis=1))
        cyl_centre = np.c_[self.cyl_c, self.cyl_z.mean(1)] if self.n_cyl else np.zeros((0, 3))
        cyl_radius = self.cyl_r + 0.5 * (self.cyl_z[:, 1] - self.cyl_z[:, 0]) if self.n_cyl else np.zeros(0)
        return self.subset(keep_box, keep(cyl_centre, cyl_radius), keep(self.sph_c, self.sph_r))


@dataclass
class Hits:
    """Result of :func:`cast_rays` for N rays."""

    t: np.ndarray        # (N,) ray parameter (inf = sky)
    kind: np.ndarray     # (N,) int8 Hit (SKY, GROUND, BOX, CYLINDER, SPHERE, ROOM)
    index: np.ndarray    # (N,) which primitive / room axis (see Hit; -1 for sky/ground)
    normal: np.ndarray   # (N, 3) world normal (unit)
    point: np.ndarray    # (N, 3) world hit point (0 for sky)
    dynamic: np.ndarray  # (N,) bool, hit an independently moving object


# ----------------------------------------------------------------------------- ray batches
def _pairs(tile: np.ndarray, overlap: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ray-major (ray, primitive) index pairs: ray r is paired with every primitive p with
    ``overlap[tile[r], p]`` (a CSR expansion, fully vectorised).

    ``tile`` (m,) tile of each ray, ``overlap`` (tiles, P) bool. Returns ``(pair_ray, pair_prim)``,
    both (pairs,) int64, sorted by ray."""
    if overlap.shape[1] == 0 or len(tile) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    rows, cols = np.nonzero(overlap)                # row-major: sorted by tile
    per_tile = np.bincount(rows, minlength=overlap.shape[0])
    indptr = np.concatenate([[0], np.cumsum(per_tile)])
    count = per_tile[tile]
    total = int(count.sum())
    pair_ray = np.repeat(np.arange(len(tile)), count)
    first = np.cumsum(count) - count
    pair_prim = cols[np.repeat(indptr[tile] - first, count) + np.arange(total)]
    return pair_ray, pair_prim


def _segment_min(t: np.ndarray, pair_ray: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-ray minimum over (ray, primitive) pairs sorted by ray.

    ``t`` (pairs,) ray parameter of each pair, ``pair_ray`` (pairs,) its ray. Returns
    ``(t_min (n,) float64, inf where no hit; pair index of the minimum (n,) int64, -1 where none)``."""
    t_out = np.full(n, np.inf)
    arg_out = np.full(n, -1, np.int64)
    if len(t) == 0:
        return t_out, arg_out
    starts = np.flatnonzero(np.r_[True, pair_ray[1:] != pair_ray[:-1]])
    mins = np.minimum.reduceat(t, starts)
    counts = np.diff(np.r_[starts, len(t)])
    idx = np.where(t == np.repeat(mins, counts), np.arange(len(t)), len(t))
    arg = np.minimum.reduceat(idx, starts)
    rays = pair_ray[starts]
    t_out[rays] = mins
    arg_out[rays] = np.where(np.isfinite(mins), arg, -1)
    return t_out, arg_out


def _ray_batches(ray_tile: np.ndarray, overlaps: tuple[np.ndarray, ...], max_rays: int,
                 max_pairs: int) -> list[tuple[int, int]]:
    """Split N rays into ``(start, stop)`` slices of consecutive rays with at most ``max_rays``
    rays and about ``max_pairs`` (ray, primitive) pairs each (at least one ray per slice).

    ``ray_tile`` (N,) tile of each ray; ``overlaps``: the (tiles, P_kind) bool matrices."""
    n = len(ray_tile)
    per_ray = sum(overlap.sum(1) for overlap in overlaps)[ray_tile]
    cum = np.cumsum(per_ray)
    bounds = [0]
    while bounds[-1] < n:
        start = bounds[-1]
        base = cum[start - 1] if start else 0
        stop = int(np.searchsorted(cum, base + max_pairs, side="right"))
        bounds.append(min(n, max(start + 1, min(stop, start + max_rays))))
    return list(zip(bounds[:-1], bounds[1:]))


# ----------------------------------------------------------------------------- intersection
# Every _hit_* function tests the m rays o + t d of one batch (o (3,), d (m, 3), world frame)
# against one kind of primitive and, where its hit is nearer than the nearest one so far,
# replaces it in the _Nearest record.
@dataclass
class _Nearest:
    """Nearest hit so far of m rays (world frame)."""

    t: np.ndarray       # (m,) float64 ray parameter, inf = none
    kind: np.ndarray    # (m,) int8 Hit
    index: np.ndarray   # (m,) int64, see Hit
    normal: np.ndarray  # (m, 3) float64 world normal

    @classmethod
    def none(cls, m: int) -> "_Nearest":
        return cls(np.full(m, np.inf), np.full(m, Hit.SKY, np.int8), np.full(m, -1, np.int64), np.zeros((m, 3)))

    def take(self, nearer: np.ndarray, t: np.ndarray, kind: Hit, index, normal) -> None:
        """Replace the rays ``nearer`` (m,) bool by a hit of ``kind`` with the given values
        (arrays over the ``nearer`` rays, or broadcastable to them)."""
        self.t[nearer] = t
        self.kind[nearer] = kind
        self.index[nearer] = index
        self.normal[nearer] = normal

    def drop_beyond(self, d: np.ndarray, max_dist: float) -> None:
        """Turn hits farther than ``max_dist`` metres along the ray into sky."""
        far = self.t * np.linalg.norm(d, axis=1) > max_dist
        self.t[far] = np.inf
        self.kind[far] = Hit.SKY
        self.index[far] = -1


def _hit_ground(o: np.ndarray, d: np.ndarray, near: _Nearest) -> None:
    """Ground plane z = 0, seen from above (rays going down); normal +z, index -1.

    Must be the first test of a batch (it assumes no hit so far)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t = -o[2] / d[:, 2]
    down = (d[:, 2] < 0) & (t > _EPS)
    near.t[:] = np.where(down, t, np.inf)
    near.kind[down] = Hit.GROUND
    near.normal[down] = (0.0, 0.0, 1.0)


def _hit_room(o: np.ndarray, d: np.ndarray, room: tuple, near: _Nearest) -> None:
    """Inside of the axis-aligned room box ``room = (centre (3,), half extents (3,))``: the far
    slab hit (the ray leaves the box through a wall, the floor or the ceiling). Index = the axis
    (0 x, 1 y, 2 z) of that face; normal = the inward face normal."""
    centre, half = np.asarray(room[0]), np.asarray(room[1])
    rows = np.arange(len(d))
    with np.errstate(divide="ignore"):
        inv = 1.0 / np.where(np.abs(d) < 1e-12, 1e-12, d)
    t_exit = np.maximum((centre - half - o) * inv, (centre + half - o) * inv)  # (m, 3) per axis
    axis = np.argmin(t_exit, 1)
    t = t_exit[rows, axis]
    nearer = t < near.t
    inward = np.zeros((len(d), 3))
    inward[rows, axis] = -np.sign(d[rows, axis])
    near.take(nearer, t[nearer], Hit.ROOM, axis[nearer], inward[nearer])


def _box_pairs(o: np.ndarray, d: np.ndarray, pair_ray: np.ndarray, pair_box: np.ndarray, sc: Scene) -> np.ndarray:
    """Slab test (Kay & Kajiya) of ray ``pair_ray[i]`` against oriented box ``pair_box[i]``.

    ``o`` (3,) and ``d`` (m, 3) world frame; the test runs in each box's own frame. Returns the
    entry ``t`` (pairs,) float32, inf = miss. float32 (these arrays dominate the render time);
    :func:`_refine_box_hits` recomputes the winners in float64."""
    origin_local = np.einsum("pj,pjk->pk", o[None] - sc.box_c, sc.box_R)   # (P, 3) origin in box frames
    slab_lo = (-sc.box_h - origin_local).astype(np.float32)  # slab bounds relative to the origin, box axes
    slab_hi = (sc.box_h - origin_local).astype(np.float32)
    R = sc.box_R
    if np.all(R[:, 2, 2] == 1.0):  # yaw-only boxes (all generated ones): 2-D rotation + z slab
        d32 = [np.ascontiguousarray(d[:, k], dtype=np.float32)[pair_ray] for k in range(3)]
        cos_yaw = R[:, 0, 0].astype(np.float32)[pair_box]
        sin_yaw = R[:, 1, 0].astype(np.float32)[pair_box]
        dir_local = (d32[0] * cos_yaw + d32[1] * sin_yaw, d32[1] * cos_yaw - d32[0] * sin_yaw, d32[2])
    else:
        rotated = np.einsum("mj,mjk->mk", d[pair_ray].astype(np.float32), R[pair_box].astype(np.float32))
        dir_local = (rotated[:, 0], rotated[:, 1], rotated[:, 2])
    t_enter = t_leave = None
    with np.errstate(divide="ignore", invalid="ignore"):
        for k in range(3):
            inv = np.float32(1.0) / dir_local[k]
            t1 = np.ascontiguousarray(slab_lo[:, k])[pair_box] * inv
            t2 = np.ascontiguousarray(slab_hi[:, k])[pair_box] * inv
            lo, hi = np.fmin(t1, t2), np.fmax(t1, t2)
            t_enter = lo if t_enter is None else np.fmax(t_enter, lo)
            t_leave = hi if t_leave is None else np.fmin(t_leave, hi)
    return np.where((t_leave >= t_enter) & (t_enter > _EPS), t_enter, np.float32(np.inf))


def _refine_box_hits(o: np.ndarray, d: np.ndarray, boxes: np.ndarray, t32: np.ndarray,
                     sc: Scene) -> tuple[np.ndarray, np.ndarray]:
    """float64 entry point of the k rays ``d`` (k, 3) into the boxes ``boxes`` (k,) they hit
    first (``t32`` (k,): the float32 slab-test value, kept where float64 disagrees by more than
    1e-3 (1 + t), i.e. at grazing hits). Returns ``(t (k,), world outward normal (k, 3))``; the
    slab arithmetic runs in the box frames."""
    R = sc.box_R[boxes]
    origin_local = np.einsum("kj,kjc->kc", o[None] - sc.box_c[boxes], R)
    dir_local = np.einsum("kj,kjc->kc", d, R)
    half = sc.box_h[boxes]
    with np.errstate(divide="ignore", invalid="ignore"):
        t_near = np.fmin((-half - origin_local) / dir_local, (half - origin_local) / dir_local)
    axis = np.argmax(np.where(np.isnan(t_near), -np.inf, t_near), 1)   # the slab entered last
    k = np.arange(len(boxes))
    t_ref = t_near[k, axis]
    t = np.where(np.abs(t_ref - t32) < 1e-3 * (1 + t32), t_ref, t32)
    normal = R[k, :, axis] * -np.sign(dir_local[k, axis])[:, None]
    return t, normal


def _hit_boxes(o: np.ndarray, d: np.ndarray, pair_ray: np.ndarray, pair_box: np.ndarray, sc: Scene,
               near: _Nearest) -> None:
    """Oriented boxes (outside), for the (ray, box) pairs ``pair_ray, pair_box`` (pairs,)."""
    t_box, arg = _segment_min(_box_pairs(o, d, pair_ray, pair_box, sc), pair_ray, len(d))
    nearer = t_box < near.t
    if nearer.any():
        boxes = pair_box[arg[nearer]]
        t, normal = _refine_box_hits(o, d[nearer], boxes, t_box[nearer], sc)
        near.take(nearer, t, Hit.BOX, boxes, normal)


def _cyl_pairs(o: np.ndarray, d: np.ndarray, pair_ray: np.ndarray, pair_cyl: np.ndarray,
               sc: Scene) -> tuple[np.ndarray, np.ndarray]:
    """Vertical capped cylinders, world frame: ``(t, cap-hit flag)`` (pairs,) of ray
    ``pair_ray[i]`` against cylinder ``pair_cyl[i]``; t = inf: miss. The side is the nearer
    root of ``|(o + t d - axis)_xy|^2 = r^2`` between z0 and z1; the top cap counts for rays
    going down. (ox, oy): origin relative to the axis; (dx, dy, dz): the ray direction."""
    ox = o[0] - sc.cyl_c[pair_cyl, 0]
    oy = o[1] - sc.cyl_c[pair_cyl, 1]
    dx, dy, dz = d[pair_ray, 0], d[pair_ray, 1], d[pair_ray, 2]
    r2 = sc.cyl_r[pair_cyl] ** 2
    z0, z1 = sc.cyl_z[pair_cyl, 0], sc.cyl_z[pair_cyl, 1]
    a = dx * dx + dy * dy
    b = 2 * (ox * dx + oy * dy)
    c = ox * ox + oy * oy - r2
    disc = b * b - 4 * a * c
    with np.errstate(divide="ignore", invalid="ignore"):
        t_side = (-b - np.sqrt(np.maximum(disc, 0))) / (2 * np.maximum(a, 1e-12))
        z = o[2] + t_side * dz
        side = (disc > 0) & (t_side > _EPS) & (z >= z0) & (z <= z1)
        t_top = (z1 - o[2]) / np.where(np.abs(dz) < 1e-12, 1e-12, dz)
        cx = ox + t_top * dx
        cy = oy + t_top * dy
        cap = (t_top > _EPS) & (cx * cx + cy * cy <= r2) & (dz < 0)
    t_side = np.where(side, t_side, np.inf)
    t_cap = np.where(cap, t_top, np.inf)
    return np.minimum(t_side, t_cap), t_cap < t_side


def _hit_cylinders(o: np.ndarray, d: np.ndarray, pair_ray: np.ndarray, pair_cyl: np.ndarray, sc: Scene,
                   near: _Nearest) -> None:
    """Vertical capped cylinders, for the (ray, cylinder) pairs ``pair_ray, pair_cyl``; normal:
    radial (horizontal) on the side, +z on the cap."""
    t_pair, cap_pair = _cyl_pairs(o, d, pair_ray, pair_cyl, sc)
    t_cyl, arg = _segment_min(t_pair, pair_ray, len(d))
    nearer = t_cyl < near.t
    if nearer.any():
        cyls = pair_cyl[arg[nearer]]
        point = o + t_cyl[nearer, None] * d[nearer]
        radial = np.c_[point[:, :2] - sc.cyl_c[cyls], np.zeros(len(cyls))]
        radial /= np.maximum(np.linalg.norm(radial, axis=1, keepdims=True), 1e-9)
        radial[cap_pair[arg[nearer]]] = (0.0, 0.0, 1.0)
        near.take(nearer, t_cyl[nearer], Hit.CYLINDER, cyls, radial)


def _sph_pairs(o: np.ndarray, d: np.ndarray, pair_ray: np.ndarray, pair_sph: np.ndarray, sc: Scene) -> np.ndarray:
    """Spheres, world frame: the nearer root ``t`` (pairs,) of ``|o + t d - c|^2 = r^2`` for ray
    ``pair_ray[i]`` and sphere ``pair_sph[i]``; inf = miss."""
    oc = o[None] - sc.sph_c[pair_sph]
    dirs = d[pair_ray]
    a = (dirs * dirs).sum(1)
    b = 2 * (oc * dirs).sum(1)
    c = (oc * oc).sum(1) - sc.sph_r[pair_sph] ** 2
    disc = b * b - 4 * a * c
    t = (-b - np.sqrt(np.maximum(disc, 0))) / (2 * a)
    return np.where((disc > 0) & (t > _EPS), t, np.inf)


def _hit_spheres(o: np.ndarray, d: np.ndarray, pair_ray: np.ndarray, pair_sph: np.ndarray, sc: Scene,
                 near: _Nearest) -> None:
    """Spheres, for the (ray, sphere) pairs ``pair_ray, pair_sph``; normal radial."""
    t_sph, arg = _segment_min(_sph_pairs(o, d, pair_ray, pair_sph, sc), pair_ray, len(d))
    nearer = t_sph < near.t
    if nearer.any():
        sphs = pair_sph[arg[nearer]]
        point = o + t_sph[nearer, None] * d[nearer]
        near.take(nearer, t_sph[nearer], Hit.SPHERE, sphs, (point - sc.sph_c[sphs]) / sc.sph_r[sphs, None])


def _nearest_hits(o: np.ndarray, d: np.ndarray, ray_tile: np.ndarray, sc: Scene,
                  overlaps: tuple[np.ndarray, np.ndarray, np.ndarray]) -> _Nearest:
    """Nearest hit of the m rays ``o + t d`` (``d`` (m, 3), world frame) over all primitives
    (ray r tests the primitives p with ``overlaps[kind][ray_tile[r], p]``); sky beyond
    ``sc.max_dist``."""
    box_overlap, cyl_overlap, sph_overlap = overlaps
    near = _Nearest.none(len(d))
    if sc.ground:
        _hit_ground(o, d, near)
    if sc.room is not None:
        _hit_room(o, d, sc.room, near)
    if sc.n_box:
        _hit_boxes(o, d, *_pairs(ray_tile, box_overlap), sc, near)
    if sc.n_cyl:
        _hit_cylinders(o, d, *_pairs(ray_tile, cyl_overlap), sc, near)
    if sc.n_sph:
        _hit_spheres(o, d, *_pairs(ray_tile, sph_overlap), sc, near)
    near.drop_beyond(d, sc.max_dist)
    return near


def _dynamic_flags(kind: np.ndarray, index: np.ndarray, sc: Scene) -> np.ndarray:
    """(N,) bool: the hit primitive is an independently moving object (``Scene.*_dyn``)."""
    dynamic = np.zeros(len(kind), bool)
    for k, flags in ((Hit.BOX, sc.box_dyn), (Hit.CYLINDER, sc.cyl_dyn), (Hit.SPHERE, sc.sph_dyn)):
        sel = kind == k
        if sel.any() and len(flags):
            dynamic[sel] = flags[index[sel]]
    return dynamic


def cast_rays(o: np.ndarray, d: np.ndarray, sc: Scene, tiles: tuple | None = None,
              max_rays: int = 8192, max_pairs: int = 600_000) -> Hits:
    """Closest hit of rays ``o + t d`` from one origin ``o`` (3,); ``d`` (N,3) need not be unit.

    ``tiles = (ray_tile (N,), O_box, O_cyl, O_sph)`` (optional) restricts ray r to the
    primitives p with ``O_x[ray_tile[r], p]`` (screen-tile / sector culling; boolean
    matrices tiles x primitives). Without it every ray is tested against every primitive.
    The rays are processed in batches that bound the number of (ray, primitive) pairs."""
    n = len(d)
    o = np.asarray(o, float).reshape(3)
    if tiles is None:
        tiles = (np.zeros(n, np.int64), np.ones((1, sc.n_box), bool), np.ones((1, sc.n_cyl), bool),
                 np.ones((1, sc.n_sph), bool))
    ray_tile, overlaps = tiles[0], tuple(tiles[1:])
    t = np.full(n, np.inf)
    kind = np.full(n, Hit.SKY, np.int8)
    index = np.full(n, -1, np.int64)
    normal = np.zeros((n, 3))
    for start, stop in _ray_batches(ray_tile, overlaps, max_rays, max_pairs):
        batch = slice(start, stop)
        near = _nearest_hits(o, d[batch], ray_tile[batch], sc, overlaps)
        t[batch], kind[batch], index[batch], normal[batch] = near.t, near.kind, near.index, near.normal
    hit = np.isfinite(t)
    point = np.zeros((n, 3))
    point[hit] = o + t[hit, None] * d[hit]
    return Hits(t, kind, index, normal, point, _dynamic_flags(kind, index, sc))


# ----------------------------------------------------------------------------- textures
#: Multipliers of the lattice hash of :func:`value_noise3`: x, y, z lattice coordinates and seed.
_HASH_PRIMES = (np.uint32(0x8DA6B343), np.uint32(0xD8163841), np.uint32(0xCB1AB31F), np.uint32(0x9E3779B9))


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
    px, py, pz, ps = _HASH_PRIMES
    with np.errstate(over="ignore"):
        hx = (i[:, 0] * px, (i[:, 0] + np.uint32(1)) * px)
        hy = (i[:, 1] * py, (i[:, 1] + np.uint32(1)) * py)
        hz = (i[:, 2] * pz, (i[:, 2] + np.uint32(1)) * pz)
        hs = seed.astype(np.uint32) * ps
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

    Octave k has frequency ``freq * 2**k`` (cycles/m), amplitude ``0.5**k`` and seed ``seed +
    k * OCTAVE_SEED_STRIDE``; it is faded linearly from full weight at ``f * footprint = 0.15``
    to zero at ``0.35`` (below the Nyquist limit 0.5, so that bilinear resampling of the image
    stays accurate); ``footprint`` = metres per pixel at the hit point."""
    out = np.zeros(len(p))
    seed = np.broadcast_to(np.asarray(seed, np.int64), (len(p),))
    norm = 0.0
    for k in range(octaves):
        f = freq * (2.0 ** k)
        w = np.clip((0.35 - f * footprint) / 0.2, 0.0, 1.0)
        amp = 0.5 ** k
        on = w > 0  # evaluate the octave only where it survives the band limit
        if on.any():
            octave_seed = seed[on] + OCTAVE_SEED_STRIDE * k
            out[on] += amp * w[on] * (2.0 * value_noise3(p[on] * f[on, None], octave_seed) - 1.0)
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


# ----------------------------------------------------------------------------- shading
@dataclass
class _Surface:
    """Texture inputs of the M non-sky hits being shaded, filled per hit kind by the
    ``_*_surface`` functions (each writes the rows ``sel`` (M,) bool of its kind)."""

    local: np.ndarray     # (M, 3) hit point in the primitive's own frame (texture coordinates)
    albedo: np.ndarray    # (M, 3) base albedo
    material: np.ndarray  # (M,) int64 Material
    seed: np.ndarray      # (M,) int64 texture seed
    pattern: np.ndarray   # (M,) multiplicative procedural pattern (windows, joints, markings)

    @classmethod
    def start(cls, point: np.ndarray, render_seed: int) -> "_Surface":
        """World coordinates, black, material 0, the render seed's base texture seed, no pattern."""
        m = len(point)
        return cls(point.copy(), np.zeros((m, 3)), np.zeros(m, np.int64),
                   np.full(m, render_seed * RENDER_SEED_STRIDE, np.int64), np.ones(m))


def _ground_surface(surf: _Surface, sel: np.ndarray, point: np.ndarray, foot: np.ndarray, sc: Scene) -> None:
    """Ground hits: albedo, material and pattern from ``sc.ground_fn`` (plain road without it);
    texture coordinates = world."""
    if sc.ground_fn is not None:
        albedo, material, pattern = sc.ground_fn(point[sel], foot[sel])
        surf.albedo[sel], surf.material[sel], surf.pattern[sel] = albedo, material, pattern
    else:
        surf.albedo[sel], surf.material[sel] = (0.45, 0.45, 0.42), Material.ROAD
    surf.seed[sel] += GROUND_SEED


def _facade_windows(local: np.ndarray, normal: np.ndarray, R: np.ndarray, half_height: np.ndarray,
                    foot: np.ndarray) -> np.ndarray:
    """Pattern (k,) of the facade hits at box-frame points ``local`` (k, 3) with world normals
    ``normal`` (k, 3) (box rotations ``R`` (k, 3, 3), half heights (k,)): a 2.6 m x 3.1 m grid
    of darker windows on the vertical faces, from 0.9 m above the box bottom."""
    normal_local = np.abs(np.einsum("kj,kjc->kc", normal, R))
    u = np.where(normal_local[:, 0] > 0.5, local[:, 1], local[:, 0])  # along the face
    height = local[:, 2] + half_height                                # above the box bottom
    fu = np.mod(u, 2.6)
    fz = np.mod(height, 3.1)
    edge = foot * EDGE_PX
    win = _smooth_band(fu, 0.7, 1.9, edge) * _smooth_band(fz, 1.0, 2.3, edge) * (height > 0.9)
    win *= normal_local[:, 2] < 0.5
    return 1.0 - 0.55 * win


def _car_bands(local: np.ndarray, half_height: np.ndarray, foot: np.ndarray) -> np.ndarray:
    """Pattern (k,) of car hits at box-frame points ``local`` (k, 3): a dark window band and a
    bumper stripe at fixed heights above the box bottom."""
    height = local[:, 2] + half_height
    edge = foot * EDGE_PX
    return 1.0 - 0.5 * _smooth_band(height, 1.0, 1.35, edge) - 0.3 * _smooth_band(height, 0.25, 0.4, edge)


def _box_surface(surf: _Surface, sel: np.ndarray, index: np.ndarray, point: np.ndarray, normal: np.ndarray,
                 foot: np.ndarray, sc: Scene) -> None:
    """Box hits: texture coordinates in the box frame, the box's albedo and material, windows on
    facades and bands on cars."""
    boxes = index[sel]
    surf.local[sel] = np.einsum("kj,kjc->kc", point[sel] - sc.box_c[boxes], sc.box_R[boxes])
    surf.albedo[sel], surf.material[sel] = sc.box_rgb[boxes], sc.box_mat[boxes]
    surf.seed[sel] += BOX_SEED + sc.box_id[boxes] * BOX_SEED_STRIDE
    facade = sel.copy()
    facade[sel] = sc.box_mat[boxes] == Material.FACADE
    if facade.any():
        fb = index[facade]
        surf.pattern[facade] = _facade_windows(surf.local[facade], normal[facade], sc.box_R[fb],
                                               sc.box_h[fb, 2], foot[facade])
    car = sel.copy()
    car[sel] = sc.box_mat[boxes] == Material.CAR
    if car.any():
        surf.pattern[car] = _car_bands(surf.local[car], sc.box_h[index[car], 2], foot[car])


def _cylinder_surface(surf: _Surface, sel: np.ndarray, index: np.ndarray, point: np.ndarray, sc: Scene) -> None:
    """Cylinder hits: texture coordinates relative to the axis (x, y) and world z."""
    cyls = index[sel]
    surf.local[sel] = np.c_[point[sel][:, :2] - sc.cyl_c[cyls], point[sel][:, 2:]]
    surf.albedo[sel], surf.material[sel] = sc.cyl_rgb[cyls], sc.cyl_mat[cyls]
    surf.seed[sel] += CYLINDER_SEED + sc.cyl_id[cyls] * CYLINDER_SEED_STRIDE


def _sphere_surface(surf: _Surface, sel: np.ndarray, index: np.ndarray, point: np.ndarray, sc: Scene) -> None:
    """Sphere hits: texture coordinates relative to the centre."""
    sphs = index[sel]
    surf.local[sel] = point[sel] - sc.sph_c[sphs]
    surf.albedo[sel], surf.material[sel] = sc.sph_rgb[sphs], sc.sph_mat[sphs]
    surf.seed[sel] += SPHERE_SEED + sc.sph_id[sphs] * SPHERE_SEED_STRIDE


def _room_surface(surf: _Surface, sel: np.ndarray, index: np.ndarray, point: np.ndarray, normal: np.ndarray,
                  foot: np.ndarray, sc: Scene) -> None:
    """Room hits (world texture coordinates): which :class:`RoomFace`, its albedo and material,
    wallpaper stripes and a skirting board on the walls, tile joints on the floor."""
    axis = index[sel]
    face = np.where(axis == 2, np.where(normal[sel][:, 2] > 0, RoomFace.FLOOR, RoomFace.CEILING), RoomFace.WALL)
    surf.albedo[sel] = sc.room_rgb[face]
    surf.material[sel] = np.choose(face, [Material.WALL, Material.FLOOR, Material.CEILING])
    surf.seed[sel] += ROOM_SEED + face * ROOM_FACE_SEED_STRIDE + axis * ROOM_AXIS_SEED_STRIDE
    wall = sel.copy()
    wall[sel] = face == RoomFace.WALL
    if wall.any():  # wallpaper: soft vertical stripes every 0.4 m and a dark skirting board
        edge = foot[wall] * EDGE_PX
        u = np.where(np.abs(normal[wall][:, 0]) > 0.5, point[wall][:, 1], point[wall][:, 0])  # along the wall
        height = point[wall][:, 2] - (sc.room[0][2] - sc.room[1][2])                          # above the floor
        surf.pattern[wall] = (1.0 - 0.12 * _smooth_band(np.mod(u, 0.4), 0.0, 0.15, edge)) \
            * (1.0 - 0.45 * _smooth_band(height, -1.0, 0.12, edge))
    floor = sel.copy()
    floor[sel] = face == RoomFace.FLOOR
    if floor.any():  # floor tiles: joints every 0.6 m
        edge = foot[floor] * EDGE_PX
        jx = 1 - _smooth_band(np.mod(point[floor][:, 0], 0.6), 0.0, 0.04, edge)
        jy = 1 - _smooth_band(np.mod(point[floor][:, 1], 0.6), 0.0, 0.04, edge)
        surf.pattern[floor] = 0.65 + 0.35 * jx * jy


def _textured_albedo(surf: _Surface, foot: np.ndarray) -> np.ndarray:
    """(M, 3) albedo: base albedo modulated by two layers of fractal noise (fine grey detail and
    coarse colour variation, at the material's frequency and amplitude) and the pattern."""
    freq = _NOISE_FREQ[surf.material]
    amp = _NOISE_AMP[surf.material]
    detail = fractal_noise(surf.local, freq, foot, surf.seed)
    colour = fractal_noise(surf.local + COLOUR_NOISE_SHIFT, freq * 0.37, foot, surf.seed + COLOUR_NOISE_SEED,
                           octaves=2)
    albedo = surf.albedo * (1.0 + amp[:, None] * (0.6 * detail[:, None]
                                                  + 0.25 * colour[:, None] * np.array([1.0, 0.8, 0.6])))
    return np.clip(albedo * surf.pattern[:, None], 0.02, 1.0)


def _light(normal: np.ndarray, sc: Scene) -> np.ndarray:
    """(M,) irradiance for world normals (M, 3): ambient + Lambertian sun outdoors; a soft
    overhead light in a room."""
    lam = np.clip(normal[:, 0] * SUN_DIR[0] + normal[:, 1] * SUN_DIR[1] + normal[:, 2] * SUN_DIR[2], 0.0, 1.0)
    light = AMBIENT + (1.0 - AMBIENT) * lam
    if sc.room is not None:  # indoor: a soft overhead light instead of the sun
        light = 0.55 + 0.45 * np.clip(normal[:, 2] * -0.3 + 0.7 + 0.3 * np.abs(normal[:, 0]), 0, 1)
    return light


def shade(h: Hits, d: np.ndarray, sc: Scene, focal: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Linear-ish RGB in [0, 1] (N, 3) and a reflectance (N,) for the hits ``h`` of rays ``d``.

    ``focal`` (pixels) sets the footprint used to band-limit textures: metres per pixel
    ``= t |d| / (focal |cos(incidence)|)``. ``seed``: the render seed of the textures (see
    RENDER_SEED_STRIDE)."""
    n = len(d)
    rgb = sky_colour(d)
    refl = np.zeros(n)
    hit = h.kind != Hit.SKY
    if not hit.any():
        return rgb, refl
    kind, index, point, normal = h.kind[hit], h.index[hit], h.point[hit], h.normal[hit]
    dirs = d[hit]
    dist = h.t[hit] * np.linalg.norm(dirs, axis=1)
    cos_incidence = np.abs((dirs * normal).sum(1)) / np.linalg.norm(dirs, axis=1)
    foot = dist / (focal * np.maximum(cos_incidence, 0.15))
    surf = _Surface.start(point, seed)
    if (sel := kind == Hit.GROUND).any():
        _ground_surface(surf, sel, point, foot, sc)
    if (sel := kind == Hit.BOX).any():
        _box_surface(surf, sel, index, point, normal, foot, sc)
    if (sel := kind == Hit.CYLINDER).any():
        _cylinder_surface(surf, sel, index, point, sc)
    if (sel := kind == Hit.SPHERE).any():
        _sphere_surface(surf, sel, index, point, sc)
    if (sel := kind == Hit.ROOM).any():
        _room_surface(surf, sel, index, point, normal, foot, sc)
    albedo = _textured_albedo(surf, foot)
    rgb[hit] = np.clip(albedo * _light(normal, sc)[:, None], 0.0, 1.0)
    refl[hit] = albedo.mean(1)
    return rgb, refl
