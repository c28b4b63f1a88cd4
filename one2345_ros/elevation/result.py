"""What an elevation estimator returns (:class:`ElevationEstimate`), shared by both modes."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..geometry import cameras as cam

FLAT_CURVE_CONTRAST = 0.15
"""Error curves whose minimum is within this fraction of their median are flat."""

SHARP_CURVE_CONTRAST = 0.6
"""A minimum this far below the curve's median counts as fully pronounced."""


@dataclass
class ElevationEstimate:
    """Result of :func:`estimate_elevation`.

    ``elevation_deg`` / ``polar_deg``: the estimate, or None when none could be made
    (``reason`` says why); never a substituted value. ``confidence`` in [0, 1] and
    ``reason`` (empty when nothing is wrong) describe it. ``curve_polar_deg`` /
    ``curve_error`` hold every candidate evaluated (coarse and fine), sorted by polar.
    """

    elevation_deg: float | None
    polar_deg: float | None
    confidence: float
    reason: str = ""
    mode: str = "default"
    curve_polar_deg: np.ndarray = field(default_factory=lambda: np.zeros(0))
    curve_error: np.ndarray = field(default_factory=lambda: np.zeros(0))
    residual_px: float | None = None
    """Median reprojection error of the point observations at the estimate."""
    silhouette_residual_px: float | None = None
    """RMS silhouette tangency residual at the estimate (None without usable silhouettes)."""
    search_polar_deg: float | None = None
    """The grid search's answer (fixed nominal view poses), before the pose refinement."""
    view_corrections_deg: list | None = None
    """Per-view (d_polar, d_azimuth) corrections [4][2] found by the pose refinement."""
    n_matches: dict[str, int] = field(default_factory=dict)
    n_observations: int = 0
    matcher: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Whether an estimate was made."""
        return self.elevation_deg is not None

    def to_dict(self, curve: bool = True) -> dict:
        out = {
            "elevation_deg": self.elevation_deg,
            "polar_deg": self.polar_deg,
            "confidence": self.confidence,
            "reason": self.reason,
            "mode": self.mode,
            "search_polar_deg": self.search_polar_deg,
            "view_corrections_deg": self.view_corrections_deg,
            "residual_px": self.residual_px,
            "silhouette_residual_px": self.silhouette_residual_px,
            "n_matches": self.n_matches,
            "n_observations": self.n_observations,
            "matcher": self.matcher,
            "seconds": self.seconds,
        }
        if curve:
            out["curve"] = {"polar_deg": self.curve_polar_deg.tolist(), "error": self.curve_error.tolist()}
        return out


def from_polar(polar_deg: float, **fields) -> ElevationEstimate:
    polar = float(polar_deg)
    return ElevationEstimate(elevation_deg=float(cam.elevation_from_polar(polar)), polar_deg=polar, **fields)


def no_estimate(reason: str, **fields) -> ElevationEstimate:
    """An :class:`ElevationEstimate` saying that no estimate could be made, and why."""
    return ElevationEstimate(elevation_deg=None, polar_deg=None, confidence=0.0, reason=reason, **fields)


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


def curve_contrast(coarse_cost: np.ndarray) -> float:
    """How far the coarse curve's minimum lies below its median (0: flat, 1: zero minimum)."""
    median = float(np.median(coarse_cost))
    return 1.0 - float(np.min(coarse_cost)) / median if median > 0 else 0.0
