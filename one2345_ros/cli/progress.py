"""Progress bars and stage-time tables for the commands."""

from __future__ import annotations


class StageBar:
    """tqdm progress bar over the pipeline's overall fraction, labelled by stage."""

    def __init__(self, enabled: bool = True):
        from tqdm import tqdm

        self.bar = tqdm(total=100, bar_format="{desc:<14} {bar} {percentage:3.0f}% {elapsed}", disable=not enabled)

    def __call__(self, stage: str, fraction: float) -> None:
        self.bar.set_description_str(stage)
        self.bar.update(max(0, round(100 * fraction) - self.bar.n))

    def close(self) -> None:
        self.bar.close()


def print_timings(timings: dict[str, float]) -> None:
    total = sum(timings.values())
    print("stage          seconds")
    for name, seconds in timings.items():
        print(f"  {name:<12} {seconds:8.2f}")
    print(f"  {'total':<12} {total:8.2f}")
