"""The one input policy: raw image, mask, depth and calibration -> :class:`ReconstructionInputs`.

The CLI (files), the node (messages) and ``bag`` (recorded messages) each turn their input
into arrays and call :func:`prepare_inputs`, so a mask, a depth image or a K is accepted or
refused, converted and warned about in exactly one way:

* image: uint8 (H, W, 3) RGB.
* mask: bool; uint8 (> ``inputs.mask_threshold``, or > 0 when the mask is 0/1); float in
  [0, 1] (> 0.5). A soft mask (many pixels between its levels) is thresholded with a
  warning. Integer masks with several ids are label images: one object per request here.
* depth: converted to float32 metres by :func:`depth_to_metres`; no reading = NaN.
* calibration: checked against the image size; lens distortion is undone here, before any
  other stage sees the image.
* sanity warnings (not errors): several mask components (``inputs.keep_largest_component``
  keeps only the largest), the object touching the image border, a mask covering most of
  the image.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import cv2
import numpy as np

from ..config import InputConfig
from ..types import MASK_BINARY_TOLERANCE, InputError, ReconstructionInputs
from .calibration import Calibration, remap, undistortion_maps

DEPTH_ENCODINGS = {"16UC1": 1000.0, "mono16": 1000.0, "32FC1": 1.0}
"""Depth encodings and their default divisor to metres (REP-118: 16UC1 millimetres, 32FC1 metres)."""

MIN_DEPTH_PIXELS = 50
"""Fewer object pixels with a depth reading than this: depth cannot give the scale."""

LARGE_MASK_FRACTION = 0.6
"""A mask covering more of the image than this is probably not one segmented object."""

MINOR_COMPONENT_FRACTION = 0.02
"""Mask components smaller than this fraction of the largest are specks, not separate objects."""

OBJECT_ID = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
DEFAULT_OBJECT_ID = "object"


def object_id_or_default(object_id: str) -> str:
    """Validated object id (it names a TF frame and files); empty -> 'object'."""
    if not object_id:
        return DEFAULT_OBJECT_ID
    if not OBJECT_ID.match(object_id):
        raise InputError(f"object_id {object_id!r}: use 1-64 letters, digits, '_' or '-' (it names a TF frame and files)")
    return object_id


def check_image(image) -> np.ndarray:
    """An RGB image: uint8 (H, W, 3), at least 2x2."""
    if not isinstance(image, np.ndarray):
        raise InputError(f"image must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise InputError(f"image must be uint8 RGB, got dtype {image.dtype}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise InputError(f"image must have shape [H, W, 3] (RGB), got {image.shape}")
    if image.shape[0] < 2 or image.shape[1] < 2:
        raise InputError(f"image is too small: {image.shape[1]}x{image.shape[0]}")
    return image


def binarize_mask(mask, threshold: int = 127) -> tuple[np.ndarray, list[str]]:
    """The object mask as bool (H, W) and warnings (soft mask). See the module docstring for the rule."""
    if not isinstance(mask, np.ndarray):
        raise InputError(f"mask must be a numpy array, got {type(mask).__name__}")
    if mask.ndim == 3 and mask.shape[2] == 1:
        mask = mask[..., 0]
    if mask.ndim != 2:
        raise InputError(f"mask must be single-channel [H, W], got shape {mask.shape}")
    if mask.dtype == bool:
        return mask.copy(), []
    if mask.dtype.kind == "f":
        if not np.all(np.isfinite(mask)) or mask.min() < 0.0 or mask.max() > 1.0:
            raise InputError("float mask must have values in [0, 1]")
        between = np.count_nonzero((mask > 0.0) & (mask < 1.0))
        cut, what = 0.5, "0.5"
    elif mask.dtype == np.uint8:
        high = 1 if mask.max() <= 1 else 255
        cut = 0 if high == 1 else threshold
        between = np.count_nonzero((mask > 0) & (mask < high))
        what = str(cut)
    elif mask.dtype.kind in "iu":
        ids = np.unique(mask[mask != 0])
        if len(ids) > 1:
            raise InputError(f"mask ({mask.dtype}) holds {len(ids)} different ids, so it is a label image: "
                             "give the mask of one object (e.g. labels == id)")  # fmt: skip
        return mask != 0, []
    else:
        raise InputError(f"mask dtype {mask.dtype} not supported: use bool, uint8 (0/255 or 0/1) or float in [0, 1]")
    warnings = []
    fraction = between / mask.size
    if fraction > MASK_BINARY_TOLERANCE:
        warnings.append(f"soft mask: {100 * fraction:.1f} % of its pixels lie between its levels; "
                        f"thresholded at > {what}")  # fmt: skip
    return mask > cut, warnings


def depth_to_metres(depth: np.ndarray, encoding: str | None = None, depth_scale: float = 0.0) -> np.ndarray:
    """Depth pixels -> float32 (H, W) metres; 0, negative and non-finite readings -> NaN.

    ``encoding``: '16UC1' / 'mono16' (uint16, millimetres) or '32FC1' (float32, metres);
    None takes float32 data as metres. ``depth_scale`` > 0 is the divisor to metres instead.
    """
    if not isinstance(depth, np.ndarray) or depth.ndim != 2:
        raise InputError(f"depth must be a [H, W] array, got {getattr(depth, 'shape', type(depth).__name__)}")
    if encoding is None:
        encoding = "32FC1" if depth.dtype == np.float32 else ("16UC1" if depth.dtype == np.uint16 else str(depth.dtype))
    if encoding not in DEPTH_ENCODINGS:
        raise InputError(f"depth encoding {encoding!r} not supported: use 16UC1 (mm), mono16 or 32FC1 (m)")
    want = np.float32 if encoding == "32FC1" else np.uint16
    if depth.dtype != want:
        raise InputError(f"depth encoding {encoding} needs {np.dtype(want).name} data, got {depth.dtype}")
    if depth_scale < 0 or not np.isfinite(depth_scale):
        raise InputError(f"depth_scale must be >= 0 (0 = by encoding), got {depth_scale}")
    divisor = depth_scale if depth_scale > 0 else DEPTH_ENCODINGS[encoding]
    with np.errstate(invalid="ignore"):
        metres = depth.astype(np.float32) / np.float32(divisor)
        metres[~np.isfinite(metres) | (metres <= 0)] = np.nan
    return metres


def sanity_warnings(mask: np.ndarray, keep_largest: bool) -> tuple[np.ndarray, list[str]]:
    """The mask (only its largest component when ``keep_largest``) and the warnings about it."""
    warnings = []
    h, w = mask.shape
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    areas = stats[1:, cv2.CC_STAT_AREA]
    if len(areas) > 1:
        largest = int(np.argmax(areas))
        major = np.sort(areas[areas >= MINOR_COMPONENT_FRACTION * areas[largest]])[::-1]
        if keep_largest:
            mask = labels == largest + 1
            warnings.append(f"mask had {len(areas)} separate parts; kept the largest ({int(areas[largest])} px), "
                            f"dropped {int(areas.sum() - areas[largest])} px (inputs.keep_largest_component)")  # fmt: skip
        elif len(major) > 1:
            warnings.append(f"mask has {len(major)} separate parts ({', '.join(str(int(a)) for a in major[:4])} px): "
                            "the method assumes one whole object; segment one object, or set "
                            "inputs.keep_largest_component to keep the largest part")  # fmt: skip
    ys, xs = np.nonzero(mask)
    if len(xs) and (xs.min() == 0 or ys.min() == 0 or xs.max() == w - 1 or ys.max() == h - 1):
        warnings.append("the object touches the image border, so it is probably cut off: the unseen part is "
                        "invented and the scale from its size is wrong")  # fmt: skip
    covered = float(np.count_nonzero(mask)) / mask.size
    if covered > LARGE_MASK_FRACTION:
        warnings.append(f"the mask covers {100 * covered:.0f} % of the image: is it one segmented object?")
    return mask, warnings


@dataclass
class Scene:
    """What every object of one image shares, checked and converted once: the image (distortion
    undone), depth in metres (NaN = no reading), K, the undistortion maps for the masks."""

    image: np.ndarray
    depth: np.ndarray | None
    K: np.ndarray | None
    maps: tuple[np.ndarray, np.ndarray] | None
    frame_id: str
    stamp_ns: int
    gravity_c2w: np.ndarray | None


def prepare_scene(
    image: np.ndarray,
    cfg: InputConfig | None = None,
    *,
    depth: np.ndarray | None = None,
    depth_encoding: str | None = None,
    calibration: Calibration | None = None,
    frame_id: str = "",
    stamp_ns: int = 0,
    gravity_c2w: np.ndarray | None = None,
) -> Scene:
    """The request's image, depth, calibration and gravity pose; raises InputError naming the fault."""
    cfg = cfg or InputConfig()
    image = check_image(image)
    size = f"{image.shape[1]}x{image.shape[0]}"
    metres = None
    if depth is not None:
        metres = depth_to_metres(depth, depth_encoding, cfg.depth_scale)
        if metres.shape != image.shape[:2]:
            raise InputError(f"depth is {metres.shape[1]}x{metres.shape[0]} but the image is {size}")
    K, maps = None, None
    if calibration is not None:
        if (calibration.width, calibration.height) not in ((0, 0), (image.shape[1], image.shape[0])):
            raise InputError(f"camera info is for {calibration.width}x{calibration.height} but the image is {size}")
        K = calibration.K
        if calibration.distorted:
            maps = undistortion_maps(calibration, image.shape[1], image.shape[0])
            image = remap(image, maps, "color")
            metres = None if metres is None else remap(metres, maps, "depth")
    if gravity_c2w is not None:
        gravity_c2w = np.asarray(gravity_c2w, dtype=np.float64)
        if gravity_c2w.shape != (4, 4) or not np.all(np.isfinite(gravity_c2w)):
            raise InputError(f"gravity pose must be a finite 4x4 matrix, got shape {gravity_c2w.shape}")
    return Scene(np.ascontiguousarray(image), metres, K, maps, frame_id, int(stamp_ns), gravity_c2w)


