"""Builds the bundled procedural test objects and writes them as GLB files.

    python -m one2345_ros.synthetic.assets.make_objects      # rewrites assets/objects/*.glb

Three hand-designed objects cover what the pipeline must cope with (DESIGN.md):

* ``mug``    - a concavity you can see into (plain inside), a thin handle (plain),
               a well-textured outer wall;
* ``mallet`` - a thin stick (low-texture wood) with a grip and a textured,
               asymmetric head (flat striking face on one side, taper on the other);
* ``house``  - box-like with a door and windows on some walls only, a plain back
               wall, a shingled roof and an off-centre chimney.

:func:`make_random_object` gives a family of distinct objects (random compositions
of primitives with random multi-scale textures) for the elevation benchmark.
Object frame: z up, bounding-box centre at the origin, largest extent 1.
Everything is deterministic from the seeds below.
"""

from __future__ import annotations

import numpy as np
import trimesh
from PIL import Image, ImageDraw

from . import geometry as geo
from . import textures as tex

TILE = 256
"""Texels per part tile (atlas of up to 2x2 tiles + padding: ~520 px square)."""

OBJECT_SEEDS = {"mug": 1, "mallet": 2, "house": 3}


def make_mug(seed: int = OBJECT_SEEDS["mug"]) -> trimesh.Trimesh:
    rng = np.random.default_rng(seed)
    R, H, wall, floor = 0.3, 0.55, 0.04, 0.05
    outer = geo.revolve([(0.0, 0.0), (R, 0.0), (R, H)], segments=96)
    outer.tile = tex.pattern(rng, TILE, base=(240, 236, 222), n_shapes=180)
    inner = geo.revolve([(R, H), (R - wall, H), (R - wall, floor), (0.0, floor)], segments=96)
    inner.tile = tex.plain(rng, TILE, (235, 228, 210))
    t = np.linspace(0.0, np.pi, 40)
    path = np.stack([R - wall / 2 + 0.19 * np.sin(t), 0.0 * t, 0.3 + 0.15 * np.cos(t)], -1)
    handle = geo.tube(path, radius=0.035, sides=24)
    handle.tile = tex.plain(rng, TILE, (150, 40, 35))
    return geo.normalise(geo.assemble([outer, inner, handle], TILE))


