"""The ROS 2 layer. Only ``node.py`` imports rclpy; every other module here is ROS-free
(message builders, conversions, scheduling, the ``bag`` command) and tested without ROS."""
