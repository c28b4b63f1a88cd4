"""One-2-3-45 view plan: order, ring choice, stage-2 cleaning, batching, names, seeds, poses, several objects."""

from __future__ import annotations

import numpy as np
import pytest
from zero123_tiny import tiny_pipeline

from one2345_ros.geometry import cameras as cam
from one2345_ros.geometry.cameras import one2345_plan
from one2345_ros.views.plan import ViewPlan, view_seed


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


def run_plan(gen, images, polars, prior=None, **kwargs):
    plan = ViewPlan(gen, images, **kwargs)
    seen = plan.first_views([prior] * len(images))
    return plan.complete(polars), seen


@pytest.mark.parametrize("polar, ring", [(60.0, ["4", "5", "6", "7"]), (110.0, ["8", "9", "10", "11"])])
def test_plan_order_ring_names_and_poses(polar, ring):
    gen = RecordingGenerator()
    (result,), (seen,) = run_plan(gen, [_input()], [polar], seed=100)
    assert result.polar_deg == polar
    plan = one2345_plan(polar)
    assert result.views.names == [v.name for v in plan]
    assert result.views.names[4:8] == ring
    assert result.stages == tuple(v.stage for v in plan)
    # Poses derived once, from the plan, in the canonical frame; the reference is the input camera.
    np.testing.assert_allclose(result.views.c2w, np.stack([v.c2w() for v in plan]), atol=1e-12)
    np.testing.assert_allclose(result.views.frame_c2w(), cam.spherical_to_c2w(polar, 0.0), atol=1e-12)
    sources = result.sources()
    assert len(sources.names) == 32 and all("_" in n for n in sources.names)
    # Four batches, stage 1 / 2 alternating, the stage-2 ones of 16 views from 4 images each.
    assert [(b[0], sum(len(r.targets) for r in b[2])) for b in gen.batches] == [(1, 4), (2, 16), (1, 4), (2, 16)]
    assert [{r.input_polar_deg for r in b[2]} for b in gen.batches] == [{None}, {None}, {polar}, {polar}]
    # The elevation views are 0_0..0_3: views of (-10, 0), (+10, 0), (0, -10), (0, +10) around view 0.
    assert [tuple(v[120, 120, :2]) for v in seen] == [(246, 0), (10, 0), (0, 246), (0, 10)]
    # Each stage-2 image is the neighbour of its parent: cond pose + offset.
    for i, v in enumerate(plan):
        np.testing.assert_array_equal(
            result.views.images[i][120, 120, :2], [int(v.d_polar_deg) % 256, int(v.d_azimuth_deg) % 256]
        )
    # Stage-2 conditioning images were cleaned: 254 -> 255, object untouched.
    for stage, _, requests in gen.batches:
        for r in requests:
            if stage == 2:
                assert r.cond_image[0, 0].tolist() == [255, 255, 255] and r.cond_image[120, 120, 2] == 7
            np.testing.assert_array_equal(r.seeds, [view_seed(100, n) for n in _names(r)])


def test_objects_share_every_batch():
    """Two objects: the same four calls, each twice as large, and each object's views as if alone."""
    gen = RecordingGenerator()
    other = _input()
    other[100:150, 100:150] = (200, 10, 10)
    both, _ = run_plan(gen, [_input(), other], [60.0, 110.0], seed=3)
    assert [(b[0], sum(len(r.targets) for r in b[2])) for b in gen.batches] == [(1, 8), (2, 32), (1, 8), (2, 32)]
    for image, polar, result in zip([_input(), other], [60.0, 110.0], both):
        (alone,), _ = run_plan(RecordingGenerator(), [image], [polar], seed=3)
        assert result.views.names == alone.views.names
        np.testing.assert_array_equal(result.views.images, alone.views.images)


def _names(request):
    """Plan names of a request's targets, recovered from its poses (cameras.STAGE1_OFFSETS order)."""
    from one2345_ros.geometry.cameras import ELEVATION_VIEW_OFFSETS, STAGE1_OFFSETS

    if request.cond_pose == (0.0, 0.0) and all(t[:2] in STAGE1_OFFSETS for t in request.targets):
        return [str(STAGE1_OFFSETS.index(t[:2])) for t in request.targets]
    parent = STAGE1_OFFSETS.index(tuple(request.cond_pose))
    return [f"{parent}_{ELEVATION_VIEW_OFFSETS.index(t[:2])}" for t in request.targets]


def test_both_rings_makes_three_batches():
    gen = RecordingGenerator()
    (result,), _ = run_plan(gen, [_input()], [60.0], both_rings=True)
    assert [(b[0], sum(len(r.targets) for r in b[2])) for b in gen.batches] == [(1, 12), (2, 16), (2, 16)]
    assert len(result.views.names) == 40


def test_plan_with_zero123_matches_a_direct_call():
    """Batching across conditioning images and stages leaves each view as a direct call with its seed makes it."""
    from one2345_ros.views.zero123.generator import Zero123Generator

    gen = Zero123Generator(tiny_pipeline(seed=4), preset="fast", steps_stage1=2, steps_stage2=2, max_batch=16)
    fractions = []
    (result,), _ = run_plan(gen, [_input()], [100.0], seed=7, progress=lambda s, f: fractions.append(f))
    assert fractions[-1] == pytest.approx(1.0) and fractions == sorted(fractions)
    images = dict(zip(result.views.names, result.views.images))
    cleaned_direct = gen.generate(
        np.where(images["9"] >= 253, 255, images["9"]).astype(np.uint8), (-30.0, 120.0),
        [(0.0, 10.0, 0.0)], 100.0, [view_seed(7, "9_3")], stage=2,
    )  # fmt: skip
    assert cleaned_direct.shape == (1, 256, 256, 3)
    assert np.abs(cleaned_direct[0].astype(int) - images["9_3"].astype(int)).max() <= 1
