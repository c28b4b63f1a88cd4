"""Feature matches between the four elevation views, restricted to the object.

Matchers (``ElevationConfig.matcher``; 'sift+dense' runs two):

* ``sift`` (default, no weights): OpenCV SIFT with RootSIFT descriptors, Lowe's
  ratio test and a mutual nearest-neighbour check.
* ``dense`` (no weights): OpenCV DIS optical flow on a grid, forward-backward
  checked (:mod:`.dense`).
* ``loftr``: kornia's LoFTR loaded from a local weight file (the original uses
  LoFTR with the ScanNet "indoor_ds_new" weights; kornia's ``indoor_new`` is that
  checkpoint). Like the original: grey images resized to 480x480, coordinates
  mapped back to the 256 view (here with the pixel-centre convention).

Every pair then loses its geometric outliers with a RANSAC fundamental matrix
(OpenCV USAC-MAGSAC). The relative poses are only known up to the unknown polar
angle, so this generic epipolar check is the one that does not presuppose an answer.

Matches are kept only where *both* points lie on the object: the foreground of
each view (the original's ``~(img > 245).all(-1)``) shrunk by a small margin,
because points on the silhouette are occluding contours, not fixed surface points.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import ClassVar

import cv2
import numpy as np

from ..config import ElevationConfig
from ..types import foreground_from_white
from .pairs import PairMatches

LOFTR_SIZE = 480
"""Side the original resizes both images to before LoFTR (elev_est_api.py)."""

SIFT_OCTAVE_LAYERS = 4
SIFT_EDGE_THRESHOLD = 20.0
"""With contrastThreshold 0.01 (config), more scale layers and a laxer edge test than
OpenCV's defaults (3, 0.04, 10): 256x256 views with soft textures otherwise give a
few dozen keypoints. Chosen on benchmarks/elevation.py's cases (clean median error
0.29 -> 0.21 deg, perturbed p90 7.1 -> 6.1 deg)."""

CROP_MARGIN_PX = 16
"""Border kept around the object when SIFT runs on a crop of the view."""

SUPPORT_INSIDE = 0.5
"""SIFT keypoints are kept when their distance to the silhouette is at least this
many keypoint diameters (OpenCV's ``KeyPoint.size``)..."""

MAX_KEYPOINT_FRACTION = 0.2
"""... and their diameter at most this fraction of the object's size (sqrt of its area)."""

MIN_MATCHES_FOR_RANSAC = 12
"""Below this many matches a fundamental-matrix RANSAC is unreliable; keep them all
(the robust loss of the pose search still down-weights outliers)."""


def object_masks(views: np.ndarray, margin_px: int) -> np.ndarray:
    """bool [N, H, W]: foreground pixels at least ``margin_px`` inside the silhouette."""
    fg = foreground_from_white(views)
    if margin_px <= 0:
        return fg
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * margin_px + 1, 2 * margin_px + 1))
    return np.stack([cv2.erode(m.astype(np.uint8), kernel).astype(bool) for m in fg])


