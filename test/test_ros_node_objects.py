"""Several objects over DDS (marker `ros`): the real node, a fake pipeline, a label image with three
objects -> three ReconstructedObjects, three TF frames under the camera frame, three collision objects
(or, without moveit_msgs, the reason logged once), one labelled surface cloud and the boxes."""


import numpy as np
import pytest
from ros_helpers import labels_scene, wait_until

pytestmark = pytest.mark.ros

IDS = ["tray_3", "tray_7", "tray_12"]



@pytest.fixture
def ros(start_node, request):
    params = {"ros.publish_collision_object": True, "ros.surface_points": 3000, **getattr(request, "param", {})}
    rig = start_node(params=params)
    return rig.node, rig.client, rig.pipeline


def _latched():
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


def _images():
    from one2345_ros.ros.factory import RclpyFactory
    from one2345_ros.ros.images import image_message
    from one2345_ros.ros.messages import make_header

    f = RclpyFactory()
    rgb, labels, _, _ = labels_scene()
    header = make_header(f, 1_000_000_000, "cam_optical")
    return image_message(f, header, rgb, "rgb8"), image_message(f, header, labels, "16UC1")


def _moveit_available() -> bool:
    try:
        import moveit_msgs.msg  # noqa: F401
    except ImportError:
        return False
    return True


def test_label_image_gives_three_objects_frames_collision_objects_and_one_cloud(ros):
    from sensor_msgs.msg import PointCloud2
    from tf2_msgs.msg import TFMessage
    from visualization_msgs.msg import MarkerArray

    from one2345_ros.srv import ReconstructObject

    node, client, pipeline = ros
    collisions = []
    if _moveit_available():
        from moveit_msgs.msg import CollisionObject

        client.create_subscription(CollisionObject, "/collision_object", collisions.append, _latched())
    else:  # moveit_msgs is not on PyPI: the node ran without it and said why, once, at configure
        assert "moveit_msgs" in node.disabled and "collision_object" not in node._pubs
    clouds, frames, boxes = [], [], []
    client.create_subscription(PointCloud2, "/one2345_reconstructor/surface_points", clouds.append, _latched())
    client.create_subscription(TFMessage, "/tf_static", frames.append, _latched())
    client.create_subscription(MarkerArray, "/one2345_reconstructor/object_boxes", boxes.append, _latched())
    meshes = []
    client.create_subscription(MarkerArray, "/one2345_reconstructor/object_markers", meshes.append, _latched())

    request = ReconstructObject.Request()
    request.object_id = "tray"
    request.image, request.labels = _images()
    cli = client.create_client(ReconstructObject, "/reconstruct_object")
    assert cli.wait_for_service(timeout_sec=10)
    future = cli.call_async(request)
    assert wait_until(future.done)
    response = future.result()
    assert response.success, response.message
    assert [(o.object_id, o.label, o.success) for o in response.objects] == [(i, int(i[5:]), True) for i in IDS]
    assert response.object.object_id == "tray_3"  # the single-object field: the first one
    for obj in response.objects:
        assert obj.header.frame_id == "cam_optical" and obj.units == "m" and obj.mesh_uri.startswith("file://")
        assert obj.dimensions.x >= obj.dimensions.y >= obj.dimensions.z > 0
    assert [i.object_id for i in pipeline.objects] == IDS  # one call, the objects together

    # three TF frames, children of the camera frame, at the objects' poses
    def children():
        return {t.child_frame_id: t for msg in frames for t in msg.transforms}

    assert wait_until(lambda: set(children()) >= {f"one2345/{i}" for i in IDS})
    for obj in response.objects:
        tf = children()[f"one2345/{obj.object_id}"]
        assert tf.header.frame_id == "cam_optical"
        assert tf.transform.translation.x == pytest.approx(obj.pose.position.x)
        assert tf.transform.rotation.w == pytest.approx(obj.pose.orientation.w)
    # one labelled cloud of the three surfaces
    assert wait_until(lambda: clouds)
    assert len(clouds) == 1
    from sensor_msgs_py import point_cloud2

    names = [f.name for f in clouds[0].fields]
    assert names == ["x", "y", "z", "normal_x", "normal_y", "normal_z", "rgb", "label"]
    points = point_cloud2.read_points(clouds[0], field_names=("x", "label"))
    assert sorted(np.unique(points["label"]).tolist()) == [3, 7, 12] and abs(len(points) - 3000) <= 3
    assert wait_until(lambda: boxes and meshes)
    assert sorted(mk.id for mk in boxes[-1].markers if mk.ns == "one2345/boxes") == [3, 7, 12]
    assert [mk.id for mk in meshes[-1].markers[1:]] == [3, 7, 12]  # every mesh in one latched message
    if _moveit_available():
        assert wait_until(lambda: len(collisions) == 3)
        assert [c.id for c in collisions] == IDS


@pytest.mark.parametrize("ros", [{"ros.use_labels": True, "ros.publish_collision_object": False}], indirect=True)
def test_label_topic_and_action_with_a_failed_object(ros):
    """`labels` topic instead of `mask`; the action's result lists every object, the failed one with its reason."""
    from rclpy.action import ActionClient
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    from one2345_ros.action import ReconstructObject

    node, client, pipeline = ros
    pipeline.fail_ids = ("object_7",)
    image_pub = client.create_publisher(Image, "/image", qos_profile_sensor_data)
    labels_pub = client.create_publisher(Image, "/labels", qos_profile_sensor_data)
    image, labels = _images()

    def received():
        image_pub.publish(image)
        labels_pub.publish(labels)
        return node.core.latest._msgs is not None

    assert wait_until(received, 10)
    action = ActionClient(client, ReconstructObject, "/reconstruct")
    assert action.wait_for_server(timeout_sec=10)
    goal = action.send_goal_async(ReconstructObject.Goal())
    assert wait_until(goal.done)
    result = goal.result().get_result_async()
    assert wait_until(result.done)
    res = result.result().result
    assert res.success, res.message
    assert [(o.object_id, o.success) for o in res.objects] == [("object_3", True), ("object_7", False),
                                                               ("object_12", True)]  # fmt: skip
    assert "fake failure of object_7" in res.objects[1].message
