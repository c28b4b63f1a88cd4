"""ROS messages from a reconstruction: Mesh, Marker(Array), PointCloud2, Image, ReconstructedObject.

Every builder takes a :class:`~one2345_ros.ros.factory.MessageFactory` first, so the node
(rclpy types) and the ``bag`` command and tests (rosbags types) publish identical messages.
Arrays in, messages out; no rclpy import. Element lists are built once per vertex and
indexed per face, so a 50k-face Marker creates ~25k Point objects, not 150k.
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import Any

import numpy as np

from .factory import MessageFactory

POINT = "geometry_msgs/msg/Point"
COLOR = "std_msgs/msg/ColorRGBA"
MARKER_NS = "one2345"
# sensor_msgs/PointField datatypes.
POINTFIELD_UINT32 = 6
POINTFIELD_FLOAT32 = 7
CLOUD_POINT_STEP = 16  # x, y, z, rgb as four float32
# The surface cloud for planners: x y z, normal_x normal_y normal_z (PCL's PointXYZRGBNormal names),
# rgb (packed float32), label (uint32: the object's instance id).
SURFACE_FIELDS = (("x", POINTFIELD_FLOAT32), ("y", POINTFIELD_FLOAT32), ("z", POINTFIELD_FLOAT32),
                  ("normal_x", POINTFIELD_FLOAT32), ("normal_y", POINTFIELD_FLOAT32), ("normal_z", POINTFIELD_FLOAT32),
                  ("rgb", POINTFIELD_FLOAT32), ("label", POINTFIELD_UINT32))  # fmt: skip
SURFACE_POINT_STEP = 4 * len(SURFACE_FIELDS)
BOX_NS, AXES_NS = "one2345/boxes", "one2345/axes"
# visualization_msgs/Marker types and actions.
ARROW, CUBE, MARKER_ADD, MARKER_DELETEALL = 0, 1, 0, 3


@contextmanager
def gc_paused():
    """Pause the cyclic garbage collector while building element lists.

    A 50k-face Marker allocates ~100k small acyclic objects; the collector would scan them
    again and again while they are created (measured: ~35 % of the build time).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def stamp_parts(stamp_ns: int) -> tuple[int, int]:
    """Nanoseconds since the epoch -> (sec, nanosec) of builtin_interfaces/Time."""
    sec, nanosec = divmod(int(stamp_ns), 1_000_000_000)
    return sec, nanosec


def make_header(f: MessageFactory, stamp_ns: int, frame_id: str):
    sec, nanosec = stamp_parts(stamp_ns)
    return f.make("std_msgs/msg/Header", stamp=f.make("builtin_interfaces/msg/Time", sec=sec, nanosec=nanosec),
                  frame_id=frame_id)  # fmt: skip


def make_pose(f: MessageFactory, position=(0.0, 0.0, 0.0), orientation_xyzw=(0.0, 0.0, 0.0, 1.0)):
    # Explicit w: rosbags default-fills 0, while ROS's Quaternion default (and identity) is w=1.
    x, y, z = (float(v) for v in position)
    qx, qy, qz, qw = (float(v) for v in orientation_xyzw)
    return f.make("geometry_msgs/msg/Pose", position=f.make(POINT, x=x, y=y, z=z),
                  orientation=f.make("geometry_msgs/msg/Quaternion", x=qx, y=qy, z=qz, w=qw))  # fmt: skip


def pose_of_matrix(f: MessageFactory, T: np.ndarray):
    """geometry_msgs/Pose of a (4, 4) rigid transform (parent <- child)."""
    from scipy.spatial.transform import Rotation

    T = np.asarray(T, dtype=np.float64)
    return make_pose(f, T[:3, 3], Rotation.from_matrix(T[:3, :3]).as_quat())


