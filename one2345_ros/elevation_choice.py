"""Which elevation the pipeline uses: from the images, from gravity, or both.

Rule (``ElevationConfig.source``):

* ``auto`` (default): the gravity elevation when a gravity-aligned camera pose is
  given (TF on a robot), otherwise the image estimate.
* ``gravity``: the gravity elevation; a request without a gravity pose is an error.
* ``image``: the image estimate, even when gravity is known.
* ``fused``: the inverse-variance weighted mean of both (gravity sigma
  :data:`GRAVITY_SIGMA_DEG`, image sigma growing as its confidence drops); the
  image estimate alone when there is no gravity pose.

Whatever is chosen, the image estimate (when it ran), the gravity elevation and
their disagreement are reported in the result. An unreliable image estimate
(confidence below ``min_confidence``) falls back to ``fallback_polar_deg`` with
the reason recorded; estimation never raises out of the pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import cameras as cam
from .config import ElevationConfig
from .io import InputError

GRAVITY_SIGMA_DEG = 1.0
"""Assumed accuracy of the gravity elevation (TF of a calibrated robot camera)."""

IMAGE_SIGMA_DEG = 3.0
"""Assumed accuracy of a fully confident image estimate (issue 3 benchmark: perturbed median)."""


@dataclass
class ElevationDecision:
    """What was known and chosen; filled while the plan runs."""

    gravity_deg: float | None = None
    image_deg: float | None = None
    image_confidence: float = 0.0
    image_reason: str = ""
    chosen_deg: float | None = None
    source: str = "image"
    confidence: float = 0.0
    polar_hint_deg: float | None = None
    """Absolute polar known before any image exists (gravity), for Stable Zero123."""

    def fill(self, result) -> None:
        result.elevation_source = self.source
        result.elevation_image_deg = self.image_deg
        result.elevation_gravity_deg = self.gravity_deg
        result.confidence = self.confidence
        result.elevation_reason = self.image_reason
        if self.gravity_deg is not None and self.image_deg is not None:
            result.extra["elevation_disagreement_deg"] = abs(self.gravity_deg - self.image_deg)


def decide_elevation(cfg: ElevationConfig, inputs, pre, decision: ElevationDecision):
    """Return the polar estimator the plan calls with the four elevation views."""
    if cfg.source not in ("auto", "gravity", "image", "fused"):
        raise InputError(f"elevation.source must be auto, gravity, image or fused, got {cfg.source!r}")
    if inputs.gravity_c2w is not None:
        if inputs.K is None:
            raise InputError("a gravity pose needs the camera intrinsics (camera_info) to use it")
        g2 = np.asarray(inputs.gravity_c2w, dtype=np.float64)
        if g2.shape != (4, 4) or not np.all(np.isfinite(g2)):
            raise InputError(f"gravity pose must be a finite 4x4 matrix, got shape {g2.shape}")
        decision.gravity_deg = cam.gravity_elevation_deg(g2, inputs.K, pre.pixel_center)
        decision.polar_hint_deg = float(cam.polar_from_elevation(decision.gravity_deg))
    elif cfg.source == "gravity":
        raise InputError("elevation.source is 'gravity' but the request has no gravity-aligned camera pose (TF)")

    def estimate(elevation_views) -> float | None:
        _run_image_estimate(cfg, np.stack(list(elevation_views)), decision)
        chosen, source, confidence = _choose(cfg, decision)
        decision.chosen_deg, decision.source, decision.confidence = chosen, source, confidence
        return None if chosen is None else float(cam.polar_from_elevation(chosen))

    return estimate


def _run_image_estimate(cfg: ElevationConfig, views: np.ndarray, decision: ElevationDecision) -> None:
    if cfg.source == "gravity" or (cfg.source == "auto" and decision.gravity_deg is not None):
        return
    from .elevation import estimate_elevation

    est = estimate_elevation(views, cfg)
    decision.image_deg = est.elevation_deg
    decision.image_confidence = est.confidence
    decision.image_reason = est.reason


def _choose(cfg: ElevationConfig, d: ElevationDecision) -> tuple[float | None, str, float]:
    image_ok = d.image_deg is not None and d.image_confidence >= cfg.min_confidence
    if cfg.source == "gravity" or (cfg.source == "auto" and d.gravity_deg is not None):
        return d.gravity_deg, "gravity", 1.0
    if cfg.source == "fused" and d.gravity_deg is not None:
        if not image_ok:
            return d.gravity_deg, "gravity", 1.0
        sigma_img = IMAGE_SIGMA_DEG / max(d.image_confidence, 0.1)
        w_g, w_i = 1.0 / GRAVITY_SIGMA_DEG**2, 1.0 / sigma_img**2
        fused = (w_g * d.gravity_deg + w_i * d.image_deg) / (w_g + w_i)
        return fused, "fused", 1.0
    if image_ok:
        return d.image_deg, "image", d.image_confidence
    fallback = float(cam.elevation_from_polar(cfg.fallback_polar_deg))
    reason = d.image_reason or "no image estimate"
    d.image_reason = f"{reason}; using the fallback elevation {fallback:.1f} deg"
    return fallback, "image", d.image_confidence
