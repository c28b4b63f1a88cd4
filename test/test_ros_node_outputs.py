"""The real node over DDS (marker `ros`), completing test_ros_node.py: every output against the
pipeline's result (late subscribers included), the service on the latest synchronised pair,
ordered action feedback and a prompt cancel, bad messages answered with their reason, gravity
from a real TF broadcast, synthetic views (``views: oracle``) activating, and one
``ros2 service call`` from the command line.
"""

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
from ros_helpers import FakePipeline, known_result, wait_until

pytestmark = pytest.mark.ros

K = np.array([[50.0, 0.0, 31.5], [0.0, 50.0, 19.5], [0.0, 0.0, 1.0]])
"""Intrinsics of the 64x48 test image; its principal point is the mask box's centre."""



@pytest.fixture
def make_node(start_node):
    """``make(pipeline_factory=None, **params) -> (node, client, pipeline, gate)``: a configured and
    active node (a FakePipeline unless given) and a client node on one MultiThreadedExecutor."""

    def make(pipeline_factory=None, **params):
        rig = start_node(params=params, pipeline_factory=pipeline_factory)
        return rig.node, rig.client, rig.pipeline, rig.gate

    return make


def _messages(stamp_ns=1_000_000_000, frame_id="cam_optical"):
    from one2345_ros.ros.factory import RclpyFactory
    from one2345_ros.ros.images import image_message
    from one2345_ros.ros.messages import make_header

    f = RclpyFactory()
    rgb = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    mask = np.zeros((48, 64), np.uint8)
    mask[10:30, 20:44] = 255
    header = make_header(f, stamp_ns, frame_id)
    return f, header, image_message(f, header, rgb, "rgb8"), image_message(f, header, mask, "mono8")


def _request(object_id="mug", stamp_ns=1_000_000_000, camera_info=False):
    from sensor_msgs.msg import CameraInfo

    from one2345_ros.srv import ReconstructObject

    _, header, image, mask = _messages(stamp_ns)
    request = ReconstructObject.Request()
    request.object_id, request.image, request.mask = object_id, image, mask
    if camera_info:
        request.camera_info = CameraInfo(header=header, width=64, height=48, k=K.reshape(-1).tolist())
    return request


def _call(client, request, timeout=10.0):
    from one2345_ros.srv import ReconstructObject

    cli = client.create_client(ReconstructObject, "/reconstruct_object")
    try:
        assert cli.wait_for_service(timeout_sec=10)
        future = cli.call_async(request)
        assert wait_until(future.done, timeout), "no answer"
        return future.result()
    finally:
        client.destroy_client(cli)


def _late(client, msg_type, topic, count=1):
    """Subscribe now (after the result was published) with latched QoS; the messages received."""
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

    got = []
    qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    client.create_subscription(msg_type, topic, got.append, qos)
    return got


def test_every_output_matches_the_result_and_reaches_a_late_subscriber(make_node):
    from sensor_msgs.msg import Image, PointCloud2
    from sensor_msgs_py import point_cloud2
    from std_msgs.msg import Float32
    from tf2_msgs.msg import TFMessage
    from visualization_msgs.msg import Marker

    from one2345_ros.msg import ReconstructedObject
    from one2345_ros.results.contact_sheet import contact_sheet
    from one2345_ros.ros.messages import mesh_arrays
    from one2345_ros.ros.transforms import transform_to_matrix

    _, client, _, _ = make_node()
    response = _call(client, _request("mug", 2_000_000_000))
    assert response.success, response.message
    truth = known_result("cam_optical", "mug", 2_000_000_000)  # what the fake pipeline returned
    vertices, faces, colors = mesh_arrays(truth.mesh)
    node_name = "/one2345_reconstructor"
    types = {"object": ReconstructedObject, "marker": Marker, "elevation": Float32, "points": PointCloud2,
             "views": Image}  # fmt: skip
    got = {key: _late(client, t, f"{node_name}/{key}") for key, t in types.items()}
    got["tf"] = _late(client, TFMessage, "/tf_static")
    assert wait_until(lambda: all(got.values()), 10), {k: len(v) for k, v in got.items()}

    obj = got["object"][0]
    assert obj == response.object  # the answer is what was latched
    assert (obj.header.frame_id, obj.header.stamp.sec, obj.object_id) == ("cam_optical", 2, "mug")
    np.testing.assert_allclose([(p.x, p.y, p.z) for p in obj.mesh.vertices], vertices, atol=1e-12)
    np.testing.assert_array_equal([tuple(t.vertex_indices) for t in obj.mesh.triangles], faces)
    np.testing.assert_allclose([(c.r, c.g, c.b) for c in obj.vertex_colors], colors[:, :3] / 255.0, atol=1e-6)
    assert obj.elevation_deg == pytest.approx(23.5) and obj.elevation_source == "image" and obj.units == "m"

    mesh_file = Path(urlparse(obj.mesh_uri).path)
    import trimesh

    written = trimesh.load(mesh_file, process=False)
    np.testing.assert_allclose(written.vertices, vertices, atol=1e-6)
    saved = json.loads((mesh_file.parent / "result.json").read_text())
    assert saved["ok"] and saved["elevation_deg"] == pytest.approx(23.5) and saved["faces"] == len(faces)

    marker = got["marker"][0]
    assert marker.type == Marker.TRIANGLE_LIST and marker.header == obj.header
    np.testing.assert_allclose([(p.x, p.y, p.z) for p in marker.points], vertices[faces].reshape(-1, 3), atol=1e-6)
    assert got["elevation"][0].data == pytest.approx(23.5)

    cloud = got["points"][0]
    xyz = point_cloud2.read_points_numpy(cloud, field_names=("x", "y", "z"))
    np.testing.assert_allclose(xyz, vertices, atol=1e-6)

    views = got["views"][0]
    sheet = contact_sheet(truth)
    assert (views.encoding, views.height, views.width) == ("rgb8", *sheet.shape[:2])
    np.testing.assert_array_equal(np.frombuffer(bytes(views.data), np.uint8).reshape(sheet.shape), sheet)

    (transform,) = [t for t in got["tf"][0].transforms if t.child_frame_id == "one2345/mug"]
    assert transform.header.frame_id == "cam_optical"
    # the object frame is the result's oriented bounding box (object_pose), in the camera frame
    np.testing.assert_allclose(transform_to_matrix(transform.transform), truth.object_pose, atol=1e-9)


