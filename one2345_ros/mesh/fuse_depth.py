"""Depth fusion: the visible side of the metric mesh moved onto the measured depth; the unseen side kept.

The scale stage (scale.py) places the reconstruction in the camera's optical frame with one
similarity fitted to the depth, so the visible side is right on average but keeps the
reconstruction's own errors (a visual hull's filled concavities and flat facets, a network's
guess). Where the camera measured the surface, the measurement is better. :func:`fuse_depth`
deforms the mesh so that its visible side agrees with the depth and leaves the rest alone:

1. Usable depth: readings inside the object mask eroded by :data:`EROSION_PX` (mixed pixels
   and segmentation errors sit on the mask border), finite (NaN = dropout), and not on an
   occlusion edge (a jump to any 8-neighbour larger than ``fuse_edge_jump`` of the range:
   flying pixels between the object and what lies in front of or behind it).
2. Visible vertices: ray cast from the camera centre (Embree, geometry/raycast.py); a vertex
   is visible when the first hit along its ray is the vertex itself. Vertices seen at grazing
   angles (cosine below :data:`MIN_COSINE`) get no target.
3. Robust local depth per visible vertex: the usable readings in a (2r+1)^2 pixel window
   around its projection, gated to at most ``fuse_max_toward`` in front of and
   ``fuse_max_away`` behind the vertex (fractions of the mesh's bounding-box diagonal),
   inliers within 3 robust sigmas (MAD) of their median, then a least-squares plane through
   the inliers evaluated at the vertex's sub-pixel position (the median alone is biased where
   the window is cut by the silhouette or straddles a curved part; a vertex whose plane would
   extrapolate beyond the inliers' spread gets no target). The target is the point of the
   vertex's camera ray at that depth, so the silhouette does not move. Its standard error is
   the plane's residual scale times the fit's leverage at the vertex (large where the window is
   cut by the mask border and the plane is extrapolated).
4. Only significant moves (a local Wiener gain): a vertex's offset o (target minus vertex depth)
   is scaled by ``max(0, 1 - SIGNIFICANCE x mean(se^2) / mean(o^2))``, both means over the
   targets within :data:`NOISE_RADIUS_FALLOFFS` falloffs. Where the reconstruction already
   agrees with the depth to within its noise the offsets are noise and the vertices stay (the
   noise would otherwise replace a better reconstruction); where it is off by more (a filled
   concavity, a flat facet, a scale error) the gain is ~1.
5. Smooth spreading: the displacement field d solves the screened Laplace problem
   ``(I - P + mu I + lam C) d = lam C d*`` on the mesh graph (P: neighbour averaging,
   trimesh's umbrella operator; C: the vertices with a target; lam: :data:`DATA_WEIGHT`),
   whose solution decays like exp(-distance / falloff) away from the targets, with
   ``falloff = fuse_falloff x the bounding-box diagonal`` and ``mu = (edge / (2 falloff))^2``
   (the umbrella operator is ~ edge^2 / 4 times the Laplace-Beltrami operator on a regular
   triangulation). It is solved (scipy SuperLU) only on the vertices within
   :data:`REGION_FALLOFFS` falloffs of a target; every other vertex keeps its position
   exactly, so the unseen side far from the seen one is the reconstruction's.

What fusion cannot avoid (benchmarks/fusion.py, docs/DESIGN.md): where the camera sees into a
concavity past a nearer rim (a mug's opening, a deep dent), the faces between vertices that land
on the rim and vertices that land on the floor behind it stretch along the rim's shadow ray (the
faces are kept, so the surface cannot tear). That new surface lies in space the camera could not
see and counts in the hidden part's Chamfer.

Faces and vertex colours are kept (the vertices only move). Why deformation rather than
fusing the depth into the signed grid before marching cubes (a truncated-SDF update, then
re-extraction): a single depth image gives the grid per-pixel noise at the grid's resolution,
where the plane fit averages a window; and the grid update needs the grid, so the mesh stage
(cleaning, decimation, colours) would run twice. ``benchmarks/fusion.py --alternatives``
measures the grid update beside this one (docs/DESIGN.md "Depth fusion").
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import trimesh
from scipy import ndimage
from scipy.sparse.linalg import spsolve
from scipy.spatial import cKDTree

from ..config import MetricConfig
from ..geometry.raycast import RayCaster

EROSION_PX = 1
"""Mask pixels this close to the mask's border are not used (mixed pixels, segmentation error)."""
MIN_COSINE = 0.1
"""Vertices whose normal makes more than ~84 deg with the line of sight get no target (grazing)."""
MIN_SAMPLES = 5
"""Usable window readings a vertex needs for a target."""
DATA_WEIGHT = 1.0
"""Weight of a vertex's target against its neighbours' average in the spreading (1: as much)."""
REGION_FALLOFFS = 4.0
"""The displacement is solved within this many falloffs of a target (exp(-4) = 2 %) and is 0 beyond."""
ROBUST_SIGMAS = 3.0
MIN_ROBUST_SCALE = 1e-3
"""Floor of the robust spread of a window, as a fraction of the range (quantised depth has MAD 0)."""
SIGNIFICANCE = 2.0
"""Offsets move a vertex only where their local mean square exceeds this many times the targets' variance."""
NOISE_RADIUS_FALLOFFS = 2.0
"""Radius (in falloffs) of the neighbourhood over which offsets and target variances are averaged (step 4)."""


