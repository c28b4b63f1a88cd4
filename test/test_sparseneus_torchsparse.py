"""The torchsparse 1.4 backend against the dense backend, on the real cameras' active voxels.

Skipped where torchsparse 1.4 is not importable: build it with tools/build_torchsparse.sh.
The grids are the active voxels of the 32 One-2-3-45 views (reconstruction frame and
active_voxels of the package, the plan's cameras at 256x256), at 32^3 so that each test
stays within a few seconds (torchsparse's CPU path is ~12x slower than the dense backend;
the 96^3 grid is the --runslow test), plus the same pattern moved to odd lower bounds
in an odd/even-sized grid. Weights: SparseCostRegNet at the checkpoint's widths.
Agreement is max |torchsparse - dense| / max |dense| over the output volume.
The module runs torch on one thread: on the shared 2-core machine two OpenMP threads
made torchsparse's many small gathers 3-10x slower in wall time (same results).
"""

import numpy as np
import pytest
import torch
from sparseneus_fixtures import plan_views, render_sphere_views

from one2345_ros.config import MeshConfig, SparseNeuSConfig
from one2345_ros.mesh import make_mesh
from one2345_ros.recon.sparseneus import ONE2345_ARCH, SparseNeuS, reconstruct_sparseneus
from one2345_ros.recon.sparseneus.frame import reconstruction_frame
from one2345_ros.recon.sparseneus.layers import set_bn_mode
from one2345_ros.recon.sparseneus.network import active_voxels
from one2345_ros.recon.sparseneus.sparse_conv import SparseCostRegNet, downsample_mask
from one2345_ros.recon.sparseneus.torchsparse_backend import (
    BackendUnavailableError,
    costreg_torchsparse,
    import_torchsparse,
    sparse_input,
)

try:
    ts, spf = import_torchsparse()
    UNAVAILABLE = ""
except BackendUnavailableError as exc:
    ts = spf = None
    UNAVAILABLE = str(exc)

pytestmark = pytest.mark.skipif(bool(UNAVAILABLE), reason=f"torchsparse 1.4 not importable: {UNAVAILABLE}")

TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-13}
"""Relative bounds; measured: fp32 <= 1.4e-6, fp64 <= 2.2e-15 (docs/sparseneus.md)."""
ODD_OFFSET = (3, 1, 5)
"""Where the moved pattern starts: odd minima, so the lower-bound rule removes coarse sites."""


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _real_mask(n: int) -> torch.Tensor:
    views = plan_views(256)
    frame = reconstruction_frame(views)
    return active_voxels(torch.from_numpy(frame.projections()).float(), n, frame.width, frame.height)


@pytest.fixture(scope="module")
def grids():
    real = _real_mask(32)
    small = _real_mask(25)  # odd size
    x0, y0, z0 = ODD_OFFSET
    moved = torch.zeros(x0 + 25 + 1, y0 + 25, z0 + 25 + 2, dtype=torch.bool)  # (29, 26, 32)
    moved[x0 : x0 + 25, y0 : y0 + 25, z0 : z0 + 25] = small
    return {"real32": real, "moved25": moved}


@pytest.fixture(scope="module")
def regnet():
    """The checkpoint's SparseCostRegNet (32 -> 16, widths 16/16/32/64) with random kernels,
    BatchNorm affine parameters and running statistics."""
    torch.manual_seed(0)
    net = SparseCostRegNet(2 * ONE2345_ARCH.compress_channels, ONE2345_ARCH.regnet_widths)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in net.modules():
            if hasattr(m, "bn_mode"):
                m.weight.uniform_(0.5, 1.5, generator=g)
                m.bias.normal_(0.0, 0.1, generator=g)
                m.running_mean.normal_(0.0, 0.1, generator=g)
                m.running_var.uniform_(0.05, 0.2, generator=g)
    return net


