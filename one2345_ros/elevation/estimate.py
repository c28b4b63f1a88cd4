"""Camera elevation from four nearby views: One-2-3-45's estimator, plus gravity.

The image estimator (reference/one2345.md section 3, ``elev_est_api.py``):

1. Match features between all six pairs of the four views, which sit at
   (d_polar, d_azimuth) = (-10, 0), (+10, 0), (0, -10), (0, +10) deg from the
   input view (:data:`cameras.ELEVATION_VIEW_OFFSETS`), on the object only
   (:mod:`elevation_match`).
2. Join them into three-view observations: a match a<->b whose view-a point also
   has a match a<->t (view-a points within ``track_radius_px``).
3. For each candidate polar angle the four camera poses are fixed (radius 1.2,
   K of the 256 view); triangulate every observation from views a and b and
   measure its reprojection error in view t.
4. Coarse search (10 deg steps over polar 30-150), then fine (1 deg within one
   coarse step of the best), then a parabola through the fine minimum and its
   neighbours for a sub-degree answer.
5. Optionally (``refine_view_poses``, on by default) a joint robust least-squares
   refinement of the polar and a small prior-bounded pose error of every view,
   because generated views are never exactly at their nominal poses
   (:func:`elevation_geometry.refine_with_view_poses`). The error curve and the
   confidence describe the grid search of steps 3-4.

Departures from the original, each for robustness: matches are tested against
their own view's mask (the original's keep0 uses the wrong keypoints' x), every
pair loses its RANSAC outliers, all twelve (pair, third view) combinations are
used (the original's three start views skip pair 3-0), the observation sets are
built once rather than per candidate, the errors go through a Cauchy loss
weighted by match quality, and the whole candidate batch is triangulated at once
(vectorised DLT in normalised coordinates).

Why the polar angle is observable, and only weakly: the +-10 deg azimuth views
rotate about world z, an axis whose tilt in the camera frame is the elevation, and
their baseline shrinks with sin(polar). One degree of polar error moves
reprojections by only 0.15-0.5 px (measured on oracle views), so sub-pixel
matches and many of them matter, and a view rendered 2 deg off its nominal
azimuth biases the fixed-pose search by several degrees (hence step 5).

Failures (too few matches, no parallax, a flat error curve, a minimum on the
edge of the range, unusable input) never raise: the result has a low confidence,
a reason and the configured fallback polar.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from ..geometry import cameras as cam
from ..config import ElevationConfig
from .geometry import (
    Observations,
    build_observations,
    parabola_vertex,
    refine_with_view_poses,
    reprojection_errors,
    robust_cost,
)

MIN_PARALLAX_PX = 0.5
"""Median match displacement below which the views are treated as identical."""

FLAT_CURVE_CONTRAST = 0.15
"""Error curves whose minimum is within this fraction of their median are flat."""

SHARP_CURVE_CONTRAST = 0.6
"""A minimum this far below the curve's median counts as fully pronounced."""

RESIDUAL_GOOD_PX, RESIDUAL_WARN_PX, RESIDUAL_BAD_PX = 2.0, 6.0, 10.0
"""Median reprojection error at the minimum: full confidence below GOOD, a
"views inconsistent" reason above WARN, zero confidence at BAD (clean oracle views
give 0.2-1 px, the benchmark's perturbed views 1-4 px)."""

REFINEMENT_DISAGREES_PENALTY = 0.5
"""Confidence factor when the pose refinement runs off the search's minimum: the
two answers disagree, so the views are not consistent with one camera layout."""

EDGE_PENALTY = 0.2
"""Confidence factor for a minimum on the edge of the searched polar range."""


@dataclass
class ElevationEstimate:
    """Result of :func:`estimate_elevation`.

    ``elevation_deg`` / ``polar_deg`` are the values to use: the estimate, or the
    configured fallback when the confidence is below ``min_confidence``
    (``fallback_used``). ``estimated_*`` is what the search found (None when no
    search could run). ``curve_polar_deg`` / ``curve_error`` hold every candidate
    evaluated (coarse and fine), sorted by polar angle.
    """

    elevation_deg: float
    polar_deg: float
    confidence: float
    reason: str = ""
    estimated_polar_deg: float | None = None
    fallback_used: bool = False
    curve_polar_deg: np.ndarray = field(default_factory=lambda: np.zeros(0))
    curve_error: np.ndarray = field(default_factory=lambda: np.zeros(0))
    residual_px: float | None = None
    """Median reprojection error at the estimate."""
    search_polar_deg: float | None = None
    """The grid search's answer (fixed nominal view poses), before the pose refinement."""
    view_corrections_deg: list | None = None
    """Per-view (d_polar, d_azimuth) corrections [4][2] found by the pose refinement."""
    n_matches: dict[str, int] = field(default_factory=dict)
    n_observations: int = 0
    matcher: str = ""
    seconds: float = 0.0

    @property
    def estimated_elevation_deg(self) -> float | None:
        return None if self.estimated_polar_deg is None else float(cam.elevation_from_polar(self.estimated_polar_deg))

    def to_dict(self, curve: bool = True) -> dict:
        out = {
            "elevation_deg": self.elevation_deg,
            "polar_deg": self.polar_deg,
            "confidence": self.confidence,
            "reason": self.reason,
            "fallback_used": self.fallback_used,
            "estimated_elevation_deg": self.estimated_elevation_deg,
            "estimated_polar_deg": self.estimated_polar_deg,
            "search_polar_deg": self.search_polar_deg,
            "view_corrections_deg": self.view_corrections_deg,
            "residual_px": self.residual_px,
            "n_matches": self.n_matches,
            "n_observations": self.n_observations,
            "matcher": self.matcher,
            "seconds": self.seconds,
        }
        if curve:
            out["curve"] = {"polar_deg": self.curve_polar_deg.tolist(), "error": self.curve_error.tolist()}
        return out


