"""SparseNeuS end to end: reconstruction frame, volume, the one mesh stage, entry point."""

import numpy as np
import pytest
import torch
from sparseneus_fixtures import TINY_ARCH, make_checkpoint, render_sphere_views

from one2345_ros.cli.main import main as cli_main
from one2345_ros.config import Config, MeshConfig, SparseNeuSConfig
from one2345_ros.geometry import cameras as cam
from one2345_ros.mesh import make_mesh
from one2345_ros.mesh.extract import SdfGrid, extract_mesh
from one2345_ros.recon import make_reconstructor
from one2345_ros.recon.sparseneus import SparseNeuS, reconstruct_sparseneus
from one2345_ros.recon.sparseneus.backend import SparseNeuSReconstructor
from one2345_ros.recon.sparseneus.checkpoint import load_state
from one2345_ros.recon.sparseneus.extract import sdf_grid
from one2345_ros.recon.sparseneus.frame import reconstruction_frame
from one2345_ros.recon.sparseneus.network import active_voxels, voxel_centers
from one2345_ros.types import ViewSet
from one2345_ros.views.folder import write_views_folder

CFG = SparseNeuSConfig(volume_resolution=16, mesh_resolution=40, device="cpu")
MESH = MeshConfig(keep_largest_component=False, min_component_fraction=0.0)


def reconstruct(views, cfg, net, mesh_cfg=MESH):
    """SparseNeuS through the one mesh stage: (vertices, faces, RGB colours) in the views' world."""
    mesh = make_mesh(reconstruct_sparseneus(views, cfg, net), views, mesh_cfg)
    return np.asarray(mesh.vertices), np.asarray(mesh.faces), np.asarray(mesh.visual.vertex_colors)[:, :3]


@pytest.fixture(scope="module")
def views():
    return render_sphere_views(size=32)


@pytest.fixture(scope="module")
def tiny_net():
    net = SparseNeuS(TINY_ARCH)
    load_state(net, make_checkpoint(TINY_ARCH, seed=5))
    # a latent-independent SDF part that has a surface: the original's geometric init
    torch.manual_seed(0)
    net.sdf_network_lod0.sdf_layer._geometric_init(3 + 6 * TINY_ARCH.pe_freqs, 16, 4, 0.4)
    with torch.no_grad():  # then let the latent matter, so the 3D CNN reaches the mesh
        net.sdf_network_lod0.sdf_layer.lin2.weight_v[:1, -4:] = 0.05
    return net


def test_frame_of_the_standard_layout(views):
    frame = reconstruction_frame(views)
    assert 1.34 <= frame.radius <= 1.42  # reference/one2345.md §2
    # normalised cameras project normalised points exactly like the original cameras
    rng = np.random.default_rng(0)
    pts_w = rng.uniform(-0.3, 0.3, size=(20, 3))
    pts_n = frame.to_normalized(pts_w)
    np.testing.assert_allclose(frame.to_world(pts_n), pts_w, atol=1e-12)
    P = frame.projections()
    for i in (0, 13, 31):
        uv, _ = cam.project(pts_w, views.K[i], cam.invert_rigid(views.c2w[i]))
        p = pts_n @ P[i][:, :3].T + P[i][:, 3]
        np.testing.assert_allclose(p[:, :2] / p[:, 2:], uv, atol=1e-9)


def test_active_voxels_are_seen_by_two_views(views):
    frame = reconstruction_frame(views)
    n, size = 12, views.images.shape[1]
    got = active_voxels(torch.from_numpy(frame.projections()).float(), n, size, size).numpy()
    pts = voxel_centers(n).view(-1, 3).double().numpy()
    count = np.zeros(len(pts), int)
    for i in range(len(views.K)):
        uv, z = cam.project(pts, frame.K[i], frame.w2c[i])
        un = 2 * uv / (size - 1) - 1
        count += ((np.abs(un) <= 1).all(axis=1) & (z > 0)).astype(int)
    assert 0 < got.sum() < n**3
    np.testing.assert_array_equal(got.reshape(-1), count >= 2)


def test_sphere_sdf_mesh_radius_and_outward_normals():
    sdf = lambda p: p.norm(dim=-1) - 0.3  # noqa: E731
    grid, evaluations = sdf_grid(sdf, 128, near_surface=True)
    full, _ = sdf_grid(sdf, 128, near_surface=False)
    assert evaluations < 0.25 * 128**3
    cube = np.array([[-1.0] * 3, [1.0] * 3])
    mesh, mesh_full = extract_mesh(SdfGrid(grid, cube)), extract_mesh(SdfGrid(full, cube))
    np.testing.assert_array_equal(mesh.faces, mesh_full.faces)  # near-surface evaluation gives the same mesh
    np.testing.assert_allclose(mesh.vertices, mesh_full.vertices, atol=1e-6)
    r = np.linalg.norm(mesh.vertices, axis=1)
    assert abs(r.mean() - 0.3) < 1e-3 and r.std() < 1e-3
    assert mesh.is_watertight and mesh.volume > 0
    assert abs(mesh.volume - 4 / 3 * np.pi * 0.3**3) < 0.01 * mesh.volume
    assert (np.einsum("ij,ij->i", mesh.face_normals, mesh.triangles_center) > 0).all()


