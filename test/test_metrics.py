"""Metrics against analytic answers: self-comparison, concentric spheres, offset boxes."""

import numpy as np
import pytest
import trimesh

from one2345_ros.evaluation.mesh_metrics import compare_meshes, occupancy, volume_iou


@pytest.fixture(scope="module")
def sphere():
    return trimesh.creation.icosphere(subdivisions=5, radius=0.5)


def test_mesh_against_itself_is_perfect(sphere):
    m = compare_meshes(sphere, sphere)
    # Two independent 30k samplings of one surface: only the sampling gap remains.
    assert m.chamfer_l1 < 0.004
    assert m.f_score == 1.0 and m.precision == 1.0 and m.recall == 1.0
    assert m.volume_iou == 1.0
    assert m.diagonal == pytest.approx(np.linalg.norm(sphere.extents))


def test_concentric_spheres_match_the_analytic_values(sphere):
    bigger = sphere.copy()
    bigger.apply_scale(1.1)
    m = compare_meshes(bigger, sphere)
    radius = np.linalg.norm(sphere.vertices, axis=1).mean()
    expected = 0.1 * radius / m.diagonal  # every point is 0.1 r from the other surface
    assert m.chamfer_l1 == pytest.approx(expected, rel=0.03)
    assert m.volume_iou == pytest.approx(1.0 / 1.1**3, abs=0.01)
    # 0.1 r is above the 2 % threshold (0.069 r): nothing matches.
    assert m.f_score == 0.0
    # The distance is normalised by the TRUE mesh's diagonal.
    swapped = compare_meshes(sphere, bigger)
    assert swapped.chamfer_l1 == pytest.approx(m.chamfer_l1 / 1.1, rel=0.02)


def test_f_score_counts_points_within_two_percent(sphere):
    slightly = sphere.copy()
    slightly.apply_scale(1.02)  # 0.02 r apart, well inside 0.069 r
    m = compare_meshes(slightly, sphere)
    assert m.f_score == 1.0


def test_offset_boxes_iou_matches_the_analytic_value():
    a = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    b = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    b.apply_translation((0.3, 0.2, 0.1))
    inter = 0.7 * 0.8 * 0.9
    expected = inter / (2.0 - inter)
    assert volume_iou(a, b) == pytest.approx(expected, abs=0.01)


def test_inside_test_survives_a_hole():
    """A box with one face missing still counts as solid (2-of-3 axis vote)."""
    big = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    small = trimesh.creation.box(extents=(0.5, 0.4, 0.3))
    small.apply_translation((0.1, -0.05, 0.02))
    holed = small.copy()
    top = np.nonzero(holed.face_normals[:, 2] > 0.9)[0]
    holed.update_faces(np.setdiff1d(np.arange(len(holed.faces)), top))
    assert not holed.is_watertight
    expected = 0.5 * 0.4 * 0.3 / 1.0
    assert volume_iou(holed, big) == pytest.approx(expected, abs=0.01)


def test_occupancy_of_a_box_is_exact_on_voxel_centres():
    box = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    axes = [np.linspace(-0.75, 0.75, 16)] * 3  # spacing 0.1, no centre on a face
    occ = occupancy(box, axes)
    X, Y, Z = np.meshgrid(*axes, indexing="ij")
    truth = (np.abs(X) < 0.5) & (np.abs(Y) < 0.5) & (np.abs(Z) < 0.5)
    np.testing.assert_array_equal(occ, truth)


def test_metrics_are_reproducible_for_a_seed(sphere):
    other = sphere.copy()
    other.apply_translation((0.02, 0.0, 0.0))
    assert compare_meshes(other, sphere, seed=3) == compare_meshes(other, sphere, seed=3)


def test_empty_mesh_is_an_error(sphere):
    with pytest.raises(ValueError, match="predicted mesh has no surface"):
        compare_meshes(trimesh.Trimesh(), sphere)
