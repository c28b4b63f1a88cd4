"""Sparse 3D convolutions with torchsparse 1.4 semantics, computed densely.

The One-2-3-45 cost-regularisation network runs on torchsparse 1.4 (a CUDA
extension that is hard to build). The ``dense`` backend reproduces its results
with ``conv3d`` / ``conv_transpose3d`` on a dense grid plus one boolean mask of
active sites per level; features are kept at zero outside the mask, so a dense
convolution sums exactly the neighbours torchsparse's kernel map would.

torchsparse 1.4 semantics (torchsparse/nn/functional/conv.py, downsample.py):

* stride 1 (submanifold): outputs at the input sites;
  out[q] = sum_k kernel[k]^T x[q + o_k].
* stride 2: coarse site i (fine coordinate 2i in level units) exists iff an
  active input lies in 2i + {-1, 0, 1}^3 and 2i >= the per-axis minimum of the
  active input coordinates; there is no upper clip, so a coarse grid of
  floor(n / 2) + 1 sites is needed (index 48 for n = 96).
  out[i] = sum_d kernel[d]^T x[2i + d] = Conv3d(k=3, s=2, p=1).
* transposed (stride 2): reuses the downsampling kernel map, so outputs are the
  cached fine sites and out[j] = sum_{2i + d = j} kernel[d]^T y[i]
  = ConvTranspose3d(k=3, s=2, p=1) restricted to the fine mask.
* kernel offsets o_k, k = (dz + 1) * 9 + (dy + 1) * 3 + (dx + 1) (x fastest).

Dense volumes are indexed [x, y, z] (Conv3d's D, H, W), so the dense weights are
w[o, i, dx + 1, dy + 1, dz + 1] = kernel[k][i, o] (transposed: w[i, o, ...]).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .layers import batch_statistics, centered_batch_statistics

# ------------------------------------------------------------- kernel layouts


def torchsparse_kernel_to_conv3d(kernel: torch.Tensor) -> torch.Tensor:
    """torchsparse [27, Cin, Cout] -> Conv3d weight [Cout, Cin, 3, 3, 3] over [x, y, z]."""
    cin, cout = kernel.shape[1:]
    # kernel index = z * 9 + y * 3 + x -> view as [z, y, x, Cin, Cout]
    return kernel.reshape(3, 3, 3, cin, cout).permute(4, 3, 2, 1, 0).contiguous()


def conv3d_to_torchsparse_kernel(weight: torch.Tensor) -> torch.Tensor:
    """Conv3d weight [Cout, Cin, 3, 3, 3] over [x, y, z] -> torchsparse [27, Cin, Cout]."""
    cout, cin = weight.shape[:2]
    return weight.permute(4, 3, 2, 1, 0).reshape(27, cin, cout).contiguous()


def torchsparse_kernel_to_conv_transpose3d(kernel: torch.Tensor) -> torch.Tensor:
    """torchsparse transposed [27, Cin, Cout] -> ConvTranspose3d weight [Cin, Cout, 3, 3, 3]."""
    cin, cout = kernel.shape[1:]
    return kernel.reshape(3, 3, 3, cin, cout).permute(3, 4, 2, 1, 0).contiguous()


def conv_transpose3d_to_torchsparse_kernel(weight: torch.Tensor) -> torch.Tensor:
    """ConvTranspose3d weight [Cin, Cout, 3, 3, 3] -> torchsparse [27, Cin, Cout]."""
    cin, cout = weight.shape[:2]
    return weight.permute(4, 3, 2, 0, 1).reshape(27, cin, cout).contiguous()


def kernel_offsets() -> torch.Tensor:
    """(27, 3) integer (dx, dy, dz) of torchsparse's kernel index order."""
    r = (-1, 0, 1)
    return torch.tensor([[dx, dy, dz] for dz in r for dy in r for dx in r], dtype=torch.long)


# ----------------------------------------------------------------- site masks

