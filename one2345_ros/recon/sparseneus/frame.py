"""One-2-3-45's reconstruction frame (reference/one2345.md §2 "Reconstruction frame").

1. Poses are re-expressed in the OpenCV camera frame of the reference view.
2. An axis-aligned box is fitted around the view frusta (pixel corners (0, 0) to
   (W, H), depths near..far) of all sources plus the reference view.
3. c = box centre, r = 1.1 x half its largest side; normalised coordinates are
   x_n = (x - c) / r with rotations unchanged. (The original builds
   scale_mat = [[r I, c], [0, 1]] and decomposes K w2c scale_mat with
   cv2.decomposeProjectionMatrix, which gives the same cameras.)
4. The network projects with K [R | t] of the normalised cameras and samples with
   align_corners=True: u_n = 2u / (W - 1) - 1.
Mesh vertices go back as v r + c, then through the reference c2w to the world.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...geometry import cameras as cam
from ...types import ViewSet

BOX_FACTOR = 1.1
"""Radius = BOX_FACTOR x half the largest side of the frusta's box (factor=1.1 in the original)."""


@dataclass
class ReconstructionFrame:
    """Normalised cameras of the source views.

    center (3,) and radius: the normalisation in the reference camera frame;
    ref_c2w (4, 4): reference camera -> views' world; K (V, 3, 3); c2w / w2c (V, 4, 4)
    normalised, OpenCV; width, height: image size in pixels.
    """

    center: np.ndarray
    radius: float
    ref_c2w: np.ndarray
    K: np.ndarray
    c2w: np.ndarray
    w2c: np.ndarray
    width: int
    height: int

    def projections(self) -> np.ndarray:
        """(V, 3, 4) K [R | t] taking normalised points to pixels (times depth)."""
        return self.K @ self.w2c[:, :3, :]

    def to_world(self, points_n: np.ndarray) -> np.ndarray:
        """Normalised points (P, 3) -> the views' world frame (float64)."""
        local = np.asarray(points_n, dtype=np.float64) * self.radius + self.center
        return cam.transform_points(self.ref_c2w, local)

    def to_normalized(self, points_w: np.ndarray) -> np.ndarray:
        """World points (P, 3) -> normalised frame."""
        local = cam.transform_points(cam.invert_rigid(self.ref_c2w), points_w)
        return (local - self.center) / self.radius


def frustum_corners(K: np.ndarray, c2w: np.ndarray, width: int, height: int, near: float, far: float) -> np.ndarray:
    """(8, 3) corners of a view frustum: pixels (0|W, 0|H) at z = near and far (scene.py)."""
    uv = np.array([[0, 0], [0, height], [width, 0], [width, height]], dtype=np.float64)
    pts = [cam.unproject(uv, np.full(4, d), K, c2w) for d in (near, far)]
    return np.concatenate(pts, axis=0)


def reconstruction_frame(views: ViewSet, near_far: tuple[float, float] | None = None) -> ReconstructionFrame:
    """Normalised cameras of ``views`` in One-2-3-45's reconstruction frame.

    The frusta are those of every view plus the reference view's (One-2-3-45's
    stage1_8/0.png when ``views.reference_c2w`` is set, else views[reference]).
    """
    near, far = near_far or views.near_far or cam.ONE2345_NEAR_FAR
    if not 0 < near < far:
        raise ValueError(f"near_far must satisfy 0 < near < far, got {(near, far)}")
    height, width = views.images.shape[1:3]
    ref_c2w = np.asarray(views.frame_c2w(), dtype=np.float64)
    c2w_rel = cam.relative_to_reference(views.c2w, ref_c2w)
    ref_K = views.K[0] if views.reference_c2w is not None else views.K[views.reference]
    corners = [frustum_corners(ref_K, np.eye(4), width, height, near, far)]
    corners += [frustum_corners(views.K[i], c2w_rel[i], width, height, near, far) for i in range(len(views.K))]
    pts = np.concatenate(corners, axis=0)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    center = (lo + hi) / 2.0
    radius = float((hi - lo).max() / 2.0 * BOX_FACTOR)
    c2w_n = c2w_rel.copy()
    c2w_n[:, :3, 3] = (c2w_rel[:, :3, 3] - center) / radius
    return ReconstructionFrame(
        center=center,
        radius=radius,
        ref_c2w=ref_c2w,
        K=np.asarray(views.K, dtype=np.float64),
        c2w=c2w_n,
        w2c=cam.invert_rigid(c2w_n),
        width=int(width),
        height=int(height),
    )
