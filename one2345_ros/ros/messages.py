"""ROS messages from a reconstruction: Mesh, Marker, PointCloud2, Image, ReconstructedObject.

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
# sensor_msgs/PointField datatype for float32.
POINTFIELD_FLOAT32 = 7
CLOUD_POINT_STEP = 16  # x, y, z, rgb as four float32


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


def object_position(vertices: np.ndarray) -> np.ndarray:
    """The object frame's origin: the bounding-box centre (DESIGN.md's object centre)."""
    vertices = np.asarray(vertices, dtype=np.float64)
    if len(vertices) == 0:
        return np.zeros(3)
    return (vertices.min(axis=0) + vertices.max(axis=0)) / 2.0


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
        "visualization_msgs/msg/Marker", header=header, ns=ns, id=int(marker_id), type=11, action=0,  # TRIANGLE_LIST, ADD
        pose=make_pose(f), scale=f.make("geometry_msgs/msg/Vector3", x=1.0, y=1.0, z=1.0),
        color=f.make(COLOR, r=0.8, g=0.8, b=0.8, a=1.0), frame_locked=False, points=points, colors=point_colors,
    )


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


def build_pose_in_frame(f: MessageFactory, vertices: np.ndarray):
    return make_pose(f, object_position(vertices))


def build_reconstructed_object(f: MessageFactory, header, object_id: str, result: Any, mesh_msg, vertex_colors,
                               mesh_uri: str = ""):  # fmt: skip
    """one2345_ros/msg/ReconstructedObject from a ReconstructionResult and its built mesh."""
    names = list(result.timings.keys())
    seconds = np.asarray([float(result.timings[n]) for n in names], dtype=np.float32)
    vertices = np.asarray(result.mesh.vertices) if result.mesh is not None else np.zeros((0, 3))
    elevation = result.elevation_deg if result.elevation_deg is not None else float("nan")
    return f.make(
        "one2345_ros/msg/ReconstructedObject", header=header, object_id=object_id, mesh=mesh_msg,
        vertex_colors=vertex_colors, elevation_deg=float(elevation), elevation_source=str(result.elevation_source),
        confidence=float(result.confidence), frame=str(result.frame), units=str(result.units),
        scale_source=str(result.scale_source), pose=build_pose_in_frame(f, vertices), mesh_uri=mesh_uri,
        stage_names=names, stage_seconds=f.seq(seconds),
    )


def build_collision_object(f: MessageFactory, header, object_id: str, mesh_msg):
    """moveit_msgs/CollisionObject (operation ADD) holding the mesh in header.frame_id."""
    return f.make("moveit_msgs/msg/CollisionObject", header=header, pose=make_pose(f), id=object_id,
                  meshes=[mesh_msg], mesh_poses=[make_pose(f)], operation=0)  # fmt: skip


def build_transform(f: MessageFactory, header, child_frame_id: str, position: np.ndarray):
    """geometry_msgs/TransformStamped placing ``child_frame_id`` at ``position`` (axes of the parent)."""
    x, y, z = (float(v) for v in position)
    return f.make(
        "geometry_msgs/msg/TransformStamped", header=header, child_frame_id=child_frame_id,
        transform=f.make("geometry_msgs/msg/Transform", translation=f.make("geometry_msgs/msg/Vector3", x=x, y=y, z=z),
                         rotation=f.make("geometry_msgs/msg/Quaternion", x=0.0, y=0.0, z=0.0, w=1.0)),
    )  # fmt: skip
