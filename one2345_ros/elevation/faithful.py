"""One-2-3-45's elevation estimator, step for step (``ElevationConfig.mode = "faithful"``).

Reference: reference/one2345.md section 3 and One-2-3-45's
``elevation_estimate/utils/elev_est_api.py`` (commit 3b161de). What it does, and
what this module reproduces:

1. Matching (``get_feature_matching``). All 6 pairs (i < j) of the four views.
   With LoFTR: grey images resized to 480x480 (``cv2.resize``, bilinear), LoFTR's
   fine matches and confidences, coordinates scaled by 256/480 (no half-pixel
   shift). Foreground ``~(img > 245).all(-1)``; a match is kept when
   ``mask_i[int(y_i), int(x_j)]`` (the keep0 bug: view j's x) and
   ``mask_j[int(y_j), int(x_j)]``. No outlier rejection. The reversed pair j_i
   holds the same matches swapped. LoFTR's weights cannot be downloaded here, so
   with ``matcher`` 'sift', 'dense' or 'sift+dense' those matchers' correspondences
   go through the same mask test instead (weight = their match quality).
2. Hypotheses (``gen_pose_hypothesis``): for candidate polar c the four cameras
   at (polar, azimuth) = (c-10, 30), (c+10, 30), (c, 20), (c, 40), radius 1.2,
   OpenCV convention; K with focal 280 and principal point 128.
3. Error (``ba_error_general`` summed by ``find_optim_elev``): for each start
   view s in 0, 1, 2 (views s, s+1, s+2, s+3 modulo 4): triangulate the s<->s+1
   matches with ``cv2.triangulatePoints``; for t = s+2, s+3 find for every
   s<->s+1 match the nearest view-s point of the s<->t matches, keep it when
   closer than 1 px, and add the confidence-weighted (s<->t confidences) mean L2
   reprojection error in view t. float32 throughout, as the original runs.
4. Search (``get_elev_est``): no estimate when any pair has no matches; coarse
   polar ``arange(30, 150, 10)``, then ``arange(best - 10, best + 10, 1)``; the
   first minimum; an integer polar angle, no refinement.

The confidence (not in the original) describes the coarse curve and the match
count, as the default mode's does; it never changes the answer.
"""

from __future__ import annotations

import time

import cv2
import numpy as np
from scipy.spatial import cKDTree

from ..config import ElevationConfig
from ..types import foreground_from_white
from .result import FLAT_CURVE_CONTRAST, SHARP_CURVE_CONTRAST, check_views, curve_contrast, from_polar, no_estimate

LOFTR_SIZE = 480
ORIGINAL_AZIMUTHS_DEG = (30.0, 30.0, 20.0, 40.0)
ORIGINAL_POLAR_OFFSETS_DEG = (-10.0, 10.0, 0.0, 0.0)
ORIGINAL_K = np.array([[280.0, 0.0, 128.0], [0.0, 280.0, 128.0], [0.0, 0.0, 1.0]])
NEAREST_PX = 1.0
"""A view-s point of the s<->t matches joins an s<->s+1 match when closer than this."""


# ----------------------------------------------------------------- matches


def keep0_mask_test(mask_i: np.ndarray, mask_j: np.ndarray, pts_i: np.ndarray, pts_j: np.ndarray) -> np.ndarray:
    """The original's foreground test of matches, bug included: view i's point is
    looked up at (row int(y_i), column int(x_j)). Points are clipped into the image
    (the original would raise on an out-of-range index; LoFTR never produces one)."""
    h, w = mask_i.shape

    def idx(v, n):
        return np.clip(v.astype(np.int64), 0, n - 1)  # astype(int) truncates, as the original

    keep0 = mask_i[idx(pts_i[:, 1], h), idx(pts_j[:, 0], w)]
    keep1 = mask_j[idx(pts_j[:, 1], h), idx(pts_j[:, 0], w)]
    return keep0 & keep1


