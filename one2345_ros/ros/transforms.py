"""geometry_msgs transforms -> matrices (ROS-free, works on rclpy and rosbags messages)."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from ..geometry import cameras


def transform_to_matrix(transform) -> np.ndarray:
    """(4, 4) float64 matrix of a geometry_msgs/Transform (translation + unit quaternion xyzw).

    For ``buffer.lookup_transform(target, source, t).transform`` this maps points in the
    source frame into the target frame: with source = the camera's optical frame and
    target = a z-up frame, it is the camera's ``c2w`` in that frame (OpenCV camera axes).
    """
    t, q = transform.translation, transform.rotation
    quat = np.array([q.x, q.y, q.z, q.w], dtype=np.float64)
    norm = np.linalg.norm(quat)
    if not np.isfinite(norm) or abs(norm - 1.0) > 1e-3:
        raise ValueError(f"rotation is not a unit quaternion (norm {norm:.6f})")
    R = Rotation.from_quat(quat / norm).as_matrix()
    return cameras.make_transform(R, np.array([t.x, t.y, t.z], dtype=np.float64))
