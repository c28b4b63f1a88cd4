"""Geometry of the elevation estimator: hypothesis cameras, three-view
observations, batched triangulation and reprojection, and the final refinement.

Conventions: cameras.py (OpenCV c2w, Zero123 sphere of radius 1.2, the four views
at :data:`cameras.ELEVATION_VIEW_OFFSETS` from the input, which sits at azimuth 0;
only relative poses matter). Points are kept in normalised image coordinates
K^-1 (u, v, 1), so errors in pixels are ``focal * distance`` (square pixels, no skew).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..geometry import cameras as cam

CAP_ERROR_PX = 50.0
"""Reprojection error assigned to points triangulated behind a camera."""


@dataclass
class Observations:
    """Three-view observations for leave-one-out reprojection.

    views: int [M, 3] (a, b, t): triangulate from a and b, reproject into t.
    xy: float64 [M, 3, 2] normalised image coordinates K^-1 (u, v, 1) of the point
    in a, b, t. weight: float64 [M].
    """

    views: np.ndarray
    xy: np.ndarray
    weight: np.ndarray

    def __len__(self) -> int:
        return len(self.weight)


def hypothesis_c2w(polar_deg) -> np.ndarray:
    """OpenCV c2w [T, 4, 4, 4] of the four views for candidate input polars [T]
    (input at azimuth 0; only relative poses matter)."""
    polar = np.atleast_1d(np.asarray(polar_deg, dtype=np.float64))
    offsets = np.asarray(cam.ELEVATION_VIEW_OFFSETS, dtype=np.float64)
    return cam.spherical_to_c2w(polar[:, None] + offsets[None, :, 0], offsets[None, :, 1])


def build_observations(pairs, K: np.ndarray, radius_px: float) -> Observations:
    """Join pairwise matches into (a, b, t) observations, once for all candidates."""
    from scipy.spatial import cKDTree

    K_inv = np.linalg.inv(K)
    views, xy, weight = [], [], []
    for (a, b), m_ab in pairs.items():
        pa, pb = m_ab.pts_i, m_ab.pts_j
        if len(pa) == 0:
            continue
        for t in range(4):
            if t in (a, b):
                continue
            m_at = pairs[(min(a, t), max(a, t))]
            qa, qt = m_at.oriented(a)
            if len(qa) == 0:
                continue
            dist, k = cKDTree(qa).query(pa, distance_upper_bound=radius_px)
            ok = np.isfinite(dist)
            if not ok.any():
                continue
            k = k[ok]
            pts = np.stack([pa[ok], pb[ok], qt[k]], axis=1)
            views.append(np.broadcast_to([a, b, t], (len(k), 3)))
            xy.append(pts @ K_inv[:2, :2].T + K_inv[:2, 2])
            weight.append(m_ab.weight[ok] * m_at.weight[k])
    if not views:
        return Observations(np.zeros((0, 3), int), np.zeros((0, 3, 2)), np.zeros(0))
    return Observations(np.concatenate(views), np.concatenate(xy), np.concatenate(weight))


def reprojection_residuals(obs: Observations, c2w: np.ndarray, focal_px: float) -> tuple[np.ndarray, np.ndarray]:
    """Reprojection residuals in pixels [T, M, 2] for camera sets c2w [T, 4, 4, 4].

    DLT triangulation from views a and b (the inhomogeneous least-squares form,
    solved for all camera sets and observations at once), projected into view t.
    Also returns bad [T, M]: the point lies behind one of the three cameras or the
    triangulation is singular.
    """
    w2c = cam.invert_rigid(c2w)[..., :3, :]  # [T, 4, 3, 4]
    P = [w2c[:, obs.views[:, k]] for k in range(3)]  # each [T, M, 3, 4]
    x = obs.xy[None]  # [1, M, 3, 2]
    rows = [x[..., k, c, None] * P[k][..., 2, :] - P[k][..., c, :] for k in (0, 1) for c in (0, 1)]
    A = np.stack(rows, axis=-2)  # [T, M, 4, 4]
    A3, a4 = A[..., :3], A[..., 3:]
    X = _solve_sym3(np.swapaxes(A3, -1, -2) @ A3, -(np.swapaxes(A3, -1, -2) @ a4)[..., 0])  # [T, M, 3]
    X1 = np.concatenate([X, np.ones((*X.shape[:-1], 1))], axis=-1)[..., None]
    depth = np.stack([(P[k][..., 2:3, :] @ X1)[..., 0, 0] for k in range(3)], axis=-1)
    proj = (P[2] @ X1)[..., 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        residual = focal_px * (proj[..., :2] / proj[..., 2:3] - x[..., 2, :])
    bad = (depth <= 1e-3).any(axis=-1) | ~np.isfinite(residual).all(axis=-1)
    return residual, bad


def reprojection_errors(obs: Observations, polar_deg, focal_px: float) -> np.ndarray:
    """Reprojection errors in pixels [T, M] for candidate input polars [T] (the
    four views at their nominal offsets); :data:`CAP_ERROR_PX` for bad points."""
    residual, bad = reprojection_residuals(obs, hypothesis_c2w(polar_deg), focal_px)
    with np.errstate(invalid="ignore"):
        err = np.linalg.norm(residual, axis=-1)
    return np.where(bad, CAP_ERROR_PX, np.minimum(err, CAP_ERROR_PX))


def _solve_sym3(N: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Solve symmetric 3x3 systems N x = b [..., 3, 3], [..., 3] by the adjugate
    (10x faster than a batched np.linalg.solve at this size; singular -> inf/nan)."""
    a, bb, c = N[..., 0, 0], N[..., 0, 1], N[..., 0, 2]
    d, e, f = N[..., 1, 1], N[..., 1, 2], N[..., 2, 2]
    c00, c01, c02 = d * f - e * e, c * e - bb * f, bb * e - c * d
    c11, c12, c22 = a * f - c * c, bb * c - a * e, a * d - bb * bb
    det = a * c00 + bb * c01 + c * c02
    x0 = c00 * b[..., 0] + c01 * b[..., 1] + c02 * b[..., 2]
    x1 = c01 * b[..., 0] + c11 * b[..., 1] + c12 * b[..., 2]
    x2 = c02 * b[..., 0] + c12 * b[..., 1] + c22 * b[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.stack([x0, x1, x2], axis=-1) / det[..., None]


def robust_cost(err_px: np.ndarray, weight: np.ndarray, scale_px: float) -> np.ndarray:
    """Match-quality weighted mean Cauchy loss log(1 + (e / s)^2) per candidate [T]."""
    rho = np.log1p((err_px / scale_px) ** 2)
    return rho @ weight / weight.sum()


def parabola_vertex(x: np.ndarray, y: np.ndarray, i: int) -> float:
    """Sub-step minimum of samples y(x) (uniform x) around interior index ``i``."""
    if i <= 0 or i >= len(x) - 1:
        return float(x[i])
    y0, y1, y2 = y[i - 1], y[i], y[i + 1]
    denom = y0 - 2.0 * y1 + y2
    if denom <= 0:
        return float(x[i])
    step = x[i + 1] - x[i]
    return float(x[i] + np.clip(0.5 * (y0 - y2) / denom, -0.5, 0.5) * step)


POLAR_LIMITS_DEG = (15.0, 165.0)
"""Hard limits of the default mode's fine search (beyond the original's 20..149): the
+-10 deg views stay 5 deg off the poles."""


def coarse_polars(cfg) -> np.ndarray:
    """The original's coarse candidates ``np.arange(polar_min, polar_max, coarse_step)``: 30..140."""
    step = float(cfg.coarse_step_deg)
    n = int(np.ceil((cfg.polar_max_deg - cfg.polar_min_deg) / step - 1e-9))
    return cfg.polar_min_deg + step * np.arange(max(n, 1))


def search_polar(cost_fn, cfg):
    """Coarse-to-fine search of ``cost_fn(polars [T]) -> costs [T]`` (lower is better).

    Coarse: :func:`coarse_polars` (30..140 in steps of 10). Fine: the best coarse
    polar +- ``fine_radius_deg`` in ``fine_step_deg`` steps, unclipped like the
    original's (so polar 20..150 is reachable), extended step by step while the
    minimum sits on its end (within :data:`POLAR_LIMITS_DEG`), so that the parabola
    through the minimum and its neighbours gives a sub-step answer.

    Returns (polar, curve polars, curve costs, coarse costs); the curve holds every
    candidate evaluated, sorted by polar.
    """
    coarse = coarse_polars(cfg)
    coarse_cost = np.asarray(cost_fn(coarse), dtype=np.float64)
    best = float(coarse[int(np.argmin(coarse_cost))])
    step, radius = float(cfg.fine_step_deg), float(cfg.fine_radius_deg)
    lo_lim, hi_lim = POLAR_LIMITS_DEG
    fine = best + step * np.arange(-round(radius / step), round(radius / step) + 1)
    fine = fine[(fine >= lo_lim - 1e-9) & (fine <= hi_lim + 1e-9)]
    fine_cost = np.asarray(cost_fn(fine), dtype=np.float64)
    while True:
        i = int(np.argmin(fine_cost))
        if i == 0 and fine[0] - step >= lo_lim - 1e-9:
            fine, fine_cost = np.r_[fine[0] - step, fine], np.r_[cost_fn(np.array([fine[0] - step])), fine_cost]
        elif i == len(fine) - 1 and fine[-1] + step <= hi_lim + 1e-9:
            fine, fine_cost = np.r_[fine, fine[-1] + step], np.r_[fine_cost, cost_fn(np.array([fine[-1] + step]))]
        else:
            break
    polar = parabola_vertex(fine, fine_cost, int(np.argmin(fine_cost)))
    polars = np.concatenate([coarse, fine])
    costs = np.concatenate([coarse_cost, fine_cost])
    polars, first = np.unique(np.round(polars, 9), return_index=True)
    return polar, polars, costs[first], coarse_cost


def refine_with_view_poses(
    obs: Observations,
    polar0_deg: float,
    focal_px: float,
    sigma_deg: float,
    scale_px: float,
    bounds_deg: tuple[float, float],
    contours=None,
    silhouette_weight: float = 0.0,
) -> tuple[float, np.ndarray]:
    """Joint refinement of the input polar and a small pose error of every view.

    Generated views are not rendered at exactly their nominal poses (Zero123 is
    imperfect; the benchmark jitters them by +-2 deg). With the poses fixed, a
    view's azimuth error changes a baseline and drags the polar estimate with it.
    Here each view gets (d_polar, d_azimuth) corrections with a zero-mean Gaussian
    prior of ``sigma_deg``, and the polar is re-estimated with them by robust
    least squares (Cauchy, ``scale_px``), starting from the grid search's answer.
    A common polar shift of all views is the polar itself; the prior keeps the
    corrections' mean near zero, so the polar takes it. With ``contours`` the
    silhouette tangency residuals (:mod:`.silhouette`) join the point residuals,
    each weighted like ``silhouette_weight`` point observations.

    Returns the refined polar and the corrections [4, 2] (degrees).
    """
    from scipy.optimize import least_squares

    from .silhouette import tangency_residuals

    offsets = np.asarray(cam.ELEVATION_VIEW_OFFSETS, dtype=np.float64)
    n_obs = len(obs)
    mean_w = obs.weight.mean() if n_obs else 1.0
    sqrt_w = np.sqrt(np.repeat(obs.weight / mean_w, 2))
    sqrt_sil = np.sqrt(silhouette_weight) if contours is not None else 0.0

    def residuals(p: np.ndarray) -> np.ndarray:
        d = p[1:].reshape(4, 2)
        c2w = cam.spherical_to_c2w(p[0] + offsets[:, 0] + d[:, 0], offsets[:, 1] + d[:, 1])[None]
        parts = []
        if n_obs:
            r, bad = reprojection_residuals(obs, c2w, focal_px)
            r = np.where(bad[..., None], CAP_ERROR_PX, np.clip(np.nan_to_num(r), -CAP_ERROR_PX, CAP_ERROR_PX))
            parts.append(r.ravel() * sqrt_w)
        if contours is not None:
            r_sil = tangency_residuals(contours, c2w, focal_px)[0]
            parts.append(np.clip(r_sil, -CAP_ERROR_PX, CAP_ERROR_PX) * sqrt_sil)
        # prior residuals in the same units as the data: one pixel-scale per sigma
        parts.append(scale_px * p[1:] / sigma_deg)
        return np.concatenate(parts)

    lo, hi = bounds_deg
    p0 = np.zeros(9)
    p0[0] = np.clip(polar0_deg, lo, hi)
    limit = np.r_[0.0, np.full(8, 10.0 * sigma_deg)]
    lower, upper = np.r_[lo, -limit[1:]], np.r_[hi, limit[1:]]
    fit = least_squares(
        residuals, p0, bounds=(lower, upper), loss="cauchy", f_scale=scale_px, diff_step=1e-4, max_nfev=50
    )
    return float(fit.x[0]), fit.x[1:].reshape(4, 2)
