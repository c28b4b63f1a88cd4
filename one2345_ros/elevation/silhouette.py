"""Silhouette epipolar tangency: a texture-free cue to the elevation.

For two views a and b, every plane through both camera centres (an epipolar plane)
that touches the object is tangent to it at a frontier point, a real surface point
on both silhouettes' contours. So the extremal epipolar planes that still meet
view a's silhouette are the same two planes as view b's (Wong & Cipolla,
"Structure and motion from silhouettes", ICCV 2001). With the four views' poses
fixed by a candidate polar angle, the planes of the two views disagree unless the
candidate is right. This needs no texture at all: it is what remains on a smooth,
plainly coloured object.

Residuals: for every pair, the angular disagreement of the two extremal planes,
signed, in pixels (angle x focal length: the baseline is nearly perpendicular to
the viewing direction, so a plane rotated by d_theta moves its line by about
f d_theta pixels): 12 numbers. A uniform growth or shrinkage of one view's
silhouette (blur, a different foreground threshold, erosion or dilation; Zero123's
soft edges) moves that view's two ends apart by the same amount, so the residuals
are projected onto the complement of those four per-view offsets: 9 numbers that
no such offset changes, while a wrong polar still does (measured on oracle views:
a 2 px dilation of one view moves the two-end minimum by up to 15 deg, the
projected one by under 1 deg). A view whose silhouette touches the image border
is left out (its pairs go, and the projection is the one of the pairs left).

How much it carries: one degree of polar moves these residuals by only ~0.1-0.2 px,
so clean silhouettes pin the elevation to about a degree (benchmark, low-texture
clean views: median 0.5 deg), while per-view pose errors of +-2 deg or a pixel of
shape inconsistency between generated views move it by several degrees; and a body
of revolution seen along its axis (a mug from above) has silhouettes that hardly
change with azimuth.

Contours are the subpixel iso-line of the foreground test's darkness (255 minus
the darkest channel, at the white threshold), so they follow the same boundary as
:func:`types.foreground_from_white` with subpixel precision on antialiased edges.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from ..types import WHITE_BACKGROUND_THRESHOLD

PAIRS = ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3))
MIN_CONTOUR_POINTS = 8


def silhouette_contours(views: np.ndarray, K: np.ndarray) -> list[np.ndarray] | None:
    """Convex-hull vertices of every view's silhouette contour in normalised coordinates
    K^-1 (u, v, 1): a list of float64 [N, 3], None for a view without a usable
    silhouette (blank, or touching the image border: its contour is not the object's
    there), or None instead of the list when fewer than two views have one."""
    from skimage.measure import find_contours

    K_inv = np.linalg.inv(K)
    out = []
    for rgb in views:
        darkness = 255.0 - rgb.min(axis=-1).astype(np.float64)
        level = 255.0 - WHITE_BACKGROUND_THRESHOLD - 0.5  # between 245 (background) and 244 (object)
        fg = darkness > level
        pieces = find_contours(darkness, level) if fg.sum() >= MIN_CONTOUR_POINTS else []
        if not pieces or fg[0].any() or fg[-1].any() or fg[:, 0].any() or fg[:, -1].any():
            out.append(None)
            continue
        uv = np.concatenate(pieces)[:, ::-1]  # (row, col) -> (u, v)
        # The epipoles lie outside the silhouette (the views are 10-20 deg apart), so the
        # extremal epipolar lines touch its convex hull: its vertices are all that matter.
        hull = cv2.convexHull(uv.astype(np.float32)).reshape(-1, 2).astype(np.float64)
        uv1 = np.concatenate([hull, np.ones((len(hull), 1))], axis=1)
        out.append(uv1 @ K_inv.T)
    return out if sum(c is not None for c in out) >= 2 else None


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a x b for [..., 3] arrays (np.cross costs ~50x more on small arrays)."""
    out = np.empty(np.broadcast_shapes(a.shape, b.shape))
    out[..., 0] = a[..., 1] * b[..., 2] - a[..., 2] * b[..., 1]
    out[..., 1] = a[..., 2] * b[..., 0] - a[..., 0] * b[..., 2]
    out[..., 2] = a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]
    return out


