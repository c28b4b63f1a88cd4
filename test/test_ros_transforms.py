"""TF transforms -> c2w matrices for gravity elevation."""

import numpy as np
import pytest
from ros_helpers import F
from scipy.spatial.transform import Rotation

from one2345_ros.geometry import cameras
from one2345_ros.ros.transforms import transform_to_matrix


def _transform(translation, quat_xyzw):
    x, y, z = translation
    qx, qy, qz, qw = quat_xyzw
    return F.make("geometry_msgs/msg/Transform", translation=F.make("geometry_msgs/msg/Vector3", x=x, y=y, z=z),
                  rotation=F.make("geometry_msgs/msg/Quaternion", x=qx, y=qy, z=qz, w=qw))  # fmt: skip


def test_matrix_maps_camera_points_into_the_parent_frame():
    quat = Rotation.from_euler("xyz", [10, -20, 35], degrees=True).as_quat()
    T = transform_to_matrix(_transform((0.5, -0.2, 1.0), quat))
    p_cam = np.array([0.1, 0.2, 0.3])
    expected = Rotation.from_quat(quat).apply(p_cam) + [0.5, -0.2, 1.0]
    np.testing.assert_allclose(cameras.transform_points(T, p_cam[None])[0], expected, atol=1e-12)
    assert np.isclose(np.linalg.det(T[:3, :3]), 1.0)


def test_camera_pose_from_tf_gives_the_true_elevation():
    """A camera 1 m away and 30 deg above an object, as TF would report it (base_link z up)."""
    eye = np.array([np.cos(np.radians(30)), 0.0, np.sin(np.radians(30))])
    c2w = cameras.look_at(eye, np.zeros(3))
    quat = Rotation.from_matrix(c2w[:3, :3]).as_quat()
    T = transform_to_matrix(_transform(eye, quat))
    np.testing.assert_allclose(T, c2w, atol=1e-12)
    assert cameras.elevation_of_camera(T, np.zeros(3)) == pytest.approx(30.0)


def test_non_unit_quaternion_rejected():
    with pytest.raises(ValueError, match="unit quaternion"):
        transform_to_matrix(_transform((0, 0, 0), (0, 0, 0, 0)))
