"""Mesh stage: marching cubes on analytic SDFs, cleaning, colours from views, file round trips."""

import sys

import numpy as np
import pytest
import trimesh
from hull_scenes import ellipsoid_viewset

from one2345_ros.config import HullConfig, MeshConfig
from one2345_ros.geometry import cameras as cam
from one2345_ros.mesh import mesh_from_grid
from one2345_ros.mesh.clean import clean_mesh, decimate
from one2345_ros.mesh.color import vertex_colors
from one2345_ros.mesh.extract import MeshError, SdfGrid, extract_mesh, grid_axes
from one2345_ros.mesh.files import export_mesh, load_mesh
from one2345_ros.recon.hull import reconstruct_hull
from one2345_ros.types import InputError, ViewSet


def sphere_grid(center=(0.0, 0.0, 0.0), radius=0.37, bbox=((-0.5, -0.5, -0.5), (0.5, 0.5, 0.5)), resolution=64):
    axes = grid_axes(np.array(bbox, dtype=np.float64), resolution)
    X, Y, Z = np.meshgrid(*axes, indexing="ij")
    d = np.sqrt((X - center[0]) ** 2 + (Y - center[1]) ** 2 + (Z - center[2]) ** 2) - radius
    return SdfGrid(values=d.astype(np.float32), bbox=np.array(bbox, dtype=np.float64))


def test_grid_axes_span_the_box_with_near_isotropic_spacing():
    bbox = np.array([[-0.3, -0.1, 0.0], [0.5, 0.3, 0.2]])
    axes = grid_axes(bbox, 81)
    assert [len(a) for a in axes] == [81, 41, 21]
    for d, a in enumerate(axes):
        assert a[0] == bbox[0, d] and a[-1] == bbox[1, d]
        assert np.diff(a) == pytest.approx(0.01)


def test_marching_cubes_of_a_sphere_sdf_has_the_right_radius_and_outward_faces():
    center, radius = np.array([0.05, -0.02, 0.03]), 0.37
    grid = sphere_grid(center, radius)
    mesh = extract_mesh(grid)
    norms = np.linalg.norm(mesh.vertices - center, axis=1)
    assert np.abs(norms - radius).max() < 0.5 * grid.spacing.max()
    assert mesh.vertices.dtype == np.float64
    assert mesh.is_watertight
    assert mesh.volume == pytest.approx(4 / 3 * np.pi * radius**3, rel=0.01)  # > 0: outward
    outward = np.einsum("ij,ij->i", mesh.face_normals, mesh.triangles_center - center)
    assert np.all(outward > 0)


def test_a_field_without_a_surface_is_an_error():
    grid = SdfGrid(values=np.ones((8, 8, 8), np.float32), bbox=np.array([[0.0] * 3, [1.0] * 3]))
    with pytest.raises(MeshError, match="empty surface"):
        extract_mesh(grid)


def two_blobs():
    big = trimesh.creation.icosphere(subdivisions=3, radius=0.3)
    small = trimesh.creation.icosphere(subdivisions=1, radius=0.05)
    small.apply_translation((0.6, 0.0, 0.0))
    return trimesh.util.concatenate([big, small]), big


def test_cleaning_keeps_the_largest_component():
    both, big = two_blobs()
    cleaned = clean_mesh(both, MeshConfig(keep_largest_component=True))
    assert len(cleaned.faces) == len(big.faces)
    np.testing.assert_allclose(cleaned.bounds, big.bounds)


def test_cleaning_drops_only_tiny_components():
    both, big = two_blobs()
    keep_both = clean_mesh(both, MeshConfig(keep_largest_component=False, min_component_fraction=0.01))
    assert len(keep_both.faces) == len(both.faces)
    drop_small = clean_mesh(both, MeshConfig(keep_largest_component=False, min_component_fraction=0.2))
    assert len(drop_small.faces) == len(big.faces)


def test_face_budget_without_the_decimation_package_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "fast_simplification", None)  # import now raises ImportError
    mesh = trimesh.creation.icosphere(subdivisions=3)
    with pytest.raises(MeshError, match="fast-simplification"):
        decimate(mesh, 100)
    assert decimate(mesh, 0) is mesh


def test_face_budget_decimates():
    mesh = trimesh.creation.icosphere(subdivisions=4)
    small = decimate(mesh, 500)
    assert 250 < len(small.faces) <= 500
    assert np.abs(np.linalg.norm(small.vertices, axis=1) - 1.0).max() < 0.03  # still the unit sphere
    assert small.volume == pytest.approx(mesh.volume, rel=0.03)


# ---------------------------------------------------------------------- colours

RED, BLUE = np.array([220.0, 30.0, 30.0]), np.array([30.0, 40.0, 210.0])