# --------------------------------------------------------------------- search


def check_views(views) -> str:
    """Why ``views`` cannot be used ('' when they can)."""
    if not isinstance(views, np.ndarray):
        return f"views must be a numpy array, got {type(views).__name__}"
    if views.ndim != 4 or views.shape[0] != 4 or views.shape[3] != 3:
        return f"need four RGB views [4, S, S, 3], got shape {views.shape}"
    if views.shape[1] != views.shape[2] or views.shape[1] < 32:
        return f"views must be square (S >= 32), got {views.shape[2]}x{views.shape[1]}"
    if views.dtype != np.uint8:
        return f"views must be uint8, got {views.dtype}"
    return ""


def _fallback(cfg: ElevationConfig, reason: str, **extra) -> ElevationEstimate:
    polar = float(cfg.fallback_polar_deg)
    return ElevationEstimate(
        elevation_deg=float(cam.elevation_from_polar(polar)),
        polar_deg=polar,
        confidence=float(extra.pop("confidence", 0.0)),
        reason=reason,
        fallback_used=True,
        **extra,
    )


def search_polar(obs: Observations, cfg: ElevationConfig, focal_px: float):
    """Coarse-to-fine search. Returns (polar, curve polars, curve costs, coarse costs)."""
    lo, hi = float(cfg.polar_min_deg), float(cfg.polar_max_deg)

    def cost(polars):
        return robust_cost(reprojection_errors(obs, polars, focal_px), obs.weight, cfg.robust_scale_px)

    coarse = np.arange(lo, hi + 1e-9, cfg.coarse_step_deg)
    coarse_cost = cost(coarse)
    best = coarse[int(np.argmin(coarse_cost))]
    fine = np.arange(best - cfg.coarse_step_deg, best + cfg.coarse_step_deg + 1e-9, cfg.fine_step_deg)
    fine = fine[(fine >= lo - 1e-9) & (fine <= hi + 1e-9)]
    fine_cost = cost(fine)
    i = int(np.argmin(fine_cost))
    polar = parabola_vertex(fine, fine_cost, i)
    polars = np.concatenate([coarse, fine])
    costs = np.concatenate([coarse_cost, fine_cost])
    polars, first = np.unique(np.round(polars, 9), return_index=True)
    return polar, polars, costs[first], coarse_cost


def _confidence(n_obs: int, residual_px: float, coarse_cost: np.ndarray, polar: float, cfg: ElevationConfig):
    """Confidence in [0, 1] and the reason it is low ('' when fine).

    Product of: enough observations, a pronounced minimum (contrast of the coarse
    curve), a small residual at the minimum, a minimum inside the range.
    """
    reasons = []
    c_count = min(1.0, n_obs / (4.0 * cfg.min_tracks))
    if c_count < 1.0:
        reasons.append(f"few matches ({n_obs} three-view observations)")
    median = float(np.median(coarse_cost))
    contrast = 1.0 - float(coarse_cost.min()) / median if median > 0 else 0.0
    c_contrast = (contrast - FLAT_CURVE_CONTRAST) / (SHARP_CURVE_CONTRAST - FLAT_CURVE_CONTRAST)
    c_contrast = float(np.clip(c_contrast, 0.0, 1.0))
    if contrast < FLAT_CURVE_CONTRAST:
        reasons.append(f"flat error curve (minimum {100 * contrast:.0f} % below the median)")
    c_residual = float(np.clip((RESIDUAL_BAD_PX - residual_px) / (RESIDUAL_BAD_PX - RESIDUAL_GOOD_PX), 0.0, 1.0))
    if residual_px > RESIDUAL_WARN_PX:
        reasons.append(f"views inconsistent (median reprojection error {residual_px:.1f} px)")
    c_edge = 1.0
    edge = 0.5 * cfg.fine_step_deg
    if polar <= cfg.polar_min_deg + edge or polar >= cfg.polar_max_deg - edge:
        c_edge = EDGE_PENALTY
        reasons.append(
            f"minimum on the edge of the search range (polar {polar:.1f} deg; range "
            f"{cfg.polar_min_deg:g}-{cfg.polar_max_deg:g}): the camera may be outside it"
        )
    confidence = c_count * c_contrast * c_residual * c_edge
    return float(confidence), "; ".join(reasons)


