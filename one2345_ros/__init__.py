"""one2345_ros: One-2-3-45 single-image 3D reconstruction for ROS 2 (ROS-free core).

Kept minimal on purpose: on a robot, rosidl generates the msg/srv/action
subpackages of this same Python package.

``extend_path``: a source checkout on ``sys.path`` (pytest or ``python -m`` from the
repository root) would otherwise hide the built package of a colcon workspace, which
alone holds the generated ``msg``, ``srv`` and ``action``. With it, every
``one2345_ros`` folder on ``sys.path`` contributes; the first one found wins for
modules present in both.
"""

from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)

__version__ = "0.1.0"