_COARSE_PAD = (1, 2, 1, 2, 1, 2)  # left 1 = conv padding; right 2 keeps index floor(n/2)


def downsample_mask(mask: torch.Tensor) -> torch.Tensor:
    """Active fine sites (X, Y, Z) bool -> coarse sites torchsparse's stride-2 conv outputs.

    Shape (X // 2 + 1, Y // 2 + 1, Z // 2 + 1).
    """
    near = F.max_pool3d(F.pad(mask[None, None].float(), _COARSE_PAD), kernel_size=3, stride=2)[0, 0] > 0
    if not mask.any():
        return near
    idx = torch.nonzero(mask)
    lower = idx.min(dim=0).values  # per-axis minimum of the active coordinates
    keep = near
    for axis in range(3):
        coarse = torch.arange(near.shape[axis], device=mask.device)
        ok = 2 * coarse >= lower[axis]
        shape = [1, 1, 1]
        shape[axis] = -1
        keep = keep & ok.view(shape)
    return keep


def conv_dense(x: torch.Tensor, kernel: torch.Tensor, stride: int) -> torch.Tensor:
    """Sparse conv of masked dense features x (1, Cin, X, Y, Z) (zero off the mask).

    stride 1 -> (1, Cout, X, Y, Z); stride 2 -> (1, Cout, X//2+1, Y//2+1, Z//2+1).
    The caller masks the output to the output level's sites.
    """
    w = torchsparse_kernel_to_conv3d(kernel)
    if stride == 1:
        return F.conv3d(x, w, padding=1)
    return F.conv3d(F.pad(x, _COARSE_PAD), w, stride=2)


def conv_transpose_dense(y: torch.Tensor, kernel: torch.Tensor, fine_shape) -> torch.Tensor:
    """Transposed sparse conv (1, Cin, coarse...) -> (1, Cout, *fine_shape)."""
    w = torchsparse_kernel_to_conv_transpose3d(kernel)
    out = F.conv_transpose3d(y, w, stride=2, padding=1)
    X, Y, Z = fine_shape
    return out[:, :, :X, :Y, :Z]


# --------------------------------------------------------------------- modules


class SparseConv3d(nn.Module):
    """Parameter holder with torchsparse 1.4 spnn.Conv3d's layout ('kernel' [27, Cin, Cout])."""

    def __init__(self, cin: int, cout: int, stride: int = 1, transposed: bool = False) -> None:
        super().__init__()
        self.stride = stride
        self.transposed = transposed
        self.kernel = nn.Parameter(torch.empty(27, cin, cout))
        std = 1.0 / math.sqrt((cout if transposed else cin) * 27)
        nn.init.uniform_(self.kernel, -std, std)


