"""Canonical frame -> the input camera's optical frame, in metres.

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

  - depth: render the mesh with D = 1 through the real camera and fit
    ``z_measured = D * z_rendered`` robustly over the mask (median of ratios,
    then a trimmed refinement);
  - ``object_distance_m``: D directly;
  - ``object_size_m``: s = size / the mesh's largest canonical extent.

  ``canonical_to_frame = [s R_align R_w2c | D d + s R_align (t_w2c - c)]`` with
  ``c = (0, 0, 1.2)`` the object centre in the virtual camera.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import cameras as cam
from .config import MetricConfig
from .io import InputError

TRIM_FRACTION = 0.2
"""Fraction of the worst depth residuals dropped in the refinement (occlusion, holes)."""

MIN_DEPTH_PIXELS = 50
"""Fewer valid overlapping depth pixels than this: depth cannot give the scale."""


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


def fit_distance_to_depth(mesh, T_unit: np.ndarray, K_real, depth: np.ndarray, mask: np.ndarray):
    """Fit D in ``depth = D * rendered_depth(T_unit)`` over the object mask.

    Returns (D, median absolute residual in metres, pixels used). Raises InputError
    when too few pixels carry both a measurement and a rendered surface.
    """
    from .render import Renderer

    unit = mesh.copy()
    unit.apply_transform(T_unit)
    h, w = depth.shape
    rendered = Renderer(unit, shading=None).render(K_real, np.eye(4), w, h).depth
    valid = mask & (rendered > 0) & np.isfinite(depth) & (depth > 0)
    n = int(np.count_nonzero(valid))
    if n < MIN_DEPTH_PIXELS:
        raise InputError(f"depth: only {n} object pixels have a depth reading (need {MIN_DEPTH_PIXELS})")
    z_meas = depth[valid].astype(np.float64)
    z_unit = rendered[valid].astype(np.float64)
    D = float(np.median(z_meas / z_unit))
    # Trimmed least squares of z_meas = D z_unit: drops occlusions and the
    # reconstruction's worst surface errors (hull concavities).
    residual = np.abs(z_meas - D * z_unit)
    keep = residual <= np.quantile(residual, 1.0 - TRIM_FRACTION)
    D = float(z_meas[keep] @ z_unit[keep] / (z_unit[keep] @ z_unit[keep]))
    return D, float(np.median(np.abs(z_meas - D * z_unit))), n


def fit_metric(mesh, polar_deg: float, K_real, crop, mask, depth, cfg: MetricConfig) -> MetricFit | None:
    """Scale and place the canonical ``mesh`` in the real camera; None without a scale source."""
    K_real = np.asarray(K_real, dtype=np.float64)
    if depth is not None:
        T_unit, _ = canonical_to_camera(polar_deg, K_real, crop, 1.0)
        D, residual, n = fit_distance_to_depth(mesh, T_unit, K_real, depth, mask)
        T, s = canonical_to_camera(polar_deg, K_real, crop, D)
        return MetricFit(T, D, s, "depth", residual, n)
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


def depth_to_metres(depth: np.ndarray, encoding: str, depth_scale: float = 0.0) -> np.ndarray:
    """Depth image -> float32 metres (0 = no reading).

    16UC1 is millimetres and 32FC1 metres unless ``depth_scale`` (the divisor) says otherwise.
    """
    if encoding in ("16UC1", "mono16"):
        if depth.dtype != np.uint16:
            raise InputError(f"depth encoding {encoding} needs uint16 data, got {depth.dtype}")
        divisor = depth_scale or 1000.0
    elif encoding == "32FC1":
        if depth.dtype != np.float32:
            raise InputError(f"depth encoding 32FC1 needs float32 data, got {depth.dtype}")
        divisor = depth_scale or 1.0
    else:
        raise InputError(f"depth encoding {encoding!r} not supported: use 16UC1 (mm) or 32FC1 (m)")
    out = depth.astype(np.float32) / np.float32(divisor)
    out[~np.isfinite(out)] = 0.0
    return out