def usable_depth(depth_m: np.ndarray, mask: np.ndarray, edge_jump: float) -> np.ndarray:
    """float64 (H, W) depth in metres where it may be used (step 1 of the module doc), NaN elsewhere."""
    z = np.where(np.isfinite(depth_m) & (depth_m > 0), depth_m, np.nan).astype(np.float64)
    inner = ndimage.binary_erosion(np.asarray(mask, dtype=bool), iterations=EROSION_PX)
    # Largest jump to a finite 8-neighbour (np.fmax ignores the NaN of dropouts and the border).
    padded = np.pad(z, 1, constant_values=np.nan)
    h, w = z.shape
    jump = np.zeros_like(z)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dx or dy:
                np.fmax(jump, np.abs(padded[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] - z), out=jump)
    usable = inner & np.isfinite(z) & ~(jump > edge_jump * z)
    return np.where(usable, z, np.nan)


def visible_vertices(mesh: trimesh.Trimesh, tolerance: float) -> np.ndarray:
    """bool (V,): the vertex is the first hit of the ray from the camera centre (the origin) through it."""
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    distance = np.linalg.norm(vertices, axis=1)
    hits = RayCaster(mesh).intersect(np.zeros_like(vertices), vertices / distance[:, None])
    first = np.full(len(vertices), np.inf)
    first[hits.ray] = hits.t
    return first >= distance - tolerance