def mesh_arrays(mesh) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(vertices (V,3) float64, faces (F,3) int64, RGBA colours (V,4) uint8 or None) of a trimesh."""
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    faces = np.asarray(mesh.faces, dtype=np.int64)
    colors = None
    visual = getattr(mesh, "visual", None)
    if visual is not None and getattr(visual, "kind", None) == "vertex":
        colors = np.asarray(visual.vertex_colors, dtype=np.uint8)
        if colors.shape != (len(vertices), 4):
            colors = None
    return vertices, faces, colors


def _points(f: MessageFactory, xyz: np.ndarray) -> list:
    point = f.ctor(POINT)
    return [point(x=x, y=y, z=z) for x, y, z in np.asarray(xyz, dtype=np.float64).tolist()]


def _colors(f: MessageFactory, rgba_u8: np.ndarray) -> list:
    color = f.ctor(COLOR)
    rgba = (np.asarray(rgba_u8, dtype=np.float32) / np.float32(255.0)).tolist()
    return [color(r=r, g=g, b=b, a=a) for r, g, b, a in rgba]


def build_mesh(f: MessageFactory, vertices: np.ndarray, faces: np.ndarray):
    """shape_msgs/Mesh (indexed triangles) of (V,3) vertices and (F,3) faces."""
    triangle = f.ctor("shape_msgs/msg/MeshTriangle")
    # Rows of a uint32 array are the uint32[3] fixed arrays both backends expect.
    rows = np.ascontiguousarray(faces, dtype=np.uint32)
    with gc_paused():
        return f.make("shape_msgs/msg/Mesh", triangles=[triangle(vertex_indices=r) for r in rows],
                      vertices=_points(f, vertices))  # fmt: skip


def build_vertex_colors(f: MessageFactory, colors: np.ndarray | None) -> list:
    """std_msgs/ColorRGBA per vertex (components 0-1) from (V,4) uint8; [] for None."""
    if colors is None:
        return []
    with gc_paused():
        return _colors(f, colors)


def build_triangle_marker(f: MessageFactory, header, vertices, faces, colors, *, marker_id: int = 0,
                          ns: str = MARKER_NS):  # fmt: skip
    """visualization_msgs/Marker TRIANGLE_LIST with per-vertex colours (decimate the mesh first:
    mesh.clean.decimate). Without colours the marker is drawn in a uniform light grey.
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    flat = faces.reshape(-1).tolist()
    with gc_paused():
        # One object per vertex, referenced once per face corner (map: C-speed indexing).
        points = list(map(_points(f, vertices).__getitem__, flat))
        point_colors = [] if colors is None else list(map(_colors(f, colors).__getitem__, flat))
    return f.make(
        "visualization_msgs/msg/Marker", header=header, ns=ns, id=int(marker_id),
        type=11, action=0,  # TRIANGLE_LIST, ADD
        pose=make_pose(f), scale=f.make("geometry_msgs/msg/Vector3", x=1.0, y=1.0, z=1.0),
        color=f.make(COLOR, r=0.8, g=0.8, b=0.8, a=1.0), frame_locked=False, points=points, colors=point_colors,
    )  # fmt: skip


def build_mesh_resource_marker(f: MessageFactory, header, mesh_uri: str, *, marker_id: int = 0, ns: str = MARKER_NS):
    """visualization_msgs/Marker MESH_RESOURCE pointing at a mesh file (unique URI per result:
    RViz caches resources by URI, ros2/rviz#355)."""
    return f.make(
        "visualization_msgs/msg/Marker", header=header, ns=ns, id=int(marker_id), type=10, action=0,  # MESH_RESOURCE
        pose=make_pose(f), scale=f.make("geometry_msgs/msg/Vector3", x=1.0, y=1.0, z=1.0),
        color=f.make(COLOR, r=0.0, g=0.0, b=0.0, a=0.0), mesh_resource=mesh_uri, mesh_use_embedded_materials=True,
    )


def cloud_fields(f: MessageFactory) -> list:
    """PointField list x, y, z, rgb (float32 each; rgb packed as RViz expects)."""
    field = f.ctor("sensor_msgs/msg/PointField")
    return [field(name=n, offset=4 * i, datatype=POINTFIELD_FLOAT32, count=1) for i, n in enumerate("xyz")] + [
        field(name="rgb", offset=12, datatype=POINTFIELD_FLOAT32, count=1)
    ]


