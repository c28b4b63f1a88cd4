"""The ``torchsparse`` backend: SparseCostRegNet on torchsparse 1.4 (CPU or CUDA).

Uses the same parameters as the dense backend (spnn.Conv3d's 'kernel' layout),
calling torchsparse.nn.functional.conv3d directly, so one checkpoint serves both.
torchsparse is imported only here, and only when this backend is chosen. v1.4.0
API: SparseTensor(feats, coords) with int32 coords [x, y, z, batch]; a strided
conv caches its kernel map on the tensor, and the transposed layer reuses it
(outputs at the cached fine coordinates, in their order, so the skips add row by
row). Build torchsparse with tools/build_torchsparse.sh; test/test_sparseneus_torchsparse.py
checks this backend against the dense one.
"""

from __future__ import annotations

import warnings

import torch

from .sparse_conv import SparseBlock, SparseCostRegNet

SUPPORTED_VERSION = "1.4."
BUILD_HINT = "build it with tools/build_torchsparse.sh [VENV_PYTHON] (torchsparse 1.4.0 is not on PyPI)"


class BackendUnavailableError(ImportError):
    """The requested sparse backend cannot be used here; the message says why."""


def import_torchsparse():
    """(torchsparse, torchsparse.nn.functional), or BackendUnavailableError saying why not."""
    try:
        with warnings.catch_warnings():
            # torchsparse 1.4 decorates with torch.cuda.amp.custom_fwd, deprecated since torch 2.4
            warnings.simplefilter("ignore", FutureWarning)
            import torchsparse
            import torchsparse.backend  # the compiled extension
            import torchsparse.nn.functional as spf
    except ImportError as exc:
        raise BackendUnavailableError(
            f"sparse backend 'torchsparse' needs torchsparse 1.4, which is not importable here ({exc}); "
            f"{BUILD_HINT}. Or use backend 'dense' (the default), which gives the same results."
        ) from exc
    version = getattr(torchsparse, "__version__", "?")
    if not version.startswith(SUPPORTED_VERSION):
        raise BackendUnavailableError(
            f"sparse backend 'torchsparse' needs torchsparse 1.4 (One-2-3-45's; later versions changed the "
            f"coordinate layout and kernel maps), found {version}; {BUILD_HINT}."
        )
    return torchsparse, spf


def _block(ts, spf, block: SparseBlock, x):
    """BasicSparse(De)ConvolutionBlock: conv3d -> BatchNorm (block.bn's mode) -> ReLU."""
    conv = block.conv
    y = spf.conv3d(x, conv.kernel, kernel_size=3, stride=conv.stride, transposed=conv.transposed)
    out = ts.SparseTensor(coords=y.coords, feats=torch.relu(block.bn.normalize_rows(y.F)), stride=y.stride)
    out.cmaps = y.cmaps
    out.kmaps = y.kmaps
    return out


def sparse_input(dense: torch.Tensor, mask: torch.Tensor):
    """(coords (N, 4) int32 [x, y, z, 0], feats (N, C)) of the active sites, in torch.nonzero order."""
    idx = torch.nonzero(mask)  # (N, 3) x, y, z
    coords = torch.cat([idx, torch.zeros_like(idx[:, :1])], dim=1).to(torch.int32)  # batch last
    feats = dense[0][:, mask].t().contiguous()
    return coords, feats


def costreg_torchsparse(net: SparseCostRegNet, dense: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Same contract as SparseCostRegNet.forward_dense, computed by torchsparse."""
    ts, spf = import_torchsparse()
    coords, feats = sparse_input(dense, mask)
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