def _cost(mask: torch.Tensor, channels: int, dtype) -> torch.Tensor:
    """A cost volume [variance >= 0, mean] on the mask, zero off it."""
    g = torch.Generator().manual_seed(int(mask.sum()))
    x = torch.randn((1, channels) + tuple(mask.shape), generator=g, dtype=torch.float64)
    x[:, : channels // 2] = x[:, : channels // 2].abs()
    return (x * mask).to(dtype)


def _levels(mask: torch.Tensor) -> list[torch.Tensor]:
    masks = [mask]
    for _ in range(3):
        masks.append(downsample_mask(masks[-1]))
    return masks


@pytest.mark.parametrize("grid", ["real32", "moved25"])
def test_torchsparse_sites_are_the_dense_masks(grids, grid):
    """torchsparse's strided-conv output sites (spdownsample, as conv3d calls it) at every
    level equal downsample_mask's: the lower-bound rule, and no upper clip."""
    masks = _levels(grids[grid])
    coords, _ = sparse_input(torch.zeros((1, 1) + tuple(masks[0].shape)), masks[0])
    removed_by_lower_bound = 0
    for level in range(1, 4):
        stride = 2 ** (level - 1)
        coords = spf.spdownsample(coords, 2, 3, stride)
        got = {tuple(c) for c in (coords[:, :3] // (2 * stride)).tolist()}
        assert got == {tuple(c) for c in torch.nonzero(masks[level]).tolist()}, level
        fine = masks[level - 1]
        near = torch.nn.functional.max_pool3d(
            torch.nn.functional.pad(fine[None, None].float(), (1, 2, 1, 2, 1, 2)), 3, stride=2
        )[0, 0] > 0
        removed_by_lower_bound += int(near.sum() - masks[level].sum())
        # no upper clip: an even-sized level has a coarse site at index n // 2
        for axis, n in enumerate(fine.shape):
            if n % 2 == 0 and fine.select(axis, n - 1).any():
                assert masks[level].select(axis, n // 2).any(), (level, axis)
    if grid == "moved25":
        assert removed_by_lower_bound > 0  # the rule is exercised
    else:
        assert removed_by_lower_bound == 0  # the real pattern starts at 0 on every axis


CASES = [
    ("real32", torch.float32, "batch"),
    ("real32", torch.float32, "running"),
    ("real32", torch.float64, "batch"),
    ("real32", torch.float64, "running"),
    ("moved25", torch.float32, "batch"),
    ("moved25", torch.float64, "running"),
]


def _compare(net, mask, dtype, mode):
    set_bn_mode(net, mode)
    net = net.to(dtype)
    cost = _cost(mask, net.conv0.conv.kernel.shape[1], dtype)
    with torch.no_grad():
        want = net.forward_dense(cost, mask)
        got = costreg_torchsparse(net, cost, mask)
    net.to(torch.float32)
    set_bn_mode(net, "batch")
    assert got.dtype == dtype and got.shape == want.shape == (1, 16) + tuple(mask.shape)
    support = want.abs().sum(dim=1)[0] > 0
    assert torch.equal(got.abs().sum(dim=1)[0] > 0, support)
    assert support.sum() > 0.9 * mask.sum() and not (support & ~mask).any()
    return ((got - want).abs().max() / want.abs().max()).item()


@pytest.mark.parametrize("grid,dtype,mode", CASES)
def test_torchsparse_equals_dense_backend(grids, regnet, grid, dtype, mode):
    rel = _compare(regnet, grids[grid], dtype, mode)
    print(f"{grid} {dtype} {mode}: max relative difference {rel:.2e}")
    assert rel < TOLERANCE[dtype]


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_torchsparse_equals_dense_backend_at_96(regnet, dtype):
    """The full 96^3 grid of the 32 views (801,159 active voxels); minutes on 2 cores."""
    mask = _real_mask(96)
    assert mask.sum() == 801159
    for mode in ("batch", "running"):
        rel = _compare(regnet, mask, dtype, mode)
        print(f"real96 {dtype} {mode}: max relative difference {rel:.2e}")
        assert rel < TOLERANCE[dtype]


def _mesh_arrays(views, cfg, net):
    """SparseNeuS through the one mesh stage: (vertices, faces, RGB colours)."""
    mesh = make_mesh(reconstruct_sparseneus(views, cfg, net), views, MeshConfig())
    return np.asarray(mesh.vertices), np.asarray(mesh.faces), np.asarray(mesh.visual.vertex_colors)[:, :3]


def test_reconstruction_is_the_same_mesh_on_both_backends():
    """reconstruct_sparseneus on the sphere's 32 views with the full-size network (random
    weights, SDF geometrically initialised to a sphere of radius 0.4, latent weighted in so
    the 3D CNN reaches the mesh); reduced sizes: views 32x32, volume 24^3, mesh grid 40^3."""
    views = render_sphere_views(size=32)
    arch = ONE2345_ARCH
    torch.manual_seed(0)
    net = SparseNeuS(arch)
    latent = arch.latent_channels
    net.sdf_network_lod0.sdf_layer._geometric_init(3 + 6 * arch.pe_freqs, arch.sdf_hidden, latent, 0.4)
    with torch.no_grad():
        net.sdf_network_lod0.sdf_layer.lin2.weight_v[:1, -latent:] = 0.01
    meshes = {}
    for backend in ("dense", "torchsparse"):
        cfg = SparseNeuSConfig(volume_resolution=24, mesh_resolution=40, device="cpu", backend=backend)
        meshes[backend] = _mesh_arrays(views, cfg, net)
        assert net.backend == backend
    (v1, f1, c1), (v2, f2, c2) = meshes["dense"], meshes["torchsparse"]
    assert len(v1) == len(v2) > 500
    np.testing.assert_array_equal(f1, f2)
    print(f"vertices: max |torchsparse - dense| {np.abs(v1 - v2).max():.2e}")
    np.testing.assert_allclose(v2, v1, rtol=0, atol=5e-5)  # world units; measured 1.5e-6, grid step 0.07
    assert np.abs(c1.astype(int) - c2).max() <= 1  # uint8 truncation of equal-to-fp32 colours
    # the latent matters: without the 3D CNN's output the mesh would differ
    net.sdf_network_lod0.sdf_layer.lin2.weight_v.data[:1, -latent:] = 0.0
    v0, _, _ = _mesh_arrays(views, SparseNeuSConfig(volume_resolution=24, mesh_resolution=40), net)
    assert v0.shape != v1.shape or np.abs(v0 - v1).max() > 1e-3
