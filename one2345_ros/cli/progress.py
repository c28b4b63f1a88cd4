"""Progress bars and stage-time tables for the commands."""

from __future__ import annotations


class StageBar:
    """tqdm progress bar over the pipeline's overall fraction, labelled by stage."""

    def __init__(self, enabled: bool = True):
        from tqdm import tqdm

        self.bar = tqdm(total=100, bar_format="{desc:<16} {bar} {percentage:3.0f}% {elapsed}", disable=not enabled)

    def __call__(self, stage: str, fraction: float) -> None:
        self.bar.set_description_str(stage)
        self.bar.update(max(0, round(100 * fraction) - self.bar.n))

    def close(self) -> None:
        self.bar.close()


def print_timings(timings: dict[str, float]) -> None:
    """Per-stage seconds; sub-stages (``mesh.colors``) indented under their stage and not summed twice."""
    total = sum(v for k, v in timings.items() if "." not in k)
    print("stage                  seconds")
    for name, seconds in timings.items():
        label = f"  {name.split('.', 1)[1]}" if "." in name else name
        print(f"  {label:<20} {seconds:8.2f}")
    print(f"  {'total':<20} {total:8.2f}")