@functools.cache
def _offset_free_basis(pairs: tuple) -> np.ndarray:
    """Orthonormal basis [2 P, 2 P - 3] of the residuals no per-view silhouette offset can produce.

    Residual order: (low end, high end) of each pair, view a minus view b; growing
    view v's silhouette by d lowers its low end and raises its high end by d.
    """
    n_views = 1 + max(max(p) for p in pairs)
    M = np.zeros((2 * len(pairs), n_views))
    for k, (a, b) in enumerate(pairs):
        M[2 * k, a], M[2 * k, b] = -1.0, 1.0
        M[2 * k + 1, a], M[2 * k + 1, b] = 1.0, -1.0
    u, sv, _ = np.linalg.svd(M, full_matrices=True)
    rank = int((sv > 1e-9).sum())
    return u[:, rank:]


def extremal_residuals(contours: list[np.ndarray], c2w: np.ndarray, focal_px: float, pairs=PAIRS) -> np.ndarray:
    """Signed disagreement of the extremal epipolar planes in pixels [T, 2 len(pairs)]
    ((low, high) end per pair, view a minus view b) for camera sets c2w [T, 4, 4, 4].

    The epipolar planes through both camera centres are parameterised by their
    angle about the baseline (zero for the plane through the world origin, the
    object centre); each view's silhouette spans an interval of angles.
    """
    c2w = np.asarray(c2w, dtype=np.float64)
    ia = np.array([a for a, _ in pairs])
    ib = np.array([b for _, b in pairs])
    C = c2w[:, :, :3, 3]  # [T, V, 3]
    Ca = C[:, ia]
    base = C[:, ib] - Ca  # [T, P, 3]
    base /= np.linalg.norm(base, axis=-1, keepdims=True)
    w1 = _cross(base, -Ca)  # normal of the epipolar plane through the origin
    w1 /= np.linalg.norm(w1, axis=-1, keepdims=True)
    w2 = _cross(base, w1)
    # the plane through the baseline and a ray d has normal n = base x d, at angle
    # atan2(n.w2, n.w1) = atan2(d.(w2 x base), d.(w1 x base)), with d = R_v x_n
    u1, u2 = _cross(w1, base), _cross(w2, base)  # [T, P, 3]
    lo = np.empty((2, *base.shape[:2]))
    hi = np.empty_like(lo)
    for side, views in enumerate((ia, ib)):
        for v in np.unique(views):
            k = np.nonzero(views == v)[0]
            R = c2w[:, v, :3, :3]  # [T, 3, 3]
            g1 = u1[:, k] @ R  # (R^T u)^T: [T, K, 3]
            g2 = u2[:, k] @ R
            theta = np.arctan2(np.einsum("nc,tkc->tkn", contours[v], g2), np.einsum("nc,tkc->tkn", contours[v], g1))
            lo[side][:, k] = theta.min(axis=-1)
            hi[side][:, k] = theta.max(axis=-1)
    out = np.stack([focal_px * (lo[0] - lo[1]), focal_px * (hi[0] - hi[1])], axis=-1)  # [T, P, 2]
    return out.reshape(len(c2w), -1)


def usable_pairs(contours: list) -> tuple:
    """The pairs of views that both have a usable silhouette."""
    return tuple((a, b) for a, b in PAIRS if contours[a] is not None and contours[b] is not None)


def n_residuals(contours: list) -> int:
    """Number of offset-free residuals :func:`tangency_residuals` returns (9 with four usable views)."""
    return _offset_free_basis(usable_pairs(contours)).shape[1]


def tangency_residuals(contours: list, c2w: np.ndarray, focal_px: float) -> np.ndarray:
    """Offset-free tangency residuals in pixels [T, n_residuals] for camera sets c2w [T, 4, 4, 4]
    (the pairs of views with usable silhouettes)."""
    pairs = usable_pairs(contours)
    return extremal_residuals(contours, c2w, focal_px, pairs) @ _offset_free_basis(pairs)
