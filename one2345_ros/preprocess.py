"""Image + mask -> the 256x256 object-centred view Zero123 consumes.

One-2-3-45's rule (utils/utils.py ``image_preprocess_nosave``): crop to the mask's
bounding box, pad to a centred square of side max(w, h) / 0.75 so the object fills
75 %, resize to 256 with Lanczos, composite on white.

The crop is kept as a :class:`CropTransform`, a virtual camera: pixel coordinates
map between the original image and the crop, and ``K_crop = crop.apply_to_K(K)``
is the intrinsics of the crop seen as an image of the same camera. Later stages use
it to map results back to the real camera.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from .config import PreprocessConfig
from .types import InputError
from .types import MASK_BINARY_TOLERANCE

MIN_MASK_PIXELS = 16
"""Fewer object pixels than this cannot be reconstructed meaningfully."""


@dataclass(frozen=True)
class CropTransform:
    """Square crop [x0, x0 + side) x [y0, y0 + side) of the original image (continuous
    pixel-edge coordinates; may extend past the image, padded white) resized to
    ``out_size``. Pixel centres sit at integer coordinates in both images."""

    x0: float
    y0: float
    side: float
    out_size: int

    @property
    def scale(self) -> float:
        """Output pixels per original pixel."""
        return self.out_size / self.side

    def affine(self) -> np.ndarray:
        """3x3 A with [u', v', 1] = A [u, v, 1] (original -> crop pixel centres)."""
        s = self.scale
        return np.array(
            [[s, 0.0, (0.5 - self.x0) * s - 0.5], [0.0, s, (0.5 - self.y0) * s - 0.5], [0.0, 0.0, 1.0]]
        )

    def to_crop(self, uv: np.ndarray) -> np.ndarray:
        """Original-image pixels (..., 2) -> crop pixels."""
        uv = np.asarray(uv, dtype=np.float64)
        return (uv + 0.5 - [self.x0, self.y0]) * self.scale - 0.5

    def to_image(self, uv: np.ndarray) -> np.ndarray:
        """Crop pixels (..., 2) -> original-image pixels."""
        uv = np.asarray(uv, dtype=np.float64)
        return (uv + 0.5) / self.scale + [self.x0, self.y0] - 0.5

    def apply_to_K(self, K: np.ndarray) -> np.ndarray:
        """Intrinsics of the crop as an image of the camera with intrinsics ``K``."""
        return self.affine() @ np.asarray(K, dtype=np.float64)


@dataclass
class Preprocessed:
    image: np.ndarray
    """uint8 [S, S, 3] RGB, object on white."""
    mask: np.ndarray
    """bool [S, S] object mask in the crop."""
    crop: CropTransform
    bbox: tuple[int, int, int, int]
    """Mask bounding box in the original image: x_min, y_min, x_max, y_max (inclusive)."""
    touches_border: bool
    """The object touches the image border, so it is probably cut off."""
    source_mask: np.ndarray
    """bool [H, W] validated object mask in the original image."""

    @property
    def pixel_center(self) -> np.ndarray:
        """Centre of the mask bounding box in original-image pixels (u, v)."""
        x0, y0, x1, y1 = self.bbox
        return np.array([(x0 + x1) / 2.0, (y0 + y1) / 2.0])


def validate_image(image: np.ndarray) -> np.ndarray:
    """Check an RGB image: uint8 [H, W, 3]."""
    if not isinstance(image, np.ndarray):
        raise InputError(f"image must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise InputError(f"image must be uint8 RGB, got dtype {image.dtype}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise InputError(f"image must have shape [H, W, 3] (RGB), got {image.shape}")
    if image.shape[0] < 2 or image.shape[1] < 2:
        raise InputError(f"image is too small: {image.shape[1]}x{image.shape[0]}")
    return image


def binarize_mask(mask: np.ndarray, threshold: int = 127) -> np.ndarray:
    """Validate a segmentation mask and return it as bool [H, W].

    Accepted: bool; uint8 with values 0/255 (object = value > ``threshold``) or 0/1;
    float in [0, 1] (object = value > 0.5). A mask is binary if at most
    :data:`MASK_BINARY_TOLERANCE` of its pixels lie strictly between its two levels
    (anti-aliased edges); anything else is most likely a probability map or a label
    image and is rejected rather than guessed at.
    """
    if not isinstance(mask, np.ndarray):
        raise InputError(f"mask must be a numpy array, got {type(mask).__name__}")
    if mask.ndim == 3 and mask.shape[2] == 1:
        mask = mask[..., 0]
    if mask.ndim != 2:
        raise InputError(f"mask must be single-channel [H, W], got shape {mask.shape}")
    if mask.dtype == bool:
        return mask
    if mask.dtype == np.uint8:
        high = 1 if mask.max() <= 1 else 255
        cut = 0.5 if high == 1 else threshold
        between = np.count_nonzero((mask > 0) & (mask < high))
    elif mask.dtype in (np.float32, np.float64):
        if not np.all(np.isfinite(mask)) or mask.min() < 0.0 or mask.max() > 1.0:
            raise InputError("float mask must have values in [0, 1]")
        cut = 0.5
        between = np.count_nonzero((mask > 0.0) & (mask < 1.0))
    else:
        raise InputError(f"mask dtype {mask.dtype} not supported: use bool, uint8 (0/255) or float in [0, 1]")
    fraction = between / mask.size
    if fraction > MASK_BINARY_TOLERANCE:
        raise InputError(
            f"mask is not binary: {100 * fraction:.1f} % of pixels are between its levels "
            f"(at most {100 * MASK_BINARY_TOLERANCE:.0f} % allowed); threshold it first "
            f"(uint8 values > {threshold} are the object)"
        )
    return mask > cut


def preprocess(image: np.ndarray, mask: np.ndarray, cfg: PreprocessConfig | None = None) -> Preprocessed:
    """Crop, recentre and resize an object for Zero123 (One-2-3-45's rule).

    Args:
        image: uint8 [H, W, 3] RGB.
        mask: [H, W] segmentation of the object (see :func:`binarize_mask`).
        cfg: fill ratio, output size, mask threshold.

    Raises:
        InputError: wrong dtype or channel count, image/mask size mismatch, a
            non-binary or empty mask.
    """
    cfg = cfg or PreprocessConfig()
    image = validate_image(image)
    obj = binarize_mask(mask, cfg.mask_threshold)
    if obj.shape != image.shape[:2]:
        raise InputError(f"image is {image.shape[1]}x{image.shape[0]} but mask is {obj.shape[1]}x{obj.shape[0]}")
    count = int(np.count_nonzero(obj))
    if count == 0:
        raise InputError("mask is empty: no object pixels")
    if count < MIN_MASK_PIXELS:
        raise InputError(f"mask has only {count} object pixels (at least {MIN_MASK_PIXELS} needed)")
    if not 0.1 <= cfg.fill_ratio <= 1.0:
        raise InputError(f"fill_ratio must be in [0.1, 1], got {cfg.fill_ratio}")

    ys, xs = np.nonzero(obj)
    x_min, x_max, y_min, y_max = int(xs.min()), int(xs.max()), int(ys.min()), int(ys.max())
    h, w = obj.shape
    touches = x_min == 0 or y_min == 0 or x_max == w - 1 or y_max == h - 1

    # Square around the bbox centre, in pixel-edge coordinates: the bbox spans
    # [x_min, x_max + 1) so its centre is (x_min + x_max + 1) / 2.
    side = max(x_max - x_min + 1, y_max - y_min + 1) / cfg.fill_ratio
    cx, cy = (x_min + x_max + 1) / 2.0, (y_min + y_max + 1) / 2.0
    crop = CropTransform(cx - side / 2.0, cy - side / 2.0, side, cfg.size)

    white = np.full_like(image, 255)
    composited = np.where(obj[..., None], image, white)
    out = _crop_resize(composited, crop, fill=255, resample=Image.LANCZOS)
    out_mask = _crop_resize(obj.astype(np.uint8) * 255, crop, fill=0, resample=Image.BILINEAR) > 127
    # Lanczos rings slightly around edges; keep the background exactly white.
    out = np.where(out_mask[..., None], out, 255).astype(np.uint8)
    return Preprocessed(out, out_mask, crop, (x_min, y_min, x_max, y_max), touches, obj)


def _crop_resize(array: np.ndarray, crop: CropTransform, fill: int, resample) -> np.ndarray:
    """Resample ``crop`` of ``array`` to out_size x out_size, padding with ``fill``.

    ``Image.resize`` with a ``box`` resamples a sub-pixel box directly (Lanczos
    included, which ``Image.transform`` does not offer), so the fractional crop
    origin is honoured; the box must lie inside the image, hence the padding.
    """
    h, w = array.shape[:2]
    pad_left = max(0, int(np.ceil(-crop.x0)))
    pad_top = max(0, int(np.ceil(-crop.y0)))
    pad_right = max(0, int(np.ceil(crop.x0 + crop.side - w)))
    pad_bottom = max(0, int(np.ceil(crop.y0 + crop.side - h)))
    pad = [(pad_top, pad_bottom), (pad_left, pad_right)] + [(0, 0)] * (array.ndim - 2)
    padded = np.pad(array, pad, constant_values=fill)
    x0, y0 = crop.x0 + pad_left, crop.y0 + pad_top
    box = (x0, y0, x0 + crop.side, y0 + crop.side)
    out = Image.fromarray(padded).resize((crop.out_size, crop.out_size), resample=resample, box=box)
    return np.asarray(out)
