"""Camera conventions: round trips in float64 and the original's pose vectors."""

import json
from pathlib import Path

import numpy as np
import pytest

from one2345_ros.geometry import cameras as cam

RNG = np.random.default_rng(0)


def random_rigid(n):
    q = RNG.normal(size=(n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    w, x, y, z = q.T
    R = np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
            np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
            np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
        ],
        -2,
    )
    return cam.make_transform(R, RNG.normal(size=(n, 3)))


def test_invert_rigid_round_trip():
    T = random_rigid(16)
    np.testing.assert_allclose(cam.invert_rigid(T) @ T, np.broadcast_to(np.eye(4), T.shape), atol=1e-12)
    np.testing.assert_allclose(cam.invert_rigid(cam.invert_rigid(T)), T, atol=1e-12)


def test_project_unproject_round_trip():
    K = cam.intrinsics(600.0, 610.0, 319.5, 241.0)
    c2w = random_rigid(1)[0]
    uv = RNG.uniform(0, 640, size=(100, 2))
    depth = RNG.uniform(0.2, 3.0, size=100)
    pts = cam.unproject(uv, depth, K, c2w)
    uv2, z = cam.project(pts, K, cam.invert_rigid(c2w))
    np.testing.assert_allclose(uv2, uv, atol=1e-6)
    np.testing.assert_allclose(z, depth, atol=1e-9)


def test_principal_point_projects_to_cx_cy():
    K = cam.view_intrinsics()
    c2w = cam.spherical_to_c2w(70.0, 30.0)
    uv, z = cam.project(np.zeros((1, 3)), K, cam.invert_rigid(c2w))
    np.testing.assert_allclose(uv[0], [128.0, 128.0], atol=1e-9)
    assert z[0] == pytest.approx(cam.ZERO123_RADIUS)


def test_view_intrinsics_values():
    np.testing.assert_array_equal(cam.view_intrinsics(), [[280, 0, 128], [0, 280, 128], [0, 0, 1]])
    assert cam.fov_deg(cam.view_intrinsics(), 256) == pytest.approx(49.13, abs=0.01)
    K512 = cam.view_intrinsics(512)
    assert K512[0, 0] == 560.0 and K512[0, 2] == pytest.approx(256.5)


def test_spherical_round_trip_and_rotation():
    polar = RNG.uniform(1.0, 179.0, size=50)
    az = RNG.uniform(-180.0, 180.0, size=50)
    r = RNG.uniform(0.5, 3.0, size=50)
    c2w = cam.spherical_to_c2w(polar, az, r)
    R = c2w[:, :3, :3]
    np.testing.assert_allclose(R @ np.swapaxes(R, 1, 2), np.broadcast_to(np.eye(3), R.shape), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(R), 1.0, atol=1e-12)
    p2, a2, r2 = cam.c2w_to_spherical(c2w)
    np.testing.assert_allclose(p2, polar, atol=1e-9)
    np.testing.assert_allclose(cam.wrap_degrees(a2 - az), 0.0, atol=1e-9)
    np.testing.assert_allclose(r2, r, atol=1e-12)
    # The optical axis passes through the object centre.
    uv, _ = cam.project(np.zeros((50, 1, 3)), cam.view_intrinsics(), cam.invert_rigid(c2w))
    np.testing.assert_allclose(uv[:, 0], 128.0, atol=1e-9)


def test_image_up_is_world_up_and_azimuth_orbits_right():
    c2w = cam.spherical_to_c2w(70.0, 0.0)
    # The camera at azimuth 0 lies in the y-z plane at negative y (canonical frame).
    np.testing.assert_allclose(c2w[0, 3], 0.0, atol=1e-12)
    assert c2w[1, 3] < 0
    # Image y (down) has a negative z component: world up is image up.
    assert c2w[2, 1] < 0
    # A small +azimuth step moves the camera towards its own +x (right).
    step = cam.spherical_to_c2w(70.0, 1.0)[:3, 3] - c2w[:3, 3]
    assert step @ c2w[:3, 0] > 0
    # +delta polar moves the camera down.
    assert cam.spherical_to_c2w(80.0, 0.0)[2, 3] < c2w[2, 3]


def test_look_at_matches_spherical():
    polar, az = 63.0, 141.0
    c2w = cam.spherical_to_c2w(polar, az)
    np.testing.assert_allclose(cam.look_at(c2w[:3, 3], np.zeros(3)), c2w, atol=1e-12)


