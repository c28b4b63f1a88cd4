"""Message builders on rosbags types: Mesh, Marker, PointCloud2, Image, ReconstructedObject, CollisionObject."""

import numpy as np
import pytest
from ros_helpers import colored_sphere, known_result, typestore_with_moveit

from one2345_ros.config import RosConfig
from one2345_ros.mesh.clean import decimate
from one2345_ros.ros import messages as m
from one2345_ros.ros.factory import RosbagsFactory
from one2345_ros.ros.interfaces import make_typestore
from one2345_ros.ros.publications import build_publications


@pytest.fixture(scope="module", params=["humble", "jazzy"])
def ts(request):
    return typestore_with_moveit(request.param)


def _round_trip(ts, msg):
    raw = ts.serialize_cdr(msg, msg.__msgtype__)
    return ts.deserialize_cdr(raw, msg.__msgtype__), len(raw)


def test_mesh_message_round_trip(ts):
    f = RosbagsFactory(ts)
    mesh = colored_sphere()
    back, _ = _round_trip(ts, m.build_mesh(f, mesh.vertices, mesh.faces))
    np.testing.assert_array_equal([t.vertex_indices for t in back.triangles], mesh.faces)
    np.testing.assert_array_equal([(p.x, p.y, p.z) for p in back.vertices], mesh.vertices)


def test_triangle_marker_repeats_vertices_and_colours_per_face(ts):
    f = RosbagsFactory(ts)
    mesh = colored_sphere()
    v, faces, colors = m.mesh_arrays(mesh)
    marker = m.build_triangle_marker(f, m.make_header(f, 5, "cam"), v, faces, colors, marker_id=3)
    back, _ = _round_trip(ts, marker)
    assert (back.type, back.action, back.id, back.ns) == (back.TRIANGLE_LIST, back.ADD, 3, "one2345")
    assert (back.scale.x, back.scale.y, back.scale.z, back.pose.orientation.w) == (1.0, 1.0, 1.0, 1.0)
    np.testing.assert_array_equal([(p.x, p.y, p.z) for p in back.points], v[faces].reshape(-1, 3))
    expected = (colors[faces].reshape(-1, 4) / 255.0).astype(np.float32)
    np.testing.assert_array_equal(np.array([(c.r, c.g, c.b, c.a) for c in back.colors], np.float32), expected)


def test_marker_decimated_to_the_face_budget_but_object_mesh_kept(ts):
    f = RosbagsFactory(ts)
    result = known_result()
    result.mesh = colored_sphere(subdivisions=5)  # 20480 faces
    pubs = build_publications(f, result, "", RosConfig(marker_face_budget=2000))
    marker = pubs["marker"]
    n_faces = len(marker.points) // 3
    assert 1800 <= n_faces <= 2000
    assert len(marker.colors) == len(marker.points)
    radius = np.linalg.norm([(p.x, p.y, p.z) for p in marker.points], axis=1)
    assert np.all(np.abs(radius - 0.1) < 0.005)  # still on the sphere
    assert len(pubs["object"].mesh.triangles) == 20480  # the object keeps full resolution


def test_decimate_keeps_colours_and_surface():
    mesh = colored_sphere(subdivisions=5)
    colors = np.tile(np.array([[10, 200, 30, 255]], np.uint8), (len(mesh.vertices), 1))
    mesh.visual.vertex_colors = colors
    small = decimate(mesh, 1000)
    assert 900 <= len(small.faces) <= 1000
    assert np.all(small.visual.vertex_colors == [10, 200, 30, 255])
    assert np.all(np.abs(np.linalg.norm(small.vertices, axis=1) - 0.1) < 0.005)
    assert decimate(mesh, len(mesh.faces)) is mesh  # within budget: untouched


