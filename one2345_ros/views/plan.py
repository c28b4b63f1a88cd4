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

The polar estimate between B and C is the pipeline's (elevation/), not the plan's:
:class:`ViewPlan` runs A+B (:meth:`ViewPlan.first_views`), hands back the four elevation
views, and runs C+D for the polar it is given (:meth:`ViewPlan.complete`). Several objects
share every call (one denoising loop for all of them).

Stage-2 conditioning images are cleaned as the original does (pixels >= 253 set
to 255). Every view has its own seed (``seed + view number``), so with a seeded
generator the images do not depend on this batching.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ..geometry import cameras as cam
from ..geometry.cameras import ELEVATION_VIEW_OFFSETS, STAGE1_OFFSETS, one2345_plan, stage1_indices
from ..timing import StageProgressFn, StageTimer
from ..types import STAGE2_INPUT_WHITE_THRESHOLD, ViewSet
from .base import ViewGenerator, ViewRequest

SECOND_RINGS = (4, 5, 6, 7, 8, 9, 10, 11)


@dataclass
class PlannedViews:
    """One object's 40 planned views, posed once, in the canonical frame (input view at azimuth 0).

    ``views``: ViewSet in cameras.one2345_plan order, names "0", "4", "0_2", ...; its
    ``reference_c2w`` is the input camera (One-2-3-45's stage1_8/0.png). ``stages``: 1 or 2 per view.
    """

    views: ViewSet
    stages: tuple[int, ...]
    polar_deg: float
    """Input polar the poses and the second ring were chosen for."""
    conditioning_polar_deg: float | None
    """Input polar given to the generator before the elevation was known (Stable Zero123's prior); None = its default."""

    def sources(self) -> ViewSet:
        """The 32 stage-2 views: what the reconstruction uses."""
        return self.views.select([i for i, s in enumerate(self.stages) if s == 2])


def posed_views(images: dict[str, np.ndarray], polar_deg: float, conditioning_polar_deg: float | None) -> PlannedViews:
    """The plan's views for ``polar_deg``, posed from cameras.one2345_plan: the one place poses are derived."""
    plan = one2345_plan(polar_deg)
    stack = np.stack([images[v.name] for v in plan])
    views = ViewSet(
        images=stack,
        K=np.broadcast_to(cam.view_intrinsics(stack.shape[1]), (len(plan), 3, 3)).copy(),
        c2w=np.stack([v.c2w() for v in plan]),
        names=[v.name for v in plan],
        near_far=cam.ONE2345_NEAR_FAR,
        reference_c2w=cam.spherical_to_c2w(polar_deg, 0.0),
    )
    return PlannedViews(views, tuple(v.stage for v in plan), float(polar_deg), conditioning_polar_deg)


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
    stage: int,
    progress: Callable[[int, int], None] | None,
) -> list[np.ndarray]:
    """One batch: ``generate_batch`` (one denoising loop) when the generator has it, else one call per request."""
    if hasattr(generator, "generate_batch"):
        return generator.generate_batch(requests, None, progress, stage=stage)
    out = []
    for k, r in enumerate(requests):
        inner = None if progress is None else (lambda d, t, k=k: progress(k * t + d, len(requests) * t))
        out.append(generator.generate(r.cond_image, r.cond_pose, r.targets, r.input_polar_deg, r.seeds, inner))
    return out


