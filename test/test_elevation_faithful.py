"""Faithful mode: One-2-3-45's elevation estimator step for step.

Test vectors. ``_synthetic_matches`` builds correspondences from the original's
own formulas: random 3-D points seen by the original's hypothesis cameras
(``gen_pose_hypothesis``: polar c-10, c+10, c, c at azimuths 30, 30, 20, 40,
radius 1.2, OpenCV convention; K = [[280, 0, 128], [0, 280, 128], [0, 0, 1]]),
0.3 px of noise, each view's points shared by its pairs (as LoFTR's coarse grid
makes them), 85 % of the points in each pair, shuffled, confidences in [0.2, 1].
``_reference_error`` is an independent, loop-by-loop transcription of the
original's error (``ba_error_general`` summed by ``find_optim_elev`` in
One-2-3-45's elevation_estimate/utils/elev_est_api.py, commit 3b161de: for start
views 0..2, triangulate the s<->s+1 matches with cv2.triangulatePoints, join each
to the nearest view-s point of the s<->t matches within 1 px, add the
confidence-weighted mean L2 reprojection error in t), in float64.
``REFERENCE_ERRORS`` were computed with it once (seed 0, true polar 72) and are
kept here so that the module and this transcription cannot drift together.
"""

import cv2
import numpy as np
import pytest

from one2345_ros.config import ElevationConfig
from one2345_ros.elevation.estimate import estimate_elevation
from one2345_ros.elevation.faithful import (
    ORIGINAL_K,
    both_directions,
    keep0_mask_test,
    original_error,
    original_search,
)
from one2345_ros.elevation.pairs import PairMatches
from one2345_ros.geometry import cameras as cam

AZIMUTHS = (30.0, 30.0, 20.0, 40.0)
POLAR_OFFSETS = (-10.0, 10.0, 0.0, 0.0)


def _original_c2w(polar):
    return cam.spherical_to_c2w(polar + np.asarray(POLAR_OFFSETS), np.asarray(AZIMUTHS))


def _synthetic_matches(polar, seed=0, n=150, noise_px=0.3, keep=0.85):
    rng = np.random.default_rng(seed)
    points = rng.uniform(-0.3, 0.3, size=(n, 3))
    c2w = _original_c2w(polar)
    w2c = cam.invert_rigid(c2w)
    uv = [cam.project(points, ORIGINAL_K, w2c[k])[0] + rng.normal(0, noise_px, (n, 2)) for k in range(4)]
    out = {}
    for i in range(4):
        for j in range(i + 1, 4):
            rows = np.nonzero(rng.random(n) < keep)[0]
            rng.shuffle(rows)
            conf = rng.uniform(0.2, 1.0, len(rows))
            out[f"{i}_{j}"] = np.concatenate([uv[i][rows], uv[j][rows], conf[:, None]], axis=1).astype(np.float32)
    return out


def _reference_error(matches, polar):
    both = dict(matches)
    for key, m in matches.items():
        i, j = key.split("_")
        both[f"{j}_{i}"] = np.concatenate([m[:, 2:4], m[:, 0:2], m[:, 4:5]], axis=1)
    c2w = _original_c2w(polar)
    w2c = [np.linalg.inv(c) for c in c2w]
    K = ORIGINAL_K
    total = 0.0
    for s in range(3):
        order = [(s + k) % 4 for k in range(4)]
        m01 = both[f"{s}_{order[1]}"].astype(np.float64)
        P0, P1 = K @ w2c[order[0]][:3], K @ w2c[order[1]][:3]
        for t in order[2:]:
            m0t = both[f"{s}_{t}"].astype(np.float64)
            num = den = 0.0
            for row in m01:
                dist = np.linalg.norm(m0t[:, :2] - row[:2], axis=1)
                k = int(np.argmin(dist))
                if dist[k] >= 1.0:
                    continue
                X = cv2.triangulatePoints(P0, P1, row[0:2].reshape(2, 1), row[2:4].reshape(2, 1))
                X = X[:3, 0] / X[3, 0]
                x = K @ (w2c[t] @ np.r_[X, 1.0])[:3]
                err = np.linalg.norm(m0t[k, 2:4] - x[:2] / x[2])
                num += err * m0t[k, 4]
                den += m0t[k, 4]
            if den > 0:
                total += num / den
    return total


REFERENCE_POLARS = (30.0, 60.0, 70.0, 72.0, 75.0, 90.0, 120.0)


def test_reference_vectors_are_what_the_transcription_gives():
    """The frozen vectors still come out of the transcription (guards the test itself)."""
    matches = _synthetic_matches(72.0)
    got = [_reference_error(matches, p) for p in REFERENCE_POLARS]
    np.testing.assert_allclose(got, FROZEN_ERRORS, rtol=1e-6)


def test_error_matches_the_original_formula():
    matches = both_directions(_synthetic_matches(72.0))
    got = [original_error(matches, p) for p in REFERENCE_POLARS]
    # float32 throughout, as the original: agreement to float32 precision of a sum of six means
    np.testing.assert_allclose(got, FROZEN_ERRORS, rtol=2e-4)
    assert int(np.argmin(got)) == REFERENCE_POLARS.index(72.0)


