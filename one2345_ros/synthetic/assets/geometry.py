"""UV-mapped primitives for the procedural test objects.

Each builder returns a :class:`Part`: vertices, faces (outward normals, counter-
clockwise seen from outside) and per-vertex UVs in [0, 1]^2 local to the part's own
texture tile; :func:`assemble` packs the tiles into one atlas and builds a single
textured ``trimesh.Trimesh``. Seam vertices are duplicated for the UVs but sit at
exactly the same positions, so ``merge_vertices(merge_tex=True)`` closes each part.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import trimesh
from PIL import Image

ATLAS_PADDING = 4
"""Texels between tiles, so bilinear lookups near a tile edge never read a neighbour."""


@dataclass
class Part:
    """vertices [n, 3], faces [m, 3], uv [n, 2] in [0, 1] of this part's tile; tile
    uint8 [T, T, 3] (set by the object builder)."""

    vertices: np.ndarray
    faces: np.ndarray
    uv: np.ndarray
    tile: np.ndarray | None = field(default=None, repr=False)

    def transformed(self, T: np.ndarray) -> Part:
        """The part moved by the 4x4 rigid transform ``T``."""
        v = self.vertices @ T[:3, :3].T + T[:3, 3]
        return Part(v, self.faces, self.uv, self.tile)


def revolve(profile_rz, segments: int = 64) -> Part:
    """Surface of revolution about +z of a profile [(r, z), ...] (r >= 0).

    Traverse the profile with the solid on the left (e.g. bottom centre -> outward
    -> up -> back to the axis at the top) so that normals point out of the solid.
    u follows the angle, v the arc length of the profile.
    """
    prof = np.asarray(profile_rz, dtype=np.float64)
    k = len(prof)
    phi = np.linspace(0.0, 2.0 * np.pi, segments + 1)
    phi[-1] = 0.0  # the seam column repeats the first one exactly
    r, z = prof[:, 0][:, None], prof[:, 1][:, None]
    verts = np.stack(np.broadcast_arrays(r * np.cos(phi), r * np.sin(phi), z + 0.0 * phi), axis=-1).reshape(-1, 3)
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(prof, axis=0), axis=1))])
    v = 1.0 - arc / arc[-1]
    u = np.linspace(0.0, 1.0, segments + 1)
    uv = np.stack(np.broadcast_arrays(u[None, :], v[:, None]), axis=-1).reshape(-1, 2)
    i, j = np.meshgrid(np.arange(k - 1), np.arange(segments), indexing="ij")
    a, b = i * (segments + 1) + j, i * (segments + 1) + j + 1
    c, d = b + segments + 1, a + segments + 1
    faces = np.concatenate([np.stack([a, b, c], -1).reshape(-1, 3), np.stack([a, c, d], -1).reshape(-1, 3)])
    return Part(verts, _drop_degenerate(verts, faces), uv)


def tube(path, radius: float, sides: int = 24, cap: bool = True) -> Part:
    """Circular tube of ``radius`` along a polyline ``path`` [k, 3] (parallel-transport
    frames, so it does not twist); optional flat end caps. u along the path, v around."""
    path = np.asarray(path, dtype=np.float64)
    tangents = np.gradient(path, axis=0)
    tangents /= np.linalg.norm(tangents, axis=1, keepdims=True)
    seed = np.array([0.0, 0.0, 1.0]) if abs(tangents[0, 2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    normal = np.cross(np.cross(tangents[0], seed), tangents[0])
    normal /= np.linalg.norm(normal)
    frames = []
    for t in tangents:
        normal = normal - t * (normal @ t)
        normal /= np.linalg.norm(normal)
        frames.append((normal, np.cross(t, normal)))
    ang = np.linspace(0.0, 2.0 * np.pi, sides + 1)
    ang[-1] = 0.0
    rings = [p + radius * (np.cos(ang)[:, None] * n + np.sin(ang)[:, None] * bn) for p, (n, bn) in zip(path, frames)]
    verts = np.concatenate(rings)
    k = len(path)
    u, v = np.meshgrid(np.linspace(0, 1, k), np.linspace(0, 1, sides + 1), indexing="ij")
    uv = np.stack([u, v], -1).reshape(-1, 2)
    i, j = np.meshgrid(np.arange(k - 1), np.arange(sides), indexing="ij")
    a, b = i * (sides + 1) + j, i * (sides + 1) + j + 1
    c, d = b + sides + 1, a + sides + 1
    faces = [np.stack([a, b, c], -1).reshape(-1, 3), np.stack([a, c, d], -1).reshape(-1, 3)]
    uvs = [uv]
    if cap:
        # the start cap faces -tangent, the end cap +tangent
        for end, flip in ((0, True), (k - 1, False)):
            centre = len(verts)
            verts = np.concatenate([verts, path[end][None]])
            uvs.append(np.array([[0.0 if end == 0 else 1.0, 0.5]]))
            ring = end * (sides + 1) + np.arange(sides)
            tri = np.stack([np.full(sides, centre), ring, ring + 1], -1)
            faces.append(tri[:, [0, 2, 1]] if flip else tri)
    return Part(verts, np.concatenate(faces), np.concatenate(uvs))


def flat_faces(polygons, layout: tuple[int, int] | None = None) -> Part:
    """Planar convex polygons (each [k, 3], counter-clockwise seen from outside),
    fan-triangulated. Polygon i gets cell i of a ``layout`` = (cols, rows) grid of
    its tile, mapped by projecting onto the polygon's plane ("up" = world +z when
    the face is not horizontal) and keeping its aspect ratio."""
    polygons = [np.asarray(p, dtype=np.float64) for p in polygons]
    cols, rows = layout or (len(polygons), 1)
    verts, faces, uvs = [], [], []
    n = 0
    for idx, poly in enumerate(polygons):
        normal = np.cross(poly[1] - poly[0], poly[2] - poly[0])
        normal /= np.linalg.norm(normal)
        up = np.array([0.0, 0.0, 1.0]) if abs(normal[2]) < 0.9 else np.array([0.0, 1.0, 0.0])
        x_axis = np.cross(up, normal)
        x_axis /= np.linalg.norm(x_axis)
        y_axis = np.cross(normal, x_axis)
        p2 = np.stack([(poly - poly[0]) @ x_axis, (poly - poly[0]) @ y_axis], -1)
        p2 -= p2.min(axis=0)
        p2 /= max(p2.max(), 1e-12)
        ext = p2.max(axis=0)
        p2 += (1.0 - ext) / 2.0  # centre the aspect-kept face in its cell
        col, row = idx % cols, idx // cols
        uvs.append(np.stack([(col + p2[:, 0]) / cols, 1.0 - (row + 1.0 - p2[:, 1]) / rows], -1))
        verts.append(poly)
        k = len(poly)
        faces.append(np.stack([np.full(k - 2, n), n + np.arange(1, k - 1), n + np.arange(2, k)], -1))
        n += k
    return Part(np.concatenate(verts), np.concatenate(faces), np.concatenate(uvs))


def box(size, center=(0.0, 0.0, 0.0)) -> Part:
    """Axis-aligned box; its six faces use a 3x2 grid of the tile in the order
    -y (front), +x, +y (back), -x, +z (top), -z (bottom)."""
    sx, sy, sz = (np.asarray(size, dtype=np.float64) / 2.0)
    c = np.asarray(center, dtype=np.float64)
    P = lambda x, y, z: c + np.array([x * sx, y * sy, z * sz])  # noqa: E731
    quads = [
        [P(-1, -1, -1), P(1, -1, -1), P(1, -1, 1), P(-1, -1, 1)],
        [P(1, -1, -1), P(1, 1, -1), P(1, 1, 1), P(1, -1, 1)],
        [P(1, 1, -1), P(-1, 1, -1), P(-1, 1, 1), P(1, 1, 1)],
        [P(-1, 1, -1), P(-1, -1, -1), P(-1, -1, 1), P(-1, 1, 1)],
        [P(-1, -1, 1), P(1, -1, 1), P(1, 1, 1), P(-1, 1, 1)],
        [P(-1, 1, -1), P(1, 1, -1), P(1, -1, -1), P(-1, -1, -1)],
    ]
    return flat_faces(quads, layout=(3, 2))


def rotation_matrix(axis, angle_rad: float) -> np.ndarray:
    """4x4 rotation about ``axis`` through the origin."""
    return trimesh.transformations.rotation_matrix(angle_rad, axis)


def translation(offset) -> np.ndarray:
    T = np.eye(4)
    T[:3, 3] = offset
    return T


def _drop_degenerate(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    tri = verts[faces]
    area2 = np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    return faces[area2 > 1e-12]


def assemble(parts: list[Part], tile_size: int) -> trimesh.Trimesh:
    """One textured mesh from parts that each carry a ``tile`` [T, T, 3] (T = tile_size).

    Tiles go into a square atlas of ceil(sqrt(n)) cells; part UVs are inset by
    :data:`ATLAS_PADDING` texels inside their cell and the padding is filled by
    edge replication.
    """
    n = len(parts)
    grid = max(1, math.ceil(math.sqrt(n)))
    cell = tile_size + 2 * ATLAS_PADDING
    atlas = np.full((grid * cell, grid * cell, 3), 255, dtype=np.uint8)
    verts, faces, uvs = [], [], []
    offset = 0
    for idx, part in enumerate(parts):
        if part.tile is None or part.tile.shape != (tile_size, tile_size, 3):
            raise ValueError(f"part {idx} needs a uint8 [{tile_size}, {tile_size}, 3] tile")
        row, col = idx // grid, idx % grid
        padded = np.pad(part.tile, ((ATLAS_PADDING,) * 2, (ATLAS_PADDING,) * 2, (0, 0)), mode="edge")
        atlas[row * cell:(row + 1) * cell, col * cell:(col + 1) * cell] = padded
        # local (u, v) in [0, 1] -> atlas UV (v = 0 at the bottom of the image)
        x0 = (col * cell + ATLAS_PADDING) / atlas.shape[1]
        y_top = (row * cell + ATLAS_PADDING) / atlas.shape[0]
        span = tile_size / atlas.shape[0]
        u = x0 + part.uv[:, 0] * span
        v = 1.0 - (y_top + (1.0 - part.uv[:, 1]) * span)
        uvs.append(np.stack([u, v], -1))
        verts.append(part.vertices)
        faces.append(part.faces + offset)
        offset += len(part.vertices)
    material = trimesh.visual.material.PBRMaterial(
        baseColorTexture=Image.fromarray(atlas),
        baseColorFactor=[255, 255, 255, 255],
        metallicFactor=0.0,
        roughnessFactor=1.0,
    )
    visual = trimesh.visual.TextureVisuals(uv=np.concatenate(uvs), material=material)
    return trimesh.Trimesh(np.concatenate(verts), np.concatenate(faces), visual=visual, process=False)


def normalise(mesh: trimesh.Trimesh, extent: float = 1.0) -> trimesh.Trimesh:
    """Move the bounding-box centre to the origin and scale the largest side to ``extent``."""
    lo, hi = mesh.bounds
    T = np.eye(4) * (extent / float(np.max(hi - lo)))
    T[3, 3] = 1.0
    T[:3, 3] = -(lo + hi) / 2.0 * T[0, 0]
    mesh.apply_transform(T)
    return mesh
