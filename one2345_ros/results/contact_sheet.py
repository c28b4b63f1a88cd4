"""The one picture that tells whether a result is good (CLI ``views.png``, the node's ``~/views``).

Top row: the input image with the mask's outline, then the reconstructed mesh rendered from
three sides; a caption with the elevation (its source and confidence), the backend, the mesh
size, warnings, and, for synthetic scenes, the errors against the truth. Below: every
generated view, labelled with its plan name. :func:`tile_images` is the labelled grid.
"""

from __future__ import annotations

import contextlib

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

LABEL_HEIGHT = 14
"""Pixels of the white strip under each tile that holds its label (PIL's default bitmap font is ~11 px)."""
GAP = 2
"""White pixels between tiles."""


def tile_images(images: np.ndarray, labels: list[str], columns: int = 8) -> np.ndarray:
    """Tile ``images`` (N, H, W, 3) uint8 into rows of ``columns``, each with its label below.

    Returns uint8 (rows * (H + LABEL_HEIGHT + GAP) - GAP, columns' * (W + GAP) - GAP, 3)
    on white, where columns' = min(columns, N). Labels longer than the tile are clipped.
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"tile_images: images must be uint8 (N, H, W, 3), got {images.dtype} {images.shape}")
    n, h, w, _ = images.shape
    if n == 0:
        raise ValueError("tile_images: no images")
    if len(labels) != n:
        raise ValueError(f"tile_images: {n} images but {len(labels)} labels")
    if columns < 1:
        raise ValueError(f"tile_images: columns must be >= 1, got {columns}")
    cols = min(columns, n)
    rows = -(-n // cols)
    cell_h, cell_w = h + LABEL_HEIGHT + GAP, w + GAP
    sheet = Image.new("RGB", (cols * cell_w - GAP, rows * cell_h - GAP), (255, 255, 255))
    font = ImageFont.load_default()
    for i, (image, label) in enumerate(zip(images, labels)):
        x, y = (i % cols) * cell_w, (i // cols) * cell_h
        sheet.paste(Image.fromarray(image), (x, y))
        # Draw on a tile-sized strip so a long label cannot spill into the next tile.
        strip = Image.new("RGB", (w, LABEL_HEIGHT), (255, 255, 255))
        ImageDraw.Draw(strip).text((2, 1), str(label), fill=(0, 0, 0), font=font)
        sheet.paste(strip, (x, y + h))
    return np.asarray(sheet, dtype=np.uint8).copy()


TILE = 256
"""Side of every tile of the sheet (the generated views' size)."""
CAPTION_LINES = 4
MESH_VIEW_AZIMUTHS_DEG = (0.0, 120.0, 240.0)
"""The mesh is shown from the input's direction and from two sides 120 deg away."""
OUTLINE_RGB = (255, 0, 255)


def input_tile(image: np.ndarray, mask: np.ndarray | None, size: int = TILE) -> np.ndarray:
    """The input around the object (its mask's box, padded to a square of twice its side, or the
    whole image without a mask) in a ``size`` square on white, with the mask's outline drawn."""
    rgb = np.ascontiguousarray(image[..., :3], dtype=np.uint8)
    h, w = rgb.shape[:2]
    x0, y0, side = 0.0, 0.0, float(max(h, w))
    if mask is not None and np.any(mask):
        ys, xs = np.nonzero(mask)
        side = 2.0 * max(xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)
        x0, y0 = (xs.min() + xs.max() + 1 - side) / 2.0, (ys.min() + ys.max() + 1 - side) / 2.0
    # The crop as an affine map onto the tile (white outside the image), like preprocess's crop.
    A = np.array([[size / side, 0.0, -x0 * size / side], [0.0, size / side, -y0 * size / side]])
    tile = cv2.warpAffine(rgb, A, (size, size), flags=cv2.INTER_AREA, borderValue=(255, 255, 255))
    if mask is not None:
        small = cv2.warpAffine(np.asarray(mask, dtype=np.uint8) * 255, A, (size, size), flags=cv2.INTER_LINEAR)
        contours, _ = cv2.findContours((small > 127).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(tile, contours, -1, OUTLINE_RGB, 1)
    return tile


def mesh_tiles(mesh, canonical_to_frame: np.ndarray, polar_deg: float | None, size: int = TILE) -> list[np.ndarray]:
    """The mesh rendered (vertex colours, world-fixed light) from :data:`MESH_VIEW_AZIMUTHS_DEG` in the
    canonical frame, at the input's polar (90 when unknown), framed like the generated views."""
    from ..geometry import cameras as cam
    from ..geometry.render import Renderer

    canonical = mesh.copy()
    canonical.apply_transform(np.linalg.inv(np.asarray(canonical_to_frame, dtype=np.float64)))
    center = canonical.bounding_box.centroid
    radius = float(np.linalg.norm(canonical.extents)) / 2.0 or 1.0
    K = cam.view_intrinsics(size)
    # The views' camera sees half a side of 128 / 280 at unit distance: fit the bounding sphere in 80 % of it.
    distance = radius / (0.8 * (size / 2.0) / K[0, 0])
    polar = 90.0 if polar_deg is None else float(np.clip(polar_deg, 5.0, 175.0))
    renderer = Renderer(canonical)
    tiles = []
    for azimuth in MESH_VIEW_AZIMUTHS_DEG:
        c2w = cam.spherical_to_c2w(polar, azimuth, distance)
        c2w[:3, 3] += center
        tiles.append(renderer.render(K, c2w, size, size).rgb)
    return tiles


def caption(result) -> list[str]:
    """The sheet's text: what was reconstructed and how much to trust it."""
    lines = []
    if result.elevation_deg is not None:
        lines.append(f"elevation {result.elevation_deg:.1f} deg ({result.elevation_source}, confidence "
                     f"{result.confidence:.2f})  views: {result.view_source}  backend: {result.backend}")  # fmt: skip
    faces = 0 if result.mesh is None else len(result.mesh.faces)
    lines.append(f"{faces} faces in {result.frame_id} ({result.units}, scale from {result.scale_source})")
    truth = result.diagnostics.get("truth")
    if truth:
        lines.append(f"vs truth: elevation error {truth['elevation_error_deg']:.2f} deg, Chamfer-L1 "
                     f"{100 * truth['chamfer_l1']:.2f} % of the diagonal, "
                     f"volume IoU {truth['volume_iou']:.3f}")  # fmt: skip
    lines += [f"warning: {w}" for w in result.warnings]
    return lines[:CAPTION_LINES]


def contact_sheet(result, columns: int = 8) -> np.ndarray:
    """uint8 (H, W, 3) sheet of ``result`` (see the module docstring).

    Kept on the result for its caption and ``columns``: the node writes the sheet (views.png) and
    publishes it (~/views) for each result, and rendering the mesh tiles twice cost 0.35 s a
    request. A result whose caption changes (warnings, elevation) gets a new sheet; results are
    not otherwise changed once built.
    """
    key = (columns, caption(result))
    cached = getattr(result, "_contact_sheet", None)
    if cached is not None and cached[0] == key:
        return cached[1].copy()
    sheet = _contact_sheet(result, columns, key[1])
    with contextlib.suppress(AttributeError):  # a result type without a __dict__: no cache
        result._contact_sheet = (key, sheet)
    return sheet.copy()


def _contact_sheet(result, columns: int, text: str) -> np.ndarray:
    top = []
    if result.input_image is not None:
        top.append((input_tile(result.input_image, result.input_mask), "input + mask"))
    if result.mesh is not None and len(result.mesh.faces):
        names = ("mesh, input side", "mesh, +120 deg", "mesh, +240 deg")
        top += list(zip(mesh_tiles(result.mesh, result.canonical_to_frame, result.polar_deg), names))
    rows = []
    if top:
        rows.append(tile_images(np.stack([t for t, _ in top]), [n for _, n in top], columns=columns))
    if result.views is not None:
        views = result.views.views
        rows.append(tile_images(_fit(views.images), list(views.names), columns=columns))
    width = max([r.shape[1] for r in rows] + [columns * (TILE + GAP) - GAP])
    band = _text_band(text, width)
    parts = [band] + [np.pad(r, ((GAP, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    return np.concatenate(parts, axis=0)


def _fit(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images, dtype=np.uint8)
    if images.shape[1:3] == (TILE, TILE):
        return images
    return np.stack([np.asarray(Image.fromarray(v).resize((TILE, TILE), Image.BICUBIC)) for v in images])


def _text_band(lines: list[str], width: int) -> np.ndarray:
    band = Image.new("RGB", (width, LABEL_HEIGHT * max(1, len(lines)) + 4), (255, 255, 255))
    draw = ImageDraw.Draw(band)
    font = ImageFont.load_default()
    for i, line in enumerate(lines):
        draw.text((4, 2 + i * LABEL_HEIGHT), line, fill=(160, 0, 0) if line.startswith("warning") else (0, 0, 0),
                  font=font)  # fmt: skip
    return np.asarray(band, dtype=np.uint8).copy()
