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
    source_mask: np.ndarray
    """bool [H, W] validated object mask in the original image."""

    @property
    def pixel_center(self) -> np.ndarray:
        """Centre of the mask bounding box in original-image pixels (u, v)."""
        x0, y0, x1, y1 = self.bbox
        return np.array([(x0 + x1) / 2.0, (y0 + y1) / 2.0])


def preprocess(image: np.ndarray, mask: np.ndarray, cfg: PreprocessConfig | None = None) -> Preprocessed:
    """Crop, recentre and resize an object for Zero123 (One-2-3-45's rule).

    Args:
        image: uint8 [H, W, 3] RGB.
        mask: bool [H, W], the object (as :func:`inputs.prepare.prepare_inputs` returns it).
        cfg: fill ratio and output size.
    """
    cfg = cfg or PreprocessConfig()
    obj = np.asarray(mask, dtype=bool)
    if image.shape[:2] != obj.shape or not obj.any():
        raise InputError(f"preprocess: image {image.shape} and mask {obj.shape} do not match or the mask is empty "
                         "(inputs go through inputs.prepare.prepare_inputs first)")  # fmt: skip

    ys, xs = np.nonzero(obj)
    x_min, x_max, y_min, y_max = int(xs.min()), int(xs.max()), int(ys.min()), int(ys.max())

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
    return Preprocessed(out, out_mask, crop, (x_min, y_min, x_max, y_max), obj)


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
