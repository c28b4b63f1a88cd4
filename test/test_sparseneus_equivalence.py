"""The package's SparseNeuS inference against the frozen reference (test/sparseneus_reference.py).

The full-size network (the official checkpoint's widths) with random weights from the checkpoint
layout; the SDF MLP set to a sphere whose SDF also reads the latent, so that the 3D CNN reaches the
grid and the mesh. Inputs are smaller than in production (views, volume, grid) to keep each test
within seconds; the code paths are the production ones. Tolerances are stated per stage: exact where
the optimised code computes the same sums in the same order, float32 rounding elsewhere.
"""

from __future__ import annotations

import numpy as np
import pytest
import sparseneus_reference as R
import torch
from sparseneus_fixtures import make_checkpoint, render_sphere_views, sphere_sdf_layer

from one2345_ros.config import SparseNeuSConfig
from one2345_ros.mesh.extract import SdfGrid, extract_mesh
from one2345_ros.recon.sparseneus import SparseNeuS
from one2345_ros.recon.sparseneus.checkpoint import load_state
from one2345_ros.recon.sparseneus.extract import sdf_grid, vertex_colors
from one2345_ros.recon.sparseneus.frame import reconstruction_frame
from one2345_ros.recon.sparseneus.network import ONE2345_ARCH, cost_volume

SIZE = 48  # view side (production: 256)
N = 36  # volume side (production: 96); not a multiple of the cost volume's 8-voxel blocks
RES = 64  # mesh grid side (production: 256); > 32, so the near-surface path runs
FLOAT_REL = 2e-5  # float32 rounding of differently ordered sums, relative to the stage's largest value


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    net = SparseNeuS()
    ckpt = make_checkpoint(ONE2345_ARCH, seed=3)
    sdf_state, _ = sphere_sdf_layer(ONE2345_ARCH, 0.3, latent_weight=0.02)
    ckpt["sdf_network_lod0"].update(sdf_state)
    load_state(net, ckpt)
    net.configure(batchnorm="batch", backend="dense")
    views = render_sphere_views(size=SIZE)
    frame = reconstruction_frame(views)
    images = torch.from_numpy(np.ascontiguousarray(views.images)).permute(0, 3, 1, 2).float() / 255.0
    proj = torch.from_numpy(frame.projections()).float()
    centers = torch.from_numpy(frame.c2w[:, :3, 3]).float()
    with torch.no_grad():
        fused = R.fused_features(net, images)
        compressed = R.compressed_features(net, fused)
        mask = R.active_voxels(proj, N, SIZE, SIZE)
        cost = R.cost_volume(compressed, proj, mask)
        volume = R.regularize(net, cost, mask)
    return dict(net=net, views=views, images=images, proj=proj, centers=centers, fused=fused,
                compressed=compressed, mask=mask, cost=cost, volume=volume)  # fmt: skip


@torch.no_grad()
def test_features_within_float_rounding(setup):
    net = setup["net"]
    fused = net.fused_features(setup["images"])
    assert rel(fused, setup["fused"]) < FLOAT_REL
    # the compression from the same input, so only this layer's rounding counts
    assert rel(net.compressed_features(setup["fused"]), setup["compressed"]) < FLOAT_REL


@torch.no_grad()
@pytest.mark.parametrize("block", [8, 5])
def test_cost_volume_and_mask_are_bitwise_equal(setup, block):
    cost, mask = cost_volume(setup["compressed"], setup["proj"], N, block=block, chunk_blocks=16)
    assert torch.equal(mask, setup["mask"])
    assert torch.equal(cost, setup["cost"])


@torch.no_grad()
def test_3d_cnn_within_float_rounding(setup):
    volume = setup["net"].regularize(setup["cost"], setup["mask"])
    assert volume.shape == setup["volume"].shape
    assert rel(volume, setup["volume"]) < FLOAT_REL


@torch.no_grad()
def test_sdf_is_bitwise_equal_and_reads_the_latent(setup):
    net, volume = setup["net"], setup["volume"]
    pts = torch.rand(5000, 3) * 2.2 - 1.1  # inside and outside the cube
    ref = R.sdf(net, pts, volume)
    assert torch.equal(net.sdf(pts, volume), ref)
    assert (ref - R.sdf(net, pts, torch.zeros_like(volume))).abs().max() > 1e-3  # the latent matters


@torch.no_grad()
def test_sdf_grid_equals_the_reference_grid(setup):
    net, volume = setup["net"], setup["volume"]
    grid, evaluations = sdf_grid(lambda p: net.sdf(p, volume), RES, near_surface=True, chunk=20000)
    ref, ref_evaluations = R.sdf_grid(lambda p: R.sdf(net, p, volume), RES, near_surface=True)
    assert evaluations == ref_evaluations
    np.testing.assert_array_equal(grid, ref)


def test_vertex_colors_within_one_level(setup):
    s = setup
    net, volume = s["net"], s["volume"]
    grid, _ = R.sdf_grid(lambda p: R.sdf(net, p, volume), RES, near_surface=True)
    verts = extract_mesh(SdfGrid(grid, np.array([[-1.0] * 3, [1.0] * 3]))).vertices
    assert len(verts) > 1000
    v = torch.from_numpy(np.ascontiguousarray(verts)).float()
    mask_volume = s["mask"][None, None].float()
    args = (v, volume, mask_volume, s["fused"], s["images"], s["proj"], s["centers"])
    colors = vertex_colors(net, *args).astype(int)
    ref = R.vertex_colors(net, *args).astype(int)
    diff = np.abs(colors - ref)
    assert diff.max() <= 1  # uint8 truncation of values within float rounding
    assert (diff > 0).any(axis=1).mean() < 0.01


def test_whole_chain_gives_the_reference_mesh(setup):
    """reconstruct_sparseneus + the one mesh stage against the reference chain (smaller still)."""
    cfg = SparseNeuSConfig(volume_resolution=20, mesh_resolution=40, device="cpu")
    out = R.compare_with_reference(setup["net"], render_sphere_views(size=32), cfg)
    assert out["mask_equal"]
    assert out["cost_rel"] < FLOAT_REL and out["volume_rel"] < FLOAT_REL
    assert out["sdf_grid_sign_flips"] == 0
    assert out["sdf_grid_max_abs"] < 1e-5 * out["sdf_grid_abs_max"]
    assert out["faces_equal"] and out["mesh_vertices_max_abs"] < 1e-5 * out["world_extent"]
    assert out["colors_max_abs"] <= 1
