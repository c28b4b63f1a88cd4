"""Visual hull: silhouette carving from posed views, as a smooth signed field.

For every grid node and every view that sees it, the node is projected into the
view and the signed 2-D distance from its projection to the silhouette boundary is
read from a distance map (bilinearly, so the field varies continuously below one
pixel) and converted to world units with ``depth / focal``. The hull field is the
maximum of these over the views: negative inside every silhouette, zero on the
carved surface, positive outside. Marching cubes at level 0 then gives a surface
with sub-voxel accuracy instead of a blocky occupancy.

Decisions (documented because they change results):

* A view that does not see a node (it projects off the image or lies behind the
  camera) abstains: "outside an image" means unknown, not carved. A node seen by
  fewer than ``HullConfig.min_seen_views`` views (default 1: by no view) is carved.
* ``HullConfig.min_view_fraction`` < 1 keeps nodes inside the silhouettes of at
  least that fraction of the views that see them (robust to inconsistent generated
  views): the field is then an order statistic instead of the maximum.
* The outermost layer of nodes is forced outside, so the surface is always closed:
  an object cut by a given bounding box is capped at the box.
* Bounding box: ``ViewSet.bbox`` when given, used as is. Otherwise it is derived
  from the cameras: each view's silhouette rectangle swept over the object's depth
  range (``ViewSet.near_far``, else 0.05x-2x the camera's distance to the point
  closest to all optical axes) bounds the object; the intersection of those boxes
  is carved on a coarse grid, then on a finer one over the result; the final box is
  the carved extent plus about two nodes of that second grid. Everything stays in the views' world frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..config import HullConfig
from ..geometry import cameras as cam
from ..geometry.sampling import sample_bilinear
from ..mesh.extract import SdfGrid, grid_axes
from ..types import InputError, ViewSet

_SLAB_NODES = 1 << 18
"""Nodes evaluated at once (x-slabs): bounds memory to ~views x 1 MB with min_view_fraction < 1."""


class HullError(ValueError):
    """The views do not define a hull (empty silhouettes, disjoint cones, bad poses)."""


@dataclass(frozen=True)
class Silhouettes:
    """Per-view signed distance maps and projections, ready for carving.

    distance_px: (N, H, W) float32 signed distance of each pixel centre to the
    silhouette boundary in pixels (negative inside the object). projection: (N, 3, 4)
    float64 ``K @ w2c[:3]``, whose third row gives the camera z-depth. focal: (N,)
    pixels per unit of lateral distance at depth 1 (geometric mean of fx, fy).
    """

    distance_px: np.ndarray
    projection: np.ndarray
    focal: np.ndarray
    masks: np.ndarray
    c2w: np.ndarray
    K: np.ndarray

    @property
    def width(self) -> int:
        return self.distance_px.shape[2]

    @property
    def height(self) -> int:
        return self.distance_px.shape[1]


def signed_distance_px(mask: np.ndarray) -> np.ndarray:
    """Signed distance (H, W) float32 from pixel centres to the silhouette edge, in pixels.

    The edge is taken half-way between an object pixel and a background neighbour,
    so adjacent inside/outside pixels read -0.5 / +0.5 and the zero crossing of the
    bilinear interpolation falls on the pixel border. Negative inside.
    """
    mask = np.asarray(mask, dtype=bool)
    inside = mask.astype(np.uint8)
    # distanceTransform: distance of each non-zero pixel to the nearest zero pixel.
    d_in = cv2.distanceTransform(inside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    d_out = cv2.distanceTransform(1 - inside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    return np.where(mask, 0.5 - d_in, d_out - 0.5).astype(np.float32)


def prepare_silhouettes(views: ViewSet) -> Silhouettes:
    """Distance maps and projection matrices of ``views`` (masks or non-white pixels)."""
    masks = np.asarray(views.foreground(), dtype=bool)
    for i, m in enumerate(masks):
        if not m.any():
            raise HullError(f"view {i} ({views.names[i]}): empty silhouette, the object is not visible")
    K = np.asarray(views.K, dtype=np.float64)
    c2w = np.asarray(views.c2w, dtype=np.float64)
    if not (np.all(np.isfinite(K)) and np.all(np.isfinite(c2w))):
        raise InputError("views: K and c2w must be finite")
    w2c = cam.invert_rigid(c2w)
    projection = K @ w2c[:, :3, :]
    focal = np.sqrt(K[:, 0, 0] * K[:, 1, 1])
    distance = np.stack([signed_distance_px(m) for m in masks])
    return Silhouettes(distance, projection, focal, masks, c2w, K)


def hull_field(axes, sil: Silhouettes, config: HullConfig) -> np.ndarray:
    """The carving field (nx, ny, nz) float32 at the nodes of the grid ``axes`` (x, y, z 1-D).

    Negative inside the hull, approximately the world distance to the carved surface
    (exactly zero on it). Nodes seen by fewer than ``min_seen_views`` views get
    +one node spacing.
    """
    x, y, z = (np.asarray(a, dtype=np.float64) for a in axes)
    spacing = max(float(np.max(np.diff(a))) if len(a) > 1 else 0.0 for a in (x, y, z))
    out = np.empty((len(x), len(y), len(z)), dtype=np.float32)
    slab = max(1, _SLAB_NODES // (len(y) * len(z)))
    for start in range(0, len(x), slab):
        stop = min(len(x), start + slab)
        out[start:stop] = _field_slab(x[start:stop], y, z, sil, config, spacing)
    return out


def _field_slab(x, y, z, sil: Silhouettes, config: HullConfig, unseen_value: float) -> np.ndarray:
    shape = (len(x), len(y), len(z))
    n_views = len(sil.projection)
    order_statistic = config.min_view_fraction < 1.0
    per_view = np.full((n_views,) + shape, np.inf, dtype=np.float32) if order_statistic else None
    field = np.full(shape, -np.inf, dtype=np.float32)
    seen = np.zeros(shape, dtype=np.int32)
    for i in range(n_views):
        P = sil.projection[i].astype(np.float32)
        # The grid is separable: each projected coordinate is a sum of three 1-D
        # terms, which is ~10x cheaper than a (M, 3) @ (3, 4) product with BLAS.
        rows = [
            (P[r, 0] * x.astype(np.float32))[:, None, None]
            + (P[r, 1] * y.astype(np.float32))[None, :, None]
            + (P[r, 2] * z.astype(np.float32) + P[r, 3])[None, None, :]
            for r in range(3)
        ]
        depth = rows[2]
        with np.errstate(divide="ignore", invalid="ignore"):
            u = rows[0] / depth
            v = rows[1] / depth
        visible = (depth > 1e-6) & (u >= -0.5) & (u <= sil.width - 0.5) & (v >= -0.5) & (v <= sil.height - 0.5)
        d = sample_bilinear(sil.distance_px[i], u, v) * (depth / np.float32(sil.focal[i]))
        seen += visible
        if order_statistic:
            per_view[i] = np.where(visible, d, np.inf)
        else:
            np.maximum(field, np.where(visible, d, -np.inf), out=field)
    if order_statistic:
        # Inside in >= fraction of the seeing views <=> the k-th smallest value <= 0.
        k = np.clip(required_views(config.min_view_fraction, seen), 1, n_views) - 1
        per_view.sort(axis=0)
        field = np.take_along_axis(per_view, k[None], axis=0)[0]
    carved = seen < max(1, config.min_seen_views)
    field[carved] = np.float32(unseen_value)
    return field


def required_views(fraction: float, n_seen):
    """Views that must agree: ceil(fraction * n_seen), robust to 0.9 * 30 = 27.000000000000004."""
    return np.ceil(np.asarray(fraction * np.asarray(n_seen), dtype=np.float64) - 1e-9).astype(np.int64)


def reconstruct_hull(views: ViewSet, config: HullConfig | None = None) -> SdfGrid:
    """Visual hull of ``views`` as a signed field on a grid (negative inside), in the views' world frame."""
    config = config or HullConfig()
    _check_config(config)
    sil = prepare_silhouettes(views)
    if views.bbox is not None:
        bbox = np.asarray(views.bbox, dtype=np.float64)
        if bbox.shape != (2, 3) or not np.all(bbox[1] > bbox[0]):
            raise InputError(f"views: bbox must be [[xmin, ymin, zmin], [xmax, ymax, zmax]] with max > min, got {bbox}")
    else:
        bbox = derive_bbox(sil, views.near_far, config)
    axes = grid_axes(bbox, config.resolution)
    values = hull_field(axes, sil, config)
    values = close_boundary(values, float(max(np.max(np.diff(a)) for a in axes)))
    return SdfGrid(values=values, bbox=bbox)


