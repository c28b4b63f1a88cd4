"""Contact sheet: a labelled grid of images for a quick visual check of generated views.

Callers write the result with :func:`one2345_ros.results.atomic.write_image_atomic`.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

LABEL_HEIGHT = 14
"""Pixels of the white strip under each tile that holds its label (PIL's default bitmap font is ~11 px)."""
GAP = 2
"""White pixels between tiles."""


def contact_sheet(images: np.ndarray, labels: list[str], columns: int = 8) -> np.ndarray:
    """Tile ``images`` (N, H, W, 3) uint8 into rows of ``columns``, each with its label below.

    Returns uint8 (rows * (H + LABEL_HEIGHT + GAP) - GAP, columns' * (W + GAP) - GAP, 3)
    on white, where columns' = min(columns, N). Labels longer than the tile are clipped.
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"contact_sheet: images must be uint8 (N, H, W, 3), got {images.dtype} {images.shape}")
    n, h, w, _ = images.shape
    if n == 0:
        raise ValueError("contact_sheet: no images")
    if len(labels) != n:
        raise ValueError(f"contact_sheet: {n} images but {len(labels)} labels")
    if columns < 1:
        raise ValueError(f"contact_sheet: columns must be >= 1, got {columns}")
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
