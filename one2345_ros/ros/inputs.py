"""Input messages -> :class:`ReconstructionInputs`, through the one input policy (ROS-free).

Two levels, so the image callbacks stay cheap:
- :func:`check_messages` (every synchronised pair): encodings, sizes, data lengths, and
  optionally the mask's object pixels by the policy's own rule;
- :func:`inputs_from_messages` (once per request): pixels out of the messages, then
  inputs.prepare.prepare_inputs, the same function the CLI's files go through;
  :func:`objects_from_messages` for a label image (one object per instance id):
  inputs.prepare.split_labels and prepare_objects, as ``one2345 reconstruct --labels``.
:class:`LatestPair` keeps the newest pair and refuses stale ones.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..config import InputConfig
from ..inputs.prepare import binarize_mask, object_id_for_label, prepare_inputs, prepare_objects, split_labels
from ..types import ReconstructionInputs
from . import images
from .images import BadMessage


@dataclass
class InputMessages:
    """One synchronised set of input messages: the image with a mask or a label image (``labels``,
    instance ids, 0 = background; then ``mask`` is None), depth and camera_info optional."""

    image: Any
    mask: Any
    depth: Any = None
    camera_info: Any = None
    labels: Any = None

    @property
    def stamp_ns(self) -> int:
        return header_stamp_ns(self.image)


def header_stamp_ns(msg) -> int:
    stamp = msg.header.stamp
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def has_image(msg) -> bool:
    """Requests leave optional images empty: width 0 means 'not given'."""
    return msg is not None and int(msg.width) > 0


def has_calibration(msg) -> bool:
    return msg is not None and bool(np.any(np.asarray(msg.k, dtype=np.float64)))


def check_messages(msgs: InputMessages, inputs: InputConfig | None = None) -> None:
    """Cheap checks without converting pixels; raises BadMessage with the reason.

    With ``inputs``, an (almost) empty mask is rejected too, counted by the input policy's rule.
    """
    img, mask, labels = msgs.image, msgs.mask, msgs.labels
    if img.encoding not in images.COLOR_ENCODINGS:
        raise BadMessage(f"image: encoding '{img.encoding}' not supported; "
                         f"use one of {', '.join(images.COLOR_ENCODINGS)}")  # fmt: skip
    if labels is not None:
        if labels.encoding not in images.LABEL_ENCODINGS:
            raise BadMessage(f"labels: encoding '{labels.encoding}' not supported; use one of "
                             f"{', '.join(images.LABEL_ENCODINGS)}")  # fmt: skip
    elif mask is None:
        raise BadMessage("neither a mask nor a label image")
    elif mask.encoding not in images.MASK_ENCODINGS:
        raise BadMessage(f"mask: encoding '{mask.encoding}' not supported; "
                         f"use one of {', '.join(images.MASK_ENCODINGS)}")  # fmt: skip
    for what, msg in (("image", img), ("mask", mask), ("labels", labels), ("depth", msgs.depth)):
        if msg is None:
            continue
        if msg is msgs.depth and msg.encoding not in images.DEPTH_ENCODINGS:
            raise BadMessage(f"depth: encoding '{msg.encoding}' not supported; "
                             f"use one of {', '.join(images.DEPTH_ENCODINGS)}")  # fmt: skip
        if int(msg.width) == 0 or int(msg.height) == 0:
            raise BadMessage(f"{what}: empty image ({msg.width}x{msg.height})")
        dtype, channels = images.ENCODINGS[msg.encoding]
        min_step = int(msg.width) * channels * np.dtype(dtype).itemsize
        if int(msg.step) < min_step or len(msg.data) < int(msg.step) * int(msg.height):
            raise BadMessage(f"{what}: {len(msg.data)} data bytes with step {msg.step} do not hold "
                             f"{msg.width}x{msg.height} {msg.encoding} pixels")  # fmt: skip
        if (msg.width, msg.height) != (img.width, img.height):
            raise BadMessage(f"{what}: size {msg.width}x{msg.height} differs from the image's {img.width}x{img.height}")
    if inputs is not None and labels is not None:
        count = int(np.count_nonzero(images.to_labels(labels)))
        if count < inputs.min_mask_pixels:
            raise BadMessage(f"labels: {count} labelled pixels, fewer than inputs.min_mask_pixels = "
                             f"{inputs.min_mask_pixels} (only background?)")  # fmt: skip
    elif inputs is not None:
        count = int(np.count_nonzero(binarize_mask(images.image_array(mask, "mask"), inputs.mask_threshold)[0]))
        if count < inputs.min_mask_pixels:
            raise BadMessage(f"mask: {count} object pixels, fewer than inputs.min_mask_pixels = "
                             f"{inputs.min_mask_pixels} (empty mask?)")  # fmt: skip
    info = msgs.camera_info
    if (info is not None and has_calibration(info)
            and (info.width, info.height) not in ((0, 0), (img.width, img.height))):  # fmt: skip
        raise BadMessage(f"camera_info: calibrated for {info.width}x{info.height}, image is {img.width}x{img.height}")


def inputs_from_messages(msgs: InputMessages, cfg: InputConfig, object_id: str = "",
                         gravity_c2w: np.ndarray | None = None) -> ReconstructionInputs:  # fmt: skip
    """Convert a message set with a single mask through the one input policy; raises BadMessage or InputError."""
    check_messages(msgs)
    if msgs.labels is not None:
        raise BadMessage("a label image holds several objects: use objects_from_messages")
    return prepare_inputs(images.to_rgb(msgs.image), images.to_mask(msgs.mask), cfg, object_id=object_id,
                          **_scene(msgs, gravity_c2w))  # fmt: skip


def _scene(msgs: InputMessages, gravity_c2w) -> dict:
    """inputs.prepare.prepare_scene's keywords from the messages."""
    depth, encoding = images.to_depth(msgs.depth) if msgs.depth is not None else (None, None)
    calibration = images.calibration(msgs.camera_info) if msgs.camera_info is not None else None
    return {"depth": depth, "depth_encoding": encoding, "calibration": calibration,
            "frame_id": msgs.image.header.frame_id, "stamp_ns": msgs.stamp_ns, "gravity_c2w": gravity_c2w}  # fmt: skip


