"""The forms grasp planners and pose trackers take, computed from a result's mesh.

* The object frame: origin at the centre of the mesh's oriented bounding box (trimesh's minimum-volume
  box), axes along its sides: x the longest, y the middle, z the shortest side; z has no positive
  component along the result frame's z (in the camera's optical frame: it faces the camera) and x no
  negative one along the frame's x (the image's right), so the frame is the same from run to run. The pose (frame <- object) and the extents are in the
  result's units (metres for metric results).
* The mesh in that frame: the form FoundationPose-style trackers load (a textured mesh in metres in
  the object's own frame) with the pose to place it.
* Surface samples: points spread uniformly over the area with their face normals and colours: the
  form GPD / Contact-GraspNet-style planners take as a PointCloud2.
"""

from __future__ import annotations

import numpy as np
import trimesh

OBJECT_AXES = ("origin: the centre of the oriented bounding box; x along its longest side (towards the frame's +x), "
               "y the middle, z the shortest (towards the frame's -z: facing a camera-frame result's camera)")  # fmt: skip


def object_frame(mesh: trimesh.Trimesh) -> tuple[np.ndarray, np.ndarray]:
    """(pose (4, 4): the mesh's frame <- the object frame, a proper rotation; extents (3,) along x, y, z)."""
    box = mesh.bounding_box_oriented
    T = np.asarray(box.primitive.transform, dtype=np.float64)
    extents = np.asarray(box.primitive.extents, dtype=np.float64)
    order = np.argsort(-extents, kind="stable")
    R = T[:3, :3][:, order]
    if R[2, 2] > 0:  # z towards the camera (optical axis +z points away from it)
        R[:, 2] *= -1.0
    if R[0, 0] < 0:  # x towards the image's right
        R[:, 0] *= -1.0
    R[:, 1] = np.cross(R[:, 2], R[:, 0])  # right-handed: y = z x x
    pose = np.eye(4)
    pose[:3, :3] = R
    pose[:3, 3] = T[:3, 3]
    return pose, extents[order]


def in_object_frame(mesh: trimesh.Trimesh, pose: np.ndarray) -> trimesh.Trimesh:
    """A copy of ``mesh`` expressed in the object frame ``pose`` (the mesh's frame <- object)."""
    out = mesh.copy()
    out.apply_transform(np.linalg.inv(pose))
    return out


def surface_samples(mesh: trimesh.Trimesh, count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``count`` points uniform over the surface area: (points (N, 3), unit normals (N, 3), RGB (N, 3) uint8).

    Normals are the faces' (outward for the pipeline's meshes); colours are the vertex colours
    interpolated at the sample (grey without colours).
    """
    points, faces = trimesh.sample.sample_surface(mesh, int(count), seed=seed)
    normals = np.asarray(mesh.face_normals, dtype=np.float64)[faces]
    rgb = np.full((len(points), 3), 200, np.uint8)
    if getattr(mesh.visual, "kind", None) == "vertex":
        bary = trimesh.triangles.points_to_barycentric(mesh.triangles[faces], points)
        corner = np.asarray(mesh.visual.vertex_colors, dtype=np.float64)[mesh.faces[faces], :3]
        rgb = np.clip(np.rint(np.einsum("nk,nkc->nc", bary, corner)), 0, 255).astype(np.uint8)
    return np.asarray(points, dtype=np.float64), normals, rgb
