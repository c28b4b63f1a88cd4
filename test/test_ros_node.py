"""The real node with rclpy (marked `ros`: runs only where ROS 2 is installed and this package is built).

In-process: the node with a fake pipeline on a MultiThreadedExecutor, a client node calling
the service and the action, publishing inputs and reading the latched outputs. Plus parity
of our conversions with sensor_msgs_py and (apt ROS only, marker `apt_ros`) cv_bridge, and the
launch file via launch_testing. test_ros_node_robustness.py covers lifecycle cycles, bad inputs,
missing optional packages and the node process's exit.
"""

import shutil
import subprocess

import numpy as np
import pytest
from ros_helpers import REPO, wait_until

pytestmark = pytest.mark.ros



@pytest.fixture
def ros(start_node):
    rig = start_node()
    return rig.node, rig.client, rig.pipeline, rig.gate


def _inputs(stamp_sec=1):
    from one2345_ros.ros.factory import RclpyFactory
    from one2345_ros.ros.images import image_message
    from one2345_ros.ros.messages import make_header

    f = RclpyFactory()
    rgb = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    mask = np.zeros((48, 64), np.uint8)
    mask[10:30, 20:44] = 255
    header = make_header(f, stamp_sec * 1_000_000_000, "cam_optical")
    return image_message(f, header, rgb, "rgb8"), image_message(f, header, mask, "mono8")


def _call(client, srv_type, name, request, timeout=20.0):
    cli = client.create_client(srv_type, name)
    assert cli.wait_for_service(timeout_sec=10)
    future = cli.call_async(request)
    assert wait_until(future.done, timeout)
    return future.result()


def test_service_with_explicit_images_publishes_latched_outputs(ros):
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from visualization_msgs.msg import Marker

    from one2345_ros.srv import ReconstructObject

    _node, client, _pipeline, _ = ros
    request = ReconstructObject.Request()
    request.object_id = "mug"
    request.image, request.mask = _inputs()
    response = _call(client, ReconstructObject, "/reconstruct_object", request)
    assert response.success, response.message
    assert len(response.object.mesh.triangles) == 320 and response.object.header.frame_id == "cam_optical"
    assert response.object.mesh_uri.startswith("file://")
    got = []
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    client.create_subscription(Marker, "/one2345_reconstructor/marker", got.append, latched)  # a late joiner
    assert wait_until(lambda: got)
    assert got[0].type == Marker.TRIANGLE_LIST and len(got[0].points) == 3 * 320


def test_latest_pair_from_topics_and_bad_messages_survive(ros):
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    from one2345_ros.srv import ReconstructObject

    node, client, _, _ = ros
    image_pub = client.create_publisher(Image, "/image", qos_profile_sensor_data)
    mask_pub = client.create_publisher(Image, "/mask", qos_profile_sensor_data)
    image, mask = _inputs(stamp_sec=5)
    bad_mask = Image(header=mask.header, height=10, width=10, encoding="mono8", step=10, data=bytes(100))
    image_pub.publish(image)
    mask_pub.publish(bad_mask)  # size mismatch: dropped and logged, node keeps running
    assert wait_until(lambda: node.core.dropped_inputs >= 1, 10)

    def held():
        image_pub.publish(image)
        mask_pub.publish(mask)
        try:
            return node.core.latest.take(0).stamp_ns == 5_000_000_000
        except ValueError:
            return False

    assert wait_until(held, 10)
    response = _call(client, ReconstructObject, "/reconstruct_object", ReconstructObject.Request())
    assert response.success, response.message


def test_action_feedback_busy_and_cancel(ros):
    from rclpy.action import ActionClient

    from one2345_ros.action import ReconstructObject as Action
    from one2345_ros.srv import ReconstructObject

    _node, client, pipeline, gate = ros
    gate.clear()  # hold the worker in the first stage
    action = ActionClient(client, Action, "/reconstruct")
    assert action.wait_for_server(timeout_sec=10)
    goal = Action.Goal()
    goal.object_id = "box"
    goal.image, goal.mask = _inputs()
    feedback = []
    sent = action.send_goal_async(goal, feedback_callback=lambda fb: feedback.append(fb.feedback.stage))
    assert wait_until(sent.done)
    handle = sent.result()
    assert handle.accepted and pipeline.started.wait(10)
    request = ReconstructObject.Request()
    request.image, request.mask = _inputs()
    busy = _call(client, ReconstructObject, "/reconstruct_object", request)
    assert not busy.success and busy.message.startswith("busy")
    cancel = handle.cancel_goal_async()
    assert wait_until(cancel.done)
    result = handle.get_result_async()
    assert wait_until(result.done)
    assert not result.result().result.success and "cancelled" in result.result().result.message
    assert "preprocess" in feedback


@pytest.mark.apt_ros
def test_conversions_match_cv_bridge():
    CvBridge = pytest.importorskip("cv_bridge", reason="cv_bridge comes with apt ROS only (not on PyPI)").CvBridge

    from one2345_ros.ros import images

    bridge = CvBridge()
    rgb = np.random.default_rng(1).integers(0, 255, (6, 5, 3), dtype=np.uint8)
    for encoding, pixels in (("rgb8", rgb), ("bgr8", rgb[..., ::-1]), ("rgba8", np.dstack([rgb, rgb[..., :1]]))):
        msg = bridge.cv2_to_imgmsg(np.ascontiguousarray(pixels), encoding=encoding)
        np.testing.assert_array_equal(images.to_rgb(msg), bridge.imgmsg_to_cv2(msg, "rgb8"))
    depth = np.arange(30, dtype=np.uint16).reshape(6, 5)
    msg = bridge.cv2_to_imgmsg(depth, encoding="16UC1")
    np.testing.assert_array_equal(images.image_array(msg), bridge.imgmsg_to_cv2(msg))


def test_point_cloud_matches_sensor_msgs_py():
    from sensor_msgs_py import point_cloud2

    from one2345_ros.ros import messages
    from one2345_ros.ros.factory import RclpyFactory

    f = RclpyFactory()
    header = messages.make_header(f, 0, "cam")
    points = np.random.default_rng(2).random((10, 3))
    colors = np.random.default_rng(3).integers(0, 255, (10, 4), dtype=np.uint8)
    ours = messages.build_point_cloud(f, header, points, colors)
    theirs = point_cloud2.create_cloud(header, messages.cloud_fields(f), messages.cloud_records(points, colors))
    assert bytes(ours.data) == bytes(theirs.data) and ours.point_step == theirs.point_step


def test_launch_file_with_launch_testing():
    from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

    try:
        get_package_share_directory("one2345_ros")
    except PackageNotFoundError:
        pytest.skip("one2345_ros is not built and sourced in this workspace (colcon build; source install/setup.bash)")
    launch_test = shutil.which("launch_test")
    assert launch_test, "launch_testing is not installed (apt install ros-$ROS_DISTRO-launch-testing)"
    proc = subprocess.run([launch_test, str(REPO / "test" / "ros_launch" / "launch_node.py")],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
