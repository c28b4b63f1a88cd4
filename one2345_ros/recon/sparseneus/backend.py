"""SparseNeuS behind the reconstructor interface (views -> coloured trimesh)."""

from __future__ import annotations

import numpy as np
import trimesh

from ...config import MeshConfig, SparseNeuSConfig
from ...timing import StageTimer


class SparseNeuSReconstructor:
    """Loads the One-2-3-45 checkpoint once (strictly; never random weights) and
    reconstructs any number of view sets with it."""

    name = "sparseneus"

    def __init__(self, cfg: SparseNeuSConfig, mesh_cfg: MeshConfig, checkpoint: str = "", network=None):
        from . import load_sparseneus

        self.cfg = cfg
        self.mesh_cfg = mesh_cfg
        self.network = network if network is not None else load_sparseneus(checkpoint or None, cfg)
        self.timer = StageTimer()
        """Per-stage seconds of the last call (features, cost_volume, cnn_3d, ...)."""

    def reconstruct(self, views) -> trimesh.Trimesh:
        from ...mesh.clean import clean_mesh
        from . import reconstruct_sparseneus

        self.timer = StageTimer()
        verts, faces, colors = reconstruct_sparseneus(views, self.cfg, self.network, timer=self.timer)
        rgba = np.concatenate([colors, np.full((len(colors), 1), 255, np.uint8)], axis=1)
        mesh = trimesh.Trimesh(verts, faces, vertex_colors=rgba, process=False)
        return clean_mesh(mesh, self.mesh_cfg)
