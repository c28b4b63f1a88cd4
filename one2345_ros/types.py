"""Types every stage shares: the request, posed views, the input error, and named thresholds.

Light on purpose (numpy only): the CLI, the node and every stage import it before torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class InputError(ValueError):
    """Unusable input: the message names the file or value and what is wrong."""

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

    def foreground(self) -> np.ndarray:
        """(N, H, W) bool object masks."""
        return self.masks if self.masks is not None else foreground_from_white(self.images)

    def frame_c2w(self) -> np.ndarray:
        """c2w of the reconstruction frame (the reference view's camera)."""
        return self.reference_c2w if self.reference_c2w is not None else self.c2w[self.reference]
