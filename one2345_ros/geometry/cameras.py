"""Camera conventions of one2345_ros, in one place.

Every other module gets its camera maths from here. The conventions (DESIGN.md):

* Camera frame: OpenCV (x right, y down, z forward). Matrices are named by
  direction: ``c2w`` maps camera coordinates to world, ``w2c`` the inverse, ``K``
  the 3x3 intrinsics. OpenGL/Blender/glTF conventions appear only at the edges,
  through :func:`opencv_to_opengl` / :func:`opengl_to_opencv`.
* Pixel (u, v) = (0, 0) is the centre of the top-left pixel.
* Zero123 world: z up, object centre at the origin, camera radius 1.2. The polar
  angle theta is measured from +z; elevation = 90 - theta. Degrees at every
  interface, radians only inside formulas. Camera centre
  ``C = r (sin az sin theta, -cos az sin theta, cos theta)``.
* Canonical frame (our output when no camera calibration is given): the Zero123
  world with the input view at azimuth 0, so the input camera lies in the y-z plane
  at negative y. One-2-3-45 puts the input at azimuth 30 deg
  (:data:`ONE2345_INPUT_AZIMUTH_DEG`); only relative poses reach the networks.
* Zero123 relative views: +delta polar moves the camera down, +delta azimuth orbits
  the camera to its right.

All functions are pure and batched over leading dimensions (``...``). They take
and return numpy arrays in float64.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

ZERO123_RADIUS = 1.2
"""Camera distance from the object centre in the Zero123 world."""

ONE2345_INPUT_AZIMUTH_DEG = 30.0
"""Absolute azimuth One-2-3-45 assigns to the input view (utils/utils.py)."""

VIEW_SIZE = 256
"""Side of the square images Zero123 consumes and produces."""

FOCAL_256 = 280.0
"""Focal length in pixels of One-2-3-45's 256x256 views (35 mm lens, 32 mm sensor)."""

PRINCIPAL_POINT_256 = 128.0
"""One-2-3-45's principal point, half a pixel off the geometric centre (127.5);
kept for fidelity with the network's training data."""

ONE2345_NEAR_FAR = (0.5, 1.8)
"""Depth range of the object seen from the One-2-3-45 cameras (pose.json)."""

_GL_FROM_CV = np.diag([1.0, -1.0, -1.0, 1.0])


# --------------------------------------------------------------------------- angles


def polar_from_elevation(elevation_deg):
    """Zero123 polar angle (deg from +z) of a camera at ``elevation_deg``."""
    return 90.0 - np.asarray(elevation_deg, dtype=np.float64)


def elevation_from_polar(polar_deg):
    """Elevation (deg above the horizontal plane) of a camera at ``polar_deg``."""
    return 90.0 - np.asarray(polar_deg, dtype=np.float64)


def wrap_degrees(angle_deg):
    """Wrap angles to [-180, 180)."""
    a = np.asarray(angle_deg, dtype=np.float64)
    return (a + 180.0) % 360.0 - 180.0


# ----------------------------------------------------------------- rigid transforms


def make_transform(R, t):
    """Stack rotations ``R`` (..., 3, 3) and translations ``t`` (..., 3) into (..., 4, 4)."""
    R = np.asarray(R, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)
    batch = np.broadcast_shapes(R.shape[:-2], t.shape[:-1])
    T = np.zeros(batch + (4, 4))
    T[..., :3, :3] = R
    T[..., :3, 3] = t
    T[..., 3, 3] = 1.0
    return T


def invert_rigid(T):
    """Inverse of rigid transforms (..., 4, 4): ``w2c = invert_rigid(c2w)``."""
    T = np.asarray(T, dtype=np.float64)
    R = T[..., :3, :3]
    t = T[..., :3, 3]
    R_inv = np.swapaxes(R, -1, -2)
    return make_transform(R_inv, -np.einsum("...ij,...j->...i", R_inv, t))