class MaskedBatchNorm(nn.BatchNorm1d):
    """torchsparse spnn.BatchNorm (a BatchNorm1d over the active sites' features)."""

    def __init__(self, channels: int) -> None:
        super().__init__(channels)
        self.bn_mode = "batch"

    def normalize_dense(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x (1, C, X, Y, Z), mask (X, Y, Z) bool: statistics over the active sites only."""
        scale, shift = self.dense_affine(x, mask)
        return x * scale.view(1, -1, 1, 1, 1) + shift.view(1, -1, 1, 1, 1)

    def dense_affine(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(scale, shift) per channel: the normalisation is x * scale + shift.

        Batch statistics over the active sites, gathered as rows of a channels-last volume (each
        site's channels are adjacent) and reduced in two passes (:func:`centered_batch_statistics`).
        """
        if self.bn_mode == "batch":
            active = x[0].permute(1, 2, 3, 0)[mask]  # (N, C)
            _, mean, var = centered_batch_statistics(active, [0])
        else:
            mean, var = self.running_mean, self.running_var
        scale = self.weight / torch.sqrt(var + self.eps)
        return scale, self.bias - mean * scale

    def normalize_rows(self, feats: torch.Tensor) -> torch.Tensor:
        """feats (N, C) of active sites (torchsparse backend)."""
        if self.bn_mode == "batch":
            mean, var = batch_statistics(feats, [0])
        else:
            mean, var = self.running_mean, self.running_var
        return (feats - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


class SparseBlock(nn.Module):
    """tsparse BasicSparse(De)ConvolutionBlock: net = [Conv3d, BatchNorm, ReLU]."""

    def __init__(self, cin: int, cout: int, stride: int = 1, transposed: bool = False) -> None:
        super().__init__()
        self.net = nn.Sequential(SparseConv3d(cin, cout, stride, transposed), MaskedBatchNorm(cout), nn.ReLU())

    @property
    def conv(self) -> SparseConv3d:
        return self.net[0]

    @property
    def bn(self) -> MaskedBatchNorm:
        return self.net[1]

    def forward_dense(self, x: torch.Tensor, out_mask: torch.Tensor) -> torch.Tensor:
        """Masked dense features in -> masked dense features on ``out_mask``'s sites."""
        conv = self.conv
        if conv.transposed:
            y = conv_transpose_dense(x, conv.kernel, out_mask.shape)
        else:
            y = conv_dense(x, conv.kernel, conv.stride)
        scale, shift = self.bn.dense_affine(y, out_mask)
        # the affine map in one pass, then ReLU and the mask in place on that fresh tensor
        y = torch.addcmul(shift.view(1, -1, 1, 1, 1), y, scale.view(1, -1, 1, 1, 1))
        return y.relu_().mul_(out_mask[None, None].to(y.dtype))


class SparseCostRegNet(nn.Module):
    """Sparse U-Net of One-2-3-45 (tsparse/modules.py) with configurable widths.

    ``widths`` = (c0, c1, c2, c3); the checkpoint has (16, 16, 32, 64) with d_in 32.
    Skips add after BN + ReLU: conv4 + conv7, conv2 + conv9, conv0 + conv11.
    """

    def __init__(self, d_in: int = 32, widths: tuple[int, int, int, int] = (16, 16, 32, 64)) -> None:
        super().__init__()
        c0, c1, c2, c3 = widths
        self.conv0 = SparseBlock(d_in, c0)
        self.conv1 = SparseBlock(c0, c1, stride=2)
        self.conv2 = SparseBlock(c1, c1)
        self.conv3 = SparseBlock(c1, c2, stride=2)
        self.conv4 = SparseBlock(c2, c2)
        self.conv5 = SparseBlock(c2, c3, stride=2)
        self.conv6 = SparseBlock(c3, c3)
        self.conv7 = SparseBlock(c3, c2, stride=2, transposed=True)
        self.conv9 = SparseBlock(c2, c1, stride=2, transposed=True)
        self.conv11 = SparseBlock(c1, c0, stride=2, transposed=True)

    def forward_dense(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x (1, d_in, X, Y, Z) zero off ``mask`` (X, Y, Z) -> (1, c0, X, Y, Z) zero off mask.

        On the CPU the volumes are channels-last: oneDNN's 3D convolutions are up to 4x faster on
        them (the transposed ones most), and the BatchNorm statistics gather each active site's
        channels from one place.
        """
        x = x * mask[None, None].to(x.dtype)
        if x.device.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last_3d)
        m1 = downsample_mask(mask)
        m2 = downsample_mask(m1)
        m3 = downsample_mask(m2)
        conv0 = self.conv0.forward_dense(x, mask)
        conv2 = self.conv2.forward_dense(self.conv1.forward_dense(conv0, m1), m1)
        conv4 = self.conv4.forward_dense(self.conv3.forward_dense(conv2, m2), m2)
        x = self.conv6.forward_dense(self.conv5.forward_dense(conv4, m3), m3)
        x = conv4 + self.conv7.forward_dense(x, m2)
        del conv4
        x = conv2 + self.conv9.forward_dense(x, m1)
        del conv2
        return conv0 + self.conv11.forward_dense(x, mask)
