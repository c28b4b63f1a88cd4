"""Several objects per request in the ROS layer, without ROS: label images in, one ReconstructedObject,
TF frame, marker and collision object per object out, one labelled surface cloud and the boxes
(messages built on rosbags types for Humble and Jazzy and CDR round-tripped)."""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from ros_helpers import FakePipeline, image_msg, labels_scene, placed_result, scene, typestore_with_moveit
from scipy.spatial.transform import Rotation

from one2345_ros.config import Config, InputConfig, RosConfig
from one2345_ros.ros import messages as m
from one2345_ros.ros.factory import RosbagsFactory
from one2345_ros.ros.images import BadMessage
from one2345_ros.ros.inputs import InputMessages, LatestPair, check_messages, objects_from_messages
from one2345_ros.ros.publications import ObjectOutcome, build_request_publications
from one2345_ros.ros.reconstructor import Reconstructor, Request
from one2345_ros.types import InputError

SEC = 1_000_000_000
IDS = ["object_3", "object_7", "object_12"]


@pytest.fixture(scope="module", params=["humble", "jazzy"])
def ts(request):
    return typestore_with_moveit(request.param)


def _round_trip(ts, msg):
    return ts.deserialize_cdr(ts.serialize_cdr(msg, msg.__msgtype__), msg.__msgtype__)


# ---------------------------------------------------------------- inputs
@pytest.mark.parametrize("encoding", ["16UC1", "32SC1", "mono8"])
def test_label_image_gives_one_object_per_id(encoding):
    _, labels, img, lab = labels_scene(encoding=encoding)
    objects = objects_from_messages(InputMessages(img, None, labels=lab), InputConfig(min_mask_pixels=10))
    assert [i.object_id for i in objects.prepared] == IDS and objects.refused == {}
    assert objects.labels == {"object_3": 3, "object_7": 7, "object_12": 12}
    for inputs, label in zip(objects.prepared, (3, 7, 12), strict=True):
        np.testing.assert_array_equal(inputs.mask, labels == label)
        assert inputs.stamp_ns == SEC and inputs.frame_id == "cam_optical"


def test_label_ids_object_id_prefix_and_refusals_by_name():
    _, labels, img, lab = labels_scene()
    labels[30:31, 0:3] = 5  # a 3-pixel object: refused by name
    lab = image_msg(labels, "16UC1")
    objects = objects_from_messages(InputMessages(img, None, labels=lab), InputConfig(min_mask_pixels=10), "bin")
    assert [i.object_id for i in objects.prepared] == ["bin_3", "bin_7", "bin_12"]
    assert list(objects.refused) == ["bin_5"] and "fewer than inputs.min_mask_pixels" in objects.refused["bin_5"]
    picked = objects_from_messages(InputMessages(img, None, labels=lab), InputConfig(min_mask_pixels=10), "", None,
                                   [12])  # fmt: skip
    assert [i.object_id for i in picked.prepared] == ["object_12"]


def test_label_messages_are_checked():
    _, _, img, _ = labels_scene()
    with pytest.raises(BadMessage, match="labels: encoding '32FC1' not supported"):
        check_messages(InputMessages(img, None, labels=image_msg(np.zeros((48, 64), np.float32), "32FC1")))
    with pytest.raises(BadMessage, match="labels: size 10x10 differs"):
        check_messages(InputMessages(img, None, labels=image_msg(np.ones((10, 10), np.uint16), "16UC1")))
    with pytest.raises(BadMessage, match="0 labelled pixels"):
        LatestPair(InputConfig(min_mask_pixels=10)).offer(
            InputMessages(img, None, labels=image_msg(np.zeros((48, 64), np.uint16), "16UC1")))
    with pytest.raises(InputError, match="only background"):
        objects_from_messages(InputMessages(img, None, labels=image_msg(np.zeros((48, 64), np.uint16), "16UC1")),
                              InputConfig())  # fmt: skip


# ---------------------------------------------------------------- messages
def _items(fail=()):
    _, _, img, lab = labels_scene()
    objects = objects_from_messages(InputMessages(img, None, labels=lab), InputConfig(min_mask_pixels=10))
    items = []
    for k, inputs in enumerate(objects.prepared):
        label = objects.labels[inputs.object_id]
        if inputs.object_id in fail:
            items.append(ObjectOutcome(inputs.object_id, label, error="mask is empty: no object pixels"))
        else:
            items.append(ObjectOutcome(inputs.object_id, label, placed_result(inputs, k), f"file:///r/{inputs.object_id}.ply"))
    return items