def close_boundary(values: np.ndarray, spacing: float) -> np.ndarray:
    """Force the outermost layer of nodes outside (>= half a spacing) so the surface is closed."""
    out = values.copy()
    for axis in range(3):
        for index in (0, -1):
            sl = [slice(None)] * 3
            sl[axis] = index
            out[tuple(sl)] = np.maximum(out[tuple(sl)], np.float32(0.5 * spacing))
    return out


def _check_config(config: HullConfig) -> None:
    if config.resolution < 8:
        raise InputError(f"hull.resolution must be >= 8, got {config.resolution}")
    if config.coarse_resolution < 8:
        raise InputError(f"hull.coarse_resolution must be >= 8, got {config.coarse_resolution}")
    if not 0.0 < config.min_view_fraction <= 1.0:
        raise InputError(f"hull.min_view_fraction must be in (0, 1], got {config.min_view_fraction}")
    if config.min_seen_views < 1:
        raise InputError(f"hull.min_seen_views must be >= 1, got {config.min_seen_views}")


# ----------------------------------------------------------------- bounding box


def derive_bbox(sil: Silhouettes, near_far, config: HullConfig) -> np.ndarray:
    """World AABB (2, 3) of the object from the cameras and silhouettes (see module doc).

    Two coarse carvings: ``coarse_resolution`` nodes per side over the frusta box,
    then twice as many over the first result, so the final margin is about two
    nodes of the second pass rather than of the first.
    """
    box = frustum_box(sil, near_far, config.min_view_fraction)
    for resolution in (config.coarse_resolution, 2 * config.coarse_resolution):
        box = _carved_extent(box, resolution, sil, config)
    return box