def cloud_records(points: np.ndarray, colors: np.ndarray | None) -> np.ndarray:
    """Structured (N,) array x, y, z, rgb: the row layout of :func:`build_point_cloud`
    (also what ``sensor_msgs_py.point_cloud2.create_cloud`` takes)."""
    points = np.asarray(points, dtype=np.float32)
    rec = np.zeros(len(points), dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("rgb", "<f4")])
    rec["x"], rec["y"], rec["z"] = points[:, 0], points[:, 1], points[:, 2]
    if colors is None:
        colors = np.full((len(points), 3), 255, dtype=np.uint8)
    c = np.asarray(colors, dtype=np.uint32)
    packed = (c[:, 0] << 16) | (c[:, 1] << 8) | c[:, 2]
    rec["rgb"] = packed.astype("<u4").view("<f4")
    return rec


def build_point_cloud(f: MessageFactory, header, points: np.ndarray, colors: np.ndarray | None):
    """sensor_msgs/PointCloud2 (unordered, dense) of coloured points."""
    rec = cloud_records(points, colors)
    return f.make(
        "sensor_msgs/msg/PointCloud2", header=header, height=1, width=len(rec), fields=cloud_fields(f),
        is_bigendian=False, point_step=CLOUD_POINT_STEP, row_step=CLOUD_POINT_STEP * len(rec),
        data=f.seq(rec.view(np.uint8).reshape(-1)), is_dense=True,
    )


def build_float32(f: MessageFactory, value: float):
    return f.make("std_msgs/msg/Float32", data=float(value))


def build_reconstructed_object(f: MessageFactory, header, object_id: str, result: Any, mesh_msg, vertex_colors,
                               mesh_uri: str = "", label: int = 0):  # fmt: skip
    """one2345_ros/msg/ReconstructedObject from a ReconstructionResult and its built mesh.

    ``pose`` and ``dimensions``: the result's object frame (results/planner.py: the oriented
    bounding box) and its sides, in the result's units.
    """
    names = list(result.timings.keys())
    seconds = np.asarray([float(result.timings[n]) for n in names], dtype=np.float32)
    elevation = result.elevation_deg if result.elevation_deg is not None else float("nan")
    ex, ey, ez = (float(v) for v in np.asarray(result.object_extents, dtype=np.float64))
    return f.make(
        "one2345_ros/msg/ReconstructedObject", header=header, object_id=object_id, label=int(label), success=True,
        message="", mesh=mesh_msg, vertex_colors=vertex_colors, elevation_deg=float(elevation),
        elevation_source=str(result.elevation_source), confidence=float(result.confidence), frame=str(result.frame),
        units=str(result.units), scale_source=str(result.scale_source), pose=pose_of_matrix(f, result.object_pose),
        dimensions=f.make("geometry_msgs/msg/Vector3", x=ex, y=ey, z=ez), mesh_uri=mesh_uri, stage_names=names,
        stage_seconds=f.seq(seconds),
    )


def build_failed_object(f: MessageFactory, header, object_id: str, message: str, label: int = 0):
    """A ReconstructedObject for an object that was refused or failed: success false and the reason."""
    return f.make("one2345_ros/msg/ReconstructedObject", header=header, object_id=object_id, label=int(label),
                  success=False, message=message, pose=make_pose(f))  # fmt: skip


def build_collision_object(f: MessageFactory, header, object_id: str, mesh_msg):
    """moveit_msgs/CollisionObject (operation ADD) holding the mesh in header.frame_id."""
    return f.make("moveit_msgs/msg/CollisionObject", header=header, pose=make_pose(f), id=object_id,
                  meshes=[mesh_msg], mesh_poses=[make_pose(f)], operation=0)  # fmt: skip


def build_transform(f: MessageFactory, header, child_frame_id: str, pose: np.ndarray):
    """geometry_msgs/TransformStamped placing ``child_frame_id`` at ``pose`` ((4, 4), parent <- child)
    in ``header.frame_id``."""
    p = pose_of_matrix(f, pose)
    vector = f.make("geometry_msgs/msg/Vector3", x=p.position.x, y=p.position.y, z=p.position.z)
    transform = f.make("geometry_msgs/msg/Transform", translation=vector, rotation=p.orientation)
    return f.make("geometry_msgs/msg/TransformStamped", header=header, child_frame_id=child_frame_id,
                  transform=transform)  # fmt: skip


