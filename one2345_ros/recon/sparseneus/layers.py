"""SparseNeuS 2D and MLP layers with the One-2-3-45 checkpoint's parameter names.

Plain-PyTorch equivalents of the original modules (reference/one2345.md §4):
FeatureNet with InPlaceABN, the positional encoding, LatentSDFLayer (weight norm,
softplus beta 100), the variance scalar and IBRNet-style GeneralRenderingNetwork.
Every ``state_dict`` key and shape equals the official classes' (test/data/
one2345_sparseneus_keys.json).

BatchNorm mode: ``"batch"`` normalises with the statistics of the current batch,
as the original does at inference (nothing calls ``.eval()``); ``"running"`` uses
the stored running statistics. Running statistics are never updated here.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

BN_MODES = ("batch", "running")


def check_bn_mode(mode: str) -> str:
    if mode not in BN_MODES:
        raise ValueError(f"batchnorm mode {mode!r} is not one of {BN_MODES}")
    return mode


def batch_statistics(x: torch.Tensor, dims) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and biased variance (what BatchNorm normalises with in training)."""
    mean = x.mean(dim=dims)
    var = x.var(dim=dims, unbiased=False)
    return mean, var


class InPlaceABN(nn.Module):
    """Activated BatchNorm with inplace_abn's semantics (not in place here).

    y = leaky_relu((x - mean) / sqrt(var + eps) * (|weight| + eps) + bias, 0.01).
    inplace_abn takes |weight| + eps as the scale so that the activation can be
    inverted in its backward pass; the checkpoint's weights assume that.
    Buffers match inplace_abn 1.1.0 (with num_batches_tracked).
    """

    def __init__(self, channels: int, eps: float = 1e-5, slope: float = 0.01) -> None:
        super().__init__()
        self.eps = eps
        self.slope = slope
        self.bn_mode = "batch"
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, C, ...) -> same shape."""
        if self.bn_mode == "batch":
            dims = [0] + list(range(2, x.dim()))
            mean, var = batch_statistics(x, dims)
        else:
            mean, var = self.running_mean, self.running_var
        shape = (1, -1) + (1,) * (x.dim() - 2)
        scale = (self.weight.abs() + self.eps) / torch.sqrt(var + self.eps)
        y = (x - mean.view(shape)) * scale.view(shape) + self.bias.view(shape)
        return F.leaky_relu(y, self.slope)


class ConvABN(nn.Module):
    """Conv2d without bias followed by InPlaceABN (featurenet.py ConvBnReLU)."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, pad: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=pad, bias=False)
        self.bn = InPlaceABN(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class FeatureNet(nn.Module):
    """Three-level FPN: (V, 3, H, W) in [0, 1] -> [c2 @ 1/4, c1 @ 1/2, c0 @ 1] (coarse first).

    ``channels`` = (c0, c1, c2); the checkpoint has (8, 16, 32).
    """

    def __init__(self, channels: tuple[int, int, int] = (8, 16, 32)) -> None:
        super().__init__()
        c0, c1, c2 = channels
        self.conv0 = nn.Sequential(ConvABN(3, c0, 3, 1, 1), ConvABN(c0, c0, 3, 1, 1))
        self.conv1 = nn.Sequential(ConvABN(c0, c1, 5, 2, 2), ConvABN(c1, c1, 3, 1, 1), ConvABN(c1, c1, 3, 1, 1))
        self.conv2 = nn.Sequential(ConvABN(c1, c2, 5, 2, 2), ConvABN(c2, c2, 3, 1, 1), ConvABN(c2, c2, 3, 1, 1))
        self.toplayer = nn.Conv2d(c2, c2, 1)
        self.lat1 = nn.Conv2d(c1, c2, 1)
        self.lat0 = nn.Conv2d(c0, c2, 1)
        self.smooth1 = nn.Conv2d(c2, c1, 3, padding=1)
        self.smooth0 = nn.Conv2d(c2, c0, 3, padding=1)

    @staticmethod
    def _upsample_add(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True) + y

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        conv0 = self.conv0(x)
        conv1 = self.conv1(conv0)
        conv2 = self.conv2(conv1)
        feat2 = self.toplayer(conv2)
        feat1 = self._upsample_add(feat2, self.lat1(conv1))
        feat0 = self._upsample_add(feat1, self.lat0(conv0))
        return [feat2, self.smooth1(feat1), self.smooth0(feat0)]

    def fused(self, images: torch.Tensor) -> torch.Tensor:
        """(V, 3, H, W) -> (V, c2 + c1 + c0, H, W): the levels upsampled to full size
        (bilinear, align_corners=True) and concatenated (trainer_generic.py)."""
        f2, f1, f0 = self(images)
        return torch.cat(
            [
                F.interpolate(f2, scale_factor=4, mode="bilinear", align_corners=True),
                F.interpolate(f1, scale_factor=2, mode="bilinear", align_corners=True),
                f0,
            ],
            dim=1,
        )


def positional_encoding(x: torch.Tensor, n_freqs: int) -> torch.Tensor:
    """(P, 3) -> (P, 3 + 6 n_freqs): [x, sin(x), cos(x), sin(2x), cos(2x), ...]."""
    out = [x]
    for k in range(n_freqs):
        f = 2.0**k
        out += [torch.sin(f * x), torch.cos(f * x)]
    return torch.cat(out, dim=-1)


class WeightNormLinear(nn.Module):
    """Linear layer with torch.nn.utils.weight_norm's parameters (bias, weight_g, weight_v).

    weight = weight_g * weight_v / ||weight_v|| (norm per output row). Written out
    instead of using the deprecated hook API so the keys stay exactly the original's.
    """

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        lin = nn.Linear(cin, cout)
        self.bias = nn.Parameter(lin.bias.detach().clone())
        self.weight_g = nn.Parameter(lin.weight.detach().norm(dim=1, keepdim=True))
        self.weight_v = nn.Parameter(lin.weight.detach().clone())

    def set_weight(self, weight: torch.Tensor) -> None:
        with torch.no_grad():
            self.weight_v.copy_(weight)
            self.weight_g.copy_(weight.norm(dim=1, keepdim=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight_g * self.weight_v / self.weight_v.norm(dim=1, keepdim=True)
        return F.linear(x, w, self.bias)


class LatentSDFLayer(nn.Module):
    """SDF MLP conditioned on the sampled volume latent (sparse_sdf_network.py).

    lin0: PE(xyz) -> hidden; lin1, lin2: [hidden, latent] -> hidden; softplus(beta=100)
    after lin0 and lin1. Output (P, hidden): column 0 is the SDF, the rest a feature.
    Initialised as the original (IDR geometric init): an SDF of a sphere of radius
    ``init_radius`` that ignores the latent until trained.
    """

    def __init__(self, hidden: int = 128, latent: int = 16, n_freqs: int = 6, init_radius: float = 0.5) -> None:
        super().__init__()
        self.n_freqs = n_freqs
        self.latent = latent
        d_in = 3 + 6 * n_freqs
        self.lin0 = WeightNormLinear(d_in, hidden)
        self.lin1 = WeightNormLinear(hidden + latent, hidden)
        self.lin2 = WeightNormLinear(hidden + latent, hidden)
        self._geometric_init(d_in, hidden, latent, init_radius)

    def _geometric_init(self, d_in: int, hidden: int, latent: int, radius: float) -> None:
        with torch.no_grad():
            w0 = torch.zeros(hidden, d_in)
            w0[:, :3].normal_(0.0, math.sqrt(2) / math.sqrt(hidden))
            self.lin0.set_weight(w0)
            self.lin0.bias.zero_()
            w1 = torch.empty(hidden, hidden + latent).normal_(0.0, math.sqrt(2) / math.sqrt(hidden))
            w1[:, -latent:] = 0.0
            self.lin1.set_weight(w1)
            self.lin1.bias.zero_()
            d = hidden + latent
            w2 = torch.empty(hidden, d).normal_(math.sqrt(math.pi) / math.sqrt(d), 1e-4)
            w2[:, -latent:] = 0.0
            self.lin2.set_weight(w2)
            self.lin2.bias.fill_(-radius)
            self.lin2.bias[-latent:] = 0.0

    def forward(self, xyz: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        """xyz (P, 3) normalised coordinates, latent (P, latent) -> (P, hidden)."""
        x = F.softplus(self.lin0(positional_encoding(xyz, self.n_freqs)), beta=100)
        x = F.softplus(self.lin1(torch.cat([x, latent], dim=1)), beta=100)
        return self.lin2(torch.cat([x, latent], dim=1))


class VarianceNetwork(nn.Module):
    """NeuS sharpness: inv_s = exp(10 * variance) (training-time rendering only)."""

    def __init__(self, init_val: float = 0.2) -> None:
        super().__init__()
        self.variance = nn.Parameter(torch.tensor(init_val))

    def inv_s(self) -> torch.Tensor:
        return torch.exp(self.variance * 10.0)


def _mlp(*sizes: int, final_act: nn.Module | None) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(nn.ELU())
    if final_act is not None:
        layers.append(final_act)
    return nn.Sequential(*layers)


class GeneralRenderingNetwork(nn.Module):
    """IBRNet-style colour blending (rendering_network.py), laid out per point.

    forward(geometry (P, G), rgb_feat (P, V, 3 + F), ray_diff (P, V, 4), mask (P, V))
    -> colours (P, 3): a masked softmax over views of the sampled source colours.
    """

    def __init__(self, geometry_ch: int = 16, feature_ch: int = 56) -> None:
        super().__init__()
        f = feature_ch + 3
        self.s = nn.Parameter(torch.tensor(0.2))
        self.ray_dir_fc = _mlp(4, 16, f, final_act=nn.ELU())
        self.base_fc = _mlp(f * 3 + geometry_ch, 64, 32, final_act=nn.ELU())
        self.vis_fc = _mlp(32, 32, 33, final_act=nn.ELU())
        self.vis_fc2 = _mlp(32, 32, 1, final_act=nn.Sigmoid())
        self.rgb_fc = _mlp(32 + 1 + 4, 16, 8, 1, final_act=None)

    def forward(self, geometry: torch.Tensor, rgb_feat: torch.Tensor, ray_diff: torch.Tensor, mask: torch.Tensor):
        n_views = rgb_feat.shape[1]
        mask = mask.to(rgb_feat.dtype)[..., None]  # (P, V, 1)
        rgb_in = rgb_feat[..., :3]
        rgb_feat = rgb_feat + self.ray_dir_fc(ray_diff)
        # anti-alias pooling weights from the angle between normal and source ray
        exp_dot = torch.exp(self.s.abs() * (ray_diff[..., 3:] - 1.0))
        weight = (exp_dot - exp_dot.min(dim=1, keepdim=True).values) * mask
        weight = weight / (weight.sum(dim=1, keepdim=True) + 1e-8)
        mean = (rgb_feat * weight).sum(dim=1, keepdim=True)
        var = (weight * (rgb_feat - mean) ** 2).sum(dim=1, keepdim=True)
        globalfeat = torch.cat([mean, var], dim=-1).expand(-1, n_views, -1)
        geo = geometry[:, None, :].expand(-1, n_views, -1)
        x = self.base_fc(torch.cat([geo, globalfeat, rgb_feat], dim=-1))
        x_vis = self.vis_fc(x * weight)
        x_res, vis = x_vis[..., :-1], x_vis[..., -1:]
        vis = torch.sigmoid(vis) * mask
        x = x + x_res
        vis = self.vis_fc2(x * vis) * mask
        logits = self.rgb_fc(torch.cat([x, vis, ray_diff], dim=-1))
        logits = logits.masked_fill(mask == 0, -1e9)
        blend = F.softmax(logits, dim=1)
        return (rgb_in * blend).sum(dim=1)


def set_bn_mode(module: nn.Module, mode: str) -> None:
    """Set the BatchNorm mode of every normalisation layer under ``module``."""
    check_bn_mode(mode)
    for m in module.modules():
        if hasattr(m, "bn_mode"):
            m.bn_mode = mode


__all__ = [
    "BN_MODES",
    "ConvABN",
    "FeatureNet",
    "GeneralRenderingNetwork",
    "InPlaceABN",
    "LatentSDFLayer",
    "VarianceNetwork",
    "WeightNormLinear",
    "positional_encoding",
    "set_bn_mode",
]
