"""Named image thresholds, with the original One-2-3-45 values where it has one."""

WHITE_BACKGROUND_THRESHOLD = 245
"""A pixel whose channels are all > this is background (elevation matching mask in
elevation_estimate/utils/elev_est_api.py: ``~(img > 245).all(-1)``)."""

STAGE2_INPUT_WHITE_THRESHOLD = 253
"""Stage-2 conditioning images: pixels >= this are set to 255 (zero123_utils.py)."""

MASK_BINARY_TOLERANCE = 0.01
"""Fraction of a uint8 mask's pixels allowed strictly between 0 and 255 (anti-aliased
edges) before preprocess calls the mask non-binary."""