class ViewPlan:
    """One-2-3-45's view plan for one or several objects, in two steps around the elevation estimate.

    Args:
        generator: any ViewGenerator (Zero123, the oracle...), shared by every object, or one per
            object (objects with the same generator share its calls).
        input_images: one uint8 [256, 256, 3] preprocessed input per object.
        seed: base seed (:func:`view_seed`), the same for every object.
        both_rings: generate both second-ring candidates in the first call (one fewer sequential call).
        progress: ``callback(stage, fraction of the plan done)``.
        timer: receives views_stage1 / views_stage2 seconds.
    """

    def __init__(
        self,
        generator: ViewGenerator | Sequence[ViewGenerator],
        input_images: Sequence[np.ndarray],
        seed: int = 0,
        both_rings: bool = False,
        progress: StageProgressFn | None = None,
        timer: StageTimer | None = None,
    ):
        self.inputs = list(input_images)
        if isinstance(generator, (list, tuple)):
            if len(generator) != len(self.inputs):
                raise ValueError(f"{len(generator)} generators for {len(self.inputs)} objects")
            self.generators = list(generator)
        else:
            self.generators = [generator] * len(self.inputs)
        self.seed = seed
        self.both_rings = both_rings
        self.progress = progress
        self.timer = timer or StageTimer()
        self.images: list[dict[str, np.ndarray]] = [{} for _ in self.inputs]
        self.priors: list[float | None] = [None] * len(self.inputs)
        self._done = 0
        self._total = len(self.inputs) * (44 if both_rings else 40)

    # ------------------------------------------------------------------ steps

    def first_views(self, polar_priors: Sequence[float | None] | None = None) -> list[np.ndarray]:
        """Stage-1 views 0-3 (and both rings with ``both_rings``) and their stage-2 neighbours.

        ``polar_priors``: each object's absolute input polar when known before any image
        (gravity), for Stable Zero123. Returns each object's four elevation views
        ``0_0..0_3`` (uint8 [4, 256, 256, 3]).
        """
        self.priors = list(polar_priors) if polar_priors is not None else [None] * len(self.inputs)
        first = [0, 1, 2, 3] + (list(SECOND_RINGS) if self.both_rings else [])
        self._stage1([first] * len(self.inputs), self.priors, "first views")
        self._stage2([[0, 1, 2, 3]] * len(self.inputs), self.priors, "first views")
        return [np.stack([imgs[f"0_{j}"] for j in range(4)]) for imgs in self.images]

    def complete(self, polars_deg: Sequence[float]) -> list[PlannedViews]:
        """The second ring chosen by each object's polar, its stage-2 neighbours, and every view posed."""
        polars = [float(p) for p in polars_deg]
        rings = [stage1_indices(p)[4:] for p in polars]
        if not self.both_rings:
            self._stage1(rings, polars, "remaining views")
        self._stage2(rings, polars, "remaining views")
        return [posed_views(imgs, p, prior) for imgs, p, prior in zip(self.images, polars, self.priors)]

    # ------------------------------------------------------------------ batches

    def _stage1(self, indices: list[list[int]], polars, label: str) -> None:
        requests = []
        for k, (image, idx, polar) in enumerate(zip(self.inputs, indices, polars)):
            targets = tuple((STAGE1_OFFSETS[i][0], STAGE1_OFFSETS[i][1], 0.0) for i in idx)
            seeds = tuple(view_seed(self.seed, str(i)) for i in idx)
            requests.append(ViewRequest(image, (0.0, 0.0), targets, seeds, polar))
        owners = list(range(len(requests)))
        for k, (idx, views) in enumerate(zip(indices, self._run(requests, owners, 1, "views_stage1", label))):
            self.images[k].update({str(i): v for i, v in zip(idx, views)})

    def _stage2(self, parents: list[list[int]], polars, label: str) -> None:
        requests, owners = [], []
        targets = tuple((dp, da, 0.0) for dp, da in ELEVATION_VIEW_OFFSETS)
        for k, (idx, polar) in enumerate(zip(parents, polars)):
            for i in idx:
                names = [f"{i}_{j}" for j in range(len(ELEVATION_VIEW_OFFSETS))]
                cond = clean_stage2_input(self.images[k][str(i)])
                seeds = tuple(view_seed(self.seed, n) for n in names)
                requests.append(ViewRequest(cond, STAGE1_OFFSETS[i], targets, seeds, polar))
                owners.append((k, i))
        for (k, i), views in zip(owners, self._run(requests, [k for k, _ in owners], 2, "views_stage2", label)):
            self.images[k].update({f"{i}_{j}": v for j, v in enumerate(views)})

    def _run(self, requests: list[ViewRequest], owners: list[int], stage: int, timing_key: str,
             label: str) -> list[np.ndarray]:  # fmt: skip
        """The requests, one call per distinct generator (one for every object with Zero123)."""
        report = self.progress
        groups: dict[int, list[int]] = {}
        for i, owner in enumerate(owners):
            groups.setdefault(id(self.generators[owner]), []).append(i)
        out: list[np.ndarray] = [None] * len(requests)  # type: ignore[list-item]
        with self.timer.stage(timing_key):
            for members in groups.values():
                batch = [requests[i] for i in members]
                n = sum(len(r.targets) for r in batch)

                def inner(done: int, total: int, n: int = n) -> None:
                    if report is not None:
                        report(label, (self._done + n * done / max(total, 1)) / self._total)

                views = run_batch(self.generators[owners[members[0]]], batch, stage, inner if report else None)
                for i, v in zip(members, views):
                    out[i] = v
                self._done += n
        if report is not None:
            report(label, self._done / self._total)
        return out