def _carved_extent(box: np.ndarray, resolution: int, sil: Silhouettes, config: HullConfig) -> np.ndarray:
    axes = grid_axes(box, resolution)
    coarse = hull_field(axes, sil, config)
    spacing = np.array([np.max(np.diff(a)) for a in axes])
    # A node within one cell diagonal of the carved surface may have hull inside its
    # cell (the field is ~1-Lipschitz), so thin parts between nodes are not lost.
    occupied = coarse <= np.linalg.norm(spacing)
    if not occupied.any():
        raise HullError("the silhouette cones of the views do not intersect: inconsistent poses or masks")
    idx = np.argwhere(occupied)
    lo = np.array([axes[d][idx[:, d].min()] for d in range(3)]) - spacing
    hi = np.array([axes[d][idx[:, d].max()] for d in range(3)]) + spacing
    return np.stack([np.maximum(lo, box[0]), np.minimum(hi, box[1])])


def frustum_box(sil: Silhouettes, near_far=None, min_view_fraction: float = 1.0) -> np.ndarray:
    """Intersection of the AABBs of every view's silhouette rectangle swept over the depth range.

    With ``min_view_fraction`` < 1 the views allowed to dissent in the carving may
    dissent here too: each bound is the order statistic that ignores that many views.
    """
    if near_far is not None:
        near = np.full(len(sil.c2w), float(near_far[0]))
        far = np.full(len(sil.c2w), float(near_far[1]))
        if not 0.0 <= near[0] < far[0]:
            raise InputError(f"views: near_far must satisfy 0 <= near < far, got {near_far}")
    else:
        centre = closest_point_to_axes(sil.c2w)
        distance = np.linalg.norm(sil.c2w[:, :3, 3] - centre, axis=1)
        near, far = 0.05 * distance, 2.0 * distance
    lows, highs = [], []
    for i, m in enumerate(sil.masks):
        vs, us = np.nonzero(m)
        corners = np.array(
            [[us.min() - 0.5, vs.min() - 0.5], [us.max() + 0.5, vs.min() - 0.5],
             [us.min() - 0.5, vs.max() + 0.5], [us.max() + 0.5, vs.max() + 0.5]]
        )  # fmt: skip
        uv = np.concatenate([corners, corners])
        depth = np.repeat([near[i], far[i]], 4)
        pts = cam.unproject(uv, depth, sil.K[i], sil.c2w[i])
        lows.append(pts.min(axis=0))
        highs.append(pts.max(axis=0))
    ignored = len(lows) - int(required_views(min_view_fraction, len(lows)))
    lo = np.sort(lows, axis=0)[::-1][ignored]
    hi = np.sort(highs, axis=0)[ignored]
    if not np.all(hi > lo):
        raise HullError("the views' frusta do not overlap: inconsistent poses, or give views.bbox")
    return np.stack([lo, hi])


def closest_point_to_axes(c2w: np.ndarray) -> np.ndarray:
    """Least-squares point (3,) nearest to every camera's optical axis (where the cameras look)."""
    c2w = np.asarray(c2w, dtype=np.float64)
    origins = c2w[:, :3, 3]
    forward = c2w[:, :3, 2] / np.linalg.norm(c2w[:, :3, 2], axis=1, keepdims=True)
    projectors = np.eye(3) - forward[:, :, None] * forward[:, None, :]
    A = projectors.sum(axis=0)
    b = np.einsum("nij,nj->i", projectors, origins)
    if np.linalg.cond(A) > 1e6:
        raise HullError(
            "cannot derive a bounding box: the optical axes are (nearly) parallel; give views.bbox or near_far"
        )
    return np.linalg.solve(A, b)
