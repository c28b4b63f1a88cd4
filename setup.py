"""pip install of the ROS-free library and the `one2345` command.

On a robot, colcon builds this package with ament_cmake (CMakeLists.txt); pip then
installs only requirements.txt.
"""

from setuptools import find_packages, setup

setup(
    name="one2345_ros",
    version="0.1.0",
    description="One-2-3-45 single-image 3D reconstruction (Zero123 + SparseNeuS) for ROS 2 grasp planning",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["one2345_ros", "one2345_ros.*"]),
    package_data={"one2345_ros": ["synthetic/assets/objects/*", "synthetic/assets/LICENSE"]},
    # The interface definitions, so the ROS-free `one2345 bag` can write ReconstructedObject
    # messages after a plain pip install (one2345_ros/ros/interfaces.py looks here).
    data_files=[
        ("share/one2345_ros/msg", ["msg/ReconstructedObject.msg"]),
        ("share/one2345_ros/srv", ["srv/ReconstructObject.srv"]),
        ("share/one2345_ros/action", ["action/ReconstructObject.action"]),
    ],
    install_requires=[
        "numpy>=1.21",
        "torch>=2.1",
        "diffusers>=0.30",
        "transformers>=4.40",
        "safetensors>=0.4",
        "trimesh>=4.0",
        "scikit-image>=0.19",
        "scipy>=1.8",
        "opencv-python-headless>=4.5",
        "embreex>=2.17",
        "fast-simplification>=0.1",
        "rtree>=1.0",
        "Pillow>=9.0",
        "PyYAML>=5.4",
        "tqdm>=4.60",
        "rosbags>=0.10",
    ],
    extras_require={
        "test": [
            "pytest>=7",
            "catkin_pkg>=1.0",
            "mcap>=1.1",
            "rosbags-image>=0.9",
            "mcap-ros2-support>=0.5",
            # the official ROS 2 interface parser (rosidl_adapter, rosidl_parser), as PyPI wheels
            "ros-jazzy-rosidl-adapter",
            "ros-jazzy-rosidl-parser",
            "kornia>=0.7",
            # .ci/run lints with it; pinned so that a new ruff release cannot break CI
            "ruff==0.17.6",
        ],
        "loftr": ["kornia>=0.7"],
    },
    entry_points={"console_scripts": ["one2345=one2345_ros.cli.main:main"]},
)