def local_depth(z_image: np.ndarray, uv: np.ndarray, z_vertex: np.ndarray, window_px: int, toward_m: float,
                away_m: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Robust depth at sub-pixel positions ``uv`` (N, 2) of vertices at depths ``z_vertex`` (step 3).

    Returns (z (N,), ok (N,) bool, its standard error (N,)); z and the error are NaN where not ok.
    Hand-written and vectorised over the vertices: image filters
    (OpenCV, scipy.ndimage) neither skip NaN holes nor fit planes; ``generic_filter`` with a
    Python callback would take ~100x longer.
    """
    r = int(window_px)
    h, w = z_image.shape
    centre = np.rint(uv).astype(np.int64)
    frac = uv - centre  # the vertex's offset from its pixel's centre
    offsets = np.arange(-r, r + 1)
    dv, du = (a.ravel() for a in np.meshgrid(offsets, offsets, indexing="ij"))
    padded = np.pad(z_image, r, constant_values=np.nan)
    rows = np.clip(centre[:, 1], -r, h - 1 + r) + r
    cols = np.clip(centre[:, 0], -r, w - 1 + r) + r
    samples = padded[np.clip(rows[:, None] + dv, 0, h + 2 * r - 1), np.clip(cols[:, None] + du, 0, w + 2 * r - 1)]
    off_image = (centre[:, 0] < 0) | (centre[:, 0] >= w) | (centre[:, 1] < 0) | (centre[:, 1] >= h)
    samples[off_image] = np.nan
    offset = samples - z_vertex[:, None]
    samples[(offset > away_m) | (offset < -toward_m)] = np.nan
    ok = np.count_nonzero(np.isfinite(samples), axis=1) >= MIN_SAMPLES
    samples, frac, z_vertex = samples[ok], frac[ok], z_vertex[ok]
    z, error = np.full(len(ok), np.nan), np.full(len(ok), np.nan)
    if not ok.any():
        return z, ok, error
    median = np.nanmedian(samples, axis=1)
    spread = 1.4826 * np.nanmedian(np.abs(samples - median[:, None]), axis=1)
    spread = np.maximum(spread, MIN_ROBUST_SCALE * median)
    inlier = np.abs(samples - median[:, None]) <= ROBUST_SIGMAS * spread[:, None]  # NaN compares False
    # Weighted least-squares plane z = a + b x + c y in pixel offsets from the vertex: a is its depth.
    X = np.stack([np.ones_like(samples), du[None] - frac[:, :1], dv[None] - frac[:, 1:]], axis=-1)
    weight = inlier.astype(np.float64)
    normal = np.einsum("nk,nki,nkj->nij", weight, X, X) + 1e-9 * np.eye(3)
    rhs = np.einsum("nk,nki,nk->ni", weight, X, np.where(inlier, samples, 0.0))
    coefficients = np.linalg.solve(normal, rhs[..., None])[..., 0]
    plane = coefficients[:, 0]
    # Standard error of a at the vertex: residual variance (3 parameters) x the leverage (X^T W X)^-1[0, 0].
    count = inlier.sum(axis=1)
    residual = np.where(inlier, samples - np.einsum("nki,ni->nk", X, coefficients), 0.0)
    variance = np.maximum(np.square(residual).sum(axis=1) / np.maximum(count - 3, 1), (MIN_ROBUST_SCALE * median) ** 2)
    standard_error = np.sqrt(variance * np.linalg.inv(normal)[:, 0, 0])
    # A plane needs a spread of points; an extrapolation beyond the inliers' spread is not trusted, and the
    # median instead would be biased (a window cut by the silhouette of a curved part): no target.
    trusted = (count >= 6) & (np.abs(plane - median) <= ROBUST_SIGMAS * spread)
    z[ok] = np.where(trusted, plane, np.nan)
    error[ok] = np.where(trusted, standard_error, np.nan)
    ok[ok] = trusted
    return z, ok, error


def significance_gain(points: np.ndarray, offset: np.ndarray, error: np.ndarray, radius_m: float) -> np.ndarray:
    """(T,) factor in [0, 1] for the offsets of targets at ``points`` (T, 3) with standard errors ``error`` (step 4)."""
    n = len(points)
    pairs = cKDTree(points).query_pairs(radius_m, output_type="ndarray")
    near = sp.coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n)).tocsr()
    near = near + near.T + sp.identity(n, format="csr")
    energy = near @ np.square(offset)
    noise = near @ np.square(error)  # both sums over the same neighbours: their ratio is that of the means
    return np.clip(1.0 - SIGNIFICANCE * noise / np.maximum(energy, 1e-30), 0.0, 1.0)


def spread_displacement(mesh: trimesh.Trimesh, targets: np.ndarray, displacement: np.ndarray,
                        falloff_m: float) -> tuple[np.ndarray, int]:  # fmt: skip
    """(V, 3) displacement: ``displacement`` (T, 3) at vertices ``targets`` spread smoothly (step 5).

    Returns (field, number of vertices solved for); vertices farther than REGION_FALLOFFS
    falloffs from every target get exactly 0.
    """
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    n = len(vertices)
    field = np.zeros((n, 3))
    if len(targets) == 0:
        return field, 0
    distance, _ = cKDTree(vertices[targets]).query(vertices, distance_upper_bound=REGION_FALLOFFS * falloff_m)
    region = np.nonzero(np.isfinite(distance))[0]
    edge = float(np.mean(mesh.edges_unique_length))
    mu = (edge / (2.0 * falloff_m)) ** 2
    weight = np.zeros(n)
    weight[targets] = DATA_WEIGHT
    rhs = np.zeros((n, 3))
    rhs[targets] = DATA_WEIGHT * displacement
    averaging = trimesh.smoothing.laplacian_calculation(mesh, equal_weight=True).tocsr()[region][:, region]
    # Vertices outside the region are fixed at 0: dropping their columns is that boundary condition.
    system = (sp.diags(1.0 + mu + weight[region]) - averaging).tocsc()
    field[region] = spsolve(system, rhs[region]).reshape(-1, 3)
    return field, len(region)


def fuse_depth(mesh: trimesh.Trimesh, depth_m: np.ndarray, K: np.ndarray, mask: np.ndarray,
               cfg: MetricConfig) -> tuple[trimesh.Trimesh, dict]:  # fmt: skip
    """The mesh (camera optical frame, metres) with its visible side on the depth; see the module doc.

    Args:
        mesh: the metric mesh in the camera's optical frame (the camera centre is the origin).
        depth_m: float (H, W) z-depth in metres, NaN (or <= 0) = no reading (inputs/prepare.py).
        K: (3, 3) intrinsics of the depth image (registered to the image the mask belongs to).
        mask: bool (H, W) the object's pixels.
        cfg: the ``fuse_*`` fields of the metric configuration.

    Returns:
        (a new mesh with the same faces and visuals, diagnostics). The input mesh is not changed.
    """
    K = np.asarray(K, dtype=np.float64)
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    diagonal = float(np.linalg.norm(mesh.extents))
    z_image = usable_depth(np.asarray(depth_m), mask, cfg.fuse_edge_jump)
    edge = float(np.mean(mesh.edges_unique_length))
    visible = visible_vertices(mesh, 0.5 * edge) & (vertices[:, 2] > 0)
    lines_of_sight = vertices / np.linalg.norm(vertices, axis=1, keepdims=True)
    facing = -np.einsum("ij,ij->i", np.asarray(mesh.vertex_normals), lines_of_sight) > MIN_COSINE
    candidates = np.nonzero(visible & facing)[0]
    projected = vertices[candidates] @ K.T
    uv = projected[:, :2] / projected[:, 2:]
    z_vertex = vertices[candidates, 2]
    z_target, ok, error = local_depth(z_image, uv, z_vertex, cfg.fuse_window_px, cfg.fuse_max_toward * diagonal,
                                      cfg.fuse_max_away * diagonal)  # fmt: skip
    targets = candidates[ok]
    falloff = cfg.fuse_falloff * diagonal
    gain = np.zeros(len(targets))
    if len(targets):
        gain = significance_gain(vertices[targets], z_target[ok] - z_vertex[ok], error[ok],
                                 NOISE_RADIUS_FALLOFFS * falloff)  # fmt: skip
    # The point of the vertex's own camera ray at the measured depth: the silhouette stays put.
    wanted = vertices[targets] * (gain * (z_target[ok] / z_vertex[ok] - 1.0))[:, None]
    field, solved = spread_displacement(mesh, targets, wanted, falloff)
    out = mesh.copy()
    out.vertices = vertices + field
    moved = np.linalg.norm(field, axis=1)
    residual = np.abs(out.vertices[targets, 2] - z_target[ok])
    diagnostics = {
        "usable_depth_pixels": int(np.count_nonzero(np.isfinite(z_image))),
        "visible_vertices": int(np.count_nonzero(visible)),
        "target_vertices": len(targets),
        "solved_vertices": solved,
        "moved_vertices": int(np.count_nonzero(moved > 1e-9)),
        "target_shift_median_m": float(np.median(np.linalg.norm(wanted, axis=1))) if len(targets) else 0.0,
        "target_error_median_m": float(np.median(error[ok])) if len(targets) else 0.0,
        "significant_targets": int(np.count_nonzero(gain > 0.5)),
        "shift_max_m": float(moved.max()) if len(moved) else 0.0,
        "residual_median_m": float(np.median(residual)) if len(targets) else 0.0,
    }
    return out, diagnostics
