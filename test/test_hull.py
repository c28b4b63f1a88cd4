"""Visual hull against analytic scenes: exact silhouettes of ellipsoids from the plan's 32 views."""

import numpy as np
import pytest
from hull_scenes import ellipsoid_mesh, ellipsoid_viewset, render_ellipsoid, stage2_cameras

from one2345_ros.config import HullConfig
from one2345_ros.evaluation.mesh_metrics import compare_meshes, surface_distances
from one2345_ros.geometry import cameras as cam
from one2345_ros.mesh import mesh_from_grid
from one2345_ros.mesh.extract import extract_mesh
from one2345_ros.recon.hull import HullError, reconstruct_hull, required_views, signed_distance_px
from one2345_ros.types import InputError, ViewSet

SPHERE = dict(center=(0.04, -0.03, 0.02), radii=(0.3, 0.3, 0.3))
RES = 96


@pytest.fixture(scope="module")
def sphere_views():
    return ellipsoid_viewset(**SPHERE)


@pytest.fixture(scope="module")
def sphere_grid(sphere_views):
    return reconstruct_hull(sphere_views, HullConfig(resolution=RES))


def test_signed_distance_is_half_a_pixel_at_the_edge():
    mask = np.zeros((20, 20), dtype=bool)
    mask[5:15, 5:15] = True
    d = signed_distance_px(mask)
    assert d[5, 5] == pytest.approx(-0.5) and d[4, 5] == pytest.approx(0.5)
    assert d[10, 2] == pytest.approx(2.5)  # three pixels left of the edge pixel 5
    assert d[9, 9] == pytest.approx(-4.5)  # four pixels from the nearest background pixel
    assert d[1, 1] == pytest.approx(np.hypot(4, 4) - 0.5, abs=1e-3)


def test_sphere_hull_is_accurate(sphere_grid):
    mesh = mesh_from_grid(sphere_grid)
    truth = ellipsoid_mesh(**SPHERE)
    m = compare_meshes(mesh, truth)
    assert m.chamfer_l1 < 0.01
    assert m.volume_iou > 0.9
    assert mesh.is_watertight and mesh.volume > 0


def test_derived_bbox_is_tight_and_holds_the_object(sphere_grid):
    lo, hi = sphere_grid.bbox
    center, r = np.array(SPHERE["center"]), SPHERE["radii"][0]
    assert np.all(lo < center - r) and np.all(hi > center + r)
    assert np.all(lo > center - 1.2 * r) and np.all(hi < center + 1.2 * r)
    assert max(sphere_grid.values.shape) == RES and min(sphere_grid.values.shape) >= RES - 2


def test_field_is_a_distance_near_the_surface(sphere_grid):
    """Sub-voxel accuracy: the field at the nodes is close to the true signed distance."""
    X, Y, Z = np.meshgrid(*sphere_grid.axes(), indexing="ij")
    true_sdf = np.sqrt((X - 0.04) ** 2 + (Y + 0.03) ** 2 + (Z - 0.02) ** 2) - 0.3
    band = np.abs(true_sdf) < 0.02
    # Half a pixel at the sphere's depth is ~0.002; the hull of 32 views bulges a little more.
    assert np.median(np.abs(sphere_grid.values[band] - true_sdf[band])) < 0.003


def test_absolute_azimuth_does_not_change_the_result():
    scene = dict(center=(0.06, -0.04, 0.03), radii=(0.32, 0.2, 0.14), rotation=cam.rotation_z(20.0))
    grid0 = reconstruct_hull(ellipsoid_viewset(input_azimuth_deg=0.0, **scene), HullConfig(resolution=64))
    turn = cam.rotation_z(37.0)
    turned = dict(center=turn @ scene["center"], radii=scene["radii"], rotation=turn @ scene["rotation"])
    grid1 = reconstruct_hull(ellipsoid_viewset(input_azimuth_deg=37.0, **turned), HullConfig(resolution=64))
    mesh0, mesh1 = mesh_from_grid(grid0), mesh_from_grid(grid1)
    mesh1.apply_transform(cam.make_transform(turn.T, np.zeros(3)))
    chamfer_between, *_ = surface_distances(mesh1, mesh0)
    assert chamfer_between < 0.005
    # ...and both are good reconstructions of the (unturned) truth.
    chamfer_truth, *_ = surface_distances(mesh0, ellipsoid_mesh(**scene))
    assert chamfer_truth < 0.01


def test_given_bbox_is_kept_and_the_cut_surface_is_closed(sphere_views):
    bbox = np.array([[-0.4, -0.4, -0.4], [0.4, 0.4, 0.1]])
    views = ViewSet(**{**sphere_views.__dict__, "bbox": bbox})
    grid = reconstruct_hull(views, HullConfig(resolution=64))
    np.testing.assert_array_equal(grid.bbox, bbox)
    mesh = mesh_from_grid(grid)
    assert mesh.is_watertight
    assert mesh.bounds[1, 2] <= 0.1 + 1e-9
    assert mesh.bounds[1, 2] > 0.1 - 0.02


def test_non_white_pixels_serve_as_masks(sphere_views, sphere_grid):
    views = ViewSet(**{**sphere_views.__dict__, "masks": None})
    grid = reconstruct_hull(views, HullConfig(resolution=RES))
    np.testing.assert_array_equal(grid.bbox, sphere_grid.bbox)
    np.testing.assert_allclose(grid.values, sphere_grid.values, atol=1e-6)