def loftr_matches(views: np.ndarray, model) -> dict[str, np.ndarray]:
    """The original's LoFTR call for all 6 pairs: {"i_j": float32 [N, 5] (x_i, y_i, x_j, y_j, conf)}."""
    import torch

    h, w = views.shape[1:3]
    grey = [cv2.resize(cv2.cvtColor(v, cv2.COLOR_RGB2GRAY), (LOFTR_SIZE, LOFTR_SIZE)) for v in views]
    out = {}
    for i in range(4):
        for j in range(i + 1, 4):
            batch = {
                "image0": torch.from_numpy(grey[i])[None, None].float() / 255.0,
                "image1": torch.from_numpy(grey[j])[None, None].float() / 255.0,
            }
            with torch.inference_mode():
                res = model(batch)
            p0 = res["keypoints0"].cpu().numpy().astype(np.float32)
            p1 = res["keypoints1"].cpu().numpy().astype(np.float32)
            conf = res["confidence"].cpu().numpy().astype(np.float32)
            scale = np.array([w / LOFTR_SIZE, h / LOFTR_SIZE], dtype=np.float32)
            out[f"{i}_{j}"] = np.concatenate([p0 * scale, p1 * scale, conf[:, None]], axis=1)
    return out


def other_matches(views: np.ndarray, cfg: ElevationConfig, matchers) -> dict[str, np.ndarray]:
    """Correspondences of the weight-free matchers in the original's format (see the module doc)."""
    fg = foreground_from_white(views)
    out = {f"{i}_{j}": [] for i in range(4) for j in range(i + 1, 4)}
    for m in matchers:
        for (i, j), pm in m.match(views, fg).items():
            out[f"{i}_{j}"].append(np.concatenate([pm.pts_i, pm.pts_j, pm.weight[:, None]], axis=1))
    return {k: np.concatenate(v).astype(np.float32) if v else np.zeros((0, 5), np.float32) for k, v in out.items()}


