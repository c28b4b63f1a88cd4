"""Input messages -> the pipeline's arrays, with the checks that keep bad messages out (ROS-free).

Two levels, so the image callbacks stay cheap:
- :func:`check_messages` (every synchronised pair): encodings, sizes, data lengths;
- :func:`frames_from_messages` (once per request): the pixel conversion, the empty-mask
  check and undistortion.
:class:`LatestPair` keeps the newest pair and refuses stale ones.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import images
from .images import BadMessage

_OBJECT_ID = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
DEFAULT_OBJECT_ID = "object"


@dataclass
class InputMessages:
    """One synchronised set of input messages (depth and camera_info optional)."""

    image: Any
    mask: Any
    depth: Any = None
    camera_info: Any = None

    @property
    def stamp_ns(self) -> int:
        return header_stamp_ns(self.image)


@dataclass
class FrameSet:
    """Arrays ready for the pipeline (``ReconstructionInputs`` fields) plus the stamp."""

    image: np.ndarray  # (H, W, 3) uint8 RGB
    mask: np.ndarray  # (H, W) uint8, non-zero = object
    depth: np.ndarray | None  # (H, W) float32 metres, NaN = invalid
    K: np.ndarray | None  # (3, 3) float64, distortion already undone
    frame_id: str
    stamp_ns: int
    object_id: str
    notes: list[str] = field(default_factory=list)
    gravity_c2w: np.ndarray | None = None  # (4, 4) camera pose in a z-up frame, from TF

    def pipeline_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``one2345_ros.pipeline.ReconstructionInputs``."""
        return {"image": self.image, "mask": self.mask, "depth": self.depth, "K": self.K,
                "frame_id": self.frame_id, "gravity_c2w": self.gravity_c2w, "object_id": self.object_id}  # fmt: skip


def header_stamp_ns(msg) -> int:
    stamp = msg.header.stamp
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def object_id_or_default(object_id: str) -> str:
    """Validated object id (it names a TF frame and files); empty -> 'object'."""
    if not object_id:
        return DEFAULT_OBJECT_ID
    if not _OBJECT_ID.match(object_id):
        raise BadMessage(f"object_id {object_id!r}: use 1-64 letters, digits, '_' or '-' (it names a TF frame and files)")
    return object_id


def has_image(msg) -> bool:
    """Requests leave optional images empty: width 0 means 'not given'."""
    return msg is not None and int(msg.width) > 0


def has_calibration(msg) -> bool:
    return msg is not None and bool(np.any(np.asarray(msg.k, dtype=np.float64)))


def check_messages(msgs: InputMessages, min_mask_pixels: int = 0) -> None:
    """Cheap checks without converting pixels; raises BadMessage with the reason.

    With ``min_mask_pixels`` > 0 an (almost) empty mask is rejected too (one count_nonzero).
    """
    img, mask = msgs.image, msgs.mask
    if img.encoding not in images.COLOR_ENCODINGS:
        raise BadMessage(f"image: encoding '{img.encoding}' not supported; use one of {', '.join(images.COLOR_ENCODINGS)}")
    if mask.encoding not in images.MASK_ENCODINGS:
        raise BadMessage(f"mask: encoding '{mask.encoding}' not supported; use one of {', '.join(images.MASK_ENCODINGS)}")
    for what, msg in (("image", img), ("mask", mask), ("depth", msgs.depth)):
        if msg is None:
            continue
        if msg is msgs.depth and msg.encoding not in images.DEPTH_ENCODINGS:
            raise BadMessage(f"depth: encoding '{msg.encoding}' not supported; use one of {', '.join(images.DEPTH_ENCODINGS)}")
        if int(msg.width) == 0 or int(msg.height) == 0:
            raise BadMessage(f"{what}: empty image ({msg.width}x{msg.height})")
        dtype, channels = images.ENCODINGS[msg.encoding]
        min_step = int(msg.width) * channels * np.dtype(dtype).itemsize
        if int(msg.step) < min_step or len(msg.data) < int(msg.step) * int(msg.height):
            raise BadMessage(f"{what}: {len(msg.data)} data bytes with step {msg.step} do not hold "
                             f"{msg.width}x{msg.height} {msg.encoding} pixels")  # fmt: skip
        if (msg.width, msg.height) != (img.width, img.height):
            raise BadMessage(f"{what}: size {msg.width}x{msg.height} differs from the image's {img.width}x{img.height}")
    if min_mask_pixels > 0:
        count = int(np.count_nonzero(images.image_array(mask, "mask")))
        if count < min_mask_pixels:
            raise BadMessage(f"mask: {count} object pixels, fewer than ros.min_mask_pixels = {min_mask_pixels} (empty mask?)")
    info = msgs.camera_info
    if info is not None and has_calibration(info) and (info.width, info.height) not in ((0, 0), (img.width, img.height)):
        raise BadMessage(f"camera_info: calibrated for {info.width}x{info.height}, image is {img.width}x{img.height}")


