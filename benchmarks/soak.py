"""Soak: many reconstructions in one process; does memory grow?

One Pipeline (as the node keeps it) reconstructs the demo scene (a bundled object, oracle views,
depth and camera info, the visual hull) ``--runs`` times and writes every result folder, as the
node does. The process RSS is read after each run; the slope of a least-squares line through
runs 10..N (the first runs fill caches) is the growth per run. Goal: under 0.2 MB per run.

    python benchmarks/soak.py --runs 100
"""

from __future__ import annotations

import argparse
import gc
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from one2345_ros.config import Config  # noqa: E402
from one2345_ros.inputs.calibration import make_calibration  # noqa: E402
from one2345_ros.inputs.prepare import prepare_inputs  # noqa: E402
from one2345_ros.pipeline import Pipeline  # noqa: E402
from one2345_ros.results.atomic import write_json_atomic  # noqa: E402
from one2345_ros.results.files import write_result  # noqa: E402
from one2345_ros.synthetic.assets import object_path  # noqa: E402
from one2345_ros.synthetic.scenes import DEMO_HEIGHT, DEMO_WIDTH, demo_scene  # noqa: E402

WARMUP = 10
"""Runs left out of the slope (allocator pools, caches, lazily built renderers)."""
GOAL_MB_PER_RUN = 0.2


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def soak(runs: int, name: str, resolution: int) -> dict:
    scene = demo_scene(name, seed=0)
    cfg = Config(views="oracle", backend="hull")
    cfg.hull.resolution = resolution
    cfg.oracle.mesh, cfg.oracle.input_c2w = str(object_path(name)), scene.c2w.reshape(-1).tolist()
    camera = make_calibration(scene.K, [], "plumb_bob", DEMO_WIDTH, DEMO_HEIGHT, "soak camera")
    pipeline = Pipeline(cfg)
    out_root = Path(tempfile.mkdtemp(prefix="one2345-soak-"))
    rss, seconds = [], []
    try:
        for k in range(runs):
            start = time.perf_counter()
            inputs = prepare_inputs(scene.image, scene.mask, cfg.inputs, depth=scene.depth, depth_encoding="32FC1",
                                    calibration=camera, frame_id="camera", stamp_ns=k)  # fmt: skip
            result = pipeline.reconstruct(inputs)
            folder = out_root / f"run_{k:03d}"
            write_result(folder, result, cfg.mesh)
            shutil.rmtree(folder)
            del result, inputs
            gc.collect()
            seconds.append(time.perf_counter() - start)
            rss.append(rss_mb())
            print(f"run {k + 1:3d}/{runs}: {seconds[-1]:5.2f} s, RSS {rss[-1]:8.1f} MB", flush=True)
    finally:
        shutil.rmtree(out_root, ignore_errors=True)
    x = np.arange(len(rss))[WARMUP:]
    slope = float(np.polyfit(x, np.asarray(rss)[WARMUP:], 1)[0]) if len(x) >= 2 else float("nan")
    return {"runs": runs, "object": name, "hull_resolution": resolution, "rss_mb": rss, "seconds": seconds,
            "slope_mb_per_run": slope, "warmup_runs": WARMUP, "goal_mb_per_run": GOAL_MB_PER_RUN}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--object", default="mallet")
    parser.add_argument("--resolution", type=int, default=128, help="hull grid resolution")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "soak.json"))
    args = parser.parse_args()
    report = soak(args.runs, args.object, args.resolution)
    rss = report["rss_mb"]
    print(f"\nRSS after run 1: {rss[0]:.1f} MB, after run {WARMUP}: {rss[min(WARMUP, len(rss)) - 1]:.1f} MB, "
          f"after run {len(rss)}: {rss[-1]:.1f} MB")  # fmt: skip
    verdict = "meets" if report["slope_mb_per_run"] < GOAL_MB_PER_RUN else "MISSES"
    print(f"slope over runs {WARMUP + 1}..{len(rss)}: {report['slope_mb_per_run']:.4f} MB per run "
          f"({verdict} the goal of < {GOAL_MB_PER_RUN} MB per run); "
          f"median {np.median(report['seconds']):.2f} s per run")  # fmt: skip
    report.update({"command": "python benchmarks/soak.py " + " ".join(f"--{k} {v}" for k, v in vars(args).items()),
                   "machine": f"{platform.processor() or platform.machine()}, CPU"})  # fmt: skip
    write_json_atomic(Path(args.out), report)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
