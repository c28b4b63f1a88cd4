"""Reconstruction backends: visual hull (hull.py) and SparseNeuS (sparseneus/).

``make_reconstructor(cfg)`` picks one: ``backend: auto`` uses SparseNeuS when a
checkpoint is configured (``sparseneus.checkpoint`` or $ONE2345_SPARSENEUS) and the
hull otherwise; result.json records which.
"""

from __future__ import annotations

import os

from ..config import HullConfig, MeshConfig, PipelineConfig

SPARSENEUS_ENV = "ONE2345_SPARSENEUS"


class HullReconstructor:
    """Silhouette carving of the 32 views, marching cubes, colours from the views."""

    name = "hull"

    def __init__(self, hull: HullConfig, mesh: MeshConfig):
        self.hull_cfg = hull
        self.mesh_cfg = mesh

    def reconstruct(self, views):
        """ViewSet -> coloured trimesh.Trimesh in the views' world frame."""
        from ..mesh import mesh_from_grid
        from .hull import reconstruct_hull

        return mesh_from_grid(reconstruct_hull(views, self.hull_cfg), views, self.mesh_cfg)


def sparseneus_checkpoint(cfg: PipelineConfig) -> str:
    """The configured SparseNeuS checkpoint path, or '' when none is configured."""
    return cfg.sparseneus.checkpoint or os.environ.get(SPARSENEUS_ENV, "")


def make_reconstructor(cfg: PipelineConfig):
    backend = cfg.backend
    if backend == "auto":
        backend = "sparseneus" if sparseneus_checkpoint(cfg) else "hull"
    if backend == "hull":
        return HullReconstructor(cfg.hull, cfg.mesh)
    if backend == "sparseneus":
        from .sparseneus.backend import SparseNeuSReconstructor

        return SparseNeuSReconstructor(cfg.sparseneus, cfg.mesh, sparseneus_checkpoint(cfg))
    raise ValueError(f"unknown reconstruction backend {cfg.backend!r}: use auto, hull or sparseneus")
