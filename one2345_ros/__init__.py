"""one2345_ros: One-2-3-45 single-image 3D reconstruction for ROS 2 (ROS-free core).

Kept minimal on purpose: on a robot, rosidl generates the msg/srv/action
subpackages of this same Python package.
"""

__version__ = "0.1.0"