def test_vertex_colours_of_a_two_coloured_sphere_are_right_on_each_side():
    def paint(points):
        return np.where(points[:, :1] > 0.0, RED, BLUE)

    views = ellipsoid_viewset(size=128, radii=(0.3, 0.3, 0.3), color_fn=paint)
    grid = reconstruct_hull(views, HullConfig(resolution=64))
    mesh = mesh_from_grid(grid, views)
    rgb = mesh.visual.vertex_colors[:, :3].astype(np.float64)
    x = mesh.vertices[:, 0]
    right, left = x > 0.05, x < -0.05
    assert np.median(np.abs(rgb[right] - RED).max(axis=1)) < 10
    assert np.median(np.abs(rgb[left] - BLUE).max(axis=1)) < 10
    assert np.mean(np.abs(rgb[right] - RED).max(axis=1) < 40) > 0.95
    assert np.mean(np.abs(rgb[left] - BLUE).max(axis=1) < 40) > 0.95


def test_occluded_views_do_not_colour_a_vertex():
    """A small sphere hides the front of a big one from a red view; a green view sees it."""
    big = trimesh.creation.icosphere(subdivisions=4, radius=0.2)
    blocker = trimesh.creation.icosphere(subdivisions=2, radius=0.1)
    blocker.apply_translation((0.0, -0.6, 0.0))
    scene = trimesh.util.concatenate([big, blocker])
    c2w = np.stack([cam.look_at((0.0, -1.2, 0.0), (0, 0, 0)), cam.look_at((0.9, -0.8, 0.0), (0, 0, 0))])
    images = np.stack([np.full((128, 128, 3), (255, 0, 0), np.uint8), np.full((128, 128, 3), (0, 255, 0), np.uint8)])
    views = ViewSet(
        images=images,
        K=np.stack([cam.view_intrinsics(128)] * 2),
        c2w=c2w,
        names=["red", "green"],
        masks=np.ones((2, 128, 128), bool),
    )
    colors = vertex_colors(scene, views)
    front = np.argmin(scene.vertices[: len(big.vertices), 1])  # big sphere's -y pole, behind the blocker
    assert scene.vertices[front, 1] == pytest.approx(-0.2)
    np.testing.assert_array_equal(colors[front], [0, 255, 0, 255])
    # The blocker's own front faces the red camera head on and is mostly red.
    blocker_front = len(big.vertices) + np.argmin(scene.vertices[len(big.vertices) :, 1])
    assert colors[blocker_front, 0] > 150


# ------------------------------------------------------------------------ files


@pytest.fixture
def colored_mesh():
    base = trimesh.creation.icosphere(subdivisions=2, radius=0.3)
    vertices = base.vertices * [1.0, 0.5, 2.0] + [0.1, 0.2, -0.3]
    mesh = trimesh.Trimesh(vertices=vertices, faces=base.faces, process=False)
    rng = np.random.default_rng(0)
    colors = rng.integers(0, 256, (len(vertices), 4), dtype=np.uint8)
    colors[:, 3] = 255
    mesh.visual.vertex_colors = colors
    return mesh


@pytest.mark.parametrize("fmt", ["glb", "ply", "obj"])
def test_export_round_trips(tmp_path, colored_mesh, fmt):
    path = export_mesh(colored_mesh, tmp_path / f"mesh.{fmt}")
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"mesh.{fmt}"]  # no temp file left
    back = load_mesh(path)
    assert len(back.faces) == len(colored_mesh.faces)
    np.testing.assert_allclose(back.vertices, colored_mesh.vertices, atol=1e-6)
    np.testing.assert_array_equal(back.faces, colored_mesh.faces)
    np.testing.assert_array_equal(back.visual.vertex_colors, colored_mesh.visual.vertex_colors)


def test_glb_is_stored_y_up(tmp_path, colored_mesh):
    path = export_mesh(colored_mesh, tmp_path / "mesh.glb")
    raw = trimesh.load(path, force="mesh", process=False)
    R = cam.z_up_to_y_up()[:3, :3]
    assert np.linalg.det(R) == pytest.approx(1.0)
    np.testing.assert_allclose(raw.vertices, colored_mesh.vertices @ R.T, atol=1e-6)
    # z-up becomes y-up: the mesh's tallest extent (z, 2x) is glTF's y extent.
    np.testing.assert_allclose(raw.extents, colored_mesh.extents[[0, 2, 1]], atol=1e-6)


def test_unsupported_format_writes_nothing(tmp_path, colored_mesh):
    with pytest.raises(InputError, match="unsupported mesh format 'stl'"):
        export_mesh(colored_mesh, tmp_path / "mesh.stl")
    assert list(tmp_path.iterdir()) == []


def test_missing_mesh_file_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="mesh file not found"):
        load_mesh(tmp_path / "nope.glb")
