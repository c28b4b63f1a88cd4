"""Which elevation the pipeline uses: from the images, from gravity, both, or the fallback.

:func:`choose_elevation` is the one place a fallback is applied. Rule
(``ElevationConfig.source``):

* ``auto`` (default): the gravity elevation when a gravity-aligned camera pose is
  given (TF on a robot), otherwise the image estimate. The image estimate still
  runs beside gravity (it costs well under a second) so that both values and
  their disagreement are reported.
* ``gravity``: the gravity elevation; a request without a gravity pose is an error.
* ``image``: the image estimate, even when gravity is known.
* ``fused``: the inverse-variance weighted mean of both (gravity sigma
  :data:`GRAVITY_SIGMA_DEG`, image sigma growing as its confidence drops); the
  image estimate alone when there is no gravity pose.

The image estimate is used whatever its confidence (as One-2-3-45 does), unless
``min_confidence`` > 0 asks for the old gating. The fallback elevation
(``fallback_polar_deg``, 0 deg by default) is used only when the image estimate is
needed and none could be made (or it is gated out); the decision's ``source`` is
then "fallback" and ``reason`` says why. Every decision records its source
("image", "gravity", "fused" or "fallback") and reason, for result.json and the
ROS message.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import ElevationConfig
from ..geometry import cameras as cam
from ..types import InputError

GRAVITY_SIGMA_DEG = 1.0
"""Assumed accuracy of the gravity elevation (TF of a calibrated robot camera)."""

IMAGE_SIGMA_DEG = 3.0
"""Assumed accuracy of a fully confident image estimate (benchmark: perturbed and Zero123-like p90)."""

SOURCES = ("auto", "gravity", "image", "fused")


@dataclass
class ElevationDecision:
    """What was known and chosen."""

    gravity_deg: float | None = None
    image_deg: float | None = None
    """The image estimate (None when none was made or the estimator did not run)."""
    image_confidence: float = 0.0
    image_reason: str = ""
    """The estimator's own reason (empty when nothing was wrong), plus the fallback note when it was used."""
    chosen_deg: float | None = None
    source: str = "image"
    """Where ``chosen_deg`` came from: "image", "gravity", "fused" or "fallback"."""
    confidence: float = 0.0
    reason: str = ""
    """Why this source and value (includes the image estimate's reason when it matters)."""
    image_estimate: object = None
    """The full elevation.ElevationEstimate (error curve, matches) when the image estimator ran."""

    @property
    def disagreement_deg(self) -> float | None:
        if self.gravity_deg is None or self.image_deg is None:
            return None
        return abs(self.gravity_deg - self.image_deg)

    @property
    def fallback_used(self) -> bool:
        return self.source == "fallback"


def choose_elevation(cfg: ElevationConfig, image_estimate=None, gravity_deg: float | None = None) -> ElevationDecision:
    """Apply the source rule to an image estimate and/or a gravity elevation.

    Args:
        cfg: ``source``, ``min_confidence`` and ``fallback_polar_deg`` matter here.
        image_estimate: :class:`estimate.ElevationEstimate` or None (not run).
        gravity_deg: the gravity elevation (:func:`gravity.gravity_elevation`) or None.

    Returns:
        :class:`ElevationDecision` with ``chosen_deg`` always set, ``source`` and ``reason``.
        Raises InputError for an unknown source or ``source: gravity`` without gravity.
    """
    if cfg.source not in SOURCES:
        raise InputError(f"elevation.source must be auto, gravity, image or fused, got {cfg.source!r}")
    if cfg.source == "gravity" and gravity_deg is None:
        raise InputError("elevation.source is 'gravity' but no gravity-aligned camera pose was given")
    d = ElevationDecision(gravity_deg=None if gravity_deg is None else float(gravity_deg))
    if image_estimate is not None:
        d.image_deg = image_estimate.elevation_deg
        d.image_confidence = float(image_estimate.confidence)
        d.image_reason = image_estimate.reason
        d.image_estimate = image_estimate
    image_ok, gate_note = _image_usable(cfg, d, image_estimate)

    if cfg.source == "gravity" or (cfg.source == "auto" and d.gravity_deg is not None):
        d.chosen_deg, d.source, d.confidence = d.gravity_deg, "gravity", 1.0
        d.reason = "gravity-aligned camera pose given" if cfg.source == "auto" else "elevation.source is gravity"
    elif cfg.source == "fused" and d.gravity_deg is not None:
        if not image_ok:
            d.chosen_deg, d.source, d.confidence = d.gravity_deg, "gravity", 1.0
            d.reason = f"fused: image estimate not usable ({gate_note}); gravity alone"
        else:
            sigma_img = IMAGE_SIGMA_DEG / max(d.image_confidence, 0.1)
            w_g, w_i = 1.0 / GRAVITY_SIGMA_DEG**2, 1.0 / sigma_img**2
            d.chosen_deg = (w_g * d.gravity_deg + w_i * d.image_deg) / (w_g + w_i)
            d.source, d.confidence = "fused", 1.0
            d.reason = f"fused gravity (sigma {GRAVITY_SIGMA_DEG:g} deg) and image (sigma {sigma_img:.1f} deg)"
    elif image_ok:
        d.chosen_deg, d.source, d.confidence = d.image_deg, "image", d.image_confidence
        d.reason = d.image_reason
    else:
        fallback = float(cam.elevation_from_polar(cfg.fallback_polar_deg))
        d.chosen_deg, d.source, d.confidence = fallback, "fallback", 0.0
        d.reason = f"{gate_note}; using the fallback elevation {fallback:.1f} deg"
        # the image reason says it too, for readers of image_reason alone (the CLI's "reason")
        d.image_reason = f"{d.image_reason or 'no image estimate'}; using the fallback elevation {fallback:.1f} deg"
    return d


def _image_usable(cfg: ElevationConfig, d: ElevationDecision, estimate) -> tuple[bool, str]:
    """Whether the image estimate can be used, and if not why."""
    if estimate is None:
        return False, "the image estimator did not run"
    if d.image_deg is None:
        return False, f"no image estimate: {d.image_reason}" if d.image_reason else "no image estimate"
    if cfg.min_confidence > 0 and d.image_confidence < cfg.min_confidence:
        note = f"image confidence {d.image_confidence:.2f} below min_confidence {cfg.min_confidence:g}"
        return False, f"{note} ({d.image_reason})" if d.image_reason else note
    return True, ""
