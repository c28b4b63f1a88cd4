"""The ``torchsparse`` backend: SparseCostRegNet on torchsparse 1.4 (CUDA).

Uses the same parameters as the dense backend (spnn.Conv3d's 'kernel' layout),
calling torchsparse.nn.functional.conv3d directly, so one checkpoint serves both.
torchsparse is imported only here, and only when this backend is chosen. Written
against the v1.4.0 API (SparseTensor(feats, coords) with coords [x, y, z, batch],
kernel maps cached on the tensor for the transposed layers); it could not be run
on the development machines, where torchsparse does not build.
"""

from __future__ import annotations

import torch

from .sparse_conv import SparseBlock, SparseCostRegNet


class BackendUnavailableError(ImportError):
    """The requested sparse backend cannot be used here; the message says why."""


def import_torchsparse():
    try:
        import torchsparse
        import torchsparse.nn.functional as spf
    except ImportError as exc:
        raise BackendUnavailableError(
            "sparse backend 'torchsparse' needs torchsparse 1.4 "
            "(pip install git+https://github.com/mit-han-lab/torchsparse.git@v1.4.0, CUDA build); "
            f"it is not importable here ({exc}). Use backend 'dense' (the default), which gives the same results."
        ) from exc
    return torchsparse, spf


def _block(ts, spf, block: SparseBlock, x):
    conv = block.conv
    y = spf.conv3d(x, conv.kernel, kernel_size=3, stride=conv.stride, transposed=conv.transposed)
    out = ts.SparseTensor(coords=y.coords, feats=torch.relu(block.bn.normalize_rows(y.F)), stride=y.stride)
    out.cmaps = y.cmaps
    out.kmaps = y.kmaps
    return out


def costreg_torchsparse(net: SparseCostRegNet, dense: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Same contract as SparseCostRegNet.forward_dense, computed by torchsparse."""
    ts, spf = import_torchsparse()
    idx = torch.nonzero(mask)  # (N, 3) x, y, z
    coords = torch.cat([idx, torch.zeros_like(idx[:, :1])], dim=1).to(torch.int32)  # batch last
    feats = dense[0][:, mask].t().contiguous()
    x = ts.SparseTensor(feats=feats, coords=coords)
    conv0 = _block(ts, spf, net.conv0, x)
    conv2 = _block(ts, spf, net.conv2, _block(ts, spf, net.conv1, conv0))
    conv4 = _block(ts, spf, net.conv4, _block(ts, spf, net.conv3, conv2))
    x = _block(ts, spf, net.conv6, _block(ts, spf, net.conv5, conv4))
    x = conv4 + _block(ts, spf, net.conv7, x)
    x = conv2 + _block(ts, spf, net.conv9, x)
    x = conv0 + _block(ts, spf, net.conv11, x)
    out = torch.zeros((1, x.F.shape[1]) + tuple(mask.shape), dtype=x.F.dtype, device=x.F.device)
    c = x.C.long()
    out[0][:, c[:, 0], c[:, 1], c[:, 2]] = x.F.t()
    return out