def test_opengl_round_trip():
    T = random_rigid(8)
    np.testing.assert_allclose(cam.opengl_to_opencv(cam.opencv_to_opengl(T)), T, atol=0)


def test_gltf_export_rotation_is_proper():
    M = cam.z_up_to_y_up()
    assert np.linalg.det(M[:3, :3]) == pytest.approx(1.0)
    np.testing.assert_array_equal(M[:3, :3] @ [0, 0, 1], [0, 1, 0])


def test_elevation_of_camera():
    for elev in (-40.0, 0.0, 23.0, 60.0):
        c2w = cam.spherical_to_c2w(cam.polar_from_elevation(elev), 77.0, 2.0)
        assert cam.elevation_of_camera(c2w, np.zeros(3)) == pytest.approx(elev, abs=1e-9)
    # Off-centre object: the ray starts at the object, not at the origin.
    c2w = cam.look_at([0.0, -1.0, 1.0], [0.0, 0.0, 0.0])
    assert cam.elevation_of_camera(c2w, [0.0, 0.0, 1.0]) == pytest.approx(0.0, abs=1e-9)


def test_zero123_embedding_values():
    T = cam.zero123_embedding([10.0, -10.0, 0.0], [0.0, 90.0, 180.0])
    np.testing.assert_allclose(
        T,
        [[np.deg2rad(10), 0, 1, 0], [np.deg2rad(-10), 1, 0, 0], [0, 0, -1, 0]],
        atol=1e-12,
    )
    stable = cam.zero123_embedding(0.0, 90.0, cond_polar_deg=60.0)
    np.testing.assert_allclose(stable, [0, 1, 0, np.deg2rad(60)], atol=1e-12)


def load_pose_vectors():
    with open(Path(__file__).parent / "data" / "one2345_pose_vectors.json") as f:
        return json.load(f)["plans"]


@pytest.mark.parametrize("key,polar", [("polar_70", 70.0), ("polar_100", 100.0)])
def test_plan_matches_original_pose_vectors(key, polar):
    expected = load_pose_vectors()[key]
    plan = cam.one2345_plan(polar, cam.ONE2345_INPUT_AZIMUTH_DEG)
    assert [v.name + ".png" for v in plan] == [e["file"] for e in expected]
    for view, e in zip(plan, expected):
        assert view.polar_deg == pytest.approx(e["polar_deg"])
        assert cam.wrap_degrees(view.azimuth_deg - e["azimuth_deg"]) == pytest.approx(0.0)
        np.testing.assert_allclose(cam.opencv_to_opengl(view.c2w()), e["c2w_opengl"], atol=1e-6)


def test_plan_structure():
    plan = cam.one2345_plan(70.0)
    assert len(plan) == 40 and len(cam.stage2_views(plan)) == 32
    assert [v.name for v in plan[:8]] == ["0", "1", "2", "3", "4", "5", "6", "7"]
    assert [v.name for v in cam.one2345_plan(76.0)[4:8]] == ["8", "9", "10", "11"]
    # The four stage-2 views of view 0 are the four elevation views, in order.
    assert [(v.d_polar_deg, v.d_azimuth_deg) for v in plan[8:12]] == list(cam.ELEVATION_VIEW_OFFSETS)
    # Canonical frame: the input view sits at azimuth 0.
    assert plan[0].azimuth_deg == 0.0


def test_gravity_elevation_equals_truth_for_off_centre_objects():
    K = cam.intrinsics(600.0, 600.0, 319.5, 239.5)
    for elev, offset in [(35.0, (0.1, -0.05, 0.02)), (-15.0, (-0.2, 0.1, -0.1)), (70.0, (0.0, 0.0, 0.0))]:
        center = np.array([0.3, 0.2, 0.1])
        eye = center + cam.camera_center(cam.polar_from_elevation(elev), 40.0, 0.9)
        # The camera looks past the object: it is off the optical axis.
        c2w = cam.look_at(eye, center + np.asarray(offset))
        uv, _ = cam.project(center[None], K, cam.invert_rigid(c2w))
        assert cam.gravity_elevation_deg(c2w, K, uv[0]) == pytest.approx(elev, abs=1e-9)
        assert cam.elevation_of_camera(c2w, center) == pytest.approx(elev, abs=1e-9)
