"""SparseNeuS benchmark: time and peak memory per stage of a full-size reconstruction.

Full-size network (the checkpoint's widths) with random weights, 32 views of
256x256 (a rendered sphere), 96^3 volume, 256^3 mesh grid. The SDF MLP keeps the
original's geometric init with radius 0.3, so the mesh stages run on a sphere of
radius 0.3 of the normalised frame (DESIGN.md: time the mesh stages on a fixed
sphere and report the vertex count) while every stage runs the real network.
Peak memory: the process's resident size sampled every 5 ms during each stage
(and the process maximum). Prints a table; writes benchmarks/results/sparseneus_<device>.json.

    python benchmarks/sparseneus.py [--threads 2] [--device cpu] [--full-grid]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "test"))

from sparseneus_fixtures import render_sphere_views  # noqa: E402

from one2345_ros.config import MeshConfig, SparseNeuSConfig  # noqa: E402
from one2345_ros.mesh import make_mesh  # noqa: E402
from one2345_ros.recon.sparseneus import SparseNeuS, reconstruct_sparseneus  # noqa: E402
from one2345_ros.recon.sparseneus.reconstruct import SparseNeuSStats  # noqa: E402
from one2345_ros.timing import StageTimer  # noqa: E402


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


class MemoryTimer(StageTimer):
    """StageTimer that also records the peak RSS (and CUDA peak) of each stage."""

    def __init__(self, device: torch.device) -> None:
        super().__init__()
        self.device = device
        self.peak_mb: dict[str, float] = {}
        self.cuda_peak_mb: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str):
        peak = [rss_mb()]
        stop = threading.Event()

        def sample():
            while not stop.wait(0.005):
                peak[0] = max(peak[0], rss_mb())

        t = threading.Thread(target=sample, daemon=True)
        t.start()
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        try:
            with super().stage(name):
                yield
                if self.device.type == "cuda":
                    torch.cuda.synchronize()
        finally:
            stop.set()
            t.join()
            self.peak_mb[name] = max(peak[0], rss_mb())
            if self.device.type == "cuda":
                self.cuda_peak_mb[name] = torch.cuda.max_memory_allocated() / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--full-grid", action="store_true", help="evaluate all 256^3 grid points (as the original)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    views = render_sphere_views(size=256)
    net = SparseNeuS()
    net.sdf_network_lod0.sdf_layer._geometric_init(39, 128, 16, 0.3)
    cfg = SparseNeuSConfig(device=args.device, mesh_near_surface=not args.full_grid)
    timer = MemoryTimer(device)
    stats = SparseNeuSStats()
    start = time.perf_counter()
    surface = reconstruct_sparseneus(views, cfg, net, timer=timer, stats=stats)
    mesh = make_mesh(surface, views, MeshConfig(), timer)  # the one mesh stage: marching cubes, clean, colours
    verts, faces = mesh.vertices, mesh.faces
    total = time.perf_counter() - start
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    print(f"SparseNeuS full size, 32 views 256x256, 96^3 volume, 256^3 grid, {args.device} ({name}), "
          f"{args.threads} threads")  # fmt: skip
    print(f"{'stage':<16}{'seconds':>9}{'peak RSS MB':>13}" + ("  CUDA peak MB" if timer.cuda_peak_mb else ""))
    for stage, sec in timer.timings.items():
        extra = f"{timer.cuda_peak_mb[stage]:>14.0f}" if timer.cuda_peak_mb else ""
        print(f"{stage:<16}{sec:>9.2f}{timer.peak_mb[stage]:>13.0f}{extra}")
    max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(f"{'total':<16}{total:>9.2f}{max_rss:>13.0f}  (process max RSS)")
    print(f"active voxels {stats.active_voxels}, SDF evaluations {stats.sdf_evaluations}, "
          f"vertices {len(verts)}, faces {len(faces)}")  # fmt: skip
    out = ROOT / "benchmarks" / "results" / f"sparseneus_{device.type}.json"
    out.write_text(json.dumps({
        "device": args.device, "device_name": name, "threads": args.threads, "full_grid": args.full_grid,
        "seconds": timer.timings, "peak_rss_mb": timer.peak_mb, "cuda_peak_mb": timer.cuda_peak_mb,
        "total_seconds": total, "process_max_rss_mb": max_rss, "active_voxels": stats.active_voxels,
        "sdf_evaluations": stats.sdf_evaluations, "vertices": len(verts), "faces": len(faces),
        "torch": torch.__version__, "note": "CPU shared with other jobs while measured (contention)",
    }, indent=1) + "\n")  # fmt: skip
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
