"""Camera calibration: the pinhole K and distortion, from files or messages, and undistortion.

Files the CLI reads (``--camera-info``): the ROS camera calibration YAML
(camera_calibration_parsers: ``image_width``, ``image_height``, ``camera_matrix``,
``distortion_model``, ``distortion_coefficients``) or JSON
``{"width", "height", "K": 3x3, "D": [...]}``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from ..types import InputError

SUPPORTED_DISTORTION = ("plumb_bob", "rational_polynomial")


@dataclass(frozen=True)
class Calibration:
    """What the pipeline needs from sensor_msgs/CameraInfo."""

    K: np.ndarray  # (3, 3) float64
    D: np.ndarray  # (n,) float64 distortion coefficients
    model: str
    width: int
    height: int

    @property
    def distorted(self) -> bool:
        return bool(np.any(self.D != 0))


def check_K(K, where: str) -> np.ndarray:
    """K as float64 (3, 3), or InputError naming ``where``: the one intrinsics check."""
    try:
        K = np.asarray(K, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{where}: K is not a numeric 3x3 matrix") from exc
    if K.size == 9:
        K = K.reshape(3, 3)
    if K.shape != (3, 3) or not np.all(np.isfinite(K)) or K[0, 0] <= 0 or K[1, 1] <= 0 or K[2, 2] != 1.0:
        raise InputError(f"{where}: K is not a pinhole matrix (3x3, fx, fy > 0, K[2][2] = 1): {K.tolist()}")
    return K


def make_calibration(K, D, model: str, width: int, height: int, where: str) -> Calibration:
    """A checked :class:`Calibration` (files and CameraInfo messages both come through here)."""
    D = np.asarray(D if D is not None else [], dtype=np.float64).reshape(-1)
    model = model or "plumb_bob"
    if not np.all(np.isfinite(D)):
        raise InputError(f"{where}: distortion coefficients are not finite: {D.tolist()}")
    if np.any(D) and model not in SUPPORTED_DISTORTION:
        raise InputError(f"{where}: distortion model {model!r} not supported; rectify the image first "
                         f"(supported: {', '.join(SUPPORTED_DISTORTION)})")  # fmt: skip
    if int(width) < 0 or int(height) < 0:
        raise InputError(f"{where}: negative image size {width}x{height}")
    return Calibration(K=check_K(K, where), D=D, model=model, width=int(width), height=int(height))


def read_camera_info(path: str | Path) -> Calibration:
    """Calibration from a ROS calibration YAML or a JSON file (see module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"camera info file not found: {path}")
    try:
        doc = json.loads(path.read_text()) if path.suffix.lower() == ".json" else yaml.safe_load(path.read_text())
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise InputError(f"{path}: cannot parse camera info: {exc}") from exc
    if not isinstance(doc, dict):
        raise InputError(f"{path}: camera info must be a mapping")
    try:
        if "camera_matrix" in doc:
            K = doc["camera_matrix"]["data"]
            D = (doc.get("distortion_coefficients") or {}).get("data", [])
            model = doc.get("distortion_model") or "plumb_bob"
            width, height = int(doc["image_width"]), int(doc["image_height"])
        else:
            K, D = doc["K"], doc.get("D", [])
            model = doc.get("distortion_model", "plumb_bob")
            width, height = int(doc["width"]), int(doc["height"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: camera info lacks or misformats {exc}: need width, height, K (and D)") from exc
    return make_calibration(K, D, model, width, height, str(path))


def undistortion_maps(calib: Calibration, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """cv2.remap maps (x, y), float32 (H, W) each, that undo ``calib``'s distortion keeping K."""
    import cv2

    return cv2.initUndistortRectifyMap(calib.K, calib.D, None, calib.K, (width, height), cv2.CV_32FC1)


def remap(array: np.ndarray, maps, kind: str) -> np.ndarray:
    """One image through undistortion ``maps``: 'color' bilinear on white, 'mask' (uint8) nearest on 0,
    'depth' nearest on NaN, so that labels and depth edges are not blended."""
    import cv2

    interpolation, border = {"color": (cv2.INTER_LINEAR, (255, 255, 255)), "mask": (cv2.INTER_NEAREST, 0),
                             "depth": (cv2.INTER_NEAREST, np.nan)}[kind]  # fmt: skip
    return cv2.remap(array, maps[0], maps[1], interpolation, borderMode=cv2.BORDER_CONSTANT, borderValue=border)


def undistort(calib: Calibration, image: np.ndarray, mask: np.ndarray, depth: np.ndarray | None):
    """Undo lens distortion keeping K (DESIGN: distortion is undone before preprocessing).

    image uint8 (H, W, 3), mask uint8 (H, W), depth float32 (H, W) or None. Pixels the
    undistorted image does not cover become white, background and NaN.
    """
    h, w = mask.shape
    maps = undistortion_maps(calib, w, h)
    return remap(image, maps, "color"), remap(mask, maps, "mask"), None if depth is None else remap(depth, maps, "depth")
