"""reconstruct.launch.py against recording stand-ins for launch/launch_ros (no ROS needed).

The stand-ins only record constructor arguments, so this checks our launch logic (argument
names, remappings, parameter files and overrides, the RViz switch); the `ros` tests run the
real launch file with launch_testing.
"""

import importlib.util
import sys
import types

import pytest
from ros_helpers import REPO


class Recorded:
    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


class LaunchConfiguration:
    def __init__(self, name):
        self.name = name

    def perform(self, context):
        return context[self.name]


class IfCondition(Recorded):
    pass


@pytest.fixture
def launch_module(monkeypatch):
    modules = {
        "launch": {"LaunchDescription": type("LaunchDescription", (Recorded,), {})},
        "launch.actions": {"DeclareLaunchArgument": type("DeclareLaunchArgument", (Recorded,), {}),
                           "OpaqueFunction": type("OpaqueFunction", (Recorded,), {}),
                           "ExecuteProcess": type("ExecuteProcess", (Recorded,), {})},
        "launch.conditions": {"IfCondition": IfCondition},
        "launch.substitutions": {"LaunchConfiguration": LaunchConfiguration},
        "launch_ros": {},
        "launch_ros.actions": {"Node": type("Node", (Recorded,), {})},
        "ament_index_python": {},
        "ament_index_python.packages": {"get_package_share_directory": lambda pkg: f"/opt/ros/share/{pkg}"},
    }  # fmt: skip
    for name, attrs in modules.items():
        module = types.ModuleType(name)
        module.__dict__.update(attrs)
        monkeypatch.setitem(sys.modules, name, module)
    spec = importlib.util.spec_from_file_location("reconstruct_launch", REPO / "launch" / "reconstruct.launch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _declared(description):
    return {a.args[0]: a.kwargs.get("default_value")
            for a in description.args[0] if type(a).__name__ == "DeclareLaunchArgument"}  # fmt: skip


def _nodes(description, context):
    (opaque,) = [a for a in description.args[0] if type(a).__name__ == "OpaqueFunction"]
    return opaque.kwargs["function"](context)


def test_arguments_and_defaults(launch_module):
    declared = _declared(launch_module.generate_launch_description())
    assert set(declared) >= {"namespace", "image_topic", "mask_topic", "labels_topic", "depth_topic",
                             "camera_info_topic", "params_file", "device", "use_rviz"}  # fmt: skip
    assert declared["params_file"] == "/opt/ros/share/one2345_ros/config/params.yaml"
    assert declared["rviz_config"] == "/opt/ros/share/one2345_ros/rviz/one2345.rviz"


def test_node_remappings_parameters_and_rviz(launch_module):
    description = launch_module.generate_launch_description()
    context = dict(_declared(description))
    context.update(namespace="robot1", image_topic="/camera/color/image_raw", mask_topic="/sam/mask",
                   device="cuda:1", use_rviz="true")  # fmt: skip
    node, rviz = _nodes(description, context)
    kw = node.kwargs
    assert (kw["package"], kw["executable"], kw["name"], kw["namespace"]) == (
        "one2345_ros", "reconstruct_node", "one2345_reconstructor", "robot1")  # fmt: skip
    assert dict(kw["remappings"]) == {"image": "/camera/color/image_raw", "mask": "/sam/mask", "labels": "labels",
                                      "depth": "depth", "camera_info": "camera_info"}  # fmt: skip
    assert kw["parameters"] == ["/opt/ros/share/one2345_ros/config/params.yaml",
                                {"zero123.device": "cuda:1", "sparseneus.device": "cuda:1"}]  # fmt: skip
    assert rviz.kwargs["arguments"] == ["-d", "/opt/ros/share/one2345_ros/rviz/one2345.rviz"]
    assert rviz.kwargs["condition"].args == ("true",)
    context["device"] = ""
    node, _ = _nodes(description, context)
    assert node.kwargs["parameters"][1] == {}  # empty device: the params file decides


def test_demo_runs_ros_demo_instead_of_the_bare_node(launch_module):
    description = launch_module.generate_launch_description()
    context = dict(_declared(description))
    assert context["demo"] == "false"
    context.update(demo="true", use_rviz="true")
    demo, rviz = _nodes(description, context)
    assert type(demo).__name__ == "ExecuteProcess"
    assert demo.kwargs["cmd"][1:] == ["-m", "one2345_ros.cli.main", "ros-demo", "--hold", "--out", "one2345-ros-demo"]
    assert rviz.kwargs["arguments"][-2:] == ["-f", "one2345_demo_camera"]