def apply_mask_test(views: np.ndarray, matches: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    fg = foreground_from_white(views)
    out = {}
    for key, m in matches.items():
        i, j = (int(k) for k in key.split("_"))
        out[key] = m[keep0_mask_test(fg[i], fg[j], m[:, 0:2], m[:, 2:4])]
    return out


# ------------------------------------------------------------------- error


def original_poses(polar_deg: float) -> np.ndarray:
    """float32 OpenCV c2w [4, 4, 4] of the original's hypothesis for one candidate polar."""
    from ..geometry import cameras as cam

    polar = float(polar_deg) + np.asarray(ORIGINAL_POLAR_OFFSETS_DEG)
    return cam.spherical_to_c2w(polar, np.asarray(ORIGINAL_AZIMUTHS_DEG)).astype(np.float32)


def both_directions(matches: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Add the reversed pairs "j_i" (points swapped), as get_elev_est does."""
    out = dict(matches)
    for key, m in matches.items():
        i, j = key.split("_")
        out[f"{j}_{i}"] = np.concatenate([m[:, 2:4], m[:, 0:2], m[:, 4:5]], axis=1)
    return out


def original_error(matches: dict[str, np.ndarray], polar_deg: float, K=ORIGINAL_K) -> float:
    """The original's total error for one candidate polar (``matches`` in both directions)."""
    K32 = np.asarray(K, dtype=np.float32)
    poses = original_poses(polar_deg)
    w2c = np.linalg.inv(poses.astype(np.float64)).astype(np.float32)
    P = [K32 @ w2c[k, :3, :4] for k in range(4)]
    total = np.float32(0.0)
    for s in range(3):
        order = [(s + k) % 4 for k in range(4)]
        m01 = matches[f"{s}_{order[1]}"]
        X = cv2.triangulatePoints(P[order[0]], P[order[1]], m01[:, 0:2].T.copy(), m01[:, 2:4].T.copy())
        X = (X[:3] / X[3:]).T.astype(np.float32)
        X1 = np.concatenate([X, np.ones((len(X), 1), np.float32)], axis=1)
        for t in order[2:]:
            m0t = matches[f"{s}_{t}"]
            if len(m0t) == 0 or len(m01) == 0:
                continue
            dist, idx = cKDTree(m0t[:, 0:2].astype(np.float64)).query(m01[:, 0:2].astype(np.float64))
            dist = np.linalg.norm(m01[:, 0:2] - m0t[idx, 0:2], axis=1)  # float32, as the original compares
            keep = dist < NEAREST_PX
            if not keep.any():
                continue
            cam_pts = X1[keep] @ w2c[t].T
            cam_pts = cam_pts[:, :3] / cam_pts[:, 3:]
            img = cam_pts @ K32.T
            proj = img[:, :2] / img[:, 2:]
            err = np.linalg.norm(m0t[idx[keep], 2:4] - proj, axis=1)
            conf = m0t[idx[keep], 4]
            total = total + np.float32((err * conf).sum() / conf.sum())
    return float(total)


def original_search(matches: dict[str, np.ndarray], K=ORIGINAL_K, min_polar=30, max_polar=150):
    """The original's search. Returns (polar or None, curve polars, curve errors, coarse errors)."""
    if any(len(m) == 0 for m in matches.values()):
        return None, np.zeros(0), np.zeros(0), np.zeros(0)
    both = both_directions(matches)
    coarse = np.arange(min_polar, max_polar, 10)
    coarse_err = np.array([original_error(both, c, K) for c in coarse], dtype=np.float32)
    best = coarse[int(np.argmin(coarse_err))]
    fine = np.arange(best - 10, best + 10, 1)
    fine_err = np.array([original_error(both, c, K) for c in fine], dtype=np.float32)
    polar = int(fine[int(np.argmin(fine_err))])
    polars = np.concatenate([coarse, fine])
    errs = np.concatenate([coarse_err, fine_err]).astype(np.float64)
    polars, first = np.unique(polars, return_index=True)
    return polar, polars.astype(np.float64), errs[first], coarse_err.astype(np.float64)


# -------------------------------------------------------------- estimator


def estimate_faithful(views, cfg: ElevationConfig, matcher=None):
    """:func:`estimate.estimate_elevation` in faithful mode (see the module doc)."""
    from .match import LoftrMatcher, make_matchers

    start = time.perf_counter()
    problem = check_views(views)
    if problem:
        return no_estimate(problem, mode="faithful")
    if matcher is None:
        matchers = make_matchers(cfg)
    else:
        matchers = list(matcher) if isinstance(matcher, (list, tuple)) else [matcher]
    name = "+".join(m.name for m in matchers)
    try:
        if len(matchers) == 1 and isinstance(matchers[0], LoftrMatcher):
            raw = loftr_matches(views, matchers[0].model)
        else:
            raw = other_matches(views, cfg, matchers)
        matches = apply_mask_test(views, raw)
        n_matches = {k: len(v) for k, v in matches.items()}
        polar, curve_polar, curve_err, coarse_err = original_search(matches)
    except (ValueError, np.linalg.LinAlgError, cv2.error) as exc:
        seconds = time.perf_counter() - start
        return no_estimate(f"estimation failed: {exc}", mode="faithful", matcher=name, seconds=seconds)
    seconds = time.perf_counter() - start
    if polar is None:
        empty = [k.replace("_", " and ") for k, v in matches.items() if len(v) == 0]
        return no_estimate(
            f"0 matches between views {', '.join(empty)}: no estimate (as the original)",
            mode="faithful", matcher=name, n_matches=n_matches, seconds=seconds,
        )  # fmt: skip
    contrast = curve_contrast(coarse_err)
    c_contrast = float(np.clip((contrast - FLAT_CURVE_CONTRAST) / (SHARP_CURVE_CONTRAST - FLAT_CURVE_CONTRAST), 0, 1))
    total = sum(n_matches.values())
    c_count = min(1.0, total / (8.0 * cfg.min_tracks))
    reasons = []
    if c_count < 1.0:
        reasons.append(f"few matches ({total} over the six pairs)")
    if contrast < FLAT_CURVE_CONTRAST:
        reasons.append(f"flat error curve (minimum {100 * contrast:.0f} % below the median)")
    return from_polar(
        polar,
        confidence=c_count * c_contrast,
        reason="; ".join(reasons),
        mode="faithful",
        curve_polar_deg=curve_polar,
        curve_error=curve_err,
        search_polar_deg=float(polar),
        n_matches=n_matches,
        matcher=name,
        seconds=seconds,
    )
