"""The SparseNeuS lod0 network of One-2-3-45 and its forward stages.

Top-level children carry the checkpoint's names: ``pyramid_feature_network``,
``sdf_network_lod0``, ``variance_network_lod0``, ``rendering_network_lod0``.
Stages (reference/one2345.md §4): fused 2D features -> compress layer -> active
voxels (inside the image, z > 0, in >= 2 views) -> cost volume [variance, mean]
-> sparse 3D CNN -> dense latent volume; the SDF MLP queries it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .layers import ConvABN, FeatureNet, GeneralRenderingNetwork, LatentSDFLayer, VarianceNetwork, set_bn_mode
from .sparse_conv import SparseCostRegNet

BACKENDS = ("dense", "torchsparse")
MIN_VISIBLE_VIEWS = 2
"""A voxel is active if it projects inside at least this many views (sum(mask) > 1)."""


@dataclass(frozen=True)
class SparseNeuSArch:
    """Channel widths. The defaults are the One-2-3-45 checkpoint's; tests use tiny ones."""

    feature_channels: tuple[int, int, int] = (8, 16, 32)
    compress_channels: int = 16
    regnet_widths: tuple[int, int, int, int] = (16, 16, 32, 64)
    sdf_hidden: int = 128
    pe_freqs: int = 6

    @property
    def fused_channels(self) -> int:
        return sum(self.feature_channels)

    @property
    def latent_channels(self) -> int:
        return self.regnet_widths[0]


ONE2345_ARCH = SparseNeuSArch()


class SparseSdfNetwork(nn.Module):
    """compress_layer + sparse_costreg_net + sdf_layer (SparseSdfNetwork, lod 0)."""

    def __init__(self, arch: SparseNeuSArch = ONE2345_ARCH) -> None:
        super().__init__()
        self.compress_layer = ConvABN(arch.fused_channels, arch.compress_channels, 3, 1, 1)
        self.sparse_costreg_net = SparseCostRegNet(2 * arch.compress_channels, arch.regnet_widths)
        self.sdf_layer = LatentSDFLayer(arch.sdf_hidden, arch.latent_channels, arch.pe_freqs)


