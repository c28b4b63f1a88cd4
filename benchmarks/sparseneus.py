"""SparseNeuS benchmark: time and peak memory per stage of a full-size reconstruction.

Full-size network (the checkpoint's widths) with random weights, 32 views of
256x256 (a rendered sphere), 96^3 volume, 256^3 mesh grid. The SDF MLP keeps the
original's geometric init with radius 0.3, so the mesh stages run on a sphere of
radius 0.3 of the normalised frame (DESIGN.md: time the mesh stages on a fixed
sphere and report the vertex count) while every stage runs the real network.
Peak memory: the process's resident size sampled every 5 ms during each stage
(and the process maximum). Prints a table; writes benchmarks/results/sparseneus_<device>.json.

``--backend torchsparse`` (torchsparse 1.4, tools/build_torchsparse.sh) runs the
reconstruction on torchsparse and then, in the same process and on the same cost
volume, times the 3D CNN stage on both backends (dense first, ``--repeat`` times
each, best time): seconds and peak RSS above the stage's starting RSS, as
torchsparse / dense ratios, plus the largest output difference. Large blocks are
then allocated with mmap at a fixed threshold (mallopt) so that memory freed by
one measurement is returned and not silently reused by the next. Writes
benchmarks/results/sparseneus_<device>_torchsparse.json.

    python benchmarks/sparseneus.py [--threads 2] [--device cpu] [--full-grid] [--backend dense|torchsparse]
                                    [--repeat 1] [--out PATH]
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
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
        self.start_mb: dict[str, float] = {}
        self.cuda_peak_mb: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str):
        peak = [rss_mb()]
        self.start_mb[name] = peak[0]
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


def fixed_mmap_threshold(nbytes: int = 1 << 20) -> bool:
    """glibc: blocks >= nbytes from mmap, unmapped on free (no dynamic threshold)."""
    try:
        return bool(ctypes.CDLL("libc.so.6").mallopt(-3, nbytes))  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        return False


def compare_cnn_backends(net: SparseNeuS, cost: torch.Tensor, mask: torch.Tensor, device, repeat: int) -> dict:
    """The 3D CNN stage on both backends, same input: best seconds, peak RSS above the start."""
    out: dict = {"seconds": {}, "peak_rss_delta_mb": {}, "cuda_peak_mb": {}}
    volumes = {}
    for backend in ("dense", "torchsparse"):
        net.configure(backend=backend)
        for _ in range(repeat):
            volumes.pop(backend, None)  # free the previous output before measuring again
            timer = MemoryTimer(device)
            with timer.stage("cnn_3d"):
                volumes[backend] = net.regularize(cost, mask)
            delta = timer.peak_mb["cnn_3d"] - timer.start_mb["cnn_3d"]
            out["seconds"][backend] = min(out["seconds"].get(backend, float("inf")), timer.timings["cnn_3d"])
            out["peak_rss_delta_mb"][backend] = max(out["peak_rss_delta_mb"].get(backend, 0.0), delta)
            if timer.cuda_peak_mb:
                out["cuda_peak_mb"][backend] = timer.cuda_peak_mb["cnn_3d"]
    diff = (volumes["torchsparse"] - volumes["dense"]).abs().max().item()
    out["ratio_torchsparse_over_dense"] = {
        "seconds": out["seconds"]["torchsparse"] / out["seconds"]["dense"],
        "peak_rss_delta_mb": out["peak_rss_delta_mb"]["torchsparse"] / max(out["peak_rss_delta_mb"]["dense"], 1e-9),
    }
    out["max_abs_difference"] = diff
    out["max_relative_difference"] = diff / volumes["dense"].abs().max().item()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--full-grid", action="store_true", help="evaluate all 256^3 grid points (as the original)")
    ap.add_argument("--backend", choices=("dense", "torchsparse"), default="dense", help="sparse 3D CNN backend")
    ap.add_argument("--repeat", type=int, default=1, help="--backend torchsparse: 3D CNN runs per backend")
    ap.add_argument("--out", type=Path, help="JSON path (default: benchmarks/results/sparseneus_<device>*.json)")
    args = ap.parse_args()
    compare = args.backend == "torchsparse"
    mmap_fixed = fixed_mmap_threshold() if compare else False
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    load_start = os.getloadavg()
    views = render_sphere_views(size=256)
    net = SparseNeuS()
    net.sdf_network_lod0.sdf_layer._geometric_init(39, 128, 16, 0.3)
    cfg = SparseNeuSConfig(device=args.device, mesh_near_surface=not args.full_grid, backend=args.backend)
    timer = MemoryTimer(device)
    stats = SparseNeuSStats()
    captured = {}
    if compare:
        regularize = net.regularize

        def capture(cost, mask):
            captured["cost"], captured["mask"] = cost, mask
            return regularize(cost, mask)

        net.regularize = capture
    start = time.perf_counter()
    surface = reconstruct_sparseneus(views, cfg, net, timer=timer, stats=stats)
    mesh = make_mesh(surface, views, MeshConfig(), timer)  # the one mesh stage: marching cubes, clean, colours
    verts, faces = mesh.vertices, mesh.faces
    total = time.perf_counter() - start
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    print(f"SparseNeuS full size, 32 views 256x256, 96^3 volume, 256^3 grid, {args.device} ({name}), "
          f"{args.threads} threads, backend {args.backend}")  # fmt: skip
    print(f"{'stage':<16}{'seconds':>9}{'peak RSS MB':>13}" + ("  CUDA peak MB" if timer.cuda_peak_mb else ""))
    for stage, sec in timer.timings.items():
        extra = f"{timer.cuda_peak_mb[stage]:>14.0f}" if timer.cuda_peak_mb else ""
        print(f"{stage:<16}{sec:>9.2f}{timer.peak_mb[stage]:>13.0f}{extra}")
    max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(f"{'total':<16}{total:>9.2f}{max_rss:>13.0f}  (process max RSS)")
    print(f"active voxels {stats.active_voxels}, SDF evaluations {stats.sdf_evaluations}, "
          f"vertices {len(verts)}, faces {len(faces)}")  # fmt: skip
    result = {
        "device": args.device, "device_name": name, "threads": args.threads, "full_grid": args.full_grid,
        "backend": args.backend,
        "seconds": timer.timings, "peak_rss_mb": timer.peak_mb, "cuda_peak_mb": timer.cuda_peak_mb,
        "total_seconds": total, "process_max_rss_mb": max_rss, "active_voxels": stats.active_voxels,
        "sdf_evaluations": stats.sdf_evaluations, "vertices": len(verts), "faces": len(faces),
        "torch": torch.__version__, "note": "CPU shared with other jobs while measured (contention)",
    }  # fmt: skip
    suffix = ""
    if compare:
        import torchsparse

        del net.regularize  # the class's method again
        cnn = compare_cnn_backends(net, captured.pop("cost"), captured.pop("mask"), device, args.repeat)
        ratio = cnn["ratio_torchsparse_over_dense"]
        print(f"3D CNN stage, same input, best of {args.repeat}: "
              f"dense {cnn['seconds']['dense']:.2f} s +{cnn['peak_rss_delta_mb']['dense']:.0f} MB, "
              f"torchsparse {cnn['seconds']['torchsparse']:.2f} s +{cnn['peak_rss_delta_mb']['torchsparse']:.0f} MB; "
              f"ratio {ratio['seconds']:.1f}x time, {ratio['peak_rss_delta_mb']:.2f}x memory; "
              f"max relative difference {cnn['max_relative_difference']:.1e}")  # fmt: skip
        result.update(torchsparse=torchsparse.__version__, cnn_3d_backends=cnn, repeat=args.repeat,
                      mmap_threshold_fixed=mmap_fixed)  # fmt: skip
        suffix = "_torchsparse"
    result["load_average_start_end"] = [load_start[0], os.getloadavg()[0]]
    out = args.out or ROOT / "benchmarks" / "results" / f"sparseneus_{device.type}{suffix}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
