"""Views -> SDF and colours with the SparseNeuS network (One-2-3-45 export_mesh, lod0).

The network's SDF on the mesh grid and its rendering network's vertex colours go to the one
mesh stage (:func:`one2345_ros.mesh.make_mesh`) as a :class:`~one2345_ros.mesh.extract.Surface`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ...config import SparseNeuSConfig, torch_device
from ...mesh import world_similarity
from ...mesh.extract import SdfGrid, Surface
from ...timing import StageTimer
from ...types import InputError, ViewSet
from .checkpoint import load_sparseneus
from .extract import sdf_grid, vertex_colors
from .frame import ReconstructionFrame, reconstruction_frame
from .network import SparseNeuS, cost_volume

STAGES = ("features", "cost_volume", "cnn_3d", "sdf_grid")
"""Stages timed here; the mesh stage adds marching_cubes, clean and colors."""


@dataclass
class SparseNeuSStats:
    """What a reconstruction did, for result.json and benchmarks."""

    active_voxels: int = 0
    sdf_evaluations: int = 0
    center: list = field(default_factory=list)
    radius: float = 0.0


def _check_views(views: ViewSet) -> None:
    n, h, w = views.images.shape[:3]
    if n < 2:
        raise InputError(f"SparseNeuS needs at least 2 views, got {n}")
    if h % 4 or w % 4:
        raise InputError(f"SparseNeuS needs image sides divisible by 4 (feature pyramid), got {w}x{h}")


@torch.no_grad()
def reconstruct_sparseneus(
    views: ViewSet,
    cfg: SparseNeuSConfig | None = None,
    network: SparseNeuS | None = None,
    timer: StageTimer | None = None,
    stats: SparseNeuSStats | None = None,
    intermediates: dict | None = None,
) -> Surface:
    """The SDF of the object seen by ``views`` on a ``mesh_resolution``^3 grid over the normalised
    [-1, 1]^3 cube, its map to the views' world frame, and the rendering network's colours.

    ``network`` defaults to the checkpoint of ``cfg`` (never random weights). ``intermediates``, when
    given, receives the stages' tensors (images, proj, fused, compressed, cost, mask, volume) for
    equivalence checks; it keeps them alive, so leave it out otherwise.
    """
    cfg = cfg or SparseNeuSConfig()
    timer = timer or StageTimer()
    stats = stats if stats is not None else SparseNeuSStats()
    _check_views(views)
    net = network if network is not None else load_sparseneus(None, cfg)
    net.configure(batchnorm=cfg.batchnorm, backend=cfg.backend)
    device = torch_device(cfg.device)
    net = net.to(device)
    frame = reconstruction_frame(views)
    stats.center, stats.radius = frame.center.tolist(), frame.radius
    images = torch.from_numpy(np.ascontiguousarray(views.images)).to(device).permute(0, 3, 1, 2).float() / 255.0
    proj = torch.from_numpy(frame.projections()).float().to(device)
    n = cfg.volume_resolution

    with timer.stage("features"):
        fused = net.fused_features(images)
    with timer.stage("cost_volume"):
        compressed = net.compressed_features(fused)
        cost, mask = cost_volume(compressed, proj, n)
        if intermediates is not None:
            intermediates.update(images=images, proj=proj, fused=fused, compressed=compressed, cost=cost, mask=mask)
        del compressed
        if not mask.any():
            raise InputError("no voxel of the reconstruction volume is seen by 2 views: check the poses")
        stats.active_voxels = int(mask.sum())
    with timer.stage("cnn_3d"):
        volume = net.regularize(cost, mask)
        del cost
        if intermediates is not None:
            intermediates["volume"] = volume
    with timer.stage("sdf_grid"):
        grid, stats.sdf_evaluations = sdf_grid(
            lambda p: net.sdf(p, volume),
            cfg.mesh_resolution,
            near_surface=cfg.mesh_near_surface,
            chunk=cfg.chunk_points,
            device=device,
        )
    centers = torch.from_numpy(frame.c2w[:, :3, 3]).float().to(device)

    def colors(vertices_n: np.ndarray) -> np.ndarray:
        """Rendering-network colours (V, 3) uint8 of vertices in the normalised frame."""
        verts = torch.from_numpy(np.ascontiguousarray(vertices_n)).float().to(device)
        return vertex_colors(net, verts, volume, mask[None, None].float(), fused, images, proj, centers)

    return Surface(
        grid=SdfGrid(values=grid, bbox=np.array([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]])),
        grid_to_world=world_similarity(frame.radius, frame.center, frame.ref_c2w),
        colors=colors,
        timings=dict(timer.timings),
    )


__all__ = [
    "STAGES",
    "ReconstructionFrame",
    "SparseNeuSStats",
    "reconstruct_sparseneus",
]
