"""Vertex colours from posed views (visibility by ray casting, cosine weights)."""

from __future__ import annotations

import numpy as np
import trimesh
from scipy.spatial import cKDTree

from ..geometry import cameras as cam
from ..geometry.sampling import inside_image, sample_bilinear
from ..types import ViewSet


def vertex_colors(mesh: trimesh.Trimesh, views: ViewSet, min_cosine: float = 0.05) -> np.ndarray:
    """RGBA (V, 4) uint8 vertex colours from the views.

    A view votes for a vertex when the vertex projects onto its image, faces the
    camera (cosine between the vertex normal and the direction to the camera above
    ``min_cosine``) and nothing lies between them (embree ray cast from the vertex,
    nudged off the surface, towards the camera). Votes are bilinear image samples
    weighted by that cosine and by the view's mask at the pixel: a hull overshoots
    the object between views, and background pixels must not paint it white.
    Vertices no view sees take the colour of the nearest coloured vertex.
    """
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    normals = np.asarray(mesh.vertex_normals, dtype=np.float64)
    n = len(vertices)
    masks = np.asarray(views.foreground(), dtype=np.float32)
    height, width = masks.shape[1:]
    eps = 1e-3 * float(np.linalg.norm(mesh.extents))
    total = np.zeros((n, 3))
    weight = np.zeros(n)
    w2c = cam.invert_rigid(views.c2w)
    for i in range(len(views.images)):
        centre = views.c2w[i, :3, 3]
        to_cam = centre - vertices
        to_cam /= np.linalg.norm(to_cam, axis=1, keepdims=True)
        cosine = np.einsum("ij,ij->i", normals, to_cam)
        uv, depth = cam.project(vertices, views.K[i], w2c[i])
        candidate = (depth > 0) & inside_image(uv[:, 0], uv[:, 1], width, height) & (cosine > min_cosine)
        idx = np.nonzero(candidate)[0]
        if len(idx) == 0:
            continue
        origins = vertices[idx] + eps * (normals[idx] + to_cam[idx])
        occluded = mesh.ray.intersects_any(origins, to_cam[idx])
        idx = idx[~occluded]
        u, v = uv[idx, 0], uv[idx, 1]
        w = cosine[idx] * sample_bilinear(masks[i], u, v)
        total[idx] += w[:, None] * sample_bilinear(views.images[i], u, v)
        weight[idx] += w
    colored = weight > 1e-6
    rgb = np.full((n, 3), 128.0)
    rgb[colored] = total[colored] / weight[colored, None]
    if colored.any() and not colored.all():
        _, nearest = cKDTree(vertices[colored]).query(vertices[~colored])
        rgb[~colored] = rgb[colored][nearest]
    rgba = np.concatenate([np.clip(np.round(rgb), 0, 255), np.full((n, 1), 255.0)], axis=1)
    return rgba.astype(np.uint8)
