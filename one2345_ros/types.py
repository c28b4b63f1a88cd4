"""Types every stage shares: the request, posed views, errors, the result vocabulary, named thresholds.

Light on purpose (numpy only): the CLI, the node and every stage import it before torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

Frame = Literal["camera_optical", "canonical", "views_world"]
"""The frame a result's mesh is in: the input camera's optical frame (OpenCV axes, needs
camera_info and a scale source), the canonical frame (DESIGN.md), or the world frame of a
views folder (``reconstruct-views``)."""
Units = Literal["m", "canonical", "views"]
ScaleSource = Literal["depth", "object_distance", "object_size", "none"]
ElevationSource = Literal["image", "gravity", "fused", "fallback"]
"""Where the elevation came from; ``fallback`` = no estimate could be made (the original's polar 90)."""
CANONICAL_FRAME_ID = "one2345_canonical"


class InputError(ValueError):
    """Unusable input: the message names the file or value and what is wrong."""


class Cancelled(Exception):
    """The caller's cancel event was set; raised between stages."""


WHITE_BACKGROUND_THRESHOLD = 245
"""A pixel whose channels are all > this is background (elevation matching mask in
elevation_estimate/utils/elev_est_api.py: ``~(img > 245).all(-1)``)."""

STAGE2_INPUT_WHITE_THRESHOLD = 253
"""Stage-2 conditioning images: pixels >= this are set to 255 (zero123_utils.py)."""

MASK_BINARY_TOLERANCE = 0.01
"""Fraction of a uint8 mask's pixels allowed strictly between 0 and 255 (anti-aliased
edges) before preprocess calls the mask non-binary."""


def foreground_from_white(image: np.ndarray) -> np.ndarray:
    """Object pixels of an image on white: any channel <= the white threshold."""
    return ~(image > WHITE_BACKGROUND_THRESHOLD).all(axis=-1)


@dataclass
class ViewSet:
    """Posed views: images (N, H, W, 3) uint8, K (N, 3, 3), c2w (N, 4, 4) OpenCV world.

    ``masks`` (N, H, W) bool or None (then the non-white pixels), ``reference`` the
    index of the view whose frame defines the reconstruction frame when the caller
    wants it, ``near_far`` and ``bbox`` optional hints.
    """

    images: np.ndarray
    K: np.ndarray
    c2w: np.ndarray
    names: list[str]
    masks: np.ndarray | None = None
    reference: int = 0
    near_far: tuple[float, float] | None = None
    bbox: np.ndarray | None = None
    reference_c2w: np.ndarray | None = None
    """c2w of the reference frame when it is not one of the views (One-2-3-45's 0.png)."""

    def __post_init__(self) -> None:
        n = len(self.images)
        if self.K.shape != (n, 3, 3) or self.c2w.shape != (n, 4, 4) or len(self.names) != n:
            raise InputError(
                f"views: {n} images but K {self.K.shape}, c2w {self.c2w.shape}, {len(self.names)} names"
            )
        if self.masks is not None and self.masks.shape != self.images.shape[:3]:
            raise InputError(f"views: masks {self.masks.shape} do not match images {self.images.shape}")

    def select(self, indices) -> ViewSet:
        """The views at ``indices`` (same reference frame: its c2w is kept explicitly)."""
        idx = [int(i) for i in indices]
        return ViewSet(
            images=self.images[idx],
            K=self.K[idx],
            c2w=self.c2w[idx],
            names=[self.names[i] for i in idx],
            masks=None if self.masks is None else self.masks[idx],
            near_far=self.near_far,
            bbox=self.bbox,
            reference_c2w=self.frame_c2w(),
        )

    def foreground(self) -> np.ndarray:
        """(N, H, W) bool object masks."""
        return self.masks if self.masks is not None else foreground_from_white(self.images)

    def frame_c2w(self) -> np.ndarray:
        """c2w of the reconstruction frame (the reference view's camera)."""
        return self.reference_c2w if self.reference_c2w is not None else self.c2w[self.reference]


@dataclass
class ReconstructionInputs:
    """One request, prepared by :func:`one2345_ros.inputs.prepare.prepare_inputs` (the one policy
    the CLI, the node and ``bag`` share).

    image: uint8 (H, W, 3) RGB, lens distortion undone. mask: bool (H, W), the object.
    depth: float32 (H, W) metres, NaN = no reading; optional. K: float64 (3, 3) intrinsics of
    ``image``; optional (no K: canonical output). gravity_c2w: (4, 4) OpenCV c2w of the camera
    in a gravity-aligned (z up) frame; optional. warnings: the input's departures from the
    method's assumptions (several mask components, object cut by the border...), reported in
    the result.
    """

    image: np.ndarray
    mask: np.ndarray
    depth: np.ndarray | None = None
    K: np.ndarray | None = None
    frame_id: str = ""
    stamp_ns: int = 0
    object_id: str = "object"
    gravity_c2w: np.ndarray | None = None
    warnings: list[str] = field(default_factory=list)