def test_service_uses_the_latest_synchronised_pair(make_node):
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    from one2345_ros.srv import ReconstructObject

    node, client, pipeline, _ = make_node()
    image_pub = client.create_publisher(Image, "/image", qos_profile_sensor_data)
    mask_pub = client.create_publisher(Image, "/mask", qos_profile_sensor_data)
    for sec in (5, 6, 7):
        _, _, image, mask = _messages(sec * 1_000_000_000)

        def held(image=image, mask=mask, sec=sec):
            image_pub.publish(image)
            mask_pub.publish(mask)
            return node.core.latest.take(0).stamp_ns == sec * 1_000_000_000 if _has_pair(node) else False

        assert wait_until(held), f"pair {sec} never held"
    response = _call(client, ReconstructObject.Request())
    assert response.success, response.message
    assert pipeline.inputs[-1].stamp_ns == 7_000_000_000 and response.object.header.stamp.sec == 7


def _has_pair(node):
    try:
        node.core.latest.take(0)
        return True
    except ValueError:
        return False


def test_action_feedback_is_ordered_and_cancel_is_answered_within_half_a_second(make_node):
    from rclpy.action import ActionClient

    from one2345_ros.action import ReconstructObject as Action

    _, client, pipeline, gate = make_node()
    action = ActionClient(client, Action, "/reconstruct")
    assert action.wait_for_server(timeout_sec=10)
    goal = Action.Goal()
    goal.object_id = "box"
    _, _, goal.image, goal.mask = _messages()

    feedback = []

    def on_feedback(msg):
        feedback.append((msg.feedback.stage, msg.feedback.progress))

    sent = action.send_goal_async(goal, feedback_callback=on_feedback)
    assert wait_until(sent.done)
    result = sent.result().get_result_async()
    assert wait_until(result.done) and result.result().result.success
    assert wait_until(lambda: len(feedback) >= 4, 2)  # feedback may trail the result by a few ms
    stages = [s for s, _ in feedback if s in FakePipeline.STAGES]  # the worker's own 'started' comes first
    assert stages == sorted(stages, key=FakePipeline.STAGES.index) and stages[-1] == "reconstruct", feedback
    assert len(set(stages)) == len(stages) >= 3, feedback
    progress = [p for _, p in feedback]
    assert progress == sorted(progress) and all(0.0 <= p <= 1.0 for p in progress), feedback

    gate.clear()  # the next goal holds the worker in its first stage
    pipeline.started.clear()
    sent = action.send_goal_async(goal)
    assert wait_until(sent.done)
    handle = sent.result()
    assert handle.accepted and pipeline.started.wait(10)
    t0 = time.monotonic()
    cancel = handle.cancel_goal_async()
    assert wait_until(cancel.done, 5)
    answered = time.monotonic() - t0
    result = handle.get_result_async()
    assert wait_until(result.done, 5)
    finished = time.monotonic() - t0
    print(f"\ncancel answered after {answered * 1000:.0f} ms, result after {finished * 1000:.0f} ms")
    assert cancel.result().return_code == 0 and len(cancel.result().goals_canceling) == 1
    assert answered < 0.5 and finished < 0.5, (answered, finished)
    assert not result.result().result.success and "cancelled" in result.result().result.message


