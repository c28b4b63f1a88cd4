"""SparseNeuS layers: checkpoint layout, torchsparse semantics, BatchNorm modes."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from one2345_ros.recon.sparseneus.layers import GeneralRenderingNetwork, InPlaceABN, positional_encoding
from one2345_ros.recon.sparseneus.network import SparseNeuS, sample_latent
from one2345_ros.recon.sparseneus.sparse_conv import (
    MaskedBatchNorm,
    conv3d_to_torchsparse_kernel,
    conv_dense,
    conv_transpose3d_to_torchsparse_kernel,
    conv_transpose_dense,
    downsample_mask,
    kernel_offsets,
    torchsparse_kernel_to_conv3d,
    torchsparse_kernel_to_conv_transpose3d,
)

KEYS = json.loads((Path(__file__).parent / "data" / "one2345_sparseneus_keys.json").read_text())


def test_state_dict_keys_and_shapes_equal_the_reference():
    model = SparseNeuS()
    for name in SparseNeuS.CHECKPOINT_MODULES:
        got = {k: list(v.shape) for k, v in getattr(model, name).state_dict().items()}
        assert got == KEYS["modules"][name], name
    top_level_modules = sorted(k for k in KEYS["top_level"] if k.endswith(("network", "lod0")))
    assert sorted(SparseNeuS.CHECKPOINT_MODULES) == top_level_modules


# ------------------------------------------------------------ naive torchsparse 1.4


def _naive_conv(coords, feats, kernel, tensor_stride, stride, transposed=False, out_coords=None):
    """torchsparse 1.4 conv3d written out per site on coordinate dictionaries.

    coords: list of (x, y, z) in level-0 units; feats: {coord: (Cin,) array}.
    Returns {coord: (Cout,) array}.
    """
    offsets = [tuple(int(v) * tensor_stride for v in o) for o in kernel_offsets()]
    cout = kernel.shape[2]
    if transposed:  # reuse the down-sampling map: fine sites q = coarse p + offset
        out = {q: np.zeros(cout) for q in out_coords}
        for p, f in feats.items():
            for k, o in enumerate(offsets):
                q = (p[0] + o[0], p[1] + o[1], p[2] + o[2])
                if q in out:
                    out[q] += f @ kernel[k]
        return out
    if stride == 1:
        outs = list(coords)
    else:
        lo = np.min(np.array(coords), axis=0)
        cand = {(c[0] + o[0], c[1] + o[1], c[2] + o[2]) for c in coords for o in offsets}
        step = stride * tensor_stride
        outs = [p for p in cand if all(v % step == 0 and v >= lo[i] for i, v in enumerate(p))]
    out = {}
    for p in outs:
        acc = np.zeros(cout)
        for k, o in enumerate(offsets):
            q = (p[0] + o[0], p[1] + o[1], p[2] + o[2])
            if q in feats:
                acc += feats[q] @ kernel[k]
        out[p] = acc
    return out


def _random_sites(shape, rng, density=0.3):
    mask = rng.random(shape) < density
    mask[-1, 2, -1] = True  # an active site on the last index: its coarse site has no upper clip
    mask[0, 0, 0] = False
    return torch.from_numpy(mask)


def _dense_to_dict(x, mask, scale=1):
    out = {}
    for i, j, k in torch.nonzero(mask).tolist():
        out[(i * scale, j * scale, k * scale)] = x[0, :, i, j, k].numpy()
    return out


@pytest.mark.parametrize("shape", [(8, 7, 6), (9, 6, 5)])
@pytest.mark.parametrize("case", ["stride1", "stride2", "transposed"])
def test_naive_sparse_conv_equals_dense_masked(shape, case):
    rng = np.random.default_rng(sum(shape))
    mask = _random_sites(shape, rng)
    cin, cout = 3, 4
    kernel = torch.from_numpy(rng.normal(size=(27, cin, cout)))
    x = torch.from_numpy(rng.normal(size=(1, cin) + shape)) * mask
    coords = [tuple(int(v) for v in idx) for idx in torch.nonzero(mask)]
    coarse = downsample_mask(mask)
    if case == "stride1":
        want = _naive_conv(coords, _dense_to_dict(x, mask), kernel.numpy(), 1, 1)
        got = _dense_to_dict(conv_dense(x, kernel, 1), mask)
    elif case == "stride2":
        want = _naive_conv(coords, _dense_to_dict(x, mask), kernel.numpy(), 1, 2)
        got = _dense_to_dict(conv_dense(x, kernel, 2), coarse, scale=2)
        assert max(p[0] for p in want) == 2 * (shape[0] // 2)  # the unclipped top site exists
    else:
        y = torch.from_numpy(rng.normal(size=(1, cin) + tuple(coarse.shape))) * coarse
        want = _naive_conv(None, _dense_to_dict(y, coarse, scale=2), kernel.numpy(), 1, 2, True, coords)
        got = _dense_to_dict(conv_transpose_dense(y, kernel, shape), mask)
    assert set(got) == set(want)
    for p in want:
        np.testing.assert_allclose(got[p], want[p], atol=1e-12)


def test_downsample_mask_applies_the_lower_bound():
    mask = torch.zeros(8, 8, 8, dtype=torch.bool)
    mask[3, 3, 3] = True  # neighbours 2..4 -> coarse 1 (=2) and 2 (=4); 2 >= 3 fails for 1
    idx = torch.nonzero(downsample_mask(mask)).tolist()
    assert idx == [[2, 2, 2]]


def test_kernel_conversion_round_trips_and_maps_offsets():
    k = torch.randn(27, 5, 7, dtype=torch.float64)
    assert torch.equal(conv3d_to_torchsparse_kernel(torchsparse_kernel_to_conv3d(k)), k)
    assert torch.equal(conv_transpose3d_to_torchsparse_kernel(torchsparse_kernel_to_conv_transpose3d(k)), k)
    for idx, (dx, dy, dz) in enumerate(kernel_offsets().tolist()):
        assert idx == (dz + 1) * 9 + (dy + 1) * 3 + (dx + 1)
        one = torch.zeros(27, 1, 1)
        one[idx] = 1.0
        w = torchsparse_kernel_to_conv3d(one)
        assert w[0, 0, dx + 1, dy + 1, dz + 1] == 1.0 and w.sum() == 1.0


# ---------------------------------------------------------------- BatchNorm


def test_masked_batchnorm_uses_active_sites_only_and_running_mode():
    torch.manual_seed(0)
    bn = MaskedBatchNorm(3)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 2.0)
        bn.bias.normal_()
    x = torch.randn(1, 3, 5, 6, 7)
    mask = torch.rand(5, 6, 7) < 0.4
    x_masked_out = x.clone()
    x_masked_out[0][:, ~mask] = 100.0  # inactive sites must not change the statistics
    ref = torch.nn.functional.batch_norm(x[0][:, mask].t(), None, None, bn.weight, bn.bias, training=True)
    got = bn.normalize_dense(x_masked_out, mask)[0][:, mask].t()
    torch.testing.assert_close(got, ref.detach())
    torch.testing.assert_close(bn.normalize_rows(x[0][:, mask].t()), ref.detach())
    bn.bn_mode = "running"
    bn.running_mean.copy_(torch.tensor([1.0, -2.0, 0.5]))
    bn.running_var.copy_(torch.tensor([4.0, 0.25, 1.0]))
    rows = x[0][:, mask].t()
    want = (rows - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias
    torch.testing.assert_close(bn.normalize_rows(rows), want.detach())


def test_inplace_abn_batch_and_running_modes():
    torch.manual_seed(1)
    abn = InPlaceABN(4)
    with torch.no_grad():
        abn.weight.copy_(torch.tensor([-1.5, 0.0, 2.0, 0.3]))  # |w| + eps is the scale
        abn.bias.normal_()
    x = torch.randn(6, 4, 5, 5) * 3 + 1
    mean = x.mean(dim=(0, 2, 3))
    var = x.var(dim=(0, 2, 3), unbiased=False)
    shape = (1, 4, 1, 1)
    y = (x - mean.view(shape)) / torch.sqrt(var.view(shape) + 1e-5) * (abn.weight.abs() + 1e-5).view(shape)
    want = F.leaky_relu(y + abn.bias.view(shape), 0.01)
    torch.testing.assert_close(abn(x), want.detach())
    abn.bn_mode = "running"
    abn.running_mean.copy_(mean)
    abn.running_var.copy_(var)
    torch.testing.assert_close(abn(x), want.detach())
    abn.running_var.fill_(1.0)
    assert not torch.allclose(abn(x), want)


# ---------------------------------------------------------------- other layers


def test_positional_encoding_layout():
    x = torch.tensor([[0.1, -0.2, 0.3]])
    pe = positional_encoding(x, 6)
    assert pe.shape == (1, 39)
    torch.testing.assert_close(pe[:, :3], x)
    torch.testing.assert_close(pe[:, 3 + 6 * 2 : 3 + 6 * 2 + 3], torch.sin(4 * x))
    torch.testing.assert_close(pe[:, 3 + 6 * 2 + 3 : 3 + 6 * 3], torch.cos(4 * x))


def test_sample_latent_matches_the_original_grid_sampler():
    n = 5
    vol = torch.arange(n**3, dtype=torch.float32).view(1, 1, n, n, n)
    axis = torch.linspace(-1, 1, n)
    pts = torch.tensor([[axis[1], axis[2], axis[3]], [axis[4], axis[4], axis[4]], [-1.0, 0.0, 0.0]])
    got = sample_latent(vol, pts)[:, 0]
    # voxel values at [x, y, z]; the -1 face samples zero (index 0 is outside 0 < i < n)
    assert got.tolist() == [vol[0, 0, 1, 2, 3].item(), vol[0, 0, 4, 4, 4].item(), 0.0]
    mid = torch.tensor([[(axis[1] + axis[2]) / 2, axis[2], axis[3]]])
    assert sample_latent(vol, mid)[0, 0].item() == pytest.approx((vol[0, 0, 1, 2, 3] + vol[0, 0, 2, 2, 3]).item() / 2)


def test_rendering_network_blends_only_valid_views():
    torch.manual_seed(2)
    net = GeneralRenderingNetwork(geometry_ch=4, feature_ch=6)
    P, V = 5, 7
    rgb_feat = torch.rand(P, V, 9)
    ray_diff = torch.cat([F.normalize(torch.randn(P, V, 3), dim=-1), torch.rand(P, V, 1) * 2 - 1], dim=-1)
    mask = torch.zeros(P, V, dtype=torch.bool)
    only = torch.tensor([3, 0, 6, 2, 2])
    mask[torch.arange(P), only] = True
    out = net(torch.randn(P, 4), rgb_feat, ray_diff, mask)
    torch.testing.assert_close(out, rgb_feat[torch.arange(P), only, :3].detach())