def test_views_that_do_not_see_a_voxel_abstain(sphere_views):
    """A close-up that crops the object must not carve what falls outside its image."""
    K_close = cam.view_intrinsics(256).copy()
    K_close[:2, :2] *= 3.0  # the sphere overflows this view on every side
    c2w_close = cam.spherical_to_c2w(75.0, 45.0)
    _, mask_close = render_ellipsoid(K_close[None], c2w_close[None], 256, **SPHERE)
    assert mask_close[0, 0].all() and mask_close[0, -1].all()  # cropped at the borders
    with_close = ViewSet(
        images=np.concatenate([sphere_views.images, np.full((1, 256, 256, 3), 128, np.uint8)]),
        K=np.concatenate([sphere_views.K, K_close[None]]),
        c2w=np.concatenate([sphere_views.c2w, c2w_close[None]]),
        names=sphere_views.names + ["close"],
        masks=np.concatenate([sphere_views.masks, mask_close]),
        bbox=np.array([[-0.35, -0.4, -0.35], [0.4, 0.35, 0.4]]),
    )
    without = ViewSet(**{**sphere_views.__dict__, "bbox": with_close.bbox})
    a = mesh_from_grid(reconstruct_hull(with_close, HullConfig(resolution=64)))
    b = mesh_from_grid(reconstruct_hull(without, HullConfig(resolution=64)))
    assert compare_meshes(a, b).volume_iou > 0.99


def test_min_view_fraction_tolerates_a_bad_view(sphere_views):
    """One view whose silhouette lost its left half: strict carving loses that part, a 90 % vote does not."""
    masks = sphere_views.masks.copy()
    masks[5, :, :128] = False
    bad = ViewSet(**{**sphere_views.__dict__, "masks": masks})
    truth = ellipsoid_mesh(**SPHERE)
    strict = mesh_from_grid(reconstruct_hull(bad, HullConfig(resolution=64)))
    vote = mesh_from_grid(reconstruct_hull(bad, HullConfig(resolution=64, min_view_fraction=0.9)))
    assert compare_meshes(strict, truth).volume_iou < 0.75
    assert compare_meshes(vote, truth).volume_iou > 0.9


def test_empty_silhouette_names_the_view(sphere_views):
    masks = sphere_views.masks.copy()
    masks[3] = False
    with pytest.raises(HullError, match=f"view 3 \\({sphere_views.names[3]}\\): empty silhouette"):
        reconstruct_hull(ViewSet(**{**sphere_views.__dict__, "masks": masks}))


def test_inconsistent_silhouettes_are_an_error():
    K, c2w, names = stage2_cameras(size=64)
    _, masks = render_ellipsoid(K, c2w, 64, radii=(0.1, 0.1, 0.1))
    # Half the views see a sphere elsewhere: the cones no longer meet.
    _, moved = render_ellipsoid(K, c2w, 64, center=(0.0, 0.0, 0.45), radii=(0.1, 0.1, 0.1))
    masks[::2] = moved[::2]
    views = ViewSet(images=np.full((32, 64, 64, 3), 128, np.uint8), K=K, c2w=c2w, names=names, masks=masks)
    with pytest.raises(HullError, match="do not (intersect|overlap)"):
        reconstruct_hull(views, HullConfig(resolution=32))


def test_marching_cubes_of_the_hull_keeps_world_coordinates(sphere_grid):
    mesh = extract_mesh(sphere_grid)
    center = mesh.vertices.mean(axis=0)
    np.testing.assert_allclose(center, SPHERE["center"], atol=0.01)
    assert mesh.vertices.dtype == np.float64


def test_near_far_bounds_the_derived_box(sphere_views):
    views = ViewSet(**{**sphere_views.__dict__, "near_far": (0.8, 1.6)})
    grid = reconstruct_hull(views, HullConfig(resolution=48))
    center, r = np.array(SPHERE["center"]), SPHERE["radii"][0]
    assert np.all(grid.bbox[0] < center - r) and np.all(grid.bbox[1] > center + r)


def test_parallel_cameras_need_a_bbox():
    K = np.stack([cam.view_intrinsics(64)] * 2)
    c2w = np.stack([cam.look_at((x, -1.2, 0.0), (x, 0.0, 0.0)) for x in (0.0, 0.1)])
    masks = np.zeros((2, 64, 64), bool)
    masks[:, 20:40, 20:40] = True
    views = ViewSet(images=np.full((2, 64, 64, 3), 128, np.uint8), K=K, c2w=c2w, names=["a", "b"], masks=masks)
    with pytest.raises(HullError, match="give views.bbox or near_far"):
        reconstruct_hull(views)
    boxed = ViewSet(**{**views.__dict__, "bbox": np.array([[-0.3, -0.3, -0.3], [0.3, 0.3, 0.3]])})
    assert reconstruct_hull(boxed, HullConfig(resolution=16)).values.min() < 0


@pytest.mark.parametrize("field, value", [("min_view_fraction", 0.0), ("resolution", 4), ("min_seen_views", 0)])
def test_bad_config_is_refused(sphere_views, field, value):
    with pytest.raises(InputError, match=f"hull.{field}"):
        reconstruct_hull(sphere_views, HullConfig(**{field: value}))


def test_required_views_rounds_up_without_float_noise():
    assert required_views(0.9, 30) == 27  # 0.9 * 30 is 27.000000000000004 in floats
    np.testing.assert_array_equal(required_views(0.9, np.array([0, 1, 10, 32])), [0, 1, 9, 29])
    assert required_views(1.0, 32) == 32
