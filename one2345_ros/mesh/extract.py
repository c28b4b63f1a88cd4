"""Marching cubes on a signed grid: the one surface extraction every backend's SDF goes through.

Geometry is float64 in the frame of the grid; :class:`Surface` says how that frame maps to
the views' world frame.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import trimesh
from skimage import measure


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


VertexColorFn = Callable[[np.ndarray], np.ndarray]
"""Vertices (V, 3) float64 in the grid's frame -> RGB (V, 3) uint8."""


@dataclass
class Surface:
    """What a reconstruction backend hands to the one mesh stage (:func:`one2345_ros.mesh.make_mesh`).

    grid: the signed field, negative inside. grid_to_world: (4, 4) similarity from the grid's
    frame to the views' world frame (identity when the grid is in world coordinates).
    colors: the backend's own vertex colouring (SparseNeuS's rendering network), or None.
    timings: seconds per backend stage.
    """

    grid: SdfGrid
    grid_to_world: np.ndarray = field(default_factory=lambda: np.eye(4))
    colors: VertexColorFn | None = None
    timings: dict[str, float] = field(default_factory=dict)