def rotation_z(angle_deg):
    """Rotation matrices (..., 3, 3) about +z by ``angle_deg`` (right-handed)."""
    a = np.deg2rad(np.asarray(angle_deg, dtype=np.float64))
    c, s = np.cos(a), np.sin(a)
    R = np.zeros(a.shape + (3, 3))
    R[..., 0, 0], R[..., 0, 1] = c, -s
    R[..., 1, 0], R[..., 1, 1] = s, c
    R[..., 2, 2] = 1.0
    return R


def transform_points(T, points):
    """Apply (..., 4, 4) transforms to points (..., N, 3)."""
    T = np.asarray(T, dtype=np.float64)
    points = np.asarray(points, dtype=np.float64)
    return np.einsum("...ij,...nj->...ni", T[..., :3, :3], points) + T[..., None, :3, 3]


def opencv_to_opengl(c2w):
    """OpenCV c2w (x right, y down, z forward) -> OpenGL c2w (x right, y up, z back).

    Same operation in both directions (right-multiplication by diag(1, -1, -1, 1)).
    """
    return np.asarray(c2w, dtype=np.float64) @ _GL_FROM_CV


opengl_to_opencv = opencv_to_opengl


def z_up_to_y_up():
    """4x4 proper rotation taking z-up coordinates to glTF's y-up: (x, y, z) -> (x, z, -y).

    The original One-2-3-45 export uses (x, z, y) with flipped winding, a mirror
    image; we keep det = +1.
    """
    T = np.eye(4)
    T[:3, :3] = [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]]
    return T


# ----------------------------------------------------------------------- intrinsics


def intrinsics(fx, fy, cx, cy):
    """3x3 pinhole K."""
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=np.float64)


def view_intrinsics(size: int = VIEW_SIZE):
    """K of One-2-3-45's square views, scaled from the 256x256 one to ``size``.

    Scaling keeps the field of view; the principal point scales with the image
    (pixel-centre convention: c' + 0.5 = (c + 0.5) * s).
    """
    s = size / VIEW_SIZE
    f = FOCAL_256 * s
    c = (PRINCIPAL_POINT_256 + 0.5) * s - 0.5
    return intrinsics(f, f, c, c)


def scale_intrinsics(K, sx: float, sy: float | None = None):
    """K of an image resized by (sx, sy), with pixel centres at integer coordinates."""
    sy = sx if sy is None else sy
    K = np.array(K, dtype=np.float64)
    out = K.copy()
    out[..., 0, 0] = K[..., 0, 0] * sx
    out[..., 0, 1] = K[..., 0, 1] * sx
    out[..., 0, 2] = (K[..., 0, 2] + 0.5) * sx - 0.5
    out[..., 1, 1] = K[..., 1, 1] * sy
    out[..., 1, 2] = (K[..., 1, 2] + 0.5) * sy - 0.5
    return out


def fov_deg(K, size: int) -> float:
    """Horizontal field of view in degrees of an image ``size`` pixels wide."""
    return float(np.rad2deg(2.0 * np.arctan(size / (2.0 * K[0, 0]))))


# ------------------------------------------------------------ projection and rays


def project(points_w, K, w2c):
    """World points (..., N, 3) -> pixels (..., N, 2) and depths z (..., N).

    u = fx * X / Z + cx, v = fy * Y / Z + cy in the OpenCV camera frame.
    """
    p_cam = transform_points(w2c, points_w)
    z = p_cam[..., 2]
    uvw = np.einsum("...ij,...nj->...ni", np.asarray(K, dtype=np.float64), p_cam)
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = uvw[..., :2] / uvw[..., 2:3]
    return uv, z


def unproject(uv, depth, K, c2w):
    """Pixels (..., N, 2) at z-depths (..., N) -> world points (..., N, 3)."""
    uv = np.asarray(uv, dtype=np.float64)
    depth = np.asarray(depth, dtype=np.float64)
    K_inv = np.linalg.inv(np.asarray(K, dtype=np.float64))
    uv1 = np.concatenate([uv, np.ones(uv.shape[:-1] + (1,))], axis=-1)
    p_cam = np.einsum("...ij,...nj->...ni", K_inv, uv1) * depth[..., None]
    return transform_points(c2w, p_cam)


