"""One-2-3-45 view plan: order, ring choice, stage-2 cleaning, batching, names, seeds."""

from __future__ import annotations

import numpy as np
import pytest

from one2345_ros.geometry.cameras import one2345_plan
from one2345_ros.views.plan import FALLBACK_POLAR_DEG, run_one2345_plan, view_seed

from zero123_tiny import tiny_pipeline


class RecordingGenerator:
    """Answers each target with an image that encodes (d_polar, d_azimuth) and records every batch."""

    name = "recording"

    def __init__(self):
        self.batches = []

    def generate_batch(self, requests, input_polar_deg, progress=None, stage=1):
        self.batches.append((stage, input_polar_deg, requests))
        out = []
        for r in requests:
            imgs = np.full((len(r.targets), 256, 256, 3), 254, np.uint8)  # near-white background
            for k, (dp, da, _) in enumerate(r.targets):
                imgs[k, 100:150, 100:150] = (int(dp + r.cond_pose[0]) % 256, int(da + r.cond_pose[1]) % 256, 7)
            out.append(imgs)
        return out


def _input():
    img = np.full((256, 256, 3), 255, np.uint8)
    img[80:180, 90:170] = (30, 60, 90)
    return img


@pytest.mark.parametrize("estimate, ring", [(60.0, ["4", "5", "6", "7"]), (110.0, ["8", "9", "10", "11"]), (None, ["8", "9", "10", "11"])])
def test_plan_order_ring_and_names(estimate, ring):
    gen = RecordingGenerator()
    seen = []
    result = run_one2345_plan(gen, _input(), lambda views: seen.append(views) or estimate, seed=100)
    polar = FALLBACK_POLAR_DEG if estimate is None else estimate
    assert result.polar_deg == polar and result.polar_source == ("fallback" if estimate is None else "estimate")
    assert [v.name for v in result.plan] == [v.name for v in one2345_plan(polar)]
    assert list(result.images) == [v.name for v in one2345_plan(polar)]
    assert [v.name for v in result.plan[:8]][4:] == ring
    # Four batches, stage 1 / 2 alternating, the stage-2 ones of 16 views from 4 images each.
    assert [(b[0], sum(len(r.targets) for r in b[2])) for b in gen.batches] == [(1, 4), (2, 16), (1, 4), (2, 16)]
    assert [b[1] for b in gen.batches] == [None, None, polar, polar]
    # The estimator saw 0_0..0_3: views of (-10, 0), (+10, 0), (0, -10), (0, +10) around view 0.
    assert [tuple(v[120, 120, :2]) for v in seen[0]] == [(246, 0), (10, 0), (0, 246), (0, 10)]
    # Each stage-2 image is the neighbour of its parent: cond pose + offset.
    for v in result.plan:
        np.testing.assert_array_equal(result.images[v.name][120, 120, :2], [int(v.d_polar_deg) % 256, int(v.d_azimuth_deg) % 256])
    # Stage-2 conditioning images were cleaned: 254 -> 255, object untouched.
    for stage, _, requests in gen.batches:
        for r in requests:
            if stage == 2:
                assert r.cond_image[0, 0].tolist() == [255, 255, 255] and r.cond_image[120, 120, 2] == 7
            np.testing.assert_array_equal(r.seeds, [view_seed(100, n) for n in _names(r)])


def _names(request):
    """Plan names of a request's targets, recovered from its poses (cameras.STAGE1_OFFSETS order)."""
    from one2345_ros.geometry.cameras import ELEVATION_VIEW_OFFSETS, STAGE1_OFFSETS

    if request.cond_pose == (0.0, 0.0) and all(t[:2] in STAGE1_OFFSETS for t in request.targets):
        return [str(STAGE1_OFFSETS.index(t[:2])) for t in request.targets]
    parent = STAGE1_OFFSETS.index(tuple(request.cond_pose))
    return [f"{parent}_{ELEVATION_VIEW_OFFSETS.index(t[:2])}" for t in request.targets]


def test_both_rings_makes_three_batches():
    gen = RecordingGenerator()
    result = run_one2345_plan(gen, _input(), lambda views: 60.0, both_rings=True)
    assert [(b[0], sum(len(r.targets) for r in b[2])) for b in gen.batches] == [(1, 12), (2, 16), (2, 16)]
    assert len(result.images) == 40


def test_plan_with_zero123_matches_a_direct_call():
    """Batching across conditioning images and stages leaves each view as a direct call with its seed makes it."""
    from one2345_ros.views.zero123.generator import Zero123Generator

    gen = Zero123Generator(tiny_pipeline(seed=4), preset="fast", steps_stage1=2, steps_stage2=2, max_batch=16)
    fractions = []
    result = run_one2345_plan(gen, _input(), lambda views: 100.0, seed=7, progress=lambda s, f: fractions.append(f))
    assert fractions[-1] == pytest.approx(1.0) and fractions == sorted(fractions)
    cleaned_direct = gen.generate(
        np.where(result.images["9"] >= 253, 255, result.images["9"]).astype(np.uint8), (-30.0, 120.0),
        [(0.0, 10.0, 0.0)], 100.0, [view_seed(7, "9_3")], stage=2,
    )  # fmt: skip
    assert cleaned_direct.shape == (1, 256, 256, 3)
    assert np.abs(cleaned_direct[0].astype(int) - result.images["9_3"].astype(int)).max() <= 1