class SparseNeuS(nn.Module):
    """The four checkpoint networks plus the inference-time switches (BN mode, backend)."""

    def __init__(self, arch: SparseNeuSArch = ONE2345_ARCH, batchnorm: str = "batch", backend: str = "dense") -> None:
        super().__init__()
        self.arch = arch
        self.pyramid_feature_network = FeatureNet(arch.feature_channels)
        self.sdf_network_lod0 = SparseSdfNetwork(arch)
        self.variance_network_lod0 = VarianceNetwork()
        self.rendering_network_lod0 = GeneralRenderingNetwork(arch.latent_channels, arch.fused_channels)
        self.configure(batchnorm=batchnorm, backend=backend)

    CHECKPOINT_MODULES = ("pyramid_feature_network", "sdf_network_lod0", "variance_network_lod0", "rendering_network_lod0")

    def configure(self, batchnorm: str | None = None, backend: str | None = None) -> "SparseNeuS":
        if batchnorm is not None:
            set_bn_mode(self, batchnorm)
            self.batchnorm = batchnorm
        if backend is not None:
            if backend not in BACKENDS:
                raise ValueError(f"sparse backend {backend!r} is not one of {BACKENDS}")
            if backend == "torchsparse":
                from .torchsparse_backend import import_torchsparse

                import_torchsparse()  # fail now, with the reason, not mid-reconstruction
            self.backend = backend
        return self

    # ---------------------------------------------------------------- stages

    def fused_features(self, images: torch.Tensor) -> torch.Tensor:
        """(V, 3, H, W) RGB in [0, 1], H and W multiples of 4 -> (V, fused_channels, H, W)."""
        return self.pyramid_feature_network.fused(images)

    def compressed_features(self, fused: torch.Tensor) -> torch.Tensor:
        """(V, fused_channels, H, W) -> (V, compress_channels, H, W)."""
        return self.sdf_network_lod0.compress_layer(fused)

    def regularize(self, cost: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Cost volume (1, 2C, n, n, n) zero off ``mask`` -> latent volume (1, latent, n, n, n)."""
        net = self.sdf_network_lod0.sparse_costreg_net
        if self.backend == "torchsparse":
            from .torchsparse_backend import costreg_torchsparse

            return costreg_torchsparse(net, cost, mask)
        return net.forward_dense(cost, mask)

    def sdf(self, pts: torch.Tensor, volume: torch.Tensor) -> torch.Tensor:
        """pts (P, 3) in the normalised frame -> SDF (P,)."""
        return self.sdf_and_feature(pts, volume)[:, 0]

    def sdf_and_feature(self, pts: torch.Tensor, volume: torch.Tensor) -> torch.Tensor:
        """pts (P, 3) -> (P, hidden): SDF in column 0, geometry feature after."""
        latent = sample_latent(volume, pts)
        return self.sdf_network_lod0.sdf_layer(pts, latent)


# ----------------------------------------------------------------- sampling


def voxel_centers(n: int, device=None) -> torch.Tensor:
    """(n, n, n, 3) centres -1 + i * 2 / (n - 1) of the normalised volume, indexed [x, y, z]."""
    t = torch.linspace(-1.0, 1.0, n, device=device)
    return torch.stack(torch.meshgrid(t, t, t, indexing="ij"), dim=-1)


def sample_latent(volume: torch.Tensor, pts: torch.Tensor) -> torch.Tensor:
    """Trilinear latent lookup of One-2-3-45's custom ``grid_sample_3d``.

    volume (1, C, n, n, n) indexed [x, y, z]; pts (P, 3) -> (P, C). Inside the
    grid it is grid_sample(align_corners=True); the original clamps corner indices
    (border values) and returns zero unless 0 < index < n on every axis, so a point
    exactly on the -1 face samples zero.
    """
    n = volume.shape[-1]
    grid = pts.flip(-1).view(1, 1, 1, -1, 3)
    out = F.grid_sample(volume, grid, mode="bilinear", padding_mode="border", align_corners=True)
    idx = (pts + 1.0) / 2.0 * (n - 1)
    inside = ((idx > 0) & (idx < n)).all(dim=-1)
    return out.view(volume.shape[1], -1).t() * inside[:, None].to(out.dtype)


def sample_volume(volume: torch.Tensor, pts: torch.Tensor) -> torch.Tensor:
    """Plain grid_sample (zeros padding, align_corners) of (1, C, n, n, n) at pts (P, 3) -> (P, C)."""
    grid = pts.flip(-1).view(1, 1, 1, -1, 3)
    out = F.grid_sample(volume, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    return out.view(volume.shape[1], -1).t()


def project_to_grid(proj: torch.Tensor, pts: torch.Tensor, width: int, height: int):
    """Project pts (P, 3) with proj (3, 4) = K [R | t] as back_project_sparse_type does.

    Returns grid (P, 2) in grid_sample units (u_n = 2u / (W - 1) - 1) and valid (P,)
    = inside [-1, 1]^2 with z > 0. Depths in [0, 1e-6) are clamped to 1e-6 and
    negative depths are kept, exactly as the original.
    """
    p = proj[:, :3] @ pts.t() + proj[:, 3:]  # (3, P): rows stay contiguous
    z = p[2]
    z = torch.where(z >= 0, z.clamp(min=1e-6), z)
    u = p[0] / z
    v = p[1] / z
    grid = torch.stack([2 * u / (width - 1) - 1, 2 * v / (height - 1) - 1], dim=-1)
    valid = (grid.abs() <= 1).all(dim=-1) & (z > 0)
    return grid, valid


def active_voxels(proj: torch.Tensor, n: int, width: int, height: int) -> torch.Tensor:
    """(n, n, n) bool: voxels inside the image with z > 0 in >= 2 views. proj (V, 3, 4)."""
    pts = voxel_centers(n, proj.device).view(-1, 3)
    count = torch.zeros(pts.shape[0], dtype=torch.int32, device=proj.device)
    for view_proj in proj:
        count += project_to_grid(view_proj, pts, width, height)[1].to(torch.int32)
    return (count >= MIN_VISIBLE_VIEWS).view(n, n, n)


def cost_volume(features: torch.Tensor, proj: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Variance and mean of the views' features at the active voxels.

    features (V, C, H, W), proj (V, 3, 4), mask (n, n, n) -> (1, 2C, n, n, n), zero
    off the mask. As in the original, the sums run over all views (bilinear
    samples with zero padding: zero for most invisible views, partial within half a
    pixel of the border, and whatever lands in the image for points behind a
    camera), divided by the number of valid views + 1e-5.
    """
    V, C, H, W = features.shape
    n = mask.shape[0]
    pts = voxel_centers(n, features.device)[mask]  # (N, 3)
    total = torch.zeros(C, pts.shape[0], device=features.device)  # (C, N): contiguous accumulation
    total_sq = torch.zeros_like(total)
    count = torch.zeros(pts.shape[0], device=features.device)
    for v in range(V):
        grid, valid = project_to_grid(proj[v], pts, W, H)
        f = F.grid_sample(features[v : v + 1], grid.view(1, 1, -1, 2), padding_mode="zeros", align_corners=True)
        f = f.view(C, -1)
        total += f
        total_sq.addcmul_(f, f)
        count += valid.to(count.dtype)
    inv = 1.0 / (count + 1e-5)
    mean = total * inv
    var = total_sq * inv - mean**2
    out = torch.zeros(1, 2 * C, n, n, n, device=features.device)
    out[0][:, mask] = torch.cat([var, mean], dim=0)
    return out