def test_tiny_network_end_to_end_is_frame_equivariant(views, tiny_net):
    verts, faces, colors = reconstruct(views, CFG, tiny_net)
    assert verts.dtype == np.float64 and colors.dtype == np.uint8 and colors.shape == verts.shape
    assert len(faces) > 100 and faces.max() < len(verts)
    # the same scene in another world frame gives the same mesh, moved
    T = cam.make_transform(cam.rotation_z(40.0) @ cam.look_at([0, 0, 0], [1, 2, 3])[:3, :3], [0.3, -1.0, 2.0])
    moved = ViewSet(images=views.images, K=views.K, c2w=T @ views.c2w, names=views.names,
                    near_far=views.near_far, reference_c2w=T @ views.reference_c2w)  # fmt: skip
    verts2, faces2, colors2 = reconstruct(moved, CFG, tiny_net)
    np.testing.assert_array_equal(faces2, faces)
    np.testing.assert_allclose(verts2, cam.transform_points(T, verts), atol=2e-4)
    assert np.abs(colors2.astype(int) - colors).max() <= 1
    # batch statistics do not depend on the order of the views
    perm = np.random.default_rng(1).permutation(len(views.K))
    shuffled = ViewSet(images=views.images[perm], K=views.K[perm], c2w=views.c2w[perm],
                       names=[views.names[i] for i in perm], near_far=views.near_far,
                       reference_c2w=views.reference_c2w)  # fmt: skip
    verts3, _, colors3 = reconstruct(shuffled, CFG, tiny_net)
    np.testing.assert_allclose(verts3, verts, atol=1e-4)
    assert np.abs(colors3.astype(int) - colors).max() <= 1


def test_the_volume_reaches_the_mesh_and_bn_modes_differ(views, tiny_net):
    base, _, _ = reconstruct(views, CFG, tiny_net)
    running = SparseNeuSConfig(**{**CFG.__dict__, "batchnorm": "running"})
    other, _, _ = reconstruct(views, running, tiny_net)
    assert other.shape != base.shape or np.abs(other - base).max() > 1e-3
    tiny_net.configure(batchnorm="batch")


def test_near_surface_grid_equals_full_grid_for_the_network(views, tiny_net):
    full = SparseNeuSConfig(**{**CFG.__dict__, "mesh_near_surface": False, "mesh_resolution": 48, "chunk_points": 5000})
    near = SparseNeuSConfig(**{**CFG.__dict__, "mesh_resolution": 48})
    v1, f1, c1 = reconstruct(views, full, tiny_net)
    v2, f2, c2 = reconstruct(views, near, tiny_net)
    np.testing.assert_array_equal(f1, f2)
    np.testing.assert_allclose(v1, v2, atol=1e-6)
    np.testing.assert_array_equal(c1, c2)


def test_sparseneus_goes_through_the_one_mesh_stage(views, tiny_net):
    """face_budget and the colour setting apply to SparseNeuS as to the hull."""
    reconstructor = SparseNeuSReconstructor(CFG, network=tiny_net)
    surface = reconstructor.reconstruct(views)
    assert reconstructor.name == "sparseneus" and surface.colors is not None
    assert set(surface.timings) == {"features", "cost_volume", "cnn_3d", "sdf_grid"}
    full = make_mesh(surface, views, MeshConfig())
    assert len(full.faces) > 300
    small = make_mesh(surface, views, MeshConfig(face_budget=300))
    assert len(small.faces) <= 300 and small.visual.vertex_colors.shape == (len(small.vertices), 4)
    network = make_mesh(surface, views, MeshConfig(colors="network"))
    projected = make_mesh(surface, views, MeshConfig(colors="views"))
    np.testing.assert_array_equal(network.faces, projected.faces)
    assert np.abs(network.visual.vertex_colors.astype(int) - projected.visual.vertex_colors).max() > 10
    np.testing.assert_array_equal(network.visual.vertex_colors, full.visual.vertex_colors)  # auto = the network's
    assert make_mesh(surface, views, MeshConfig(colors="none")).visual.kind is None


def test_backend_choice_never_falls_back_to_random_weights(monkeypatch):
    from one2345_ros import config as C

    assert make_reconstructor(C.load_config(None, environ={})).name == "hull"
    cfg = C.resolve_environment(Config(), environ={"ONE2345_SPARSENEUS": "/nonexistent/ckpt_215000.pth"})
    with pytest.raises(FileNotFoundError, match="ckpt_215000.pth"):
        make_reconstructor(cfg)  # auto picks SparseNeuS, and never random weights
    assert make_reconstructor(Config(backend="hull")).name == "hull"


def test_reconstruct_views_cli_with_missing_checkpoint(views, tmp_path, capsys):
    folder = tmp_path / "views"
    as_folder = ViewSet(images=views.images, K=views.K, c2w=views.c2w, names=views.names, near_far=views.near_far)
    write_views_folder(folder, as_folder)
    missing = tmp_path / "nowhere" / "ckpt_215000.pth"
    code = cli_main(["reconstruct-views", str(folder), "--out", str(tmp_path / "out"), "--backend", "sparseneus",
                     "--sparseneus", str(missing)])
    err = capsys.readouterr().err
    assert code == 2 and str(missing) in err and "Traceback" not in err
