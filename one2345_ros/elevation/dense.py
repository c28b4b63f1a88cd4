"""Dense correspondences without weights: OpenCV's DIS optical flow between the views.

For every ordered pair (a, b) of the four views, DIS (Kroeger et al., ECCV 2016,
``cv2.DISOpticalFlow``) gives a flow field from a to b. Correspondences are read
off on a regular grid of view a's pixels at least :data:`INSET_PX` inside a's
silhouette (closer, the patches see the silhouette edge, whose motion is not a
surface point's: measured, it drags the flow by pixels), and kept when

* the flow lands inside view b's object mask,
* the backward flow (b to a) brings the point back within :data:`FB_MAX_PX` of
  where it started (forward-backward consistency: occlusions, the silhouette and
  regions where the flow is only interpolated fail it), and
* the grid point has some texture: the smaller eigenvalue of the grey image's
  structure tensor is at least :data:`MIN_EIGENVALUE` (a flat colour carries no
  motion of its own; the flow there is the smoothness term's guess).

Each pair (i, j) holds the matches anchored on view i's grid and those anchored on
view j's grid. Matches anchored on the same view share exactly the same grid
points, so three-view observations join them with a radius of
:data:`TRACK_RADIUS_PX` (a coincidence, not a neighbourhood).

What it measured. Against rendered depth, on textured objects the flow is as
accurate as SIFT's matches (median 0.5 px) and denser; on plain, smoothly shaded
objects it is 3-8 px off even where it passes every check (the flow there follows
the silhouette's and the colour boundaries' motion, not the surface's).
benchmarks/elevation.py (seed 1, ``default_dense`` = ``matcher: sift+dense``
against ``default``): median/p90 on clean views 0.40/1.14 deg textured and
0.80/2.24 low-texture against 0.26/0.70 and 0.49/1.20, about the same on degraded
views, and 2.5x slower. So it is an option, not the default: what makes
low-texture objects work is the silhouette term (:mod:`.silhouette`).
"""

from __future__ import annotations

import cv2
import numpy as np

from ..config import ElevationConfig
from .pairs import PairMatches

GRID_STEP_PX = 4
"""Grid spacing of the sampled correspondences (256-pixel views; scaled with the view size)."""

FB_MAX_PX = 0.5
"""Forward-backward consistency limit."""

MIN_EIGENVALUE = 5e-5
"""Smallest structure-tensor eigenvalue (OpenCV ``cornerMinEigenVal``, 5x5 block, grey in [0, 1])."""

INSET_PX = 8.0
"""Grid points at least this far inside the silhouette (256-pixel views; scaled with the view size)."""

TRACK_RADIUS_PX = 1e-3
"""Grid points anchored on the same view coincide exactly."""

DIS_PRESET = cv2.DISOPTICAL_FLOW_PRESET_MEDIUM


class DenseFlowMatcher:
    """Grid correspondences from forward-backward consistent DIS optical flow."""

    name = "dense"
    track_radius_px = TRACK_RADIUS_PX

    def __init__(self, cfg: ElevationConfig | None = None):
        self.cfg = cfg or ElevationConfig()

    def match(self, views: np.ndarray, masks: np.ndarray) -> dict[tuple[int, int], PairMatches]:
        n, size = len(views), views.shape[1]
        grey = [cv2.cvtColor(np.ascontiguousarray(v), cv2.COLOR_RGB2GRAY) for v in views]
        dis = cv2.DISOpticalFlow_create(DIS_PRESET)
        flows = {(a, b): dis.calc(grey[a], grey[b], None) for a in range(n) for b in range(n) if a != b}
        step = max(1, round(GRID_STEP_PX * size / 256))
        grids = []
        for a in range(n):
            eig = cv2.cornerMinEigenVal(grey[a].astype(np.float32) / 255.0, 5, 3)
            inside = cv2.distanceTransform(masks[a].astype(np.uint8), cv2.DIST_L2, 5) >= INSET_PX * size / 256
            ys, xs = np.mgrid[0:size:step, 0:size:step]
            ok = inside[ys, xs] & (eig[ys, xs] >= MIN_EIGENVALUE)
            grids.append(np.stack([xs[ok], ys[ok]], axis=-1).astype(np.float64))
        half = {}
        for (a, b), flow in flows.items():
            p = grids[a]
            if len(p) == 0:
                half[(a, b)] = (p, p, np.zeros(0))
                continue
            pi = p.astype(np.int64)
            q = p + flow[pi[:, 1], pi[:, 0]]
            back = cv2.remap(
                flows[(b, a)], q[:, 0].astype(np.float32)[:, None], q[:, 1].astype(np.float32)[:, None],
                cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=(1e6, 1e6),
            )[:, 0]  # fmt: skip
            fb = np.linalg.norm(q + back - p, axis=1)
            qi = np.rint(q).astype(np.int64)
            inside = (qi[:, 0] >= 0) & (qi[:, 0] < size) & (qi[:, 1] >= 0) & (qi[:, 1] < size)
            inside[inside] = masks[b][qi[inside, 1], qi[inside, 0]]
            keep = inside & (fb < FB_MAX_PX)
            weight = 1.0 / (1.0 + (fb[keep] / (0.5 * FB_MAX_PX)) ** 2)
            half[(a, b)] = (p[keep], q[keep], weight)
        pairs = {}
        for i in range(n):
            for j in range(i + 1, n):
                pi_, qj, wi = half[(i, j)]
                pj, qi_, wj = half[(j, i)]
                pairs[(i, j)] = PairMatches(i, j, np.concatenate([pi_, qi_]), np.concatenate([qj, pj]), np.r_[wi, wj])
        return pairs
