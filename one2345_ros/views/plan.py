"""One-2-3-45's two-stage view plan, with any ViewGenerator.

The original (run.py) makes 10 sampling calls of 4 views. The dependencies allow
far fewer, larger batches, so this runs:

====  =====================================================  ===========  =======
call  views                                                   conditioned  stage
====  =====================================================  ===========  =======
A     stage-1 views 0-3 (plus 4-11 with ``both_rings``)      input         1
B     stage-2 neighbours of views 0-3 (16)                   views 0-3     2
--    polar estimate from 0_0..0_3 -> second ring
C     the chosen ring, 4-7 or 8-11 (skipped with both_rings) input         1
D     stage-2 neighbours of the ring (16)                    ring views    2
====  =====================================================  ===========  =======

Stage-2 conditioning images are cleaned as the original does (pixels >= 253 set
to 255). Every view has its own seed (``seed + view number``), so with a seeded
generator the images do not depend on this batching.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from ..geometry.cameras import ELEVATION_VIEW_OFFSETS, STAGE1_OFFSETS, PlannedView, one2345_plan, stage1_indices
from ..types import STAGE2_INPUT_WHITE_THRESHOLD
from ..timing import StageProgressFn, StageTimer
from .base import ViewGenerator, ViewRequest

FALLBACK_POLAR_DEG = 90.0
"""Polar used when the estimate fails (One-2-3-45 run.py)."""

PolarEstimator = Callable[[Sequence[np.ndarray]], "float | None"]
"""Four views 0_0..0_3 (uint8 [256, 256, 3]) -> input polar in degrees, or None when unreliable."""


@dataclass
class PlanResult:
    """The 40 planned images and the polar they were planned for."""

    images: dict[str, np.ndarray]
    """Plan name ("0", "4", "0_2", ...) -> uint8 [256, 256, 3], in cameras.one2345_plan order."""
    polar_deg: float
    """Input polar used to choose the ring and the poses (estimate, or the fallback)."""
    polar_source: str
    """'estimate' or 'fallback'."""
    conditioning_polar_deg: float | None
    """Input polar given to the generator before the estimate (Stable Zero123's prior); None = generator default."""
    plan: list[PlannedView]
    timings: dict[str, float] = field(default_factory=dict)

    def stage2(self) -> tuple[list[PlannedView], np.ndarray]:
        """The 32 reconstruction sources: plan entries and images (32, 256, 256, 3)."""
        views = [v for v in self.plan if v.stage == 2]
        return views, np.stack([self.images[v.name] for v in views])

    def ordered(self) -> tuple[list[str], np.ndarray]:
        """All 40 views in plan order (for contact sheets and views folders)."""
        names = [v.name for v in self.plan]
        return names, np.stack([self.images[n] for n in names])


def view_seed(seed: int, name: str) -> int:
    """Seed of one planned view: stage-1 view i -> seed + i, stage-2 view i_j -> seed + 12 + 4 i + j."""
    if "_" in name:
        i, j = (int(x) for x in name.split("_"))
        return seed + len(STAGE1_OFFSETS) + 4 * i + j
    return seed + int(name)


def clean_stage2_input(image: np.ndarray) -> np.ndarray:
    """Near-white pixels (any channel >= 253) set to 255, per channel as zero123_utils.py does."""
    out = image.copy()
    out[out >= STAGE2_INPUT_WHITE_THRESHOLD] = 255
    return out


def run_batch(
    generator: ViewGenerator,
    requests: list[ViewRequest],
    input_polar_deg: float | None,
    stage: int,
    progress: Callable[[int, int], None] | None,
) -> list[np.ndarray]:
    """One batch: ``generate_batch`` (one denoising loop) when the generator has it, else one call per request."""
    if hasattr(generator, "generate_batch"):
        return generator.generate_batch(requests, input_polar_deg, progress, stage=stage)
    out = []
    for k, r in enumerate(requests):
        inner = None if progress is None else (lambda d, t, k=k: progress(k * t + d, len(requests) * t))
        out.append(generator.generate(r.cond_image, r.cond_pose, r.targets, input_polar_deg, r.seeds, inner))
    return out


def run_one2345_plan(
    generator: ViewGenerator,
    input_image: np.ndarray,
    estimate_polar: PolarEstimator,
    seed: int = 0,
    input_polar_prior_deg: float | None = None,
    both_rings: bool = False,
    input_azimuth_deg: float = 0.0,
    progress: StageProgressFn | None = None,
) -> PlanResult:
    """Generate the 8 stage-1 and 32 stage-2 views of One-2-3-45 for ``input_image`` (uint8 [256, 256, 3]).

    ``input_polar_prior_deg`` (e.g. from gravity) is what the generator gets as the
    input polar until the estimate exists; ``input_azimuth_deg`` only sets the
    absolute azimuths of the returned plan.
    """
    timer = StageTimer()
    rings = {1: list(range(4, 8)), 2: list(range(8, 12))}
    total = 44 if both_rings else 40
    done = [0]

    def batch(requests, polar, stage, timing_key):
        n = sum(len(r.targets) for r in requests)

        def inner(d, t):
            if progress is not None:
                progress(timing_key, (done[0] + n * d / max(t, 1)) / total)

        with timer.stage(timing_key):
            out = run_batch(generator, requests, polar, stage, inner if progress else None)
        done[0] += n
        if progress is not None:
            progress(timing_key, done[0] / total)
        return out

    def stage1_request(indices):
        targets = tuple((STAGE1_OFFSETS[i][0], STAGE1_OFFSETS[i][1], 0.0) for i in indices)
        return ViewRequest(input_image, (0.0, 0.0), targets, tuple(view_seed(seed, str(i)) for i in indices))

    def stage2_request(i, image):
        targets = tuple((dp, da, 0.0) for dp, da in ELEVATION_VIEW_OFFSETS)
        names = [f"{i}_{j}" for j in range(len(ELEVATION_VIEW_OFFSETS))]
        pose = STAGE1_OFFSETS[i]
        return ViewRequest(clean_stage2_input(image), pose, targets, tuple(view_seed(seed, n) for n in names))

    stage1: dict[int, np.ndarray] = {}
    first = [0, 1, 2, 3] + (rings[1] + rings[2] if both_rings else [])
    (views,) = batch([stage1_request(first)], input_polar_prior_deg, 1, "views_stage1")
    stage1.update(zip(first, views))

    stage2: dict[str, np.ndarray] = {}
    for i, views in zip(range(4), batch([stage2_request(i, stage1[i]) for i in range(4)], input_polar_prior_deg, 2, "views_stage2")):
        stage2.update({f"{i}_{j}": v for j, v in enumerate(views)})

    with timer.stage("elevation"):
        estimate = estimate_polar([stage2[f"0_{j}"] for j in range(4)])
    polar, source = (float(estimate), "estimate") if estimate is not None else (FALLBACK_POLAR_DEG, "fallback")
    ring = stage1_indices(polar)[4:]

    if not both_rings:
        (views,) = batch([stage1_request(ring)], polar, 1, "views_stage1")
        stage1.update(zip(ring, views))
    results = batch([stage2_request(i, stage1[i]) for i in ring], polar, 2, "views_stage2")
    for i, views in zip(ring, results):
        stage2.update({f"{i}_{j}": v for j, v in enumerate(views)})

    plan = one2345_plan(polar, input_azimuth_deg)
    images = {v.name: (stage1[int(v.name)] if v.stage == 1 else stage2[v.name]) for v in plan}
    return PlanResult(images, polar, source, input_polar_prior_deg, plan, dict(timer.timings))
