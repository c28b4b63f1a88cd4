"""sensor_msgs/Image and CameraInfo <-> numpy, shared by the node and the ``bag`` command.

Works on rclpy and rosbags messages alike (both expose ``height``, ``width``, ``encoding``,
``is_bigendian``, ``step`` and a buffer ``data``). One conversion path for both keeps the
node and offline runs identical; the ``ros`` tests check it against cv_bridge. Only the
pixel layout is handled here: what a mask, a depth or a K means is inputs/prepare.py's.
Every rejection raises :class:`BadMessage` with a reason naming the message and the fault.
"""

from __future__ import annotations

import numpy as np

from ..inputs.calibration import Calibration, make_calibration
from ..types import InputError
from .factory import MessageFactory


class BadMessage(InputError):
    """An input message cannot be used; the text says which one and why."""


# encoding -> (numpy dtype, channels)
ENCODINGS = {
    "rgb8": (np.uint8, 3), "bgr8": (np.uint8, 3), "rgba8": (np.uint8, 4), "bgra8": (np.uint8, 4),
    "mono8": (np.uint8, 1), "8UC1": (np.uint8, 1), "8UC3": (np.uint8, 3),
    "mono16": (np.uint16, 1), "16UC1": (np.uint16, 1), "32FC1": (np.float32, 1), "32SC1": (np.int32, 1),
}  # fmt: skip
COLOR_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8", "8UC3")
MASK_ENCODINGS = ("mono8", "8UC1")
DEPTH_ENCODINGS = ("16UC1", "mono16", "32FC1")
LABEL_ENCODINGS = ("mono8", "8UC1", "16UC1", "mono16", "32SC1")
"""Label images: one integer instance id per pixel, 0 = background (inputs.prepare.split_labels)."""


def image_array(msg, what: str = "image", allowed: tuple[str, ...] | None = None) -> np.ndarray:
    """The pixels of an Image message as (H, W) or (H, W, C), in the message's own encoding.

    Honours row padding (``step``) and ``is_bigendian``. The array may share memory with
    the message.
    """
    encoding = msg.encoding
    if allowed is not None and encoding not in allowed:
        raise BadMessage(f"{what}: encoding '{encoding}' not supported here; use one of {', '.join(allowed)}")
    if encoding not in ENCODINGS:
        raise BadMessage(f"{what}: unknown encoding '{encoding}'; supported: {', '.join(ENCODINGS)}")
    dtype, channels = ENCODINGS[encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height == 0 or width == 0:
        raise BadMessage(f"{what}: empty image ({width}x{height})")
    itemsize = np.dtype(dtype).itemsize
    row_bytes = width * channels * itemsize
    if step < row_bytes:
        raise BadMessage(f"{what}: step {step} is smaller than width*channels*bytes = {row_bytes}")
    data = np.frombuffer(msg.data, dtype=np.uint8)
    if data.size < step * height:
        raise BadMessage(f"{what}: {data.size} data bytes, expected step*height = {step * height}")
    rows = data[: step * height].reshape(height, step)[:, :row_bytes]
    byteorder = ">" if msg.is_bigendian else "<"
    pixels = np.ascontiguousarray(rows).view(np.dtype(dtype).newbyteorder(byteorder) if itemsize > 1 else dtype)
    pixels = pixels.reshape(height, width, channels) if channels > 1 else pixels.reshape(height, width)
    return pixels.astype(np.dtype(dtype).newbyteorder("="), copy=False)


def to_rgb(msg, what: str = "image") -> np.ndarray:
    """uint8 (H, W, 3) RGB from rgb8, bgr8, rgba8, bgra8, mono8 or 8UC3 (taken as bgr8, as OpenCV does)."""
    px = image_array(msg, what, COLOR_ENCODINGS)
    enc = msg.encoding
    if enc == "rgb8":
        out = px
    elif enc in ("bgr8", "8UC3"):
        out = px[..., ::-1]
    elif enc == "rgba8":
        out = px[..., :3]
    elif enc == "bgra8":
        out = px[..., 2::-1]
    else:
        out = np.repeat(px[..., None], 3, axis=2)
    return np.ascontiguousarray(out)


def to_mask(msg, what: str = "mask") -> np.ndarray:
    """The mask's pixels as stored (uint8 (H, W)); prepare_inputs binarises them."""
    return np.ascontiguousarray(image_array(msg, what, MASK_ENCODINGS))


def to_labels(msg, what: str = "labels") -> np.ndarray:
    """The instance ids as stored (uint8, uint16 or int32 (H, W)); inputs.prepare.split_labels splits them."""
    return np.ascontiguousarray(image_array(msg, what, LABEL_ENCODINGS))


def to_depth(msg, what: str = "depth") -> tuple[np.ndarray, str]:
    """The depth pixels as stored and their encoding (prepare_inputs converts them to metres)."""
    return np.ascontiguousarray(image_array(msg, what, DEPTH_ENCODINGS)), msg.encoding


def calibration(msg, what: str = "camera_info") -> Calibration | None:
    """Calibration from a CameraInfo message; None when ``k`` is all zero (no calibration)."""
    k = np.asarray(msg.k, dtype=np.float64).reshape(-1)
    if k.size != 9:
        raise BadMessage(f"{what}: k has {k.size} values, expected 9")
    if not np.any(k):
        return None
    return make_calibration(k, msg.d, msg.distortion_model, int(msg.width), int(msg.height), what)


def image_message(f: MessageFactory, header, pixels: np.ndarray, encoding: str):
    """sensor_msgs/Image of an array in ``encoding`` (little-endian, no row padding)."""
    dtype, channels = ENCODINGS[encoding]
    pixels = np.ascontiguousarray(pixels, dtype=np.dtype(dtype).newbyteorder("<"))
    height, width = pixels.shape[:2]
    expected = (height, width, channels) if channels > 1 else (height, width)
    if pixels.shape != expected:
        raise ValueError(f"array of shape {pixels.shape} does not match encoding {encoding}")
    step = width * channels * pixels.itemsize
    return f.make("sensor_msgs/msg/Image", header=header, height=height, width=width, encoding=encoding,
                  is_bigendian=False, step=step, data=f.seq(pixels.view(np.uint8).reshape(-1)))  # fmt: skip