def frames_from_messages(msgs: InputMessages, object_id: str, *, depth_scale: float = 0.0, min_mask_pixels: int = 1,
                         mask_threshold: int = 127) -> FrameSet:  # fmt: skip
    """Convert a checked message set into pipeline arrays; raises BadMessage."""
    check_messages(msgs)
    object_id = object_id_or_default(object_id)
    image = images.to_rgb(msgs.image)
    mask = images.to_mask(msgs.mask)
    # Masks are 0/255 (or labels 0/1): count pixels above the pipeline's threshold, or
    # non-zero pixels for 0/1 masks.
    on = mask > (mask_threshold if mask.max() > 1 else 0)
    count = int(on.sum())
    if count < max(1, min_mask_pixels):
        raise BadMessage(f"mask: {count} object pixels, fewer than ros.min_mask_pixels = {min_mask_pixels} (empty mask?)")
    mask = np.where(on, np.uint8(255), np.uint8(0))  # binary 0/255, as the pipeline's threshold expects
    depth = images.to_depth_m(msgs.depth, depth_scale) if msgs.depth is not None else None
    if depth is not None and not np.any(np.isfinite(depth[on])):
        raise BadMessage("depth: no valid depth inside the mask")
    K = None
    notes = []
    if msgs.camera_info is not None:
        calib = images.calibration(msgs.camera_info)
        if calib is not None:
            K = calib.K
            if calib.distorted:
                image, mask, depth = images.undistort(calib, image, mask, depth)
                notes.append(f"undistorted ({calib.model})")
    return FrameSet(image=image, mask=mask, depth=depth, K=K, frame_id=msgs.image.header.frame_id,
                    stamp_ns=msgs.stamp_ns, object_id=object_id, notes=notes)  # fmt: skip


class LatestPair:
    """The newest synchronised input set; thread-safe (filled by callbacks, read by requests)."""

    def __init__(self, min_mask_pixels: int = 0):
        self.min_mask_pixels = min_mask_pixels
        self._lock = threading.Lock()
        self._msgs: InputMessages | None = None

    def offer(self, msgs: InputMessages) -> None:
        """Keep ``msgs`` as the latest set, or raise BadMessage (bad content, empty mask, older than held).

        A rejected set leaves the held one in place (``max_input_age_s`` bounds how old it may get).
        """
        check_messages(msgs, self.min_mask_pixels)
        with self._lock:
            if self._msgs is not None and msgs.stamp_ns < self._msgs.stamp_ns:
                held = self._msgs.stamp_ns
                raise BadMessage(f"stale pair: stamp {msgs.stamp_ns * 1e-9:.3f} s is older than the held pair's "
                                 f"{held * 1e-9:.3f} s (clock jump or replayed bag? call reset)")  # fmt: skip
            self._msgs = msgs

    def reset(self) -> None:
        with self._lock:
            self._msgs = None

    def take(self, now_ns: int, max_age_s: float = 0.0) -> InputMessages:
        """The latest set; raises BadMessage when there is none or it is older than ``max_age_s``."""
        with self._lock:
            msgs = self._msgs
        if msgs is None:
            raise BadMessage("no synchronised image/mask pair received yet (check the topics, QoS and ros.sync_slop_s)")
        age = (now_ns - msgs.stamp_ns) * 1e-9
        if max_age_s > 0 and age > max_age_s:
            raise BadMessage(f"latest pair is {age:.1f} s old, more than ros.max_input_age_s = {max_age_s} s")
        return msgs