def prepare_object(scene: Scene, mask: np.ndarray, cfg: InputConfig | None = None, object_id: str = "") -> ReconstructionInputs:
    """One object's mask within ``scene``; raises InputError naming the fault (an empty or tiny mask,
    a size mismatch, no depth on the object)."""
    cfg = cfg or InputConfig()
    object_id = object_id_or_default(object_id)
    obj, warnings = binarize_mask(mask, cfg.mask_threshold)
    if obj.shape != scene.image.shape[:2]:
        raise InputError(f"mask is {obj.shape[1]}x{obj.shape[0]} but the image is "
                         f"{scene.image.shape[1]}x{scene.image.shape[0]}")  # fmt: skip
    if scene.maps is not None:
        obj = remap(obj.astype(np.uint8) * 255, scene.maps, "mask") > 127
    count = int(np.count_nonzero(obj))
    if count == 0:
        raise InputError("mask is empty: no object pixels")
    if count < cfg.min_mask_pixels:
        raise InputError(f"mask has only {count} object pixels, fewer than inputs.min_mask_pixels = "
                         f"{cfg.min_mask_pixels} (empty or wrong mask?)")  # fmt: skip
    obj, sanity = sanity_warnings(obj, cfg.keep_largest_component)
    warnings += sanity
    if scene.depth is not None:
        readings = int(np.count_nonzero(obj & np.isfinite(scene.depth)))
        if readings < MIN_DEPTH_PIXELS:
            raise InputError(f"depth: only {readings} object pixels have a valid reading (need {MIN_DEPTH_PIXELS}); "
                             "check the depth image, its encoding and inputs.depth_scale")  # fmt: skip
    return ReconstructionInputs(image=scene.image, mask=obj, depth=scene.depth, K=scene.K, frame_id=scene.frame_id,
                                stamp_ns=scene.stamp_ns, object_id=object_id, gravity_c2w=scene.gravity_c2w,
                                warnings=warnings)  # fmt: skip


