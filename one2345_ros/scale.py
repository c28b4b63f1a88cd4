"""The scale stage: canonical frame -> the input camera's optical frame, in metres.

The reconstruction lives in the canonical frame: the Zero123 world in which a
virtual look-at camera (K = view_intrinsics(), radius 1.2, polar = the elevation
used, azimuth 0) took the 256x256 crop. The real camera took the same crop with
``K_crop = crop.apply_to_K(K)``. Mapping one to the other (all pure functions):

* Rotation: the virtual camera is the real camera turned to look at the object.
  Its optical axis is the real ray ``d`` through the crop's principal point
  (pixel 128, 128: where the virtual camera sees the object's centre) and its
  image x axis stays as close as possible to the real one (the crop is
  axis-aligned), which fixes ``R_align`` (virtual camera axes -> real camera axes).
* Scale and translation: the object's centre lies at distance ``D`` along ``d``.
  Its image size matches the crop when the canonical -> metre scale is
  ``s = D * f_virtual / (1.2 * f_crop)``. Both grow with ``D``, so the whole
  object scales about the camera centre: projections do not depend on ``D`` and
  rendered depth is proportional to it. One number, ``D``, remains:

  - depth: start from D = the median masked depth, then fit the similarity
    (scale, rotation, translation) against the back-projected depth (trimmed ICP
    on the surface the camera sees, see :func:`fit_to_depth`). The fixed-radius
    virtual camera sees the object with much stronger perspective than a real
    camera, so image-size matching alone is a few per cent off in scale; depth
    measures it directly;
  - ``object_distance_m``: D directly;
  - ``object_size_m``: s = size / the mesh's largest canonical extent.

  ``canonical_to_frame = [s R_align R_w2c | D d + s R_align (t_w2c - c)]`` with
  ``c = (0, 0, 1.2)`` the object centre in the virtual camera.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import MetricConfig
from .geometry import cameras as cam
from .geometry.raycast import RayCaster
from .inputs.prepare import MIN_DEPTH_PIXELS
from .types import InputError

TRIM_FRACTION = 0.2
"""Fraction of the worst depth residuals dropped in the refinement (occlusion, holes)."""

ICP_POINTS = 3000
"""Depth points used in the scale/translation fit (a random subset of the mask)."""
ICP_ITERATIONS = 30



@dataclass
class MetricFit:
    canonical_to_camera: np.ndarray
    """4x4 similarity, canonical -> real camera optical frame (metres)."""
    distance_m: float
    scale: float
    """Metres per canonical unit."""
    source: str
    """'depth', 'object_distance' or 'object_size'."""
    depth_residual_m: float | None = None
    """Median absolute residual of the depth fit."""
    depth_pixels: int = 0


def align_rotation(K_real: np.ndarray, crop, principal_uv=(cam.PRINCIPAL_POINT_256, cam.PRINCIPAL_POINT_256)):
    """R_align (3x3, virtual camera axes -> real camera axes) and the unit ray ``d`` (3,)."""
    uv = crop.to_image(np.asarray(principal_uv, dtype=np.float64))
    d = np.linalg.inv(K_real) @ np.array([uv[0], uv[1], 1.0])
    d /= np.linalg.norm(d)
    x = np.array([1.0, 0.0, 0.0]) - d[0] * d
    x /= np.linalg.norm(x)
    y = np.cross(d, x)
    return np.stack([x, y, d], axis=1), d


def canonical_to_camera(polar_deg: float, K_real, crop, distance_m: float) -> tuple[np.ndarray, float]:
    """The 4x4 similarity canonical -> real optical frame for an object centre at ``distance_m``."""
    R_align, d = align_rotation(K_real, crop)
    w2c_v = cam.invert_rigid(cam.spherical_to_c2w(polar_deg, 0.0))
    f_crop = float(np.sqrt(abs(np.linalg.det(crop.apply_to_K(K_real)[:2, :2]))))
    f_virtual = cam.view_intrinsics(crop.out_size)[0, 0]
    s = distance_m * f_virtual / (cam.ZERO123_RADIUS * f_crop)
    c = np.array([0.0, 0.0, cam.ZERO123_RADIUS])
    T = np.eye(4)
    T[:3, :3] = s * R_align @ w2c_v[:3, :3]
    T[:3, 3] = distance_m * d + s * R_align @ (w2c_v[:3, 3] - c)
    return T, s


def similarity_fit(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """Least-squares similarity dst ~ s R src + t (Umeyama, via scikit-image); R proper."""
    from skimage.transform import SimilarityTransform

    if hasattr(SimilarityTransform, "from_estimate"):  # scikit-image >= 0.26
        tform = SimilarityTransform.from_estimate(src, dst)
        ok = bool(tform)
    else:  # the older API, still what robots with ROS's numpy 1.x resolve to
        tform = SimilarityTransform(dimensionality=3)
        ok = tform.estimate(src, dst)
    if not ok:
        raise InputError("depth: the depth points do not determine a similarity (degenerate geometry)")
    M = tform.params
    scale = float(np.cbrt(np.linalg.det(M[:3, :3])))
    return M[:3, :3] / scale, scale, M[:3, 3].copy()


def fit_to_depth(mesh, T_init: np.ndarray, K_real, depth: np.ndarray, mask: np.ndarray, seed: int = 0):
    """Refine the similarity ``T_init`` (canonical -> camera) against the depth.

    First a scale about the camera centre (the silhouette stays put) matches the
    median depth; then a trimmed nearest-point ICP fits the least-squares
    similarity ``min_{s, R, t} sum |s R q_i + t - p_i|^2`` (Umeyama) between the
    depth points p_i and their closest points q_i on the part of the mesh the
    camera sees at the current pose (recomputed each iteration, so front-surface
    points cannot slide onto hidden sides). The rotation is refined too: a visible
    surface couples scale with rotation strongly (a 1 deg tilt can pass for a 10 %
    scale change), so the elevation's rotation is only the starting point.
    Trimming drops the worst :data:`TRIM_FRACTION` (occlusions, depth holes, the
    reconstruction's own errors such as a hull's filled concavities).

    Returns (T, median absolute residual in metres, pixels with depth).
    """
    valid = mask & np.isfinite(depth) & (depth > 0)
    n = int(np.count_nonzero(valid))
    if n < MIN_DEPTH_PIXELS:
        raise InputError(f"depth: only {n} object pixels have a depth reading (need {MIN_DEPTH_PIXELS})")
    v, u = np.nonzero(valid)
    pick = np.random.default_rng(seed).choice(n, size=min(n, ICP_POINTS), replace=False)
    uv = np.stack([u[pick], v[pick]], axis=1).astype(np.float64)
    points = cam.unproject(uv, depth[v[pick], u[pick]].astype(np.float64), K_real, np.eye(4))
    rays = points / np.linalg.norm(points, axis=1, keepdims=True)

    intersector = RayCaster(mesh)
    s = float(np.cbrt(np.linalg.det(T_init[:3, :3])))
    R = T_init[:3, :3] / s
    t = T_init[:3, 3].copy()
    # Stage 1, one degree of freedom: scale about the camera centre (keeps the
    # silhouette in place) so that the rendered depth matches the measured one.
    origin = -(R.T @ t) / s
    hits = intersector.intersect(np.broadcast_to(origin, rays.shape), rays @ R)
    if len(hits.ray) < MIN_DEPTH_PIXELS:
        raise InputError("depth: the reconstruction does not overlap the masked depth; check mask and camera_info")
    z_model = (s * hits.points @ R.T + t)[:, 2]
    lam = float(np.median(points[hits.ray, 2] / z_model))
    s, t = s * lam, t * lam
    # Stage 2: trimmed nearest-point ICP for the full similarity against the
    # surface the camera sees at the current pose.
    residual = np.zeros(0)
    for _ in range(ICP_ITERATIONS):
        origin = -(R.T @ t) / s
        visible_faces = np.unique(intersector.intersect(np.broadcast_to(origin, rays.shape), rays @ R).face)
        visible = mesh.submesh([visible_faces], append=True)
        canonical_pts = (points - t) @ R / s
        closest, dist, _ = visible.nearest.on_surface(canonical_pts)
        residual = dist * s
        keep = residual <= np.quantile(residual, 1.0 - TRIM_FRACTION)
        R_new, s_new, t_new = similarity_fit(closest[keep], points[keep])
        step = abs(s_new - s) / s + np.linalg.norm(t_new - t) / np.linalg.norm(t) + np.abs(R_new - R).max()
        R, s, t = R_new, s_new, t_new
        if step < 1e-5:
            break
    T = np.eye(4)
    T[:3, :3] = s * R
    T[:3, 3] = t
    return T, float(np.median(residual)), n


def fit_metric(mesh, polar_deg: float, K_real, crop, mask, depth, cfg: MetricConfig) -> MetricFit | None:
    """Scale and place the canonical ``mesh`` in the real camera; None without a scale source."""
    K_real = np.asarray(K_real, dtype=np.float64)
    if depth is not None:
        D0 = _median_masked(depth, mask)
        T0, _ = canonical_to_camera(polar_deg, K_real, crop, D0)
        T, residual, n = fit_to_depth(mesh, T0, K_real, depth, mask)
        s = float(np.cbrt(np.linalg.det(T[:3, :3])))
        return MetricFit(T, float(np.linalg.norm(T[:3, 3])), s, "depth", residual, n)
    if cfg.object_distance_m > 0:
        T, s = canonical_to_camera(polar_deg, K_real, crop, cfg.object_distance_m)
        return MetricFit(T, cfg.object_distance_m, s, "object_distance")
    if cfg.object_size_m > 0:
        extent = float(np.max(mesh.extents))
        _, s_unit = canonical_to_camera(polar_deg, K_real, crop, 1.0)
        D = cfg.object_size_m / extent / s_unit
        T, s = canonical_to_camera(polar_deg, K_real, crop, D)
        return MetricFit(T, D, s, "object_size")
    return None


def _median_masked(depth: np.ndarray, mask: np.ndarray) -> float:
    """Initial object distance: the median depth over the mask (the front surface)."""
    values = depth[mask & np.isfinite(depth) & (depth > 0)]
    if len(values) < MIN_DEPTH_PIXELS:
        raise InputError(f"depth: only {len(values)} object pixels have a depth reading (need {MIN_DEPTH_PIXELS})")
    return float(np.median(values))
