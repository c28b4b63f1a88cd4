"""Reconstruction backends: visual hull (hull.py) and SparseNeuS (sparseneus/).

Both turn posed views into a :class:`~one2345_ros.mesh.extract.Surface` (a signed grid, its
map to the views' world, optional colours) for the one mesh stage. ``make_reconstructor(cfg)``
picks one: ``backend: auto`` uses SparseNeuS when a checkpoint is configured
(``sparseneus.checkpoint`` or $ONE2345_SPARSENEUS, see config.resolve_environment) and the hull
otherwise; result.json records which.
"""

from __future__ import annotations

from ..config import Config, HullConfig
from ..mesh.extract import Surface
from ..timing import StageTimer


class HullReconstructor:
    """Silhouette carving of the views: a signed field in the views' world frame (colours: the mesh stage's)."""

    name = "hull"

    def __init__(self, hull: HullConfig):
        self.hull_cfg = hull

    def reconstruct(self, views) -> Surface:
        from .hull import reconstruct_hull

        timer = StageTimer()
        with timer.stage("carve"):
            grid = reconstruct_hull(views, self.hull_cfg)
        return Surface(grid=grid, timings=dict(timer.timings))


def backend_name(cfg: Config) -> str:
    """'hull' or 'sparseneus' for ``cfg.backend`` (auto: sparseneus when a checkpoint is configured)."""
    if cfg.backend == "auto":
        return "sparseneus" if cfg.sparseneus.checkpoint else "hull"
    return cfg.backend


def make_reconstructor(cfg: Config):
    """The configured backend, its weights loaded (strictly; never random weights)."""
    backend = backend_name(cfg)
    if backend == "hull":
        return HullReconstructor(cfg.hull)
    if backend == "sparseneus":
        from .sparseneus.backend import SparseNeuSReconstructor

        return SparseNeuSReconstructor(cfg.sparseneus, cfg.sparseneus.checkpoint)
    raise ValueError(f"unknown reconstruction backend {cfg.backend!r}: use auto, hull or sparseneus")
