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


def centered_batch_statistics(x: torch.Tensor, dims) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """x - mean, the per-channel mean and the biased variance, reducing over ``dims``.

    Two passes (sum, then the sum of squared deviations), as precise as ``mean``/``var`` (within
    1e-7 relative of float64, measured) and ~2.5x faster on CPU, where ``var`` is a Welford
    reduction and channels-last maps are reduced across rows. ``F.batch_norm(training=True)`` is
    not used: on channels-last maps its statistics are accumulated naively and its variance was
    off by up to 2e-3 relative (torch 2.13, 2M values per channel, measured).
    """
    shape = [1] * x.dim()
    shape[1] = -1
    n = x.numel() // x.shape[1]
    mean = x.sum(dim=dims) / n
    centered = x - mean.view(shape)
    var = centered.square().sum(dim=dims) / n
    return centered, mean, var


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

    def forward(self, x: torch.Tensor, inplace: bool = False) -> torch.Tensor:
        """x: (N, C, ...) -> same shape (and memory format).

        ``inplace=True`` (the caller's fresh tensor, e.g. a convolution's output) overwrites x
        when autograd is off: centred, scaled and activated in its own memory, the same values
        as out of place bit for bit, with no new full-size tensor but the squares' (measured
        1.4x faster on 32 x 16 x 128^2 channels-last maps).
        """
        shape = (1, -1) + (1,) * (x.dim() - 2)
        inplace = inplace and not torch.is_grad_enabled()
        if self.bn_mode == "batch":
            dims = [0, *range(2, x.dim())]
            if inplace:
                mean = x.sum(dim=dims) / (x.numel() // x.shape[1])
                centered = x.sub_(mean.view(shape))
                var = centered.square().sum(dim=dims) / (x.numel() // x.shape[1])
            else:
                centered, _, var = centered_batch_statistics(x, dims)
        else:
            mean = self.running_mean.view(shape)
            centered, var = (x.sub_(mean) if inplace else x - mean), self.running_var
        scale = (self.weight.abs() + self.eps) / torch.sqrt(var + self.eps)
        # one fused pass for the affine part, the activation in place on that fresh tensor
        y = torch.addcmul(self.bias.view(shape), centered, scale.view(shape), out=centered if inplace else None)
        return F.leaky_relu_(y, self.slope)


class ConvABN(nn.Module):
    """Conv2d without bias followed by InPlaceABN (featurenet.py ConvBnReLU)."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, pad: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=pad, bias=False)
        self.bn = InPlaceABN(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x), inplace=True)


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
        """upsample(x) + y, added into y (a fresh lateral-conv output)."""
        return y.add_(F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True))

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
        (bilinear, align_corners=True) and concatenated (trainer_generic.py).

        On the CPU the maps are channels-last: oneDNN's convolutions run about twice as fast
        on them (no layout reorder per call), and every later op keeps that format.
        """
        if images.device.type == "cpu":
            images = images.contiguous(memory_format=torch.channels_last)
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


def positional_encoding_t(x: torch.Tensor, n_freqs: int) -> torch.Tensor:
    """:func:`positional_encoding` transposed, (3 + 6 n_freqs, P), the same values: all frequencies
    at once (2^k x is exact) on contiguous (n_freqs, 3, P) blocks, sin and cos written into their
    rows of the output (no stack or cat copies: 2.5x faster, measured)."""
    P = x.shape[0]
    out = torch.empty(3 + 6 * n_freqs, P, dtype=x.dtype, device=x.device)
    xt = out[:3]
    xt.copy_(x.t())
    freqs = 2.0 ** torch.arange(n_freqs, dtype=x.dtype, device=x.device)
    xf = freqs[:, None, None] * xt  # (n_freqs, 3, P)
    sin_cos = out[3:].view(n_freqs, 2, 3, P)
    torch.sin(xf, out=sin_cos[:, 0])
    torch.cos(xf, out=sin_cos[:, 1])
    return out


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

    def weight(self) -> torch.Tensor:
        return self.weight_g * self.weight_v / self.weight_v.norm(dim=1, keepdim=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight(), self.bias)


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

    def sdf(self, xyz: torch.Tensor, latent: torch.Tensor | None = None, hidden_t: torch.Tensor | None = None):
        """The SDF column of :meth:`forward`, (P,): all that the mesh grid and the normals need.

        Without autograd this runs feature-major: ``hidden_t`` is a (hidden + latent, P) buffer
        whose last ``latent`` rows hold the latent (``latent`` (P, latent) fills it otherwise).
        Each layer is one product W @ X^T whose output rows are contiguous, so the softplus
        writes straight into the buffer's first rows and lin1 / lin2 read [x, latent] without
        concatenating or copying; lin2 computes only the SDF's row. The values equal
        :meth:`forward`'s bit for bit (MKL's kernel sums in the same order in both layouts,
        test_sparseneus_equivalence), for 56 % of the multiply-adds and no copies.
        """
        if torch.is_grad_enabled():  # out= records no gradient
            return self(xyz, latent if hidden_t is None else hidden_t[-self.latent :].t())[:, 0]
        if hidden_t is None:
            hidden_t = torch.empty(self.lin1.weight_v.shape[1], xyz.shape[0], dtype=xyz.dtype, device=xyz.device)
            hidden_t[-self.latent :] = latent.t()
        h = hidden_t[: -self.latent]
        lin0, lin1, lin2 = self.lin0, self.lin1, self.lin2
        # mm then the bias: the same sums as addmm (bit for bit) without its slow copy of a
        # column-broadcast bias into the output
        pe_t = positional_encoding_t(xyz, self.n_freqs)
        torch.ops.aten.softplus.out(torch.mm(lin0.weight(), pe_t).add_(lin0.bias[:, None]), 100.0, 20.0, out=h)
        torch.ops.aten.softplus.out(torch.mm(lin1.weight(), hidden_t).add_(lin1.bias[:, None]), 100.0, 20.0, out=h)
        # Two rows, not one: with one output row MKL takes its matrix-vector path, whose sums
        # round differently (~1e-6); with two it runs the kernel of the full layer (bit for bit).
        return torch.mm(lin2.weight()[:2], hidden_t)[0].add_(lin2.bias[0])


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
    """IBRNet-style colour blending (rendering_network.py).

    forward(geometry (P, G), rgb_feat (P, V, 3 + F), ray_diff (P, V, 4), mask (P, V))
    -> colours (P, 3): a masked softmax over views of the sampled source colours.
    :meth:`blend` is the same network on feature-major tensors, which the vertex colours use.
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
        out = self.blend(geometry.t(), rgb_feat.permute(2, 1, 0), ray_diff.permute(2, 1, 0), mask.t())
        return out.t()

    def blend(self, geometry: torch.Tensor, feats: torch.Tensor, ray_diff: torch.Tensor, mask: torch.Tensor):
        """Feature-major: geometry (G, P), feats (3 + F, V, P), ray_diff (4, V, P), mask (V, P) -> (3, P).

        Every layer is one product W @ X over the (view, point) columns, so nothing is permuted
        and the reductions over views run along contiguous point rows. base_fc's first layer takes
        [geometry, mean, var, feats]: its geometry, mean and variance columns are multiplied once
        per point instead of once per (view, point) and added to every view's product (69 % of
        the network's largest product, and its (V, P, 193) input, saved; the sums are split, so
        colours equal the original's up to float rounding: test_sparseneus_equivalence).
        """
        C, V, P = feats.shape
        mask = mask.to(feats.dtype)[None]  # (1, V, P)
        rgb_in = feats[:3]
        feats = _fc(self.ray_dir_fc, ray_diff).add_(feats)
        # anti-alias pooling weights from the angle between normal and source ray
        exp_dot = torch.exp(self.s.abs() * (ray_diff[3:] - 1.0))
        weight = (exp_dot - exp_dot.min(dim=1, keepdim=True).values) * mask
        weight = weight / (weight.sum(dim=1, keepdim=True) + 1e-8)
        mean = (feats * weight).sum(dim=1)  # (C, P)
        var = (weight * (feats - mean[:, None]).square_()).sum(dim=1)
        first = self.base_fc[0]
        w_geo, w_mean, w_var, w_feat = first.weight.split([geometry.shape[0], C, C, C], dim=1)
        per_point = (w_geo @ geometry).addmm_(w_mean, mean).addmm_(w_var, var).add_(first.bias[:, None])
        x = (w_feat @ feats.view(C, -1)).view(-1, V, P).add_(per_point[:, None])
        x = _fc(self.base_fc[2:], F.elu_(x))
        x_vis = _fc(self.vis_fc, x * weight)
        x_res, vis = x_vis[:-1], x_vis[-1:]
        vis = torch.sigmoid(vis).mul_(mask)
        x = x.add_(x_res)
        vis = _fc(self.vis_fc2, x * vis).mul_(mask)
        logits = _fc(self.rgb_fc, torch.cat([x, vis, ray_diff], dim=0))
        logits = logits.masked_fill_(mask == 0, -1e9)
        blend = F.softmax(logits, dim=1)
        return (rgb_in * blend).sum(dim=1)


def _fc(mlp: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """A Linear / ELU / Sigmoid stack of :func:`_mlp` on feature-major x (C, ...) -> (C', ...): W @ x per
    layer; the activations in place on each product (a fresh tensor) when autograd is off."""
    inplace = not torch.is_grad_enabled()
    shape = x.shape[1:]
    x = x.reshape(x.shape[0], -1)
    for layer in mlp:
        if isinstance(layer, nn.Linear):
            x = (layer.weight @ x).add_(layer.bias[:, None])
        elif isinstance(layer, nn.ELU):
            x = F.elu_(x, layer.alpha) if inplace else F.elu(x, layer.alpha)
        elif isinstance(layer, nn.Sigmoid):
            x = x.sigmoid_() if inplace else x.sigmoid()
        else:
            raise TypeError(f"unexpected layer {layer!r}")
    return x.view(-1, *shape)


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
    "centered_batch_statistics",
    "positional_encoding",
    "positional_encoding_t",
    "set_bn_mode",
]