def label_object_id(label: int, object_id: str = "") -> str:
    """Object id of instance ``label``: ``<object_id>_<label>``, or the CLI's ``object_<label>`` without one."""
    return object_id_for_label(label, f"{object_id}_" if object_id else "object_")


@dataclass
class PreparedObjects:
    """The objects of a label image: the usable ones prepared, the others with their reason."""

    prepared: list[ReconstructionInputs]
    refused: dict[str, str]
    labels: dict[str, int]
    """object id -> its instance id in the label image (prepared and refused)."""


def objects_from_messages(msgs: InputMessages, cfg: InputConfig, object_id: str = "",
                          gravity_c2w: np.ndarray | None = None,
                          label_ids: list[int] | None = None) -> PreparedObjects:  # fmt: skip
    """A label image's objects through the one input policy (split_labels, prepare_objects).

    The image, depth and calibration are checked once (BadMessage / InputError refuse the whole
    request); an object that cannot be used is refused by id with its reason. ``label_ids``:
    only these instance ids (None or empty: every id present).
    """
    check_messages(msgs)
    if msgs.labels is None:
        raise BadMessage("no label image")
    masks = split_labels(images.to_labels(msgs.labels), list(label_ids) if label_ids else None)
    ids = {label_object_id(label, object_id): label for label in masks}
    prepared, refused = prepare_objects(images.to_rgb(msgs.image), {oid: masks[label] for oid, label in ids.items()},
                                        cfg, **_scene(msgs, gravity_c2w))  # fmt: skip
    return PreparedObjects(prepared, refused, ids)


class LatestPair:
    """The newest synchronised input set; thread-safe (filled by callbacks, read by requests)."""

    def __init__(self, inputs: InputConfig | None = None):
        self.inputs = inputs
        self._lock = threading.Lock()
        self._msgs: InputMessages | None = None

    def offer(self, msgs: InputMessages) -> None:
        """Keep ``msgs`` as the latest set, or raise BadMessage (bad content, empty mask, older than held).

        A rejected set leaves the held one in place (``max_input_age_s`` bounds how old it may get).
        """
        check_messages(msgs, self.inputs)
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
