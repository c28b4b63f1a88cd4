"""launch_testing: reconstruct.launch.py starts the node and its service answers (needs ROS 2).

Run by `colcon test` (CMakeLists add_launch_test) or `launch_test test/ros_launch/launch_node.py`
in a built and sourced workspace. Without weights the models cannot load, so the node
stays inactive and must say so; with weights it must ask for an image/mask pair.
"""

import os
import unittest

import launch
import launch_testing.actions
import launch_testing.asserts
import pytest
import rclpy
from ament_index_python.packages import get_package_share_directory
from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource

from one2345_ros.srv import ReconstructObject


@pytest.mark.launch_test
def generate_test_description():
    launch_file = os.path.join(get_package_share_directory("one2345_ros"), "launch", "reconstruct.launch.py")
    return launch.LaunchDescription([
        IncludeLaunchDescription(PythonLaunchDescriptionSource(launch_file),
                                 launch_arguments={"use_rviz": "false", "device": "cpu"}.items()),
        launch_testing.actions.ReadyToTest(),
    ])


class TestReconstructorUp(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        rclpy.init()
        cls.probe = rclpy.create_node("one2345_launch_probe")

    @classmethod
    def tearDownClass(cls):
        cls.probe.destroy_node()
        rclpy.shutdown()

    def test_service_answers_with_a_reason(self):
        client = self.probe.create_client(ReconstructObject, "/reconstruct_object")
        self.assertTrue(client.wait_for_service(timeout_sec=60), "service /reconstruct_object not advertised")
        future = client.call_async(ReconstructObject.Request())
        rclpy.spin_until_future_complete(self.probe, future, timeout_sec=60)
        response = future.result()
        self.assertIsNotNone(response)
        self.assertFalse(response.success)
        self.assertTrue("not active" in response.message or "no synchronised image/mask pair" in response.message,
                        response.message)

    def test_latched_topics_exist(self):
        names = dict(self.probe.get_topic_names_and_types())
        for _ in range(300):  # discovery on a busy machine can take seconds
            if "/one2345_reconstructor/marker" in names:
                break
            rclpy.spin_once(self.probe, timeout_sec=0.1)
            names = dict(self.probe.get_topic_names_and_types())
        self.assertIn("visualization_msgs/msg/Marker", names.get("/one2345_reconstructor/marker", []))
        self.assertIn("one2345_ros/msg/ReconstructedObject", names.get("/one2345_reconstructor/object", []))


@launch_testing.post_shutdown_test()
class TestExit(unittest.TestCase):
    def test_exit_code(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info, allowable_exit_codes=[0, -2, -15])