def test_request_publications_for_three_objects(ts):
    f = RosbagsFactory(ts)
    items = _items()
    pubs = build_request_publications(f, items, RosConfig(publish_collision_object=True), SEC, "cam_optical", 3000)
    assert len(pubs["per_object"]) == 3
    assert set(pubs) == {"per_object", "objects", "surface_points", "object_markers", "object_boxes"}
    all_meshes = _round_trip(ts, pubs["object_markers"])
    assert [mk.action for mk in all_meshes.markers] == [m.MARKER_DELETEALL, 0, 0, 0]
    assert [(mk.id, mk.type, len(mk.points)) for mk in all_meshes.markers[1:]] == [
        (p["marker"].id, 11, len(p["marker"].points)) for p in pubs["per_object"]]  # fmt: skip
    for item, per_object, reported in zip(items, pubs["per_object"], pubs["objects"], strict=True):
        result = item.result
        obj = _round_trip(ts, reported)
        assert (obj.object_id, obj.label, obj.success, obj.message) == (item.object_id, item.label, True, "")
        # pose + dimensions: the result's object frame (oriented box), metres
        pose = np.eye(4)
        q = obj.pose.orientation
        pose[:3, :3] = Rotation.from_quat([q.x, q.y, q.z, q.w]).as_matrix()
        pose[:3, 3] = [obj.pose.position.x, obj.pose.position.y, obj.pose.position.z]
        np.testing.assert_allclose(pose, result.object_pose, atol=1e-9)
        np.testing.assert_allclose([obj.dimensions.x, obj.dimensions.y, obj.dimensions.z], result.object_extents)
        assert obj.dimensions.x >= obj.dimensions.y >= obj.dimensions.z > 0
        # TF: a child of the camera frame at the same pose
        tf = per_object["transform"]
        assert (tf.header.frame_id, tf.child_frame_id) == ("cam_optical", f"one2345/{item.object_id}")
        t, r = tf.transform.translation, tf.transform.rotation
        np.testing.assert_allclose([t.x, t.y, t.z, r.x, r.y, r.z, r.w], [obj.pose.position.x, obj.pose.position.y,
                                   obj.pose.position.z, q.x, q.y, q.z, q.w])  # fmt: skip
        co = _round_trip(ts, per_object["collision_object"])
        assert (co.id, co.operation, co.header.frame_id, len(co.meshes)) == (item.object_id, 0, "cam_optical", 1)
        assert per_object["marker"].id == item.label
    # one cloud: every surface sampled uniformly, with normals and the label
    cloud = _round_trip(ts, pubs["surface_points"])
    names = [fl.name for fl in cloud.fields]
    assert names == ["x", "y", "z", "normal_x", "normal_y", "normal_z", "rgb", "label"]
    assert [fl.offset for fl in cloud.fields] == list(range(0, 32, 4)) and cloud.fields[-1].datatype == 6
    assert (cloud.point_step, cloud.height, cloud.header.frame_id) == (32, 1, "cam_optical")
    rows = np.frombuffer(cloud.data.tobytes(), dtype=[(n, "<u4" if n == "label" else "<f4") for n in names])
    assert abs(len(rows) - 3000) <= 3
    for item in items:
        mesh = item.result.mesh
        mine = rows[rows["label"] == item.label]
        share = mesh.area / sum(i.result.mesh.area for i in items)
        assert abs(len(mine) - 3000 * share) <= 2  # shared by area
        points = np.column_stack([mine["x"], mine["y"], mine["z"]]).astype(np.float64)
        normals = np.column_stack([mine["normal_x"], mine["normal_y"], mine["normal_z"]]).astype(np.float64)
        _, distance, _ = mesh.nearest.on_surface(points)
        assert distance.max() < 1e-5  # on this object's surface
        np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-5)
        outward = np.einsum("ij,ij->i", normals, points - mesh.centroid)
        assert (outward > 0).all()
    # boxes and principal axes, DELETEALL first
    boxes = _round_trip(ts, pubs["object_boxes"])
    assert boxes.markers[0].action == m.MARKER_DELETEALL
    cubes = [mk for mk in boxes.markers if mk.ns == m.BOX_NS]
    arrows = [mk for mk in boxes.markers if mk.ns == m.AXES_NS]
    assert [c.id for c in cubes] == [3, 7, 12] and len(arrows) == 9
    for cube, item in zip(cubes, items, strict=True):
        assert cube.type == m.CUBE
        np.testing.assert_allclose([cube.scale.x, cube.scale.y, cube.scale.z], item.result.object_extents)
    for arrow in arrows:
        label, axis = divmod(arrow.id, 3)
        result = next(i.result for i in items if i.label == label)
        start, tip = ([p.x, p.y, p.z] for p in arrow.points)
        np.testing.assert_allclose(start, result.object_pose[:3, 3])
        half_side = result.object_pose[:3, axis] * result.object_extents[axis] / 2
        np.testing.assert_allclose(np.subtract(tip, start), half_side)


