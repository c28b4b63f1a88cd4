"""Analytic test scenes for the hull, mesh and metric tests (no renderer needed).

Ellipsoids are rendered exactly per pixel centre by ray-quadric intersection, so
masks and colours are ground truth, not a rasteriser's approximation.
"""

from __future__ import annotations

import numpy as np
import trimesh

from one2345_ros.geometry import cameras as cam
from one2345_ros.types import ViewSet


def stage2_cameras(input_polar_deg: float = 60.0, input_azimuth_deg: float = 0.0, size: int = 256):
    """K (N, 3, 3), OpenCV c2w (N, 4, 4) and names of the plan's 32 stage-2 views."""
    views = cam.stage2_views(cam.one2345_plan(input_polar_deg, input_azimuth_deg))
    c2w = np.stack([v.c2w() for v in views])
    K = np.broadcast_to(cam.view_intrinsics(size), (len(views), 3, 3)).copy()
    return K, c2w, [v.name for v in views]


def render_ellipsoid(K, c2w, size, center=(0.0, 0.0, 0.0), radii=(0.3, 0.3, 0.3), rotation=None, color_fn=None):
    """Exact images (N, H, W, 3) uint8 on white and masks (N, H, W) of an ellipsoid.

    ``rotation`` (3, 3) orients the ellipsoid's axes; ``color_fn(points (M, 3)) -> (M, 3)``
    colours the first hit points (default mid grey).
    """
    center = np.asarray(center, dtype=np.float64)
    A = (np.eye(3) if rotation is None else np.asarray(rotation)) @ np.diag(radii)
    A_inv = np.linalg.inv(A)
    images, masks = [], []
    for Ki, c2wi in zip(K, c2w):
        origins, dirs = cam.pixel_rays(Ki, c2wi, size, size)
        o = (origins.reshape(-1, 3) - center) @ A_inv.T
        d = dirs.reshape(-1, 3) @ A_inv.T
        a = np.einsum("ij,ij->i", d, d)
        b = 2.0 * np.einsum("ij,ij->i", o, d)
        c = np.einsum("ij,ij->i", o, o) - 1.0
        disc = b * b - 4 * a * c
        hit = disc >= 0
        t = (-b - np.sqrt(np.where(hit, disc, 0.0))) / (2 * a)
        hit &= t > 0
        image = np.full((size * size, 3), 255, dtype=np.uint8)
        if color_fn is not None and hit.any():
            points = origins.reshape(-1, 3)[hit] + t[hit, None] * dirs.reshape(-1, 3)[hit]
            image[hit] = np.clip(np.round(color_fn(points)), 0, 255).astype(np.uint8)
        else:
            image[hit] = 128
        images.append(image.reshape(size, size, 3))
        masks.append(hit.reshape(size, size))
    return np.stack(images), np.stack(masks)


def ellipsoid_mesh(center=(0.0, 0.0, 0.0), radii=(0.3, 0.3, 0.3), rotation=None, subdivisions=5):
    """Closed triangle mesh of the ellipsoid (an icosphere mapped by the same affine map)."""
    sphere = trimesh.creation.icosphere(subdivisions=subdivisions, radius=1.0)
    A = (np.eye(3) if rotation is None else np.asarray(rotation)) @ np.diag(radii)
    vertices = sphere.vertices @ A.T + np.asarray(center)
    return trimesh.Trimesh(vertices=vertices, faces=sphere.faces, process=False)


def ellipsoid_viewset(input_polar_deg=60.0, input_azimuth_deg=0.0, size=256, use_masks=True, bbox=None, **scene):
    """A ViewSet of the 32 stage-2 views of an ellipsoid scene (see :func:`render_ellipsoid`)."""
    K, c2w, names = stage2_cameras(input_polar_deg, input_azimuth_deg, size)
    images, masks = render_ellipsoid(K, c2w, size, **scene)
    return ViewSet(images=images, K=K, c2w=c2w, names=names, masks=masks if use_masks else None, bbox=bbox)