def test_point_cloud_decodes_to_the_vertices_and_colours(ts):
    f = RosbagsFactory(ts)
    mesh = colored_sphere()
    v, _, colors = m.mesh_arrays(mesh)
    back, _ = _round_trip(ts, m.build_point_cloud(f, m.make_header(f, 0, "cam"), v, colors))
    assert (back.height, back.width, back.point_step, back.row_step) == (1, len(v), 16, 16 * len(v))
    assert [(fl.name, fl.offset, fl.datatype, fl.count) for fl in back.fields] == [
        ("x", 0, 7, 1), ("y", 4, 7, 1), ("z", 8, 7, 1), ("rgb", 12, 7, 1)]  # fmt: skip
    rows = np.frombuffer(back.data.tobytes(), dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("rgb", "<u4")])
    np.testing.assert_array_equal(np.column_stack([rows["x"], rows["y"], rows["z"]]), v.astype(np.float32))
    rgb = np.column_stack([(rows["rgb"] >> 16) & 255, (rows["rgb"] >> 8) & 255, rows["rgb"] & 255])
    np.testing.assert_array_equal(rgb, colors[:, :3])


def test_publications_match_the_result(ts):
    f = RosbagsFactory(ts)
    result = known_result("cam_optical", "mug", 7_000_000_123)
    node = RosConfig(publish_collision_object=True)
    pubs = build_publications(f, result, "file:///tmp/mug.glb", node)
    assert set(pubs) == {"object", "marker", "elevation", "points", "views", "transform", "collision_object"}
    obj, _ = _round_trip(ts, pubs["object"])
    assert (obj.header.stamp.sec, obj.header.stamp.nanosec, obj.header.frame_id) == (7, 123, "cam_optical")
    assert (obj.object_id, obj.mesh_uri, obj.units, obj.scale_source, obj.frame) == (
        "mug", "file:///tmp/mug.glb", "m", "depth", "camera_optical")  # fmt: skip
    assert obj.elevation_deg == 23.5 and obj.elevation_source == "image" and obj.confidence == pytest.approx(0.9)
    assert obj.stage_names == ["preprocess", "views_stage1", "elevation", "reconstruct"]
    np.testing.assert_allclose(obj.stage_seconds, [0.01, 1.5, 0.25, 2.0], rtol=1e-6)
    assert len(obj.vertex_colors) == len(result.mesh.vertices) == len(obj.mesh.vertices)
    centre = (result.mesh.vertices.min(0) + result.mesh.vertices.max(0)) / 2
    np.testing.assert_allclose([obj.pose.position.x, obj.pose.position.y, obj.pose.position.z], centre)
    tf = pubs["transform"]
    assert (tf.header.frame_id, tf.child_frame_id, tf.transform.rotation.w) == ("cam_optical", "one2345/mug", 1.0)
    assert pubs["elevation"].data == 23.5
    views, _ = _round_trip(ts, pubs["views"])
    from one2345_ros.results.contact_sheet import contact_sheet

    sheet = contact_sheet(result)  # the same picture as the CLI's views.png
    assert (views.encoding, views.height, views.width) == ("rgb8", sheet.shape[0], sheet.shape[1])
    np.testing.assert_array_equal(np.frombuffer(bytes(views.data), np.uint8).reshape(sheet.shape), sheet)
    co, _ = _round_trip(ts, pubs["collision_object"])
    assert (co.id, co.operation, len(co.meshes), co.mesh_poses[0].orientation.w) == ("mug", 0, 1, 1.0)


def test_publication_options():
    f = RosbagsFactory(make_typestore("humble"))
    result = known_result("one2345_canonical", "obj")
    result.units, result.elevation_deg = "canonical", None
    node = RosConfig(marker_type="mesh_resource", publish_points=False, publish_views=False, publish_tf=False,
                     publish_collision_object=True)  # fmt: skip
    pubs = build_publications(f, result, "file:///x/obj_1.glb", node)
    # canonical units: no collision object for MoveIt (it needs metres)
    assert set(pubs) == {"object", "marker", "elevation"}
    assert (pubs["marker"].type, pubs["marker"].mesh_resource) == (10, "file:///x/obj_1.glb")
    assert np.isnan(pubs["elevation"].data) and np.isnan(pubs["object"].elevation_deg)


def test_factory_fills_defaults_and_rejects_unknown_fields():
    f = RosbagsFactory(make_typestore("humble"))
    info = f.make("sensor_msgs/msg/CameraInfo")
    assert info.k.shape == (9,) and info.d.shape == (0,) and info.roi.do_rectify is False
    with pytest.raises(TypeError, match="no field"):
        f.make("std_msgs/msg/Float32", value=1.0)
