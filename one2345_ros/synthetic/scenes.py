"""Synthetic input scenes: a bundled object seen by a realistic camera, with its truth.

A bundled object is rendered by a 640x480 camera (f = 600 px) at a chosen elevation,
the object off the optical axis, like a segmented object on a table.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..geometry import cameras as cam

DEMO_WIDTH, DEMO_HEIGHT = 640, 480
DEMO_K = cam.intrinsics(600.0, 600.0, 319.5, 239.5)
DEMO_ELEVATION_RANGE_DEG = (-10.0, 50.0)

@dataclass
class DemoScene:
    """A rendered input: image, mask, depth and the camera that took them (mesh frame, z up)."""

    image: np.ndarray
    mask: np.ndarray
    depth: np.ndarray
    c2w: np.ndarray
    K: np.ndarray
    elevation_deg: float
    azimuth_deg: float


def scene_camera(mesh, elevation_deg: float, azimuth_deg: float, rng: np.random.Generator) -> np.ndarray:
    """OpenCV c2w of a camera at ``elevation_deg`` / ``azimuth_deg`` that sees ``mesh`` (z up) at about
    45 % of the image height, with the object off the optical axis (drawn from ``rng``)."""
    center = mesh.bounding_box.centroid
    extent = float(np.max(mesh.extents))
    distance = DEMO_K[1, 1] * extent / (0.45 * DEMO_HEIGHT)
    eye = center + cam.camera_center(cam.polar_from_elevation(elevation_deg), azimuth_deg, distance)
    off_axis = rng.uniform(-0.12, 0.12, size=3) * extent
    return cam.look_at(eye, center + off_axis)


def render_scene(mesh, elevation_deg: float, azimuth_deg: float, rng: np.random.Generator) -> DemoScene:
    """Render ``mesh`` (z up) from :func:`scene_camera`."""
    from ..geometry.render import Renderer

    c2w = scene_camera(mesh, elevation_deg, azimuth_deg, rng)
    out = Renderer(mesh).render(DEMO_K, c2w, DEMO_WIDTH, DEMO_HEIGHT, supersample=2)
    return DemoScene(out.rgb, out.mask, out.depth, c2w, DEMO_K, elevation_deg, azimuth_deg)


def scene_draw(seed: int, elevation_deg: float | None = None) -> tuple[float, float, np.random.Generator]:
    """The demo's seeded draw: elevation (uniform in :data:`DEMO_ELEVATION_RANGE_DEG` unless given),
    azimuth, and the generator that then places the object off the axis."""
    rng = np.random.default_rng(seed)
    elevation = float(rng.uniform(*DEMO_ELEVATION_RANGE_DEG)) if elevation_deg is None else float(elevation_deg)
    return elevation, float(rng.uniform(-180.0, 180.0)), rng


def demo_scene(name: str, seed: int = 0, elevation_deg: float | None = None) -> DemoScene:
    """The demo's scene of a bundled object, drawn from ``seed`` (:func:`scene_draw`)."""
    from .assets import load_object

    elevation, azimuth, rng = scene_draw(seed, elevation_deg)
    return render_scene(load_object(name), elevation, azimuth, rng)


@dataclass
class ObjectsScene:
    """Several objects seen by one camera: RGB, a label image (object k has label k + 1, 0 = background),
    depth (metres, 0 = background), the camera (OpenCV c2w in the scene frame, K) and the meshes."""

    image: np.ndarray
    labels: np.ndarray
    depth: np.ndarray
    c2w: np.ndarray
    K: np.ndarray
    meshes: list


def render_objects(meshes, K: np.ndarray, c2w: np.ndarray, width: int, height: int, supersample: int = 2) -> ObjectsScene:
    """Render ``meshes`` (z up, in one scene frame) together: each alone, then composited by depth
    (the nearest surface wins), so objects occlude each other as in a real image."""
    from ..geometry.render import Renderer

    rgb = np.full((height, width, 3), 255, np.uint8)
    labels = np.zeros((height, width), np.uint16)
    depth = np.full((height, width), np.inf)
    for label, mesh in enumerate(meshes, start=1):
        out = Renderer(mesh).render(K, c2w, width, height, supersample=supersample)
        z = np.where(out.mask & (out.depth > 0), out.depth, np.inf)
        nearer = z < depth
        rgb[nearer], labels[nearer], depth[nearer] = out.rgb[nearer], label, z[nearer]
    depth[~np.isfinite(depth)] = 0.0
    return ObjectsScene(rgb, labels, depth.astype(np.float32), np.asarray(c2w, dtype=np.float64), K, list(meshes))