def _reference_search(matches):
    """get_elev_est's search with the transcribed error: coarse arange(30, 150, 10), then
    fine arange(best - 10, best + 10)."""
    coarse = np.arange(30, 150, 10)
    best = coarse[int(np.argmin([_reference_error(matches, c) for c in coarse]))]
    fine = np.arange(best - 10, best + 10, 1)
    return int(fine[int(np.argmin([_reference_error(matches, c) for c in fine]))])


@pytest.mark.parametrize("polar, expected", [(72.0, 72), (104.6, 104), (37.3, 38)])
def test_search_is_the_originals_integer_coarse_to_fine(polar, expected):
    """``expected``: _reference_search on the same matches (checked in the test: noise moves 104.6 to 104)."""
    matches = _synthetic_matches(polar, seed=int(polar))
    found, curve_polar, _, coarse = original_search(matches)
    assert found == expected and isinstance(found, int)
    if polar == 104.6:  # the slow loop transcription, once
        assert _reference_search(matches) == expected
    best_coarse = 30 + 10 * int(np.argmin(coarse))
    fine = np.arange(best_coarse - 10, best_coarse + 10)
    assert set(np.arange(30, 150, 10)) | set(fine) == set(curve_polar.astype(int))
    assert len(coarse) == 12


def test_no_estimate_when_a_pair_has_no_matches():
    matches = _synthetic_matches(72.0)
    matches["1_3"] = matches["1_3"][:0]
    assert original_search(matches)[0] is None


def test_keep0_bug_is_reproduced():
    """The original looks up view i's point at (int(y_i), int(x_j)): a match whose
    view-i point is on the background passes when view j's x lands on the object."""
    mask = np.zeros((256, 256), bool)
    mask[60:200, 60:200] = True
    pts_i = np.array([[20.0, 100.0], [100.0, 100.0], [150.0, 100.0]])  # background, object, object
    pts_j = np.array([[100.0, 101.0], [30.0, 100.0], [150.5, 100.0]])  # object, background, object
    np.testing.assert_array_equal(keep0_mask_test(mask, mask, pts_i, pts_j), [True, False, True])


def test_faithful_estimate_end_to_end_with_given_correspondences():
    """mode='faithful' with any matcher: the original's mask test, search and an integer answer."""
    matches = _synthetic_matches(81.0, seed=3)

    class Fixed:
        name = "fixed"
        track_radius_px = None

        def match(self, views, masks):
            out = {}
            for key, m in matches.items():
                i, j = (int(k) for k in key.split("_"))
                out[(i, j)] = PairMatches(i, j, m[:, 0:2].astype(np.float64), m[:, 2:4].astype(np.float64),
                                          m[:, 4].astype(np.float64))  # fmt: skip
            return out

    views = np.full((4, 256, 256, 3), 120, np.uint8)  # object everywhere: every match passes the mask test
    est = estimate_elevation(views, ElevationConfig(mode="faithful"), Fixed())
    assert est.mode == "faithful" and est.polar_deg == 81.0 and est.elevation_deg == 9.0
    assert est.search_polar_deg == 81.0 and est.view_corrections_deg is None
    assert len(est.curve_polar_deg) == 12 + 20 - 2  # coarse 30..140, fine 70..89 (70 and 80 in both)


FROZEN_ERRORS = [47.84046363, 12.00577282, 4.03034607, 3.48461413, 4.49877926, 17.17388564, 45.62332118]
"""_reference_error(_synthetic_matches(72.0), p) for p in REFERENCE_POLARS (float64), computed once."""


def test_loftr_is_called_as_the_original_calls_it():
    """Grey images resized to 480x480 (bilinear), one call per pair (i < j), keypoints
    scaled by 256/480 with no half-pixel shift; then the keep0 mask test."""
    torch = pytest.importorskip("torch")
    from one2345_ros.elevation.faithful import apply_mask_test, loftr_matches

    rng = np.random.default_rng(0)
    views = rng.integers(0, 240, size=(4, 256, 256, 3), dtype=np.uint8)
    views[:, :, :40] = 255  # background strip on the left
    calls = []

    class StubLoftr:
        def __call__(self, batch):
            a, b = batch["image0"], batch["image1"]
            calls.append((tuple(a.shape), tuple(b.shape), float(a.max()), a[0, 0].numpy().copy()))
            kp = torch.tensor([[240.0, 120.0], [30.0, 60.0]])  # 480-pixel coordinates
            return {"keypoints0": kp, "keypoints1": kp + 9.6, "confidence": torch.tensor([0.9, 0.4])}

    raw = loftr_matches(views, StubLoftr())
    assert list(raw) == ["0_1", "0_2", "0_3", "1_2", "1_3", "2_3"] and len(calls) == 6
    assert calls[0][0] == calls[0][1] == (1, 1, 480, 480) and calls[0][2] <= 1.0
    grey = cv2.resize(cv2.cvtColor(views[0], cv2.COLOR_RGB2GRAY), (480, 480)).astype(np.float32) / 255.0
    np.testing.assert_allclose(calls[0][3], grey, atol=1e-6)
    np.testing.assert_allclose(raw["0_1"][0], [128.0, 64.0, 133.12, 69.12, 0.9], atol=1e-5)
    kept = apply_mask_test(views, raw)
    # the second match's view-j x is 20.48 px: on the background strip, so dropped
    assert all(len(m) == 1 for m in kept.values())