def prepare_inputs(image: np.ndarray, mask: np.ndarray, cfg: InputConfig | None = None, *, object_id: str = "",
                   **scene) -> ReconstructionInputs:  # fmt: skip
    """Check and convert one request's arrays (see the module docstring); raises InputError.

    Args:
        image: uint8 (H, W, 3) RGB. mask: (H, W) bool, uint8, float or single-id integer.
        scene: :func:`prepare_scene`'s keywords: depth (raw, in depth_encoding, see
            :func:`depth_to_metres`), calibration (None: no metric output), frame_id, stamp_ns,
            gravity_c2w ((4, 4) OpenCV c2w of the camera in a z-up frame).
    """
    return prepare_object(prepare_scene(image, cfg, **scene), mask, cfg, object_id)


LABEL_DTYPES = ("uint8", "uint16", "int32", "uint32", "int64")
"""Label images: one integer id per object, 0 = background (mono8, 16UC1, 32SC1)."""


def split_labels(labels: np.ndarray, ids: list[int] | None = None) -> dict[int, np.ndarray]:
    """Instance ids of a label image -> one bool (H, W) mask each (0 is background), ids ascending.

    ``ids``: only these (an id that is absent gives an empty mask, refused later by name).
    """
    labels = np.asarray(labels)
    if labels.ndim == 3 and labels.shape[2] == 1:
        labels = labels[..., 0]
    if labels.ndim != 2 or labels.dtype.name not in LABEL_DTYPES:
        raise InputError(f"labels must be an integer image [H, W] ({', '.join(LABEL_DTYPES)}; 0 = background), "
                         f"got {labels.dtype} {labels.shape}")  # fmt: skip
    if labels.dtype.kind == "i" and labels.min() < 0:
        raise InputError(f"labels must not be negative (found {int(labels.min())}); 0 is the background")
    present = [int(i) for i in np.unique(labels) if i != 0]
    wanted = present if ids is None else [int(i) for i in ids]
    return {i: labels == i for i in wanted}


def object_id_for_label(label: int, prefix: str = "object_") -> str:
    """The object id of instance ``label`` of a label image (it names files and the TF frame)."""
    return f"{prefix}{int(label)}"


def prepare_objects(
    image: np.ndarray, masks: dict[str, np.ndarray], cfg: InputConfig | None = None, **scene
) -> tuple[list[ReconstructionInputs], dict[str, str]]:
    """Several objects of one image (``masks``: object id -> mask, e.g. from :func:`split_labels`).

    The image, depth and calibration are checked once (a fault there refuses the whole request);
    each mask on its own, so an object that cannot be used (empty, too small, no depth on it) is
    reported by id with its reason while the others come back. Returns (prepared, {id: reason}).
    """
    if not masks:
        raise InputError("no objects: the label image holds only background (0), or no mask was given")
    shared = prepare_scene(image, cfg, **scene)
    prepared, refused = [], {}
    for object_id, mask in masks.items():
        try:
            prepared.append(prepare_object(shared, mask, cfg, object_id))
        except InputError as exc:
            refused[object_id] = str(exc)
    return prepared, refused