def test_bad_messages_are_answered_with_a_reason_and_the_node_keeps_serving(make_node):
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    from one2345_ros.ros.images import image_message

    node, client, pipeline, _ = make_node()
    f, header, image, mask = _messages()
    wrong_encoding = _request()
    wrong_encoding.image.encoding = "rgb16"
    size_mismatch = _request()
    size_mismatch.mask = Image(header=header, height=10, width=10, encoding="mono8", step=10, data=bytes(100))
    empty_mask = _request()
    empty_mask.mask = image_message(f, header, np.zeros((48, 64), np.uint8), "mono8")
    nan_depth = _request()
    nan_depth.depth = image_message(f, header, np.full((48, 64), np.nan, np.float32), "32FC1")
    cases = {"wrong encoding": (wrong_encoding, "encoding 'rgb16' not supported"),
             "size mismatch": (size_mismatch, "size 10x10 differs from the image's 64x48"),
             "empty mask": (empty_mask, "mask is empty"),
             "NaN depth": (nan_depth, "depth: only 0 object pixels have a valid reading")}  # fmt: skip
    for what, (request, reason) in cases.items():
        response = _call(client, request)
        assert not response.success and reason in response.message, (what, response.message)
    assert pipeline.inputs == []  # none reached the pipeline
    # The same faults on the topics are dropped with their reason; the node keeps the good pair.
    image_pub = client.create_publisher(Image, "/image", qos_profile_sensor_data)
    mask_pub = client.create_publisher(Image, "/mask", qos_profile_sensor_data)
    bad = [request for request, _ in cases.values() if request.depth.width == 0]  # depth is not subscribed

    def dropped():
        for request in bad:
            image_pub.publish(request.image)
            mask_pub.publish(request.mask)
        return node.core.dropped_inputs >= 3

    assert wait_until(dropped), node.core.dropped_inputs
    assert not _has_pair(node)

    def good_pair_held():
        image_pub.publish(image)
        mask_pub.publish(mask)
        return _has_pair(node)

    assert wait_until(good_pair_held)
    response = _call(client, _request("after"))
    assert response.success, response.message


def test_gravity_elevation_from_a_real_tf_broadcast(make_node):
    from tf2_ros import StaticTransformBroadcaster

    from one2345_ros.elevation.gravity import gravity_elevation
    from one2345_ros.geometry import cameras
    from one2345_ros.ros.client import matrix_to_transform
    from one2345_ros.ros.factory import RclpyFactory
    from one2345_ros.ros.messages import make_header

    _, client, pipeline, _ = make_node(**{"ros.gravity_frame": "base_link", "ros.tf_timeout_s": 2.0})
    elevation = 30.0
    eye = np.array([0.3, -1.0, np.tan(np.radians(elevation)) * np.hypot(0.3, 1.0) + 0.5])
    c2w = cameras.look_at(eye, np.array([0.0, 0.0, 0.5]))  # the optical axis meets the object's centre
    f = RclpyFactory()
    StaticTransformBroadcaster(client).sendTransform(matrix_to_transform(f, make_header(f, 0, "base_link"),
                                                                         "cam_optical", c2w))  # fmt: skip
    response = _call(client, _request("tall", camera_info=True))
    assert response.success, response.message
    got = pipeline.inputs[-1].gravity_c2w
    assert got is not None, pipeline.inputs[-1].warnings
    np.testing.assert_allclose(got, c2w, atol=1e-9)
    estimate = gravity_elevation(got, K, pipeline.inputs[-1].mask)
    assert estimate.elevation_deg == pytest.approx(elevation, abs=0.5)


def test_views_oracle_posed_by_tf_activates_and_answers_with_the_reason(make_node):
    """The defect: views: oracle with oracle.mesh_frame passed validation but never activated."""
    from one2345_ros.synthetic.assets import object_path

    node, client, _, _ = make_node(pipeline_factory=_real_pipeline, **{
        "views": "oracle", "backend": "hull", "oracle.mesh": str(object_path("mallet")),
        "oracle.mesh_frame": "one2345_test_world", "ros.tf_timeout_s": 0.1})  # fmt: skip
    assert node.activated
    response = _call(client, _request("mallet"))
    assert not response.success
    assert "no transform one2345_test_world <- cam_optical" in response.message, response.message


def _real_pipeline(cfg):
    from one2345_ros.ros.node import default_pipeline_factory

    return default_pipeline_factory(cfg)


def test_ros2_service_call_from_the_command_line(make_node):
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    ros2 = shutil.which("ros2")
    assert ros2, "ros2 (ros2cli) is not installed"
    node, client, pipeline, _ = make_node()
    image_pub = client.create_publisher(Image, "/image", qos_profile_sensor_data)
    mask_pub = client.create_publisher(Image, "/mask", qos_profile_sensor_data)
    _, _, image, mask = _messages(3_000_000_000)

    def held():
        image_pub.publish(image)
        mask_pub.publish(mask)
        return _has_pair(node)

    assert wait_until(held)
    proc = subprocess.run([ros2, "service", "call", "/reconstruct_object", "one2345_ros/srv/ReconstructObject",
                           "{object_id: from_cli}"], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "success=True" in proc.stdout and "from_cli" in proc.stdout, proc.stdout[-2000:]
    assert pipeline.inputs[-1].object_id == "from_cli"
