"""Input files -> arrays: images, masks (as stored), depth, JSON matrices."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from ..types import InputError

def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as uint8 [H, W, 3] RGB (alpha composited on white)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"image file not found: {path}")
    try:
        with Image.open(path) as im:
            if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
                rgba = np.asarray(im.convert("RGBA"), dtype=np.float64)
                alpha = rgba[..., 3:4] / 255.0
                return np.round(rgba[..., :3] * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
            return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
    except OSError as exc:
        raise InputError(f"cannot read image {path}: {exc}") from exc


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """Read a mask file as it is stored (uint8/uint16/bool [H, W]); preprocess validates it."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"mask file not found: {path}")
    try:
        with Image.open(path) as im:
            if im.mode in ("RGB", "RGBA", "P"):
                im = im.convert("L")
            return np.asarray(im).copy()
    except OSError as exc:
        raise InputError(f"cannot read mask {path}: {exc}") from exc
