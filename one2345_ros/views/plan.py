"""One-2-3-45's two-stage view plan, run with any ViewGenerator.

Order of operations (run.py): stage-1 views 0-3 from the input; the four
elevation views (stage-2 neighbours of view 0); the polar estimate; the second
stage-1 ring chosen by that estimate; the remaining stage-2 neighbours. The calls
are grouped so that a diffusion generator sees few, large batches: the seven
remaining stage-2 groups go out as one ``generate_batch`` call when the generator
offers it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .. import cameras as cam
from ..thresholds import STAGE2_INPUT_WHITE_THRESHOLD
from ..timing import StageTimer
from .base import ViewGenerator, ViewRequest

PolarEstimator = Callable[[np.ndarray], float | None]
"""Four elevation views (4, 256, 256, 3) in ELEVATION_VIEW_OFFSETS order -> polar deg, or None."""

DEFAULT_POLAR_DEG = 90.0
"""Polar angle One-2-3-45 falls back to when estimation fails (run.py)."""


@dataclass
class PlanViews:
    """The generated views of one run of the plan."""

    polar_deg: float
    """Input polar angle the plan (second ring, poses) was laid out with."""
    plan: list[cam.PlannedView]
    images: dict[str, np.ndarray] = field(default_factory=dict)
    """uint8 [256, 256, 3] per view name ("0".."11", "0_0".."11_3")."""
    stable_polar_hint_deg: float | None = None
    """Absolute polar handed to the generator before the estimate existed."""

    def stage2(self) -> tuple[list[cam.PlannedView], np.ndarray]:
        """The 32 reconstruction sources: plan entries and images (32, 256, 256, 3)."""
        views = cam.stage2_views(self.plan)
        return views, np.stack([self.images[v.name] for v in views])

    def ordered(self) -> tuple[list[str], np.ndarray]:
        """All 40 views in plan order (for contact sheets and views folders)."""
        names = [v.name for v in self.plan]
        return names, np.stack([self.images[n] for n in names])


def clean_stage2_input(image: np.ndarray) -> np.ndarray:
    """Stage-2 conditioning images get near-white pixels set to white, as the original does."""
    out = image.copy()
    out[out >= STAGE2_INPUT_WHITE_THRESHOLD] = 255
    return out


def _generate_groups(generator: ViewGenerator, requests: list[ViewRequest], polar_hint, progress):
    if hasattr(generator, "generate_batch"):
        return generator.generate_batch(requests, polar_hint, progress)
    return [
        generator.generate(r.cond_image, r.cond_pose, list(r.targets), polar_hint, list(r.seeds), progress)
        for r in requests
    ]


def run_plan(
    generator: ViewGenerator,
    cond_image: np.ndarray,
    estimate_polar: PolarEstimator,
    *,
    polar_hint_deg: float | None = None,
    seed: int = 0,
    timer: StageTimer | None = None,
    progress: Callable[[str, float], None] | None = None,
) -> PlanViews:
    """Generate the 40 views of the plan for one preprocessed input image.

    Args:
        generator: any ViewGenerator.
        cond_image: uint8 [256, 256, 3] preprocessed input.
        estimate_polar: called once with the four elevation views; None means
            "unreliable" and the plan falls back to :data:`DEFAULT_POLAR_DEG`.
        polar_hint_deg: absolute input polar known before the estimate (gravity),
            for Stable Zero123; None -> 90.
        seed: base seed; stage-1 view i gets ``seed + i``, view "i_j" ``seed + 12 + 4i + j``,
            so an image does not depend on which ring the estimate selects.
        timer: records "views_stage1", "elevation", "views_stage2".
        progress: ``callback(stage, fraction of this plan done)``.
    """
    timer = timer or StageTimer()
    report = progress or (lambda stage, fraction: None)
    hint = DEFAULT_POLAR_DEG if polar_hint_deg is None else float(polar_hint_deg)
    seed_of = {str(i): seed + i for i in range(12)}
    seed_of.update({f"{i}_{j}": seed + 12 + 4 * i + j for i in range(12) for j in range(4)})
    images: dict[str, np.ndarray] = {}

    def stage1(indices: list[int]) -> None:
        targets = [(*cam.STAGE1_OFFSETS[i], 0.0) for i in indices]
        out = generator.generate(cond_image, (0.0, 0.0), targets, hint, [seed_of[str(i)] for i in indices], None)
        images.update({str(i): img for i, img in zip(indices, out)})

    def neighbour_request(parent: str) -> ViewRequest:
        i = int(parent)
        return ViewRequest(
            cond_image=clean_stage2_input(images[parent]),
            cond_pose=cam.STAGE1_OFFSETS[i],
            targets=tuple((dp, da, 0.0) for dp, da in cam.ELEVATION_VIEW_OFFSETS),
            seeds=tuple(seed_of[f"{parent}_{j}"] for j in range(4)),
        )

    with timer.stage("views_stage1"):
        report("views_stage1", 0.0)
        stage1([0, 1, 2, 3])
        report("views_stage1", 0.2)
        (elevation_views,) = _generate_groups(generator, [neighbour_request("0")], hint, None)
        images.update({f"0_{j}": img for j, img in enumerate(elevation_views)})
    with timer.stage("elevation"):
        report("elevation", 0.3)
        estimate = estimate_polar(np.stack(elevation_views))
    polar = DEFAULT_POLAR_DEG if estimate is None else float(estimate)
    plan = cam.one2345_plan(polar)
    with timer.stage("views_stage2"):
        report("views_stage2", 0.35)
        second_ring = cam.stage1_indices(polar)[4:]
        stage1(second_ring)
        report("views_stage2", 0.5)
        parents = [str(i) for i in cam.stage1_indices(polar)[1:]]
        groups = _generate_groups(generator, [neighbour_request(p) for p in parents], polar, None)
        for parent, group in zip(parents, groups):
            images.update({f"{parent}_{j}": img for j, img in enumerate(group)})
        report("views_stage2", 1.0)
    return PlanViews(polar_deg=polar, plan=plan, images=images, stable_polar_hint_deg=hint)
