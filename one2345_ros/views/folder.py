"""Views folders (DESIGN.md contract): read and write posed views.

A views folder holds ``views.json`` and image files::

    {"convention": "opencv", "reference": 0, "near_far": [0.5, 1.8],
     "bbox": [[-0.6, -0.6, -0.6], [0.6, 0.6, 0.6]],
     "images": [{"file": "view_00.png", "K": [[...]], "c2w": [[...]], "mask": "mask_00.png"}]}

``near_far``, ``bbox`` and ``mask`` are optional; extra keys are ignored. The
readers also take a One-2-3-45 output folder (``stage1_8/0.png``, ``stage2_8/*.png``
and ``pose.json`` with OpenGL c2ws keyed by file name).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..geometry import cameras as cam
from ..inputs.files import read_mask, read_rgb
from ..results.atomic import safe_child, write_image_atomic, write_json_atomic
from ..types import InputError, ViewSet

VIEWS_JSON = "views.json"
ONE2345_POSE_JSON = "pose.json"


def write_views_folder(folder: str | os.PathLike, views: ViewSet, sources: list[int] | None = None) -> Path:
    """Write ``views`` as a views folder (images, masks, views.json).

    ``sources``: indices of the views a reconstruction uses (the plan's 32 stage-2 views of 40),
    recorded as ``"sources"`` so that ``reconstruct-views`` rebuilds from exactly those.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for i, name in enumerate(views.names):
        stem = f"view_{i:02d}_{name}"
        entry = {"file": f"{stem}.png", "K": views.K[i], "c2w": views.c2w[i]}
        write_image_atomic(folder / entry["file"], views.images[i])
        if views.masks is not None:
            entry["mask"] = f"{stem}_mask.png"
            write_image_atomic(folder / entry["mask"], views.masks[i].astype(np.uint8) * 255)
        entries.append(entry)
    doc = {"convention": "opencv", "reference": views.reference, "images": entries}
    if sources is not None:
        doc["sources"] = [int(i) for i in sources]
    if views.near_far is not None:
        doc["near_far"] = list(views.near_far)
    if views.bbox is not None:
        doc["bbox"] = views.bbox
    write_json_atomic(folder / VIEWS_JSON, doc)
    return folder


def read_views_folder(folder: str | os.PathLike, sources_only: bool = True) -> ViewSet:
    """Read a views folder, or a One-2-3-45 output folder (``pose.json``).

    With ``sources_only`` a folder that lists ``"sources"`` gives only those views (in the reference
    view's frame, which is kept even when the reference view is not a source).
    """
    folder = Path(folder)
    if (folder / VIEWS_JSON).is_file():
        views = _read_views_json(folder)
        sources = _load_json(folder / VIEWS_JSON).get("sources")
        if sources_only and sources is not None:
            if not isinstance(sources, list) or not all(isinstance(i, int) and 0 <= i < len(views.names) for i in sources):
                raise InputError(f"{folder / VIEWS_JSON}: 'sources' must list view indices (0..{len(views.names) - 1})")
            views = views.select(sources)
        return views
    if (folder / ONE2345_POSE_JSON).is_file():
        return _read_one2345_folder(folder)
    raise InputError(f"{folder}: no {VIEWS_JSON} or One-2-3-45 {ONE2345_POSE_JSON} found")


def _load_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON: {exc}") from exc


def _matrix(value, shape, where: str) -> np.ndarray:
    try:
        m = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{where}: not a numeric matrix") from exc
    if m.shape != shape or not np.all(np.isfinite(m)):
        raise InputError(f"{where}: expected a finite {shape[0]}x{shape[1]} matrix, got shape {m.shape}")
    return m


def _read_views_json(folder: Path) -> ViewSet:
    doc = _load_json(folder / VIEWS_JSON)
    where = folder / VIEWS_JSON
    if doc.get("convention", "opencv") != "opencv":
        raise InputError(f"{where}: convention {doc.get('convention')!r} is not supported (only 'opencv')")
    entries = doc.get("images")
    if not isinstance(entries, list) or not entries:
        raise InputError(f"{where}: 'images' must be a non-empty list")
    images, masks, Ks, c2ws, names = [], [], [], [], []
    has_masks = all("mask" in e for e in entries)
    for i, e in enumerate(entries):
        if "file" not in e or "K" not in e or "c2w" not in e:
            raise InputError(f"{where}: images[{i}] needs 'file', 'K' and 'c2w'")
        img = read_rgb(safe_child(folder, e["file"]))
        if images and img.shape != images[0].shape:
            raise InputError(f"{where}: {e['file']} is {img.shape[:2]}, other views are {images[0].shape[:2]}")
        images.append(img)
        Ks.append(_matrix(e["K"], (3, 3), f"{where}: images[{i}].K"))
        c2ws.append(_matrix(e["c2w"], (4, 4), f"{where}: images[{i}].c2w"))
        names.append(Path(e["file"]).stem)
        if has_masks:
            m = read_mask(safe_child(folder, e["mask"]))
            if m.shape != img.shape[:2]:
                raise InputError(f"{where}: mask {e['mask']} is {m.shape}, image is {img.shape[:2]}")
            masks.append(m > 0)
    reference = int(doc.get("reference", 0))
    if not 0 <= reference < len(images):
        raise InputError(f"{where}: reference {reference} is not a view index (0..{len(images) - 1})")
    near_far = tuple(float(x) for x in doc["near_far"]) if "near_far" in doc else None
    bbox = _matrix(doc["bbox"], (2, 3), f"{where}: bbox") if "bbox" in doc else None
    return ViewSet(
        images=np.stack(images),
        K=np.stack(Ks),
        c2w=np.stack(c2ws),
        names=names,
        masks=np.stack(masks) if has_masks else None,
        reference=reference,
        near_far=near_far,
        bbox=bbox,
    )


def _read_one2345_folder(folder: Path) -> ViewSet:
    """One-2-3-45 output: the 32 stage-2 images are the sources; stage1_8/0.png is the frame."""
    doc = _load_json(folder / ONE2345_POSE_JSON)
    where = folder / ONE2345_POSE_JSON
    K = _matrix(doc.get("intrinsics"), (3, 3), f"{where}: intrinsics")
    c2ws_gl = doc.get("c2ws")
    if not isinstance(c2ws_gl, dict) or "0.png" not in c2ws_gl:
        raise InputError(f"{where}: 'c2ws' must map file names (including 0.png) to 4x4 OpenGL c2w")
    stage2 = sorted((n for n in c2ws_gl if "_" in n), key=lambda n: tuple(int(x) for x in Path(n).stem.split("_")))
    if not stage2:
        raise InputError(f"{where}: no stage-2 views (i_j.png) listed")
    images = np.stack([read_rgb(folder / "stage2_8" / n) for n in stage2])
    c2w = cam.opengl_to_opencv(np.stack([_matrix(c2ws_gl[n], (4, 4), f"{where}: {n}") for n in stage2]))
    ref = cam.opengl_to_opencv(_matrix(c2ws_gl["0.png"], (4, 4), f"{where}: 0.png"))
    near_far = tuple(float(x) for x in doc.get("near_far", cam.ONE2345_NEAR_FAR))
    return ViewSet(
        images=images,
        K=np.broadcast_to(K, (len(stage2), 3, 3)).copy(),
        c2w=c2w,
        names=[Path(n).stem for n in stage2],
        near_far=near_far,
        reference_c2w=ref,
    )
