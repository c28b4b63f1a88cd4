"""The mesh stage, one for every backend: marching cubes, cleaning, decimation, colours, files."""

from __future__ import annotations

import trimesh

from ..config import MeshConfig
from ..types import ViewSet
from .clean import clean_mesh, decimate
from .color import vertex_colors
from .extract import SdfGrid, extract_mesh


def mesh_from_grid(grid: SdfGrid, views: ViewSet | None = None, config: MeshConfig | None = None) -> trimesh.Trimesh:
    """The whole mesh stage: marching cubes, cleaning, decimation, vertex colours (when views are given)."""
    config = config or MeshConfig()
    mesh = decimate(clean_mesh(extract_mesh(grid), config), config.face_budget)
    if views is not None and config.color_views:
        mesh.visual.vertex_colors = vertex_colors(mesh, views)
    return mesh