def camera_rays(K, width: int, height: int) -> np.ndarray:
    """Points at z = 1 in the camera frame through every pixel centre, row-major (H * W, 3), read-only.

    Exactly what :func:`unproject` computes at depth 1 before the rigid transform. They depend
    only on ``K`` and the image size, so they are cached: a renderer casts the same camera many times.
    """
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3):
        raise ValueError(f"K must be 3x3, got shape {K.shape}")
    return _camera_rays(K.tobytes(), int(width), int(height))


@functools.lru_cache(maxsize=24)  # at most ~6 MB each (MAX_RAYS_PER_CHUNK rays in render.py)
def _camera_rays(K_bytes: bytes, width: int, height: int) -> np.ndarray:
    K = np.frombuffer(K_bytes, dtype=np.float64).reshape(3, 3)
    u, v = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    uv = np.stack([u, v], axis=-1).reshape(-1, 2)
    uv1 = np.concatenate([uv, np.ones((len(uv), 1))], axis=-1)
    # unproject's operations, depth 1 (the product is exact)
    rays = np.einsum("...ij,...nj->...ni", np.linalg.inv(K), uv1) * np.ones(len(uv))[:, None]
    rays.setflags(write=False)
    return rays


def pixel_rays(K, c2w, width: int, height: int):
    """Rays through every pixel centre: origins (H, W, 3) and unit directions (H, W, 3)."""
    points = transform_points(c2w, camera_rays(K, width, height))
    c2w = np.asarray(c2w, dtype=np.float64)
    origin = c2w[:3, 3]
    dirs = points - origin
    dirs /= np.linalg.norm(dirs, axis=-1, keepdims=True)
    return np.broadcast_to(origin, dirs.shape).reshape(height, width, 3), dirs.reshape(height, width, 3)


# ----------------------------------------------------------- spherical cameras


def camera_center(polar_deg, azimuth_deg, radius=ZERO123_RADIUS):
    """Camera centres (..., 3) in the Zero123 world: r (sin az sin th, -cos az sin th, cos th)."""
    th = np.deg2rad(np.asarray(polar_deg, dtype=np.float64))
    az = np.deg2rad(np.asarray(azimuth_deg, dtype=np.float64))
    r = np.asarray(radius, dtype=np.float64)
    th, az, r = np.broadcast_arrays(th, az, r)
    return np.stack(
        [r * np.sin(az) * np.sin(th), -r * np.cos(az) * np.sin(th), r * np.cos(th)], axis=-1
    )


def spherical_to_c2w(polar_deg, azimuth_deg, radius=ZERO123_RADIUS):
    """OpenCV c2w (..., 4, 4) of cameras on the Zero123 sphere looking at the origin.

    Same poses as One-2-3-45's ``calc_pose`` (which builds OpenGL columns [right,
    up, back] with right = (cos az, sin az, 0)), converted to OpenCV. Image "up"
    points towards world +z for every polar angle in (0, 180), and the poses stay
    well defined at the poles because "right" depends on the azimuth only.
    """
    az = np.deg2rad(np.asarray(azimuth_deg, dtype=np.float64))
    C = camera_center(polar_deg, azimuth_deg, radius)
    az = np.broadcast_to(az, C.shape[:-1])
    back = C / np.linalg.norm(C, axis=-1, keepdims=True)
    right = np.stack([np.cos(az), np.sin(az), np.zeros_like(az)], axis=-1)
    up = np.cross(back, right)
    R = np.stack([right, -up, -back], axis=-1)  # OpenCV columns: x right, y down, z forward
    return make_transform(R, C)


