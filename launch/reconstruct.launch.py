"""Start the one2345_reconstructor node (and RViz).

    ros2 launch one2345_ros reconstruct.launch.py image_topic:=/camera/color/image_raw \
        mask_topic:=/segmentation/mask device:=cuda use_rviz:=true

Inputs are remapped from the node's relative names (image, mask, labels, depth, camera_info).
`device` overrides zero123.device and sparseneus.device from the parameter file when set.
`demo:=true` runs `one2345 ros-demo --hold` instead of the bare node: the same node with synthetic
views (no weights), fed a bundled scene on image/mask/depth/camera_info + TF, its outputs latched
(RViz then uses the demo camera's frame).
"""

import os
import sys

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

NODE_NAME = "one2345_reconstructor"


def _share(*parts):
    return os.path.join(get_package_share_directory("one2345_ros"), *parts)


def _nodes(context):
    def arg(name):
        return LaunchConfiguration(name).perform(context)

    overrides = {}
    device = arg("device")
    if device:
        overrides = {"zero123.device": device, "sparseneus.device": device}
    remappings = [("image", arg("image_topic")), ("mask", arg("mask_topic")), ("labels", arg("labels_topic")),
                  ("depth", arg("depth_topic")), ("camera_info", arg("camera_info_topic"))]
    demo = arg("demo").lower() in ("true", "1", "yes")
    if demo:  # the node in-process of ros-demo, with its own parameters
        from launch.actions import ExecuteProcess

        command = [sys.executable, "-m", "one2345_ros.cli.main", "ros-demo", "--hold", "--out", arg("demo_out")]
        reconstructor = ExecuteProcess(cmd=command, output="screen", sigterm_timeout="10")
    else:
        reconstructor = Node(
            package="one2345_ros",
            executable="reconstruct_node",
            name=NODE_NAME,
            namespace=arg("namespace"),
            parameters=[arg("params_file"), overrides],
            remappings=remappings,
            output="screen",
            emulate_tty=True,
        )
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        name="one2345_rviz",
        namespace=arg("namespace"),
        arguments=["-d", arg("rviz_config")] + (["-f", "one2345_demo_camera"] if demo else []),
        condition=IfCondition(arg("use_rviz")),
        output="log",
    )
    return [reconstructor, rviz]


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the node (and RViz)"),
        DeclareLaunchArgument("image_topic", default_value="image", description="rectified colour image"),
        DeclareLaunchArgument("mask_topic", default_value="mask", description="mono8 object mask, same stamps"),
        DeclareLaunchArgument("labels_topic", default_value="labels",
                              description="instance label image, 0 = background (with ros.use_labels:=true)"),
        DeclareLaunchArgument("depth_topic", default_value="depth", description="16UC1 mm / 32FC1 m (ros.use_depth)"),
        DeclareLaunchArgument("camera_info_topic", default_value="camera_info",
                              description="CameraInfo of the image (ros.use_camera_info)"),
        DeclareLaunchArgument("params_file", default_value=_share("config", "params.yaml"),
                              description="node parameters (one2345_reconstructor: ros__parameters: ...)"),
        DeclareLaunchArgument("device", default_value="", description="'cuda', 'cuda:N' or 'cpu'; '' = params_file"),
        DeclareLaunchArgument("use_rviz", default_value="false", description="start RViz with rviz/one2345.rviz"),
        DeclareLaunchArgument("rviz_config", default_value=_share("rviz", "one2345.rviz")),
        DeclareLaunchArgument("demo", default_value="false",
                              description="run one2345 ros-demo --hold (synthetic scene and views, no weights)"),
        DeclareLaunchArgument("demo_out", default_value="one2345-ros-demo", description="demo:=true result folders"),
        OpaqueFunction(function=_nodes),
    ])
