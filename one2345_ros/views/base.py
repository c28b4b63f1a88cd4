"""The ViewGenerator protocol: one conditioning image + relative views -> images.

Contract (DESIGN.md):
``generate(cond_image, cond_pose, targets, input_polar_deg, seeds, progress)``

* ``cond_image``: uint8 [256, 256, 3] RGB on white.
* ``cond_pose``: (polar_deg, azimuth_deg) of ``cond_image`` relative to the input
  view ((0, 0) for the input itself, (d_polar, d_azimuth) of a stage-1 view).
* ``targets``: (d_polar_deg, d_azimuth_deg, d_radius) relative to ``cond_image``.
* ``input_polar_deg``: absolute polar angle of the input view if known (Stable
  Zero123 needs the conditioning view's absolute polar; oracles ignore it).
* ``seeds``: one per target, so an image does not depend on batching.
* ``progress``: optional ``callable(done: int, total: int)``.

Returns uint8 [N, 256, 256, 3] RGB on white. Generators answer with images only:
no ground truth leaks to the elevation estimator or the metric stage.

Optional: ``generate_batch(requests: list[ViewRequest], input_polar_deg, progress,
stage=1) -> list[images]`` runs the targets of several conditioning images at once
(one denoising loop for a diffusion model), each request with its own input polar when
it has one; ``stage`` (1 or 2) selects the plan stage's step count. views/plan.py uses it
when present.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class ViewRequest:
    """One call's worth of targets for one conditioning image.

    ``input_polar_deg``: the absolute polar of this request's input view when known (Stable
    Zero123 conditions on it); None = the call's ``input_polar_deg`` argument, else the default.
    """

    cond_image: np.ndarray
    cond_pose: tuple[float, float]
    targets: tuple[tuple[float, float, float], ...]
    seeds: tuple[int, ...]
    input_polar_deg: float | None = None


@runtime_checkable
class ViewGenerator(Protocol):
    name: str
    """'zero123' or 'oracle' (recorded in result.json)."""

    def generate(
        self,
        cond_image: np.ndarray,
        cond_pose: tuple[float, float],
        targets: Sequence[tuple[float, float, float]],
        input_polar_deg: float | None,
        seeds: Sequence[int],
        progress: ProgressFn | None = None,
    ) -> np.ndarray: ...


def check_generate_args(cond_image: np.ndarray, targets: Sequence, seeds: Sequence[int]) -> None:
    """Validate the common arguments of :meth:`ViewGenerator.generate`."""
    if cond_image.dtype != np.uint8 or cond_image.ndim != 3 or cond_image.shape[2] != 3:
        raise ValueError(f"cond_image must be uint8 [H, W, 3] RGB, got {cond_image.dtype} {cond_image.shape}")
    if len(seeds) != len(targets):
        raise ValueError(f"need one seed per target: {len(seeds)} seeds for {len(targets)} targets")
    for t in targets:
        if len(t) != 3:
            raise ValueError(f"targets are (d_polar_deg, d_azimuth_deg, d_radius), got {t!r}")