def _inside(mask: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Whether points [M, 2] fall on True pixels of ``mask`` (nearest pixel)."""
    h, w = mask.shape
    uv = np.rint(pts).astype(np.int64)
    ok = (uv[:, 0] >= 0) & (uv[:, 0] < w) & (uv[:, 1] >= 0) & (uv[:, 1] < h)
    out = np.zeros(len(pts), dtype=bool)
    out[ok] = mask[uv[ok, 1], uv[ok, 0]]
    return out


def reject_outliers(m: PairMatches, threshold_px: float) -> PairMatches:
    """Keep the inliers of a RANSAC fundamental matrix (enough matches only)."""
    if len(m) < MIN_MATCHES_FOR_RANSAC or threshold_px <= 0:
        return m
    try:
        F, inliers = cv2.findFundamentalMat(
            m.pts_i.astype(np.float32), m.pts_j.astype(np.float32), cv2.USAC_MAGSAC, threshold_px, 0.999, 2000
        )
    except cv2.error:  # degenerate point sets (all on a line, duplicates): keep them all
        return m
    if F is None or inliers is None:
        return m
    keep = inliers.ravel().astype(bool)
    return PairMatches(m.i, m.j, m.pts_i[keep], m.pts_j[keep], m.weight[keep])


# ------------------------------------------------------------------------- SIFT


def _root_sift(desc: np.ndarray | None) -> np.ndarray:
    """RootSIFT (Arandjelovic & Zisserman 2012): Hellinger kernel instead of L2,
    a free improvement in matching precision."""
    if desc is None or len(desc) == 0:
        return np.zeros((0, 128), np.float32)
    desc = desc / np.maximum(desc.sum(axis=1, keepdims=True), 1e-12)
    return np.sqrt(desc).astype(np.float32)


class SiftMatcher:
    name = "sift"
    track_radius_px = None
    """Three-view observations join matches within ``ElevationConfig.track_radius_px``."""

    def __init__(self, cfg: ElevationConfig):
        self.cfg = cfg
        self.sift = cv2.SIFT_create(
            nOctaveLayers=SIFT_OCTAVE_LAYERS,
            contrastThreshold=cfg.sift_contrast_threshold,
            edgeThreshold=SIFT_EDGE_THRESHOLD,
        )
        self.bf = cv2.BFMatcher(cv2.NORM_L2)

    def features(self, views: np.ndarray, masks: np.ndarray):
        out = []
        for rgb, mask in zip(views, masks, strict=True):
            if not mask.any():
                out.append((np.zeros((0, 2)), _root_sift(None)))
                continue
            # SIFT's cost is its scale space over the whole image: crop to the object
            # (plus a margin for the descriptor windows) and shift the points back.
            ys, xs = np.nonzero(mask)
            x0, y0 = max(xs.min() - CROP_MARGIN_PX, 0), max(ys.min() - CROP_MARGIN_PX, 0)
            x1, y1 = xs.max() + CROP_MARGIN_PX + 1, ys.max() + CROP_MARGIN_PX + 1
            grey = cv2.cvtColor(np.ascontiguousarray(rgb[y0:y1, x0:x1]), cv2.COLOR_RGB2GRAY)
            inside = mask[y0:y1, x0:x1].astype(np.uint8)
            kps, desc = self.sift.detectAndCompute(grey, inside)
            pts = np.array([kp.pt for kp in kps], dtype=np.float64).reshape(-1, 2)
            size = np.array([kp.size for kp in kps], dtype=np.float64)
            # Keypoints whose support reaches the silhouette, or that are a sizeable
            # fraction of the whole object, describe the silhouette's shape (a plain
            # disc is one big blob), not a fixed surface point.
            dist = cv2.distanceTransform(inside, cv2.DIST_L2, 5)
            keep = dist[np.rint(pts[:, 1]).astype(int), np.rint(pts[:, 0]).astype(int)] >= SUPPORT_INSIDE * size
            keep &= size <= MAX_KEYPOINT_FRACTION * np.sqrt(mask.sum())
            out.append((pts[keep] + [x0, y0], _root_sift(desc)[keep] if len(kps) else _root_sift(None)))
        return out

    def match_pair(self, fi, fj) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Indices into i and j and the weight of mutual, ratio-tested matches."""
        (_, di), (_, dj) = fi, fj
        if len(di) < 2 or len(dj) < 2:
            return np.zeros(0, int), np.zeros(0, int), np.zeros(0)
        knn = self.bf.knnMatch(di, dj, k=2)
        back = np.full(len(dj), -1)
        for m in self.bf.match(dj, di):
            back[m.queryIdx] = m.trainIdx
        rows = np.array([m[0].queryIdx for m in knn])
        best = np.array([m[0].trainIdx for m in knn])
        ratio = np.array([m[0].distance / max(m[1].distance, 1e-12) for m in knn])
        keep = (ratio < self.cfg.ratio_test) & (back[best] == rows)
        return rows[keep], best[keep], np.clip(1.0 - ratio[keep], 0.05, 1.0)

    def match(self, views: np.ndarray, masks: np.ndarray) -> dict[tuple[int, int], PairMatches]:
        feats = self.features(views, masks)
        pairs = {}
        for i in range(len(views)):
            for j in range(i + 1, len(views)):
                a, b, w = self.match_pair(feats[i], feats[j])
                pairs[(i, j)] = PairMatches(i, j, feats[i][0][a], feats[j][0][b], w)
        return pairs


# ------------------------------------------------------------------------ LoFTR


def load_loftr(weights: str):
    """kornia LoFTR with the (indoor_new) configuration and a local checkpoint.

    The file holds ``{"state_dict": {...}}`` as written by the LoFTR authors
    (``indoor_ds_new.ckpt``), or a plain state dict; ``.safetensors`` is read with
    safetensors. Pickles are loaded with ``weights_only=True``.
    """
    import torch
    from kornia.feature import LoFTR
    from kornia.feature.loftr.loftr import default_cfg as loftr_default_cfg

    path = Path(weights).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"LoFTR weights not found: {path} (elevation.loftr_weights). Get indoor_ds_new.ckpt from the LoFTR "
            "authors (github.com/zju3dv/LoFTR, 'indoor_ds_new') or kornia's 'loftr_indoor_ds_new.ckpt', "
            "or use elevation.matcher: sift, which needs no weights"
        )
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        try:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as exc:  # pickle with arbitrary objects
            raise ValueError(f"{path}: cannot be loaded with weights_only=True ({exc})") from exc
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    config = copy.deepcopy(loftr_default_cfg)
    config["coarse"]["temp_bug_fix"] = True  # indoor_ds_new was trained with the fixed positional encoding
    model = LoFTR(pretrained=None, config=config)
    if not isinstance(state, dict):
        raise ValueError(f"{path}: not a LoFTR checkpoint (no state dict inside)")
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches
        raise ValueError(f"{path}: not a LoFTR checkpoint ({str(exc).splitlines()[-1].strip()})") from exc
    if missing or unexpected:
        raise ValueError(f"{path}: not a LoFTR checkpoint (missing {missing[:3]}..., unexpected {unexpected[:3]}...)")
    return model.eval()


