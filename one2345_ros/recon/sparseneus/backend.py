"""SparseNeuS behind the reconstructor interface (views -> Surface for the mesh stage)."""

from __future__ import annotations

from ...config import SparseNeuSConfig
from ...mesh.extract import Surface
from ...timing import StageTimer


class SparseNeuSReconstructor:
    """Loads the One-2-3-45 checkpoint once (strictly; never random weights) and
    reconstructs any number of view sets with it."""

    name = "sparseneus"

    def __init__(self, cfg: SparseNeuSConfig, checkpoint: str = "", network=None):
        from .checkpoint import load_sparseneus

        self.cfg = cfg
        self.network = network if network is not None else load_sparseneus(checkpoint or None, cfg)

    def reconstruct(self, views) -> Surface:
        from .reconstruct import reconstruct_sparseneus

        return reconstruct_sparseneus(views, self.cfg, self.network, timer=StageTimer())
