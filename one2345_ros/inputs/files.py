"""Input files -> arrays: images, masks (as stored), depth, JSON matrices."""

from __future__ import annotations

import json
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
    """Read a mask file as it is stored (uint8/uint16/bool [H, W]); :mod:`prepare` binarises it."""
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


def read_depth(path: str | os.PathLike) -> tuple[np.ndarray, str]:
    """A depth file as stored and its encoding: a 16-bit PNG (``16UC1``, millimetres) or a
    ``.npy`` float32 [H, W] array (``32FC1``, metres). :func:`prepare.depth_to_metres` converts."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"depth file not found: {p}")
    if p.suffix.lower() == ".npy":
        depth = _load_npy(p)
        if depth.dtype != np.float32 or depth.ndim != 2:
            raise InputError(f"{p}: .npy depth must be float32 [H, W] in metres, got {depth.dtype} {depth.shape}")
        return depth, "32FC1"
    raw = read_mask(p)  # PIL keeps 16-bit PNGs as uint16 ("I;16")
    if raw.dtype != np.uint16:
        raise InputError(f"{p}: PNG depth must be 16-bit (millimetres), got {raw.dtype}; or pass a float32 .npy in metres")
    return raw, "16UC1"


def read_matrix(path: str | os.PathLike, shape: tuple[int, int], what: str, key: str | None = None) -> np.ndarray:
    """A finite float64 matrix from a JSON file: the bare nested list, or an object holding it under ``key``."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{what} file not found: {p}")
    try:
        data = json.loads(p.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {what} file {p}: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise InputError(f"{what} file {p} is not JSON: {exc}") from exc
    if isinstance(data, dict) and key is not None:
        data = data.get(key)
    try:
        matrix = np.asarray(data, dtype=np.float64)
    except (TypeError, ValueError):
        matrix = np.zeros(0)
    if matrix.shape != shape or not np.all(np.isfinite(matrix)):
        hint = f' (or {{"{key}": ...}})' if key else ""
        raise InputError(f"{what} file {p}: need a finite {shape[0]}x{shape[1]} JSON matrix{hint}, got shape {matrix.shape}")
    return matrix


def read_labels(path: str | os.PathLike) -> np.ndarray:
    """A label image as stored: an 8- or 16-bit PNG (mono8 / 16UC1) or an integer ``.npy`` (32SC1); 0 = background."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"label image not found: {p}")
    if p.suffix.lower() == ".npy":
        labels = _load_npy(p)
    else:
        try:
            with Image.open(p) as im:
                if im.mode not in ("L", "I;16", "I;16B", "I", "P"):
                    raise InputError(f"{p}: a label image must be single-channel 8 or 16 bit, got PIL mode {im.mode}")
                labels = np.asarray(im).copy()
        except OSError as exc:
            raise InputError(f"cannot read label image {p}: {exc}") from exc
    if labels.ndim != 2 or labels.dtype.kind not in "iu":
        raise InputError(f"{p}: labels must be an integer [H, W] image, got {labels.dtype} {labels.shape}")
    return labels


def _load_npy(path: Path) -> np.ndarray:
    """A ``.npy`` array, never unpickling objects."""
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable .npy array ({exc})") from exc
