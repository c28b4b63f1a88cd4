"""Procedural textures (uint8 [T, T, 3]), deterministic from a numpy Generator.

Well-textured tiles carry features at several scales (large blobs, medium shapes,
small dots, smooth noise) so SIFT finds matches between nearby views; "plain" tiles
are nearly uniform (low-texture areas, where matching has nothing to hold on to).
Shapes are drawn with PIL, which rasterises deterministically.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw


def smooth_noise(rng: np.random.Generator, size: int, cell: int) -> np.ndarray:
    """Value noise in [0, 1] with features about ``cell`` texels wide: float32 [size, size]."""
    n = max(2, size // cell + 2)
    coarse = rng.random((n, n)).astype(np.float32)
    img = Image.fromarray(coarse, mode="F").resize((size + 2 * cell, size + 2 * cell), Image.BICUBIC)
    return np.clip(np.asarray(img)[cell:cell + size, cell:cell + size], 0.0, 1.0)


def multiscale_noise(rng: np.random.Generator, size: int, cells=(64, 16, 4), weights=(0.5, 0.3, 0.2)) -> np.ndarray:
    """Weighted sum of :func:`smooth_noise` octaves, in [0, 1]: float32 [size, size]."""
    out = sum(w * smooth_noise(rng, size, c) for c, w in zip(cells, weights))
    return out / float(sum(weights))


def random_color(rng: np.random.Generator, lo: int = 20, hi: int = 235) -> tuple[int, int, int]:
    """A saturated-ish random colour (one channel pushed up, one down)."""
    c = rng.integers(lo, hi, size=3)
    c[rng.integers(3)] = rng.integers(max(lo, hi - 60), hi)
    c[rng.integers(3)] = rng.integers(lo, lo + 60)
    return tuple(int(x) for x in c)


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def plain(rng: np.random.Generator, size: int, color, amplitude: float = 6.0) -> np.ndarray:
    """Nearly uniform ``color`` with very gentle large-scale variation (a low-texture area)."""
    n = smooth_noise(rng, size, max(size // 2, 8))[..., None] - 0.5
    return _to_uint8(np.asarray(color, dtype=np.float32) + amplitude * n)


def pattern(rng: np.random.Generator, size: int, base=None, n_shapes: int = 60, noise: float = 40.0) -> np.ndarray:
    """Well-textured tile: base colour + multi-scale noise + random shapes at three scales."""
    base = np.asarray(base if base is not None else random_color(rng, 120, 250), dtype=np.float32)
    shade = multiscale_noise(rng, size)[..., None] - 0.5
    tint = np.asarray(random_color(rng), dtype=np.float32) - base
    img = Image.fromarray(_to_uint8(base + noise * shade + 0.25 * tint * smooth_noise(rng, size, size // 4)[..., None]))
    draw = ImageDraw.Draw(img)
    scales = [(size * 0.12, size * 0.25), (size * 0.04, size * 0.1), (size * 0.012, size * 0.03)]
    counts = [max(1, n_shapes // 8), n_shapes // 3, n_shapes - n_shapes // 8 - n_shapes // 3]
    for (lo, hi), count in zip(scales, counts):
        for _ in range(count):
            draw_shape(rng, draw, size, lo, hi)
    return np.array(img)


def draw_shape(rng: np.random.Generator, draw: ImageDraw.ImageDraw, size: int, lo: float, hi: float) -> None:
    """One random ellipse, rectangle, triangle, star-ish polygon or thick line."""
    cx, cy = rng.uniform(0, size, 2)
    r = rng.uniform(lo, hi)
    color = random_color(rng)
    kind = int(rng.integers(5))
    if kind == 0:
        a = r * rng.uniform(0.5, 1.0)
        draw.ellipse([cx - r, cy - a, cx + r, cy + a], fill=color)
    elif kind == 1:
        a = r * rng.uniform(0.3, 1.0)
        draw.rectangle([cx - r, cy - a, cx + r, cy + a], fill=color)
    elif kind == 2 or kind == 3:
        k = 3 if kind == 2 else int(rng.integers(5, 9))
        ang = np.sort(rng.uniform(0, 2 * np.pi, k))
        rad = r * (rng.uniform(0.4, 1.0, k) if kind == 3 else np.ones(k))
        draw.polygon([(cx + q * np.cos(t), cy + q * np.sin(t)) for q, t in zip(rad, ang)], fill=color)
    else:
        t = rng.uniform(0, np.pi)
        dx, dy = r * np.cos(t), r * np.sin(t)
        draw.line([cx - dx, cy - dy, cx + dx, cy + dy], fill=color, width=max(1, int(r / 4)))


def stripes(rng: np.random.Generator, size: int, colors, horizontal: bool = True, wobble: float = 0.0) -> np.ndarray:
    """Bands of ``colors`` with random widths (optionally wavy), plus light noise."""
    coord = np.arange(size, dtype=np.float32)
    widths = rng.uniform(0.03, 0.12, 64) * size
    edges = np.cumsum(widths)
    yy, xx = np.meshgrid(coord, coord, indexing="ij")
    along = yy if horizontal else xx
    across = xx if horizontal else yy
    pos = along + wobble * size * 0.03 * np.sin(across / size * 2 * np.pi * 3 + rng.uniform(0, 6.3))
    band = np.searchsorted(edges, np.clip(pos, 0, edges[-1] - 1)) % len(colors)
    img = np.asarray(colors, dtype=np.float32)[band]
    return _to_uint8(img + 12.0 * (multiscale_noise(rng, size)[..., None] - 0.5))


def wood(
    rng: np.random.Generator, size: int, color=(196, 150, 98), contrast: float = 0.18, rings: float = 9.0
) -> np.ndarray:
    """Wood grain: sinusoidal rings along v distorted by smooth noise."""
    _yy, xx = np.meshgrid(np.linspace(0, 1, size), np.linspace(0, 1, size), indexing="ij")
    warp = smooth_noise(rng, size, size // 3) * 2.0 + 0.3 * smooth_noise(rng, size, size // 16)
    grain = 0.5 + 0.5 * np.sin(2 * np.pi * (rings * xx + warp))
    base = np.asarray(color, dtype=np.float32)
    return _to_uint8(base * (1.0 - contrast + contrast * grain[..., None]))
