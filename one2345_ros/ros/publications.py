"""Everything the node publishes for one result, built in one place (ROS-free).

The node publishes these messages; the ``bag`` command writes the same ones, so a
recorded run and a live run can be compared message by message.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..config import RosConfig
from ..mesh.clean import decimate
from ..results.contact_sheet import contact_sheet
from . import images, messages
from .factory import MessageFactory

TF_PREFIX = "one2345/"


def object_frame(object_id: str) -> str:
    return TF_PREFIX + object_id


def build_publications(f: MessageFactory, result: Any, mesh_uri: str, node: RosConfig) -> dict:
    """Messages for one successful result, keyed by topic role.

    Keys: ``object`` (ReconstructedObject), ``marker``, ``elevation`` (Float32), and when
    enabled ``points`` (PointCloud2), ``views`` (Image), ``transform`` (TransformStamped
    for /tf_static), ``collision_object`` (moveit_msgs; only for results in metres).
    Header: the input image's stamp, the result's frame.
    """
    header = messages.make_header(f, result.stamp_ns, result.frame_id)
    vertices, faces, colors = messages.mesh_arrays(result.mesh)
    mesh_msg = messages.build_mesh(f, vertices, faces)
    out = {
        "object": messages.build_reconstructed_object(f, header, result.object_id, result, mesh_msg,
                                                      messages.build_vertex_colors(f, colors), mesh_uri),
        "elevation": messages.build_float32(f, np.nan if result.elevation_deg is None else result.elevation_deg),
    }  # fmt: skip
    if node.marker_type == "mesh_resource" and mesh_uri:
        out["marker"] = messages.build_mesh_resource_marker(f, header, mesh_uri)
    else:
        shown = decimate(result.mesh, node.marker_face_budget)  # RViz redraws every face on every update
        out["marker"] = messages.build_triangle_marker(f, header, *messages.mesh_arrays(shown))
    if node.publish_points:
        out["points"] = messages.build_point_cloud(f, header, vertices, colors)
    if node.publish_views:
        out["views"] = images.image_message(f, header, contact_sheet(result), "rgb8")
    if node.publish_tf:
        out["transform"] = messages.build_transform(f, header, object_frame(result.object_id),
                                                    messages.object_position(vertices))  # fmt: skip
    if node.publish_collision_object and result.units == "m":
        out["collision_object"] = messages.build_collision_object(f, header, result.object_id, mesh_msg)
    return out
