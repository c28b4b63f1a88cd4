"""Mesh stage: marching cubes on a signed grid, cleaning, decimation, vertex colours, export.

Geometry is float64 in the frame of the grid (the views' world frame). Only the GLB
export rotates the mesh (glTF is y-up); :func:`load_mesh` undoes that rotation, so
a written and re-read mesh has the vertices it had in memory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import trimesh
from scipy.spatial import cKDTree
from skimage import measure

from . import cameras as cam
from .config import MeshConfig
from .io import InputError, ViewSet, atomic_path
from .sampling import inside_image, sample_bilinear

MESH_FORMATS = ("glb", "ply", "obj")


class MeshError(ValueError):
    """The mesh stage cannot produce a mesh (empty surface, missing optional package)."""


@dataclass(frozen=True)
class SdfGrid:
    """A signed field on a regular grid of nodes over a box, negative inside.

    values: (nx, ny, nz) float32 indexed [x, y, z]. bbox: (2, 3) world AABB whose
    corners are the first and last nodes: node (i, j, k) sits at
    ``bbox[0] + (i, j, k) * spacing`` with ``spacing = (bbox[1] - bbox[0]) / (n - 1)``.
    """

    values: np.ndarray
    bbox: np.ndarray

    def __post_init__(self) -> None:
        if self.values.ndim != 3 or min(self.values.shape) < 2:
            raise ValueError(f"SdfGrid: values must be (nx, ny, nz) with every side >= 2, got {self.values.shape}")
        if np.asarray(self.bbox).shape != (2, 3):
            raise ValueError(f"SdfGrid: bbox must be (2, 3), got {np.asarray(self.bbox).shape}")

    @property
    def spacing(self) -> np.ndarray:
        """(3,) node spacing per axis."""
        bbox = np.asarray(self.bbox, dtype=np.float64)
        return (bbox[1] - bbox[0]) / (np.array(self.values.shape) - 1)

    def axes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Node coordinates along x, y and z."""
        bbox = np.asarray(self.bbox, dtype=np.float64)
        return tuple(np.linspace(bbox[0, d], bbox[1, d], self.values.shape[d]) for d in range(3))