class LoftrMatcher:
    name = "loftr"
    track_radius_px = None
    _cache: ClassVar[dict[str, object]] = {}

    def __init__(self, cfg: ElevationConfig):
        self.cfg = cfg
        if not cfg.loftr_weights:
            raise ValueError(
                "elevation.matcher is 'loftr' but elevation.loftr_weights is empty (path to indoor_ds_new.ckpt)"
            )
        key = str(Path(cfg.loftr_weights).expanduser().resolve())
        if key not in self._cache:
            self._cache[key] = load_loftr(cfg.loftr_weights)
        self.model = self._cache[key]

    def match(self, views: np.ndarray, masks: np.ndarray) -> dict[tuple[int, int], PairMatches]:
        import torch

        size = views.shape[1]
        grey = [
            cv2.resize(cv2.cvtColor(v, cv2.COLOR_RGB2GRAY), (LOFTR_SIZE, LOFTR_SIZE), interpolation=cv2.INTER_AREA)
            for v in views
        ]
        images = torch.from_numpy(np.stack(grey)).float()[:, None] / 255.0
        scale = size / LOFTR_SIZE
        pairs = {}
        with torch.inference_mode():
            feats = [self.model.extract_features(images[k : k + 1]) for k in range(len(views))]
            for i in range(len(views)):
                for j in range(i + 1, len(views)):
                    out = self.model({"features0": feats[i], "features1": feats[j]})
                    # LoFTR puts pixel (x, y)'s centre at (x + 0.5, y + 0.5); ours is at (x, y)
                    pi = out["keypoints0"].double().numpy() * scale - 0.5
                    pj = out["keypoints1"].double().numpy() * scale - 0.5
                    w = out["confidence"].double().numpy()
                    pairs[(i, j)] = PairMatches(i, j, pi, pj, w)
        return pairs


MATCHERS = ("sift+dense", "sift", "dense", "loftr")


def make_matchers(cfg: ElevationConfig) -> list:
    """The matchers ``cfg.matcher`` names ('sift+dense' is two); unknown names raise ValueError."""
    if cfg.matcher not in MATCHERS:
        raise ValueError(f"elevation.matcher must be one of {', '.join(MATCHERS)}, got {cfg.matcher!r}")
    out = []
    for name in cfg.matcher.split("+"):
        if name == "sift":
            out.append(SiftMatcher(cfg))
        elif name == "dense":
            from .dense import DenseFlowMatcher

            out.append(DenseFlowMatcher(cfg))
        else:
            out.append(LoftrMatcher(cfg))
    return out


def make_matcher(cfg: ElevationConfig):
    """The single matcher ``cfg.matcher`` names (ValueError for a combination or an unknown name)."""
    matchers = make_matchers(cfg)
    if len(matchers) != 1:
        raise ValueError(f"elevation.matcher {cfg.matcher!r} is a combination; use make_matchers")
    return matchers[0]


def match_views(
    views: np.ndarray, cfg: ElevationConfig, matcher=None, masks: np.ndarray | None = None
) -> dict[tuple[int, int], PairMatches]:
    """All six pairs of the four views, on the object only, outliers removed.

    The original (elev_est_api.py) tests image 0's points with
    ``mask0[mkpts0[:, 1], mkpts1[:, 0]]``, i.e. with image 1's x coordinate: a bug
    that lets background matches through and drops good ones. Here each point is
    tested in its own view's mask. ``masks``: :func:`object_masks` when already computed.
    """
    if masks is None:
        masks = object_masks(views, cfg.mask_margin_px)
    matcher = matcher or make_matcher(cfg)
    pairs = matcher.match(views, masks)
    out = {}
    for key, m in pairs.items():
        keep = _inside(masks[m.i], m.pts_i) & _inside(masks[m.j], m.pts_j)
        m = PairMatches(m.i, m.j, m.pts_i[keep], m.pts_j[keep], m.weight[keep])
        out[key] = reject_outliers(m, cfg.ransac_threshold_px)
    return out