def make_mallet(seed: int = OBJECT_SEEDS["mallet"]) -> trimesh.Trimesh:
    rng = np.random.default_rng(seed)
    grip = geo.revolve([(0.0, -0.55), (0.04, -0.55), (0.04, -0.3), (0.03, -0.3)], segments=48)
    grip.tile = tex.stripes(rng, TILE, [(30, 30, 35), (70, 70, 80), (200, 60, 30)], horizontal=True)
    stick = geo.revolve([(0.03, -0.3), (0.03, 0.3), (0.0, 0.3)], segments=48)
    stick.tile = tex.wood(rng, TILE, color=(205, 170, 120), contrast=0.06, rings=3.0)
    # flat striking face at -x, tapered peen at +x: no 180-degree symmetry
    head_profile = [(0.0, -0.24), (0.11, -0.24), (0.11, 0.08), (0.075, 0.19), (0.075, 0.25), (0.0, 0.25)]
    head = geo.revolve(head_profile, segments=64)
    head = head.transformed(geo.translation((0.0, 0.0, 0.38)) @ geo.rotation_matrix((0, 1, 0), np.pi / 2))
    head_tile = tex.pattern(rng, TILE, base=(90, 120, 170), n_shapes=160)
    bands = tex.stripes(rng, TILE, [(220, 200, 60), (40, 40, 40)], horizontal=False, wobble=1.0)
    head_tile[:, : TILE // 6] = bands[:, : TILE // 6]  # painted bands near the striking face
    head.tile = head_tile
    return geo.normalise(geo.assemble([grip, stick, head], TILE))


def _face_box(layout, idx: int, w: float, h: float, size: int = TILE):
    """Pixel box (x0, y0, x1, y1) where face ``idx`` of size w x h lands in a
    ``layout`` (cols, rows) tile built by :func:`geometry.flat_faces`."""
    cols, rows = layout
    cw, ch = size / cols, size / rows
    ex, ey = np.array([w, h]) / max(w, h)
    col, row = idx % cols, idx // cols
    return (col + (1 - ex) / 2) * cw, (row + (1 - ey) / 2) * ch, (col + (1 + ex) / 2) * cw, (row + (1 + ey) / 2) * ch


def _window(draw: ImageDraw.ImageDraw, box, frame=(250, 250, 245), glass=(90, 140, 190)) -> None:
    x0, y0, x1, y1 = box
    draw.rectangle(box, fill=frame)
    m = 0.12 * (x1 - x0)
    draw.rectangle([x0 + m, y0 + m, x1 - m, y1 - m], fill=glass)
    draw.line([(x0 + x1) / 2, y0, (x0 + x1) / 2, y1], fill=frame, width=max(1, int(m / 2)))
    draw.line([x0, (y0 + y1) / 2, x1, (y0 + y1) / 2], fill=frame, width=max(1, int(m / 2)))


def _house_walls(rng: np.random.Generator, W: float, D: float, Hw: float) -> np.ndarray:
    img = Image.fromarray(tex.plain(rng, TILE, (232, 214, 170), amplitude=8.0))
    draw = ImageDraw.Draw(img)
    layout = (3, 2)
    fx0, fy0, fx1, fy1 = _face_box(layout, 0, W, Hw)  # front (-y): door left, window right
    fw, fh = fx1 - fx0, fy1 - fy0
    draw.rectangle([fx0 + 0.15 * fw, fy0 + 0.3 * fh, fx0 + 0.32 * fw, fy1], fill=(120, 60, 30))
    draw.ellipse([fx0 + 0.28 * fw, fy0 + 0.62 * fh, fx0 + 0.30 * fw, fy0 + 0.66 * fh], fill=(240, 200, 40))
    _window(draw, (fx0 + 0.55 * fw, fy0 + 0.3 * fh, fx0 + 0.82 * fw, fy0 + 0.65 * fh))
    draw.rectangle([fx0, fy1 - 0.08 * fh, fx1, fy1], fill=(110, 110, 115))  # plinth
    sx0, sy0, sx1, sy1 = _face_box(layout, 1, D, Hw)  # right (+x): two windows
    sw, sh = sx1 - sx0, sy1 - sy0
    for a in (0.15, 0.58):
        _window(draw, (sx0 + a * sw, sy0 + 0.3 * sh, sx0 + (a + 0.27) * sw, sy0 + 0.62 * sh), glass=(70, 120, 90))
    lx0, ly0, lx1, ly1 = _face_box(layout, 3, D, Hw)  # left (-x): one round window
    lw, lh = lx1 - lx0, ly1 - ly0
    draw.ellipse([lx0 + 0.35 * lw, ly0 + 0.25 * lh, lx0 + 0.65 * lw, ly0 + 0.25 * lh + 0.3 * lw], fill=(250, 250, 245))
    top = ly0 + 0.25 * lh
    draw.ellipse([lx0 + 0.39 * lw, top + 0.04 * lw, lx0 + 0.61 * lw, top + 0.26 * lw], fill=(200, 90, 140))
    return np.array(img)  # back wall (+y), top and bottom stay plain


def _shingles(rng: np.random.Generator) -> np.ndarray:
    img = Image.fromarray(tex.plain(rng, TILE, (150, 50, 40), amplitude=10.0))
    draw = ImageDraw.Draw(img)
    row_h = TILE / 16
    for r in range(16):
        offset = (r % 2) * row_h * 0.7
        x = -offset
        while x < TILE:
            w = row_h * rng.uniform(1.0, 1.8)
            c = np.array([150, 50, 40]) + rng.integers(-35, 36, 3)
            box = [x + 1, r * row_h + 1, x + w - 1, (r + 1) * row_h - 1]
            draw.rounded_rectangle(box, radius=row_h / 3, fill=tuple(int(v) for v in c))
            x += w
    return np.array(img)


def _bricks(rng: np.random.Generator) -> np.ndarray:
    img = Image.fromarray(tex.plain(rng, TILE, (200, 200, 195), amplitude=4.0))
    draw = ImageDraw.Draw(img)
    bh, bw = TILE / 24, TILE / 10
    for r in range(24):
        for k in range(-1, 11):
            x = k * bw + (r % 2) * bw / 2
            c = np.array([160, 70, 50]) + rng.integers(-30, 31, 3)
            draw.rectangle([x + 1, r * bh + 1, x + bw - 1, (r + 1) * bh - 1], fill=tuple(int(v) for v in c))
    return np.array(img)


def make_house(seed: int = OBJECT_SEEDS["house"]) -> trimesh.Trimesh:
    rng = np.random.default_rng(seed)
    W, D, Hw = 0.7, 0.5, 0.4
    walls = geo.box((W, D, Hw), center=(0.0, 0.0, Hw / 2))
    walls.tile = _house_walls(rng, W, D, Hw)
    rx, ry, z0, z1 = 0.4, 0.31, Hw - 0.02, Hw + 0.25
    P = np.array
    roof = geo.flat_faces(
        [
            [P([-rx, -ry, z0]), P([rx, -ry, z0]), P([rx, 0, z1]), P([-rx, 0, z1])],  # front slope
            [P([rx, ry, z0]), P([-rx, ry, z0]), P([-rx, 0, z1]), P([rx, 0, z1])],  # back slope
            [P([-rx, ry, z0]), P([-rx, -ry, z0]), P([-rx, 0, z1])],  # gable -x
            [P([rx, -ry, z0]), P([rx, ry, z0]), P([rx, 0, z1])],  # gable +x
            [P([-rx, ry, z0]), P([rx, ry, z0]), P([rx, -ry, z0]), P([-rx, -ry, z0])],  # underside
        ],
        layout=(3, 2),
    )
    roof.tile = _shingles(rng)
    chimney = geo.box((0.08, 0.08, 0.22), center=(0.2, 0.12, Hw + 0.2))
    chimney.tile = _bricks(rng)
    return geo.normalise(geo.assemble([walls, roof, chimney], TILE))


BUILDERS = {"mug": make_mug, "mallet": make_mallet, "house": make_house}


# ----------------------------------------------------------------- random family


def _random_primitive(rng: np.random.Generator) -> geo.Part:
    kind = rng.choice(["box", "cylinder", "cone", "sphere", "cup", "arc", "stick"])
    s = rng.uniform(0.2, 0.55)
    if kind == "box":
        return geo.box(s * rng.uniform(0.4, 1.0, 3))
    if kind == "cylinder":
        r, h = s * rng.uniform(0.25, 0.6), s
        return geo.revolve([(0, -h / 2), (r, -h / 2), (r, h / 2), (0, h / 2)], segments=48)
    if kind == "cone":
        r0, r1, h = s * rng.uniform(0.3, 0.6), s * rng.uniform(0.0, 0.25), s
        return geo.revolve([(0, -h / 2), (r0, -h / 2), (r1, h / 2), (0, h / 2)], segments=48)
    if kind == "sphere":
        t = np.linspace(0, np.pi, 17)
        a, c = s / 2, s / 2 * rng.uniform(0.6, 1.4)
        return geo.revolve(np.stack([a * np.sin(t), -c * np.cos(t)], -1), segments=48)
    if kind == "cup":
        r, h, w = s * 0.5, s * rng.uniform(0.5, 1.0), 0.03
        return geo.revolve([(0, 0), (r, 0), (r * 1.15, h), (r * 1.15 - w, h), (r - w, w), (0, w)], segments=48)
    if kind == "arc":
        t = np.linspace(0, rng.uniform(0.6, 1.0) * np.pi, 24)
        return geo.tube(np.stack([s / 2 * np.sin(t), 0 * t, s / 2 * np.cos(t)], -1), radius=s * 0.08)
    length = s * 1.6
    return geo.revolve([(0, -length / 2), (0.025, -length / 2), (0.025, length / 2), (0, length / 2)], segments=24)


def _random_tile(rng: np.random.Generator) -> np.ndarray:
    choice = rng.uniform()
    if choice < 0.55:
        return tex.pattern(rng, TILE, n_shapes=int(rng.integers(60, 200)))
    if choice < 0.75:
        colors = [tex.random_color(rng) for _ in range(int(rng.integers(2, 5)))]
        tile = tex.stripes(rng, TILE, colors, horizontal=bool(rng.integers(2)), wobble=rng.uniform(0, 2))
        draw = ImageDraw.Draw(img := Image.fromarray(tile))
        for _ in range(int(rng.integers(5, 25))):
            tex.draw_shape(rng, draw, TILE, TILE * 0.02, TILE * 0.08)
        return np.array(img)
    if choice < 0.9:
        return tex.wood(rng, TILE, color=tex.random_color(rng, 100, 230), contrast=rng.uniform(0.1, 0.4))
    return tex.plain(rng, TILE, tex.random_color(rng, 60, 230))


def make_random_object(seed: int) -> trimesh.Trimesh:
    """A distinct textured object for every seed: 2-4 random primitives (boxes,
    cylinders, cones, ellipsoids, cups, arcs, sticks), each attached at a surface
    point of an earlier part with a random orientation, each with its own random
    texture (patterns, stripes, wood; occasionally plain). z up, bbox centre at
    the origin, largest extent 1."""
    rng = np.random.default_rng([0x0B1EC7, int(seed)])
    parts: list[geo.Part] = []
    for i in range(int(rng.integers(2, 5))):
        part = _random_primitive(rng)
        if i == 0:
            part = part.transformed(geo.rotation_matrix((0, 0, 1), rng.uniform(0, 2 * np.pi)))
        else:
            # glue a random surface point of the new part to a point slightly inside
            # an earlier part, so the parts overlap instead of floating apart
            part = part.transformed(geo.rotation_matrix(rng.normal(size=3), rng.uniform(0, 2 * np.pi)))
            host = parts[int(rng.integers(len(parts)))]
            anchor = host.vertices[int(rng.integers(len(host.vertices)))]
            anchor = anchor + 0.2 * (host.vertices.mean(axis=0) - anchor)
            contact = part.vertices[int(rng.integers(len(part.vertices)))]
            part = part.transformed(geo.translation(anchor - contact))
        part.tile = _random_tile(rng)
        parts.append(part)
    if all(np.asarray(p.tile).std() < 10 for p in parts):  # keep something to match on
        parts[0].tile = tex.pattern(rng, TILE)
    return geo.normalise(geo.assemble(parts, TILE))


# ------------------------------------------------------------ low-texture family

LOW_TEXTURE_AMPLITUDE = 3.0
"""Grey levels of the gentle large-scale variation on the flat colours (``textures.plain``)."""


def _ellipsoid(a: float, b: float, c: float, rings: int = 33, segments: int = 64) -> geo.Part:
    t = np.linspace(0.0, np.pi, rings)
    part = geo.revolve(np.stack([np.sin(t), -np.cos(t)], -1), segments=segments)
    return geo.Part(part.vertices * [a, b, c], part.faces, part.uv)


def _smooth_primitive(rng: np.random.Generator) -> geo.Part:
    """A smooth part with few or no corners: ellipsoid, capsule, bulging bottle, curved handle."""
    kind = rng.choice(["ellipsoid", "ellipsoid", "capsule", "bottle", "handle"])
    s = rng.uniform(0.25, 0.55)
    if kind == "ellipsoid":
        return _ellipsoid(*(s / 2 * rng.uniform(0.5, 1.0, 3)))
    if kind == "capsule":
        r, h = s * rng.uniform(0.15, 0.3), s * rng.uniform(0.3, 0.8)
        t = np.linspace(0.0, np.pi / 2, 12)
        bottom = np.stack([r * np.sin(t), -h / 2 - r * np.cos(t)], -1)
        top = np.stack([r * np.cos(t), h / 2 + r * np.sin(t)], -1)
        return geo.revolve(np.concatenate([bottom, top]), segments=64)
    if kind == "bottle":
        z = np.linspace(-s / 2, s / 2, 24)
        r = s * (0.22 + 0.08 * np.sin(np.pi * (z / s + 0.5) * rng.uniform(1.0, 2.0) + rng.uniform(0, np.pi)))
        t = np.linspace(0.0, np.pi / 2, 9)[:-1]  # rounded ends: quarter ellipses from and back to the axis
        bottom = np.stack([r[0] * np.sin(t), z[0] - 0.4 * r[0] * np.cos(t)], -1)
        top = np.stack([r[-1] * np.cos(t), z[-1] + 0.4 * r[-1] * np.sin(t)], -1)[1:]
        return geo.revolve(np.concatenate([bottom, np.stack([r, z], -1), top, [(0.0, z[-1] + 0.4 * r[-1])]]), 64)
    t = np.linspace(0.15 * np.pi, rng.uniform(0.7, 0.95) * np.pi, 28)
    radius = s * rng.uniform(0.07, 0.12)
    return geo.tube(np.stack([s / 2 * np.sin(t), 0 * t, s / 2 * np.cos(t)], -1), radius=radius, sides=32)


def make_toy_duck(rng: np.random.Generator) -> trimesh.Trimesh:
    """A smooth yellow toy: ellipsoid body, round head, orange beak (two flat colours)."""
    yellow = tuple(int(v) for v in np.array([235, 200, 40]) + rng.integers(-15, 16, 3))
    orange = tuple(int(v) for v in np.array([230, 110, 30]) + rng.integers(-15, 16, 3))
    body = _ellipsoid(0.32, 0.22, 0.18)
    head = _ellipsoid(0.13, 0.13, 0.13).transformed(geo.translation((0.2, 0.0, 0.2)))
    beak = _ellipsoid(0.09, 0.05, 0.025).transformed(geo.translation((0.33, 0.0, 0.19)))
    tail = _ellipsoid(0.1, 0.08, 0.06).transformed(
        geo.translation((-0.28, 0.0, 0.08)) @ geo.rotation_matrix((0, 1, 0), -0.6)
    )
    for part, color in ((body, yellow), (head, yellow), (beak, orange), (tail, yellow)):
        part.tile = tex.plain(rng, TILE, color, amplitude=LOW_TEXTURE_AMPLITUDE)
    mesh = geo.assemble([body, head, beak, tail], TILE)
    mesh.apply_transform(geo.rotation_matrix((0, 0, 1), rng.uniform(0, 2 * np.pi)))
    return geo.normalise(mesh)


def make_low_texture_object(seed: int) -> trimesh.Trimesh:
    """A smooth, low-texture object for every seed (the elevation benchmark's hard case).

    Smooth shading, one or two flat colours, few corners: seed 0 (and every fifth
    seed) is a yellow toy duck; the others are 2-3 smooth parts (ellipsoids,
    capsules, bulging bottles, curved handles) glued together as in
    :func:`make_random_object`, each in one of one or two nearly flat colours
    (``textures.plain``, +-1.5 grey levels of gentle variation). What there is to
    match is shading, the boundaries between the colours and the silhouette.
    z up, bbox centre at the origin, largest extent 1.
    """
    rng = np.random.default_rng([0x530074, int(seed)])
    if seed % 5 == 0:
        return make_toy_duck(rng)
    palette = [tex.random_color(rng, 90, 235) for _ in range(int(rng.integers(1, 3)))]
    parts: list[geo.Part] = []
    for i in range(int(rng.integers(2, 4))):
        part = _smooth_primitive(rng)
        if i == 0:
            part = part.transformed(geo.rotation_matrix(rng.normal(size=3), rng.uniform(0, 0.6)))
        else:
            part = part.transformed(geo.rotation_matrix(rng.normal(size=3), rng.uniform(0, 2 * np.pi)))
            host = parts[int(rng.integers(len(parts)))]
            anchor = host.vertices[int(rng.integers(len(host.vertices)))]
            anchor = anchor + 0.25 * (host.vertices.mean(axis=0) - anchor)
            contact = part.vertices[int(rng.integers(len(part.vertices)))]
            part = part.transformed(geo.translation(anchor - contact))
        part.tile = tex.plain(rng, TILE, palette[i % len(palette)], amplitude=LOW_TEXTURE_AMPLITUDE)
        parts.append(part)
    return geo.normalise(geo.assemble(parts, TILE))


def main() -> None:
    from . import OBJECTS_DIR, save_object

    OBJECTS_DIR.mkdir(parents=True, exist_ok=True)
    for name, build in BUILDERS.items():
        path = save_object(build(), OBJECTS_DIR / f"{name}.glb")
        print(f"{path}: {path.stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
