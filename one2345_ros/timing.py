"""Per-stage timing and progress reporting shared by every pipeline stage."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import contextmanager

StageProgressFn = Callable[[str, float], None]
"""``callback(stage_name, fraction_done_of_whole_pipeline)``."""


class StageTimer:
    """Records wall-clock seconds per named stage, in the order the stages ran."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - start

    @property
    def total(self) -> float:
        return sum(self.timings.values())