def c2w_to_spherical(c2w):
    """Polar (deg), azimuth (deg, in [-180, 180)) and radius of camera centres of ``c2w``."""
    C = np.asarray(c2w, dtype=np.float64)[..., :3, 3]
    r = np.linalg.norm(C, axis=-1)
    polar = np.rad2deg(np.arccos(np.clip(C[..., 2] / r, -1.0, 1.0)))
    azimuth = np.rad2deg(np.arctan2(C[..., 0], -C[..., 1]))
    return polar, wrap_degrees(azimuth), r


def look_at(eye, target, up=(0.0, 0.0, 1.0)):
    """OpenCV c2w (..., 4, 4) of a camera at ``eye`` looking at ``target``, image up ~ ``up``."""
    eye = np.asarray(eye, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    up = np.broadcast_to(np.asarray(up, dtype=np.float64), eye.shape)
    forward = target - eye
    forward = forward / np.linalg.norm(forward, axis=-1, keepdims=True)
    right = np.cross(forward, up)
    norm = np.linalg.norm(right, axis=-1, keepdims=True)
    if np.any(norm < 1e-9):
        raise ValueError("look_at: viewing direction is parallel to the up vector")
    right = right / norm
    down = np.cross(forward, right)
    return make_transform(np.stack([right, down, forward], axis=-1), eye)


def elevation_of_camera(c2w, object_center, up=(0.0, 0.0, 1.0)):
    """Elevation (deg) of the camera seen from ``object_center``: the angle between
    the horizontal plane (normal ``up``) and the ray from the object centre to the
    camera centre. This is the elevation truth of DESIGN.md."""
    C = np.asarray(c2w, dtype=np.float64)[..., :3, 3]
    ray = C - np.asarray(object_center, dtype=np.float64)
    up = np.asarray(up, dtype=np.float64)
    up = up / np.linalg.norm(up)
    s = np.einsum("...i,i->...", ray, up) / np.linalg.norm(ray, axis=-1)
    return np.rad2deg(np.arcsin(np.clip(s, -1.0, 1.0)))


def relative_to_reference(c2w, c2w_ref):
    """Re-express cameras (..., 4, 4) in the camera frame of ``c2w_ref`` (OpenCV)."""
    return invert_rigid(c2w_ref) @ np.asarray(c2w, dtype=np.float64)


# ------------------------------------------------------------- Zero123 views


def zero123_embedding(d_polar_deg, d_azimuth_deg, d_radius=0.0, cond_polar_deg=None):
    """Zero123 camera embedding T (..., 4).

    ``[d_polar (rad), sin d_az, cos d_az, d_radius]``. Stable Zero123 replaces the
    fourth slot with the conditioning view's absolute polar angle in radians: pass
    ``cond_polar_deg`` to get that variant.
    """
    dp = np.deg2rad(np.asarray(d_polar_deg, dtype=np.float64))
    da = np.deg2rad(np.asarray(d_azimuth_deg, dtype=np.float64))
    if cond_polar_deg is None:
        last = np.asarray(d_radius, dtype=np.float64)
    else:
        last = np.deg2rad(np.asarray(cond_polar_deg, dtype=np.float64))
    dp, da, last = np.broadcast_arrays(dp, da, last)
    return np.stack([dp, np.sin(da), np.cos(da), last], axis=-1)


# ------------------------------------------------------------ One-2-3-45 plan

ELEVATION_VIEW_OFFSETS: tuple[tuple[float, float], ...] = ((-10.0, 0.0), (10.0, 0.0), (0.0, -10.0), (0.0, 10.0))
"""(d_polar, d_azimuth) of the four nearby views used for elevation estimation and
as stage-2 neighbours, always in this order."""

STAGE1_OFFSETS: tuple[tuple[float, float], ...] = (
    (0.0, 0.0), (0.0, 90.0), (0.0, 180.0), (0.0, 270.0),
    (30.0, 30.0), (30.0, 120.0), (30.0, 210.0), (30.0, 300.0),
    (-30.0, 30.0), (-30.0, 120.0), (-30.0, 210.0), (-30.0, 300.0),
)  # fmt: skip
"""(d_polar, d_azimuth) of One-2-3-45's twelve stage-1 candidates from the input view."""

SECOND_RING_POLAR_THRESHOLD_DEG = 75.0
"""Stage-1 views 4-7 (below the input) are used when the input polar is <= this,
views 8-11 (above) otherwise (run.py)."""


def stage1_indices(input_polar_deg: float) -> list[int]:
    """The eight stage-1 views One-2-3-45 generates for an input at ``input_polar_deg``."""
    second = [4, 5, 6, 7] if input_polar_deg <= SECOND_RING_POLAR_THRESHOLD_DEG else [8, 9, 10, 11]
    return [0, 1, 2, 3] + second


@dataclass(frozen=True)
class PlannedView:
    """One view of the One-2-3-45 plan.

    ``name`` is the original's file stem ("0", "4", "0_2", ...). ``parent`` is the
    stage-1 view a stage-2 view is generated from (None for stage 1, which is
    generated from the input). Angles are relative to the input view (d_*) and
    absolute in the Zero123 world (polar/azimuth) for the input azimuth used.
    """

    name: str
    stage: int
    parent: str | None
    d_polar_deg: float
    d_azimuth_deg: float
    polar_deg: float
    azimuth_deg: float

    def c2w(self, radius: float = ZERO123_RADIUS):
        """OpenCV c2w of this view in the Zero123 world."""
        return spherical_to_c2w(self.polar_deg, self.azimuth_deg, radius)


def one2345_plan(input_polar_deg: float, input_azimuth_deg: float = 0.0) -> list[PlannedView]:
    """The 40 views of One-2-3-45's plan in the order of its pose.json.

    Eight stage-1 views (0-3 and the ring chosen by the input polar), then four
    stage-2 neighbours per stage-1 view in :data:`ELEVATION_VIEW_OFFSETS` order.
    ``input_azimuth_deg`` = 30 reproduces the original's absolute poses; the
    canonical frame uses 0.
    """
    views: list[PlannedView] = []
    for i in stage1_indices(input_polar_deg):
        dp, da = STAGE1_OFFSETS[i]
        views.append(
            PlannedView(str(i), 1, None, dp, da, input_polar_deg + dp, float(wrap_degrees(input_azimuth_deg + da)))
        )
    for parent in list(views):
        for j, (dp, da) in enumerate(ELEVATION_VIEW_OFFSETS):
            views.append(
                PlannedView(
                    f"{parent.name}_{j}",
                    2,
                    parent.name,
                    parent.d_polar_deg + dp,
                    parent.d_azimuth_deg + da,
                    parent.polar_deg + dp,
                    float(wrap_degrees(parent.azimuth_deg + da)),
                )
            )
    return views


def stage2_views(plan: list[PlannedView]) -> list[PlannedView]:
    """The 32 reconstruction sources of a plan."""
    return [v for v in plan if v.stage == 2]


def gravity_elevation_deg(c2w_gravity, K, uv, up=(0.0, 0.0, 1.0)) -> float:
    """Camera elevation from its pose in a gravity-aligned frame (z up by default).

    The object lies somewhere on the ray through its pixel centre ``uv``; the
    elevation is the angle between the horizontal plane and the reversed ray (from
    the object to the camera), which does not depend on the object's distance.
    Equals the elevation truth when ``uv`` is the projection of the object's 3-D
    centre.
    """
    c2w_gravity = np.asarray(c2w_gravity, dtype=np.float64)
    d_cam = np.linalg.inv(np.asarray(K, dtype=np.float64)) @ np.array([uv[0], uv[1], 1.0])
    d_world = c2w_gravity[:3, :3] @ d_cam
    up = np.asarray(up, dtype=np.float64)
    s = -(d_world @ up) / (np.linalg.norm(d_world) * np.linalg.norm(up))
    return float(np.rad2deg(np.arcsin(np.clip(s, -1.0, 1.0))))
