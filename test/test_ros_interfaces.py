"""msg/srv/action parse with the official rosidl parser; our types register in rosbags and CDR round-trip."""

from pathlib import Path

import numpy as np
import pytest
from ros_helpers import REPO, get_rosidl, image_msg

from one2345_ros.ros.factory import RosbagsFactory
from one2345_ros.ros.interfaces import make_typestore
from one2345_ros.ros.messages import build_mesh, make_header, make_pose

OBJECT_FIELDS = [
    ("std_msgs/Header", "header"), ("string", "object_id"), ("uint32", "label"), ("bool", "success"),
    ("string", "message"), ("shape_msgs/Mesh", "mesh"),
    ("std_msgs/ColorRGBA[]", "vertex_colors"), ("float32", "elevation_deg"), ("string", "elevation_source"),
    ("float32", "confidence"), ("string", "frame"), ("string", "units"), ("string", "scale_source"),
    ("geometry_msgs/Pose", "pose"), ("geometry_msgs/Vector3", "dimensions"), ("string", "mesh_uri"),
    ("string[]", "stage_names"),
    ("float32[]", "stage_seconds"),
]  # fmt: skip
REQUEST_FIELDS = [("string", "object_id"), ("sensor_msgs/Image", "image"), ("sensor_msgs/Image", "mask"),
                  ("sensor_msgs/Image", "labels"), ("uint32[]", "label_ids"), ("sensor_msgs/Image", "depth"),
                  ("sensor_msgs/CameraInfo", "camera_info")]  # fmt: skip
RESPONSE_FIELDS = [("bool", "success"), ("string", "message"), ("one2345_ros/ReconstructedObject", "object"),
                   ("one2345_ros/ReconstructedObject[]", "objects")]  # fmt: skip


def _fields(spec):
    return [(str(f.type), f.name) for f in spec.fields]


def test_rosidl_parses_message_service_and_action():
    parser = get_rosidl()
    msg = parser.parse_message_file("one2345_ros", str(REPO / "msg" / "ReconstructedObject.msg"))
    assert _fields(msg) == OBJECT_FIELDS
    srv = parser.parse_service_file("one2345_ros", str(REPO / "srv" / "ReconstructObject.srv"))
    assert _fields(srv.request) == REQUEST_FIELDS
    assert _fields(srv.response) == RESPONSE_FIELDS
    action = parser.parse_action_file("one2345_ros", str(REPO / "action" / "ReconstructObject.action"))
    assert _fields(action.goal) == REQUEST_FIELDS
    assert _fields(action.result) == RESPONSE_FIELDS
    assert _fields(action.feedback) == [("string", "stage"), ("float32", "progress")]


def test_rosidl_idl_conversion_parses(tmp_path):
    """The .idl that rosidl_generate_interfaces makes from our files parses with rosidl_parser."""
    get_rosidl()
    from rosidl_adapter.action import convert_action_to_idl
    from rosidl_adapter.msg import convert_msg_to_idl
    from rosidl_adapter.srv import convert_srv_to_idl
    from rosidl_parser.definition import Action, IdlLocator, Message, Service
    from rosidl_parser.parser import parse_idl_file

    kinds = {"msg": Message, "srv": Service, "action": Action}

    for convert, rel in ((convert_msg_to_idl, "msg/ReconstructedObject.msg"),
                         (convert_srv_to_idl, "srv/ReconstructObject.srv"),
                         (convert_action_to_idl, "action/ReconstructObject.action")):  # fmt: skip
        idl = convert(REPO, "one2345_ros", Path(rel), tmp_path / rel.split("/")[0])
        elements = parse_idl_file(IdlLocator(idl.parent, idl.name)).content.get_elements_of_type(
            kinds[rel.split("/")[0]]
        )
        assert len(elements) == 1, rel
        if rel.startswith("msg"):
            assert [m.name for m in elements[0].structure.members] == [name for _, name in OBJECT_FIELDS]
        elif rel.startswith("srv"):
            assert [m.name for m in elements[0].response_message.structure.members] == [n for _, n in RESPONSE_FIELDS]
        else:
            assert [m.name for m in elements[0].feedback.structure.members] == ["stage", "progress"]


def test_rosidl_rejects_a_broken_definition(tmp_path):
    """The parser is strict, so the passing tests above mean something."""
    parser = get_rosidl()
    bad = tmp_path / "Bad.msg"
    bad.write_text("float32 Elevation-Deg\n")
    with pytest.raises(NameError):  # rosidl_adapter: "'Elevation-Deg' is an invalid field name"
        parser.parse_message_file("one2345_ros", str(bad))


@pytest.mark.parametrize("distro", ["humble", "jazzy"])
def test_reconstructed_object_cdr_round_trip(distro):
    ts = make_typestore(distro)
    f = RosbagsFactory(ts)
    mesh = build_mesh(f, np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0.5]]), np.array([[0, 1, 2]]))
    msg = f.make("one2345_ros/msg/ReconstructedObject", header=make_header(f, 12_500_000_001, "cam"), object_id="mug",
                 mesh=mesh, elevation_deg=23.5, elevation_source="image", confidence=0.75, frame="camera_optical",
                 units="m", scale_source="depth", pose=make_pose(f, (0.1, 0.2, 0.3)), mesh_uri="file:///tmp/m.glb",
                 stage_names=["preprocess", "elevation"], stage_seconds=np.array([0.5, 1.25], np.float32))  # fmt: skip
    raw = ts.serialize_cdr(msg, "one2345_ros/msg/ReconstructedObject")
    back = ts.deserialize_cdr(raw, "one2345_ros/msg/ReconstructedObject")
    assert (back.header.stamp.sec, back.header.stamp.nanosec, back.header.frame_id) == (12, 500_000_001, "cam")
    assert [tuple(t.vertex_indices) for t in back.mesh.triangles] == [(0, 1, 2)]
    assert [(p.x, p.y, p.z) for p in back.mesh.vertices] == [(0, 0, 0), (1, 0, 0), (0, 1, 0.5)]
    assert (back.elevation_deg, back.confidence, back.units, back.scale_source) == (23.5, 0.75, "m", "depth")
    assert back.pose.orientation.w == 1.0 and back.pose.position.y == 0.2
    assert back.stage_names == ["preprocess", "elevation"]
    np.testing.assert_array_equal(back.stage_seconds, [0.5, 1.25])


def test_service_and_action_parts_round_trip():
    ts = make_typestore("humble")
    f = RosbagsFactory(ts)
    image = image_msg(np.zeros((4, 6, 3), np.uint8), "rgb8")
    request = f.make("one2345_ros/srv/ReconstructObject_Request", object_id="box", image=image)
    back = ts.deserialize_cdr(ts.serialize_cdr(request, request.__msgtype__), request.__msgtype__)
    assert back.object_id == "box" and (back.image.width, back.image.height) == (6, 4) and back.mask.width == 0
    feedback = f.make("one2345_ros/action/ReconstructObject_Feedback", stage="elevation", progress=0.5)
    back = ts.deserialize_cdr(ts.serialize_cdr(feedback, feedback.__msgtype__), feedback.__msgtype__)
    assert (back.stage, back.progress) == ("elevation", 0.5)
    result = f.make("one2345_ros/action/ReconstructObject_Result", success=False, message="busy")
    back = ts.deserialize_cdr(ts.serialize_cdr(result, result.__msgtype__), result.__msgtype__)
    assert (back.success, back.message, back.object.object_id) == (False, "busy", "")
