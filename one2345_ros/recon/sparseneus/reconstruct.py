"""Views -> coloured mesh with the SparseNeuS network (One-2-3-45 export_mesh, lod0)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ...config import SparseNeuSConfig
from ...types import InputError, ViewSet
from ...timing import StageTimer
from .checkpoint import load_sparseneus
from .extract import marching_cubes, sdf_grid, vertex_colors
from .frame import ReconstructionFrame, reconstruction_frame
from .network import SparseNeuS, active_voxels, cost_volume

STAGES = ("features", "cost_volume", "cnn_3d", "sdf_grid", "marching_cubes", "colors")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


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
):
    """Mesh of the object seen by ``views``, in the views' world frame.

    Returns vertices (V, 3) float64, faces (F, 3) int64 (outward), colours (V, 3)
    uint8. ``network`` defaults to the checkpoint of ``cfg`` (never random weights).
    """
    cfg = cfg or SparseNeuSConfig()
    timer = timer or StageTimer()
    stats = stats if stats is not None else SparseNeuSStats()
    _check_views(views)
    net = network if network is not None else load_sparseneus(None, cfg)
    net.configure(batchnorm=cfg.batchnorm, backend=cfg.backend)
    device = resolve_device(cfg.device)
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
        mask = active_voxels(proj, n, frame.width, frame.height)
        if not mask.any():
            raise InputError("no voxel of the reconstruction volume is seen by 2 views: check the poses")
        cost = cost_volume(compressed, proj, mask)
        del compressed
        stats.active_voxels = int(mask.sum())
    with timer.stage("cnn_3d"):
        volume = net.regularize(cost, mask)
        del cost
    with timer.stage("sdf_grid"):
        grid, stats.sdf_evaluations = sdf_grid(
            lambda p: net.sdf(p, volume),
            cfg.mesh_resolution,
            near_surface=cfg.mesh_near_surface,
            chunk=cfg.chunk_points,
            device=device,
        )
    with timer.stage("marching_cubes"):
        verts_n, faces = marching_cubes(grid)
    with timer.stage("colors"):
        centers = torch.from_numpy(frame.c2w[:, :3, 3]).float().to(device)
        colors = vertex_colors(
            net,
            torch.from_numpy(verts_n).float().to(device),
            volume,
            mask[None, None].float(),
            fused,
            images,
            proj,
            centers,
        )
    return frame.to_world(verts_n), faces, colors


__all__ = [
    "STAGES",
    "ReconstructionFrame",
    "SparseNeuSStats",
    "reconstruct_sparseneus",
]