def build_surface_cloud(f: MessageFactory, header, points, normals, rgb, labels):
    """sensor_msgs/PointCloud2 (unordered, dense) of surface samples: x y z normal_x normal_y normal_z
    rgb label (:data:`SURFACE_FIELDS`), what grasp planners (GPD, Contact-GraspNet...) take."""
    n = len(points)
    dtype = [(name, "<u4" if kind == POINTFIELD_UINT32 else "<f4") for name, kind in SURFACE_FIELDS]
    rec = np.zeros(n, dtype=dtype)
    for i, axis in enumerate("xyz"):
        rec[axis] = np.asarray(points, dtype=np.float32).reshape(n, 3)[:, i]
        rec[f"normal_{axis}"] = np.asarray(normals, dtype=np.float32).reshape(n, 3)[:, i]
    c = np.asarray(rgb, dtype=np.uint32).reshape(n, 3)
    rec["rgb"] = ((c[:, 0] << 16) | (c[:, 1] << 8) | c[:, 2]).astype("<u4").view("<f4")
    rec["label"] = np.asarray(labels, dtype=np.uint32)
    field = f.ctor("sensor_msgs/msg/PointField")
    fields = [field(name=name, offset=4 * i, datatype=kind, count=1) for i, (name, kind) in enumerate(SURFACE_FIELDS)]
    return f.make(
        "sensor_msgs/msg/PointCloud2", header=header, height=1, width=n, fields=fields, is_bigendian=False,
        point_step=SURFACE_POINT_STEP, row_step=SURFACE_POINT_STEP * n, data=f.seq(rec.view(np.uint8).reshape(-1)),
        is_dense=True,
    )


def build_delete_all(f: MessageFactory, header):
    """A Marker DELETEALL: first in a MarkerArray, it clears what the previous request showed."""
    return f.make("visualization_msgs/msg/Marker", header=header, action=MARKER_DELETEALL, pose=make_pose(f))


def build_box_markers(f: MessageFactory, header, boxes: list[tuple[int, np.ndarray, np.ndarray]]):
    """visualization_msgs/MarkerArray: DELETEALL (the previous request's boxes go), then per object
    (label, pose (4, 4), extents (3,)) its oriented bounding box (CUBE, ns ``one2345/boxes``,
    id = label) and principal axes (three ARROWs x red, y green, z blue, ns ``one2345/axes``,
    id = 3 * label + axis), each arrow half the box's side along it."""
    vec, color, point = f.ctor("geometry_msgs/msg/Vector3"), f.ctor(COLOR), f.ctor(POINT)
    markers = [build_delete_all(f, header)]
    for label, pose, extents in boxes:
        pose = np.asarray(pose, dtype=np.float64)
        ex, ey, ez = (max(float(v), 1e-6) for v in extents)
        markers.append(f.make("visualization_msgs/msg/Marker", header=header, ns=BOX_NS, id=int(label), type=CUBE,
                              action=MARKER_ADD, pose=pose_of_matrix(f, pose), scale=vec(x=ex, y=ey, z=ez),
                              color=color(r=0.2, g=0.6, b=1.0, a=0.25)))  # fmt: skip
        centre = pose[:3, 3]
        shaft = 0.05 * min(ex, ey, ez) + 0.01 * max(ex, ey, ez)
        axis_colors = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))
        for k, (length, rgb) in enumerate(zip((ex, ey, ez), axis_colors, strict=True)):
            tip = centre + pose[:3, k] * length / 2.0
            markers.append(f.make(
                "visualization_msgs/msg/Marker", header=header, ns=AXES_NS, id=3 * int(label) + k, type=ARROW,
                action=MARKER_ADD, pose=make_pose(f), scale=vec(x=shaft, y=2.0 * shaft, z=3.0 * shaft),
                color=color(r=rgb[0], g=rgb[1], b=rgb[2], a=1.0),
                points=[point(x=float(a), y=float(b), z=float(c)) for a, b, c in (centre, tip)],
            ))  # fmt: skip
    return f.make("visualization_msgs/msg/MarkerArray", markers=markers)
