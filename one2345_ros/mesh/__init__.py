"""The mesh stage, one for every backend: marching cubes, cleaning, decimation, colours (files: :mod:`files`).

Every backend hands a :class:`~one2345_ros.mesh.extract.Surface` to :func:`make_mesh`, so
``mesh.face_budget``, ``mesh.colors`` and the cleaning rules apply to the hull and to SparseNeuS alike.
"""

from __future__ import annotations

import numpy as np
import trimesh

from ..config import MeshConfig
from ..timing import StageTimer
from ..types import ViewSet
from .clean import clean_mesh, decimate
from .color import vertex_colors
from .extract import Surface, extract_mesh


def color_source(surface: Surface, config: MeshConfig) -> str:
    """'network', 'views' or 'none': what ``mesh.colors`` means for this backend."""
    if config.colors == "auto":
        return "network" if surface.colors is not None else "views"
    if config.colors == "network" and surface.colors is None:
        raise ValueError("mesh.colors: 'network' needs a backend with its own colours (sparseneus); "
                         "use 'views' or 'auto' with the hull")  # fmt: skip
    return config.colors


def make_mesh(
    surface: Surface, views: ViewSet | None, config: MeshConfig | None = None, timer: StageTimer | None = None
) -> trimesh.Trimesh:
    """Marching cubes, cleaning, decimation to ``face_budget``, vertex colours: a float64 mesh in the views' world.

    Colours (RGBA uint8 per vertex) come from the backend (``network``) or from ``views``
    projected with visibility (``views``); with ``none`` the mesh has no colours.
    """
    config = config or MeshConfig()
    timer = timer or StageTimer()
    source = color_source(surface, config)
    with timer.stage("marching_cubes"):
        mesh = extract_mesh(surface.grid)
    with timer.stage("clean"):
        mesh = decimate(clean_mesh(mesh, config), config.face_budget)
    grid_vertices = np.asarray(mesh.vertices, dtype=np.float64).copy()
    mesh.apply_transform(surface.grid_to_world)
    with timer.stage("colors"):
        if source == "network":
            rgb = surface.colors(grid_vertices)
            mesh.visual.vertex_colors = np.concatenate([rgb, np.full((len(rgb), 1), 255, np.uint8)], axis=1)
        elif source == "views" and views is not None:
            mesh.visual.vertex_colors = vertex_colors(mesh, views)
    return mesh


def world_similarity(scale: float, center, rotation_c2w) -> np.ndarray:
    """(4, 4) ``c2w @ [[s I, c], [0, 1]]``: points x -> c2w (s x + c) (a normalised grid's frame to the world)."""
    T = np.eye(4)
    T[:3, :3] = scale * np.eye(3)
    T[:3, 3] = center
    return np.asarray(rotation_c2w, dtype=np.float64) @ T


def mesh_from_grid(grid, views: ViewSet | None = None, config: MeshConfig | None = None) -> trimesh.Trimesh:
    """:func:`make_mesh` of a signed grid already in the views' world frame (colours from ``views``)."""
    return make_mesh(Surface(grid=grid), views, config or MeshConfig(colors="views" if views is not None else "none"))