def test_failed_objects_carry_their_reason(ts):
    f = RosbagsFactory(ts)
    items = _items(fail=("object_7",))
    pubs = build_request_publications(f, items, RosConfig(), SEC, "cam_optical", 500)
    assert [p["object"].object_id for p in pubs["per_object"]] == ["object_3", "object_12"]
    failed = _round_trip(ts, pubs["objects"][1])
    assert (failed.object_id, failed.label, failed.success) == ("object_7", 7, False)
    assert failed.message == "mask is empty: no object pixels" and len(failed.mesh.vertices) == 0
    rows = np.frombuffer(bytes(pubs["surface_points"].data), np.uint8).reshape(-1, 32)[:, 28:].copy().view("<u4")
    assert set(np.unique(rows).tolist()) == {3, 12}
    none = build_request_publications(f, _items(fail=tuple(IDS)), RosConfig(), SEC, "cam_optical")
    assert none["per_object"] == [] and set(none) == {"per_object", "objects"}
    assert [o.success for o in none["objects"]] == [False] * 3


def test_single_mask_object_keeps_its_form(ts):
    """A single-mask result: label 0, success, the pose and box of its object frame, one cloud labelled 0."""
    f = RosbagsFactory(ts)
    _, _, img, msk = scene()
    from one2345_ros.ros.inputs import inputs_from_messages

    inputs = inputs_from_messages(InputMessages(img, msk), InputConfig(min_mask_pixels=10), "mug")
    item = ObjectOutcome("mug", 0, placed_result(inputs, 0), "file:///r/mug.ply")
    pubs = build_request_publications(f, [item], RosConfig(surface_points=0), SEC, "cam_optical")
    assert "surface_points" not in pubs and len(pubs["object_boxes"].markers) == 1 + 4
    obj = _round_trip(ts, pubs["objects"][0])
    assert (obj.object_id, obj.label, obj.success, obj.mesh_uri) == ("mug", 0, True, "file:///r/mug.ply")


# ---------------------------------------------------------------- the node's logic
@pytest.fixture
def core(tmp_path):
    settings = Config(inputs=InputConfig(min_mask_pixels=10))
    settings.ros = replace(RosConfig(output_dir=str(tmp_path / "out")))
    pipeline = FakePipeline()
    core = Reconstructor(settings, lambda cfg: pipeline, clock_ns=lambda: 1_500_000_000)
    core.activate()
    yield core, pipeline, tmp_path / "out"
    core.shutdown()


def test_request_with_labels_reconstructs_every_object_together(core):
    core, pipeline, out = core
    _, _, img, lab = labels_scene()
    pipeline.fail_ids = ("tray_7",)
    outcome = core.run(Request("tray", img, None, labels=lab))
    assert outcome.success and outcome.message.startswith("2 of 3 objects: ")
    assert "'tray_7': reconstruction failed: fake failure of tray_7" in outcome.message
    assert [i.object_id for i in pipeline.objects] == ["tray_3", "tray_7", "tray_12"]  # one call, all objects
    assert [(o.object_id, o.label, o.ok) for o in outcome.objects] == [("tray_3", 3, True), ("tray_7", 7, False),
                                                                       ("tray_12", 12, True)]  # fmt: skip
    assert outcome.result.object_id == "tray_3"
    (folder,) = out.iterdir()  # one folder for the request: objects.json, points.ply, one folder per object
    listing = json.loads((folder / "objects.json").read_text())
    assert [(e["object_id"], e["ok"]) for e in listing["objects"]] == [("tray_3", True), ("tray_7", False),
                                                                        ("tray_12", True)]  # fmt: skip
    assert (folder / "points.ply").is_file()
    for item in outcome.objects:
        if item.ok:
            mesh = Path(item.mesh_uri[len("file://") :])
            assert mesh.is_file() and mesh.parent == folder / item.object_id
        else:
            assert item.mesh_uri == "" and not (folder / item.object_id / "mesh.ply").exists()


def test_label_requests_refused_or_failed_as_a_whole(core):
    core, pipeline, _ = core
    _, _, img, lab = labels_scene()
    none = core.run(Request("x", img, None, labels=lab, label_ids=(4, 5)))
    assert none.status == "bad_input" and "no object of the label image can be used" in none.message
    assert "x_4: mask is empty" in none.message
    pipeline.fail_ids = ("x_3", "x_7", "x_12")
    failed = core.run(Request("x", img, None, labels=lab))
    assert failed.status == "failed" and "0 of 3 objects" in failed.message and len(failed.objects) == 3
    pipeline.fail_ids = ()
    picked = core.run(Request("x", img, None, labels=lab, label_ids=(12,)))
    assert picked.success and [o.object_id for o in picked.objects] == ["x_12"]


def test_latest_set_from_a_label_topic(core):
    core, _, _ = core
    _, _, img, lab = labels_scene()
    assert core.on_input(InputMessages(img, None, labels=lab))
    outcome = core.run(Request(""))  # empty image: the latest set
    assert outcome.success and [o.object_id for o in outcome.objects] == IDS


def test_single_mask_request_unchanged(core):
    core, pipeline, _ = core
    _, _, img, msk = scene()
    outcome = core.run(Request("mug", img, msk, labels=image_msg(np.zeros((0, 0), np.uint8), "mono8")))
    assert outcome.success and [(o.object_id, o.label) for o in outcome.objects] == [("mug", 0)]
    assert pipeline.inputs[-1].object_id == "mug" and not hasattr(pipeline, "objects")