def estimate_elevation(views: np.ndarray, cfg: ElevationConfig | None = None, matcher=None) -> ElevationEstimate:
    """Elevation of the input camera from its four nearby views.

    Args:
        views: uint8 [4, S, S, 3] RGB on white (S = 256 for Zero123), in the order
            (d_polar, d_azimuth) = (-10, 0), (+10, 0), (0, -10), (0, +10).
        cfg: search range, matcher and thresholds; defaults to ElevationConfig().
        matcher: an object with ``match(views, masks)`` (default from ``cfg.matcher``).

    Returns:
        :class:`ElevationEstimate`. Never raises for bad or unreliable views: the
        result then has a low confidence, a reason and the fallback polar. A
        misconfigured matcher (unknown name, missing LoFTR weights) does raise.
    """
    from .match import make_matcher, match_views

    cfg = cfg or ElevationConfig()
    start = time.perf_counter()
    problem = check_views(views)
    if problem:
        return _fallback(cfg, problem)
    matcher = matcher or make_matcher(cfg)
    size = views.shape[1]
    K = cam.view_intrinsics(size)
    info = {"matcher": matcher.name}

    def done(result: ElevationEstimate) -> ElevationEstimate:
        result.seconds = time.perf_counter() - start
        return result

    empty = [k for k, v in enumerate(views) if not (v <= 245).any()]
    if empty:
        return done(_fallback(cfg, f"blank view(s) {empty}: no object pixels", **info))
    try:
        pairs = match_views(views, cfg, matcher)
        info["n_matches"] = {f"{i}_{j}": len(m) for (i, j), m in pairs.items()}
        shifts = np.concatenate([np.linalg.norm(m.pts_i - m.pts_j, axis=1) for m in pairs.values()])
        if len(shifts) >= cfg.min_tracks and np.median(shifts) < MIN_PARALLAX_PX * size / cam.VIEW_SIZE:
            return done(_fallback(cfg, "degenerate geometry: the views show no parallax (identical images?)", **info))
        obs = build_observations(pairs, K, cfg.track_radius_px * size / cam.VIEW_SIZE)
        info["n_observations"] = len(obs)
        if len(obs) < cfg.min_tracks:
            worst = min(info["n_matches"].items(), key=lambda kv: kv[1])
            return done(
                _fallback(
                    cfg,
                    f"too few matches: {len(obs)} three-view observations (need {cfg.min_tracks}); "
                    f"fewest matches {worst[1]} between views {worst[0].replace('_', ' and ')}",
                    **info,
                )
            )
        focal = float(K[0, 0])
        polar, curve_polar, curve_cost, coarse_cost = search_polar(obs, cfg, focal)
        residual = float(np.median(reprojection_errors(obs, [polar], focal)))
        confidence, reason = _confidence(len(obs), residual, coarse_cost, polar, cfg)
        info["search_polar_deg"] = polar
        if cfg.refine_view_poses:
            bounds = (cfg.polar_min_deg, cfg.polar_max_deg)
            refined, corrections = refine_with_view_poses(
                obs, polar, focal, cfg.view_pose_sigma_deg, cfg.robust_scale_px, bounds
            )
            if abs(refined - polar) <= cfg.coarse_step_deg:
                polar = refined
                info["view_corrections_deg"] = corrections.tolist()
            else:  # the grid search's basin is the one its curve and confidence describe
                note = f"pose refinement left the search's minimum ({refined:.1f} deg); not used"
                reason = "; ".join(filter(None, [reason, note]))
                confidence *= REFINEMENT_DISAGREES_PENALTY
    except (ValueError, np.linalg.LinAlgError, FloatingPointError, cv2.error) as exc:  # numerical or OpenCV failure
        return done(_fallback(cfg, f"estimation failed: {exc}", **info))
    result = ElevationEstimate(
        elevation_deg=float(cam.elevation_from_polar(polar)),
        polar_deg=polar,
        confidence=confidence,
        reason=reason,
        estimated_polar_deg=polar,
        curve_polar_deg=curve_polar,
        curve_error=curve_cost,
        residual_px=residual,
        **info,
    )
    if confidence < cfg.min_confidence:
        result.polar_deg = float(cfg.fallback_polar_deg)
        result.elevation_deg = float(cam.elevation_from_polar(cfg.fallback_polar_deg))
        result.fallback_used = True
        result.reason = reason or f"low confidence {confidence:.2f}"
    return done(result)
