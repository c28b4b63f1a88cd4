"""Which elevation the pipeline uses: from the images, from gravity, or both.

Rule (``ElevationConfig.source``):

* ``auto`` (default): the gravity elevation when a gravity-aligned camera pose is
  given (TF on a robot), otherwise the image estimate. The image estimate still
  runs beside gravity (it costs well under a second) so that both values and
  their disagreement are reported.
* ``gravity``: the gravity elevation; a request without a gravity pose is an error.
* ``image``: the image estimate, even when gravity is known.
* ``fused``: the inverse-variance weighted mean of both (gravity sigma
  :data:`GRAVITY_SIGMA_DEG`, image sigma growing as its confidence drops); the
  image estimate alone when there is no gravity pose.

Whatever is chosen, the image estimate (when it ran), the gravity elevation and
their disagreement are reported in the result. An unreliable image estimate
(confidence below ``min_confidence``) falls back to ``fallback_polar_deg`` with
the reason recorded and source ``fallback``; estimation never raises out of the pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import ElevationConfig
from ..geometry import cameras as cam
from ..types import InputError

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
    image_estimate: object = None
    """The full elevation.ElevationEstimate (error curve, matches) when the image estimator ran."""

    @property
    def disagreement_deg(self) -> float | None:
        if self.gravity_deg is None or self.image_deg is None:
            return None
        return abs(self.gravity_deg - self.image_deg)

    def fill(self, result) -> None:
        result.elevation_source = self.source
        result.elevation_image_deg = self.image_deg
        result.elevation_gravity_deg = self.gravity_deg
        result.confidence = self.confidence
        result.elevation_reason = self.image_reason
        if self.disagreement_deg is not None:
            result.extra["elevation_disagreement_deg"] = self.disagreement_deg
        if self.image_estimate is not None:
            result.extra["elevation_estimate"] = self.image_estimate.to_dict()


def decide_elevation(cfg: ElevationConfig, inputs, pre, decision: ElevationDecision):
    """Return the polar estimator the plan calls with the four elevation views."""
    if cfg.source not in ("auto", "gravity", "image", "fused"):
        raise InputError(f"elevation.source must be auto, gravity, image or fused, got {cfg.source!r}")
    if inputs.gravity_c2w is not None:
        if inputs.K is None:
            raise InputError("a gravity pose needs the camera intrinsics (camera_info) to use it")
        decision.gravity_deg = elevation_from_gravity(inputs.gravity_c2w, inputs.K, pre.pixel_center)
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
    if cfg.source == "gravity":
        return
    from .estimate import estimate_elevation

    est = estimate_elevation(views, cfg)
    # the search's own answer (None when it could not run); _choose applies the fallback
    decision.image_deg = est.estimated_elevation_deg
    decision.image_confidence = est.confidence
    decision.image_reason = est.reason
    decision.image_estimate = est


def elevation_from_gravity(c2w_gravity, K, pixel_center) -> float:
    """Camera elevation (deg) from its pose in a gravity-aligned frame (z up).

    c2w_gravity: 4x4 OpenCV c2w of the camera (TF on a robot); K: 3x3 intrinsics of
    the image; pixel_center: (u, v) of the object's centre in that image.
    Raises InputError on malformed input.
    """
    c2w = np.asarray(c2w_gravity, dtype=np.float64)
    K = np.asarray(K, dtype=np.float64)
    uv = np.asarray(pixel_center, dtype=np.float64)
    if c2w.shape != (4, 4) or not np.all(np.isfinite(c2w)):
        raise InputError(f"gravity pose must be a finite 4x4 matrix, got shape {c2w.shape}")
    R = c2w[:3, :3]
    if not np.allclose(R.T @ R, np.eye(3), atol=1e-4) or np.linalg.det(R) <= 0:
        raise InputError("gravity pose: the 3x3 block is not a rotation")
    if K.shape != (3, 3) or not np.all(np.isfinite(K)) or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise InputError(f"intrinsics must be a 3x3 matrix with positive focal lengths, got {K.tolist()}")
    if uv.shape != (2,) or not np.all(np.isfinite(uv)):
        raise InputError(f"object pixel centre must be (u, v), got {uv.tolist()}")
    return cam.gravity_elevation_deg(c2w, K, uv)


def choose_elevation(cfg: ElevationConfig, image_estimate=None, gravity_deg: float | None = None) -> ElevationDecision:
    """Apply the source rule to an image estimate and/or a gravity elevation (library and CLI)."""
    if cfg.source not in ("auto", "gravity", "image", "fused"):
        raise InputError(f"elevation.source must be auto, gravity, image or fused, got {cfg.source!r}")
    if cfg.source == "gravity" and gravity_deg is None:
        raise InputError("elevation.source is 'gravity' but no gravity-aligned camera pose was given")
    d = ElevationDecision(gravity_deg=gravity_deg)
    if image_estimate is not None:
        d.image_deg = image_estimate.estimated_elevation_deg
        d.image_confidence = image_estimate.confidence
        d.image_reason = image_estimate.reason
        d.image_estimate = image_estimate
    d.chosen_deg, d.source, d.confidence = _choose(cfg, d)
    return d


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
    return fallback, "fallback", d.image_confidence