def grid_axes(bbox, resolution: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Node coordinates of a nearly isotropic grid spanning ``bbox`` exactly.

    The longest side gets ``resolution`` nodes; the others as many as keep the
    spacing within half a node of it (a flat box does not waste nodes).
    """
    bbox = np.asarray(bbox, dtype=np.float64)
    extent = bbox[1] - bbox[0]
    step = extent.max() / (resolution - 1)
    counts = [max(2, int(round(e / step)) + 1) for e in extent]
    return tuple(np.linspace(bbox[0, d], bbox[1, d], counts[d]) for d in range(3))


# ------------------------------------------------------------------ extraction


def extract_mesh(grid: SdfGrid, level: float = 0.0) -> trimesh.Trimesh:
    """Marching cubes (scikit-image, Lewiner) of ``grid`` at ``level``: a float64 mesh in world
    coordinates with outward-facing triangles (positive volume for a closed surface)."""
    values = np.asarray(grid.values, dtype=np.float32)
    if not (values.min() < level < values.max()):
        raise MeshError(f"empty surface: the field ({values.min():.3g}..{values.max():.3g}) does not cross {level}")
    # skimage winds the triangles outward for a field that is negative inside
    # (checked by the positive-volume test); its returned normals are not used.
    verts, faces, _normals, _values = measure.marching_cubes(values, level=level, allow_degenerate=False)
    vertices = verts.astype(np.float64) * grid.spacing + np.asarray(grid.bbox, dtype=np.float64)[0]
    return trimesh.Trimesh(vertices=vertices, faces=faces.astype(np.int64), process=False)


def clean_mesh(mesh: trimesh.Trimesh, config: MeshConfig | None = None) -> trimesh.Trimesh:
    """Merge duplicate vertices, drop degenerate faces and small connected components."""
    config = config or MeshConfig()
    mesh = mesh.copy()
    mesh.merge_vertices()
    mesh.update_faces(mesh.nondegenerate_faces())
    mesh.remove_unreferenced_vertices()
    if len(mesh.faces) == 0:
        raise MeshError("empty mesh after cleaning")
    labels = trimesh.graph.connected_component_labels(mesh.face_adjacency, node_count=len(mesh.faces))
    counts = np.bincount(labels)
    if config.keep_largest_component:
        keep = labels == np.argmax(counts)
    else:
        keep = counts[labels] >= config.min_component_fraction * len(mesh.faces)
    if not keep.all():
        mesh.update_faces(keep)
        mesh.remove_unreferenced_vertices()
    return mesh


def decimate(mesh: trimesh.Trimesh, face_budget: int) -> trimesh.Trimesh:
    """Quadric decimation to at most ``face_budget`` faces (0 = unchanged).

    trimesh delegates to the optional ``fast-simplification`` package; without it a
    budget is an error rather than a silently larger mesh.
    """
    if face_budget <= 0 or len(mesh.faces) <= face_budget:
        return mesh
    try:
        import fast_simplification  # noqa: F401
    except ImportError as exc:
        raise MeshError(
            f"mesh.face_budget={face_budget} needs the 'fast-simplification' package "
            "(pip install fast-simplification); set mesh.face_budget to 0 to keep the full mesh"
        ) from exc
    return mesh.simplify_quadric_decimation(face_count=face_budget)


# --------------------------------------------------------------------- colours


def vertex_colors(mesh: trimesh.Trimesh, views: ViewSet, min_cosine: float = 0.05) -> np.ndarray:
    """RGBA (V, 4) uint8 vertex colours from the views.

    A view votes for a vertex when the vertex projects onto its image, faces the
    camera (cosine between the vertex normal and the direction to the camera above
    ``min_cosine``) and nothing lies between them (embree ray cast from the vertex,
    nudged off the surface, towards the camera). Votes are bilinear image samples
    weighted by that cosine and by the view's mask at the pixel: a hull overshoots
    the object between views, and background pixels must not paint it white.
    Vertices no view sees take the colour of the nearest coloured vertex.
    """
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    normals = np.asarray(mesh.vertex_normals, dtype=np.float64)
    n = len(vertices)
    masks = np.asarray(views.foreground(), dtype=np.float32)
    height, width = masks.shape[1:]
    eps = 1e-3 * float(np.linalg.norm(mesh.extents))
    total = np.zeros((n, 3))
    weight = np.zeros(n)
    w2c = cam.invert_rigid(views.c2w)
    for i in range(len(views.images)):
        centre = views.c2w[i, :3, 3]
        to_cam = centre - vertices
        to_cam /= np.linalg.norm(to_cam, axis=1, keepdims=True)
        cosine = np.einsum("ij,ij->i", normals, to_cam)
        uv, depth = cam.project(vertices, views.K[i], w2c[i])
        candidate = (depth > 0) & inside_image(uv[:, 0], uv[:, 1], width, height) & (cosine > min_cosine)
        idx = np.nonzero(candidate)[0]
        if len(idx) == 0:
            continue
        origins = vertices[idx] + eps * (normals[idx] + to_cam[idx])
        occluded = mesh.ray.intersects_any(origins, to_cam[idx])
        idx = idx[~occluded]
        u, v = uv[idx, 0], uv[idx, 1]
        w = cosine[idx] * sample_bilinear(masks[i], u, v)
        total[idx] += w[:, None] * sample_bilinear(views.images[i], u, v)
        weight[idx] += w
    colored = weight > 1e-6
    rgb = np.full((n, 3), 128.0)
    rgb[colored] = total[colored] / weight[colored, None]
    if colored.any() and not colored.all():
        _, nearest = cKDTree(vertices[colored]).query(vertices[~colored])
        rgb[~colored] = rgb[colored][nearest]
    rgba = np.concatenate([np.clip(np.round(rgb), 0, 255), np.full((n, 1), 255.0)], axis=1)
    return rgba.astype(np.uint8)


def mesh_from_grid(grid: SdfGrid, views: ViewSet | None = None, config: MeshConfig | None = None) -> trimesh.Trimesh:
    """The whole mesh stage: marching cubes, cleaning, decimation, vertex colours (when views are given)."""
    config = config or MeshConfig()
    mesh = decimate(clean_mesh(extract_mesh(grid), config), config.face_budget)
    if views is not None and config.color_views:
        mesh.visual.vertex_colors = vertex_colors(mesh, views)
    return mesh


# ---------------------------------------------------------------------- files


def mesh_format(path: str | os.PathLike, file_format: str | None = None) -> str:
    """'glb', 'ply' or 'obj' from ``file_format`` or the file suffix; anything else is an error."""
    fmt = (file_format or Path(path).suffix.lstrip(".")).lower()
    if fmt not in MESH_FORMATS:
        raise InputError(f"{path}: unsupported mesh format {fmt!r} (use one of {', '.join(MESH_FORMATS)})")
    return fmt


def export_mesh(mesh: trimesh.Trimesh, path: str | os.PathLike, file_format: str | None = None) -> Path:
    """Write ``mesh`` atomically as GLB, PLY (binary) or OBJ, with its vertex colours.

    GLB only: glTF is y-up, so the mesh is rotated by :func:`cameras.z_up_to_y_up`
    ((x, y, z) -> (x, z, -y), a proper rotation, never a mirror) on the way out.
    PLY and OBJ keep the mesh's own frame. :func:`load_mesh` undoes the rotation.
    """
    path = Path(path)
    fmt = mesh_format(path, file_format)
    out = mesh.copy()
    if fmt == "glb":
        out.apply_transform(cam.z_up_to_y_up())
    with atomic_path(path) as tmp:
        if fmt == "obj":
            # trimesh's default 8 decimals cannot hold float64 round trips within 1e-6 for
            # coordinates in metres far from the origin; 10 keeps them.
            data = trimesh.exchange.obj.export_obj(out, include_color=True, include_normals=False, digits=10)
            tmp.write_text(data)
        else:
            out.export(tmp, file_type=fmt)
    return path


def load_mesh(path: str | os.PathLike) -> trimesh.Trimesh:
    """Read a mesh written by :func:`export_mesh` (or any single mesh trimesh reads) in our frame.

    GLB files are rotated back from glTF's y-up with the inverse of
    :func:`cameras.z_up_to_y_up`; vertices and faces are kept as stored (no merging).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"mesh file not found: {path}")
    fmt = Path(path).suffix.lstrip(".").lower()
    try:
        mesh = trimesh.load(path, force="mesh", process=False)
    except Exception as exc:  # trimesh raises many types for malformed files
        raise InputError(f"cannot read mesh {path}: {exc}") from exc
    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
        raise InputError(f"{path}: no triangle mesh found")
    if fmt in ("glb", "gltf"):
        mesh.apply_transform(np.linalg.inv(cam.z_up_to_y_up()))
    return mesh
