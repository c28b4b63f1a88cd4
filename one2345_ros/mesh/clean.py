"""Mesh cleaning and decimation."""

from __future__ import annotations

import numpy as np
import trimesh
from scipy.spatial import cKDTree

from ..config import MeshConfig
from .extract import MeshError


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
    """Quadric decimation to at most ``face_budget`` faces (0 = unchanged); the one decimator
    (mesh stage and RViz markers).

    trimesh delegates to the ``fast-simplification`` package (a dependency); without it a
    budget is an error rather than a silently larger mesh. Vertex colours, which the
    decimator drops, are carried over from the nearest original vertex.
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
    out = mesh.simplify_quadric_decimation(face_count=face_budget)
    if len(out.faces) > face_budget:  # the decimator may stop a few faces short of its target
        out = mesh.simplify_quadric_decimation(face_count=int(face_budget * face_budget / len(out.faces)))
    if getattr(mesh.visual, "kind", None) == "vertex":
        _, nearest = cKDTree(mesh.vertices).query(out.vertices)
        out.visual.vertex_colors = np.asarray(mesh.visual.vertex_colors)[nearest]
    return out
