"""package.xml validates and lists every ROS package we import; CMakeLists and RViz config are consistent."""

import ast
import re
import sys

import yaml
from catkin_pkg.package import parse_package
from ros_helpers import REPO

# Python packages that come from pip (requirements.txt), not from ROS.
PIP_MODULES = {"numpy", "yaml", "cv2", "trimesh", "rosbags", "PIL", "torch", "scipy", "skimage", "diffusers",
               "transformers", "safetensors", "embreex", "tqdm", "pytest", "one2345_ros", "ros_helpers"}  # fmt: skip
ROS_SOURCES = sorted((REPO / "one2345_ros" / "ros").glob("*.py")) + [REPO / "launch" / "reconstruct.launch.py",
              REPO / "scripts" / "reconstruct_node", REPO / "test" / "ros_launch" / "launch_node.py",
              REPO / "test" / "test_ros_node.py"]  # fmt: skip


def _package(env=None):
    pkg = parse_package(str(REPO / "package.xml"))
    pkg.evaluate_conditions(env or {})
    return pkg


def _deps(pkg):
    groups = (pkg.build_depends, pkg.exec_depends, pkg.test_depends, pkg.buildtool_depends)
    return {d.name for group in groups for d in group if d.evaluated_condition is not False}


# Functions taking a module name: node.py imports its optional ROS packages through them.
IMPORT_FUNCTIONS = {"import_module", "_import_optional", "_optional"}


def _imported_top_modules(path):
    tree = ast.parse(path.read_text(), str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if func in IMPORT_FUNCTIONS and isinstance(node.args[0].value, str):
                names.add(node.args[0].value.split(".")[0])
    return names


def test_package_xml_validates():
    pkg = _package()
    pkg.validate()
    assert pkg.name == "one2345_ros" and pkg.package_format == 3
    assert pkg.get_build_type() == "ament_cmake"
    assert "rosidl_interface_packages" in [g.name for g in pkg.member_of_groups]


def test_every_ros_import_is_a_dependency():
    deps = _deps(_package())
    imported = set()
    for path in ROS_SOURCES:
        imported |= _imported_top_modules(path)
    ros_modules = imported - set(sys.stdlib_module_names) - PIP_MODULES
    assert {"rclpy", "message_filters", "tf2_ros", "tf2_msgs", "cv_bridge", "moveit_msgs"} <= ros_modules
    assert ros_modules - deps == set()


def test_every_message_package_built_through_the_factory_is_a_dependency():
    deps = _deps(_package())
    used = set()
    for path in (REPO / "one2345_ros" / "ros").glob("*.py"):
        used |= set(re.findall(r'"([a-z0-9_]+)/msg/[A-Za-z0-9]+"', path.read_text()))
    used.discard("one2345_ros")
    assert used >= {"std_msgs", "geometry_msgs", "shape_msgs", "visualization_msgs", "sensor_msgs", "moveit_msgs"}
    assert used - deps == set()
    assert "builtin_interfaces" in deps


def test_moveit_msgs_is_optional():
    assert "moveit_msgs" in _deps(_package())
    assert "moveit_msgs" not in _deps(_package({"ONE2345_WITHOUT_MOVEIT": "1"}))


def test_cmakelists_layout():
    cmake = (REPO / "CMakeLists.txt").read_text()
    code = "\n".join(line.split("#")[0] for line in cmake.splitlines())  # without comments
    # rosidl_generator_py installs the Python package of the project's name (the generated
    # msg/srv/action); a second ament_python_install_package of that name fails on Humble and
    # Jazzy in either order. Our sources go into the same folder with a plain install(DIRECTORY)
    # after the interfaces, so our __init__.py replaces the generated one.
    assert "ament_python_install_package" not in code
    install_python = re.search(r'install\(DIRECTORY \$\{PROJECT_NAME\}/ DESTINATION "\$\{PYTHON_INSTALL_DIR\}/'
                               r'\$\{PROJECT_NAME\}"(.*?)\)', code, re.DOTALL)  # fmt: skip
    assert install_python, "the Python package must be installed with install(DIRECTORY ...)"
    assert 'PATTERN "__pycache__" EXCLUDE' in install_python.group(1)
    assert code.index("rosidl_generate_interfaces(") < install_python.start()
    assert code.index("find_package(ament_cmake_python REQUIRED)") < install_python.start()  # PYTHON_INSTALL_DIR
    for folder, ext in (("msg", "msg"), ("srv", "srv"), ("action", "action")):
        for path in (REPO / folder).glob(f"*.{ext}"):
            assert f'"{folder}/{path.name}"' in cmake
    assert "install(PROGRAMS scripts/reconstruct_node DESTINATION lib/${PROJECT_NAME})" in cmake
    assert "install(DIRECTORY launch config rviz DESTINATION share/${PROJECT_NAME})" in cmake
    launch_test = re.search(r"add_launch_test\((\S+)", cmake).group(1)
    assert (REPO / launch_test).is_file()
    assert (REPO / "scripts" / "reconstruct_node").stat().st_mode & 0o111
    # No hand-written msg/srv/action Python packages: rosidl generates them into one2345_ros.
    assert not any((REPO / "one2345_ros" / sub).exists() for sub in ("msg", "srv", "action"))


def test_rviz_config_subscribes_latched_outputs():
    config = yaml.safe_load((REPO / "rviz" / "one2345.rviz").read_text())
    displays = {d["Class"]: d for d in config["Visualization Manager"]["Displays"]}
    assert {"rviz_default_plugins/Image", "rviz_default_plugins/Marker", "rviz_default_plugins/TF"} <= set(displays)
    for display in config["Visualization Manager"]["Displays"]:
        topic = display.get("Topic", {})
        if topic.get("Value", "").startswith("/one2345_reconstructor/"):
            assert topic["Durability Policy"] == "Transient Local" and topic["Reliability Policy"] == "Reliable"
    assert displays["rviz_default_plugins/Marker"]["Topic"]["Value"] == "/one2345_reconstructor/marker"
