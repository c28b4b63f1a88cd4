"""Everything the node publishes for one request, built in one place (ROS-free).

The node publishes these messages; the ``bag`` command writes the same ones, so a
recorded run and a live run can be compared message by message. A request gives one
object (a mask) or several (a label image); :func:`build_request_publications` covers both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..config import RosConfig
from ..mesh.clean import decimate
from ..results.contact_sheet import contact_sheet
from ..results.planner import labelled_samples
from . import images, messages
from .factory import MessageFactory

TF_PREFIX = "one2345/"
PER_OBJECT = ("object", "marker", "elevation", "points", "views", "transform", "collision_object")
"""Keys of :func:`build_publications`: one message per object."""
PER_REQUEST = ("surface_points", "object_markers", "object_boxes")
"""Topics of :func:`build_request_publications`: one message for all the request's objects."""


def object_frame(object_id: str) -> str:
    return TF_PREFIX + object_id


@dataclass
class ObjectOutcome:
    """One object of a request: its result (None when refused) and mesh URI, or why it failed."""

    object_id: str
    label: int = 0
    result: Any = None
    mesh_uri: str = ""
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.result is not None and bool(self.result.ok)

    @property
    def reason(self) -> str:
        if self.ok:
            return ""
        if self.result is not None:
            return f"reconstruction failed: {self.result.error}"
        return self.error or "not reconstructed"


def build_publications(f: MessageFactory, result: Any, mesh_uri: str, node: RosConfig, label: int = 0) -> dict:
    """Messages for one successful object, keyed by topic role.

    Keys: ``object`` (ReconstructedObject), ``marker`` (id = ``label``), ``elevation`` (Float32), and
    when enabled ``points`` (PointCloud2 of the mesh vertices), ``views`` (Image), ``transform``
    (TransformStamped for /tf_static: the object frame, child of the camera frame),
    ``collision_object`` (moveit_msgs; only for results in metres). Header: the input image's
    stamp, the result's frame.
    """
    header = messages.make_header(f, result.stamp_ns, result.frame_id)
    vertices, faces, colors = messages.mesh_arrays(result.mesh)
    mesh_msg = messages.build_mesh(f, vertices, faces)
    out = {
        "object": messages.build_reconstructed_object(f, header, result.object_id, result, mesh_msg,
                                                      messages.build_vertex_colors(f, colors), mesh_uri, label),
        "elevation": messages.build_float32(f, np.nan if result.elevation_deg is None else result.elevation_deg),
    }  # fmt: skip
    if node.marker_type == "mesh_resource" and mesh_uri:
        out["marker"] = messages.build_mesh_resource_marker(f, header, mesh_uri, marker_id=label)
    else:
        shown = decimate(result.mesh, node.marker_face_budget)  # RViz redraws every face on every update
        out["marker"] = messages.build_triangle_marker(f, header, *messages.mesh_arrays(shown), marker_id=label)
    if node.publish_points:
        out["points"] = messages.build_point_cloud(f, header, vertices, colors)
    if node.publish_views:
        out["views"] = images.image_message(f, header, contact_sheet(result), "rgb8")
    if node.publish_tf:
        out["transform"] = messages.build_transform(f, header, object_frame(result.object_id), result.object_pose)
    if node.publish_collision_object and result.units == "m":
        out["collision_object"] = messages.build_collision_object(f, header, result.object_id, mesh_msg)
    return out


def build_request_publications(f: MessageFactory, objects: list[ObjectOutcome], node: RosConfig, stamp_ns: int,
                               frame_id: str, surface_points: int | None = None) -> dict:  # fmt: skip
    """Messages for a whole request (one object or a label image's objects).

    Keys: ``per_object`` (a :func:`build_publications` dict per reconstructed object, in label
    order), ``objects`` (a ReconstructedObject for every object, failed ones with success false
    and the reason: the response's ``objects``), and, with at least one object reconstructed,
    ``surface_points`` (one PointCloud2 of every completed surface, sampled uniformly by area,
    with normals, colours and the label; ``surface_points`` points, default ``node.surface_points``,
    shared by area; 0: none), ``object_markers`` (MarkerArray: DELETEALL, then every object's
    ``marker``: all meshes in one latched message) and ``object_boxes``
    (MarkerArray: oriented boxes and principal axes). Header: ``stamp_ns`` and the results' frame
    (``frame_id`` without results).
    """
    per_object, reported, meshes, boxes = [], [], [], []
    for item in objects:
        if item.ok:
            pubs = build_publications(f, item.result, item.mesh_uri, node, item.label)
            per_object.append(pubs)
            reported.append(pubs["object"])
            meshes.append((item.label, item.result.mesh))
            boxes.append((item.label, item.result.object_pose, item.result.object_extents))
            frame_id = item.result.frame_id
        else:
            header = messages.make_header(f, stamp_ns, frame_id)
            reported.append(messages.build_failed_object(f, header, item.object_id, item.reason, item.label))
    out: dict = {"per_object": per_object, "objects": reported}
    surface_points = node.surface_points if surface_points is None else surface_points
    if meshes:
        header = messages.make_header(f, stamp_ns, frame_id)
        if surface_points > 0:
            out["surface_points"] = messages.build_surface_cloud(f, header, *labelled_samples(meshes, surface_points))
        out["object_markers"] = f.make("visualization_msgs/msg/MarkerArray", markers=[
            messages.build_delete_all(f, header), *(pubs["marker"] for pubs in per_object)])  # fmt: skip
        out["object_boxes"] = messages.build_box_markers(f, header, boxes)
    return out
