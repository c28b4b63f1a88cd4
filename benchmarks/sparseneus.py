"""SparseNeuS benchmark: time and peak memory per stage of a full-size reconstruction.

Full-size network (the checkpoint's widths) with random weights, 32 views of
256x256 (a rendered sphere), 96^3 volume, 256^3 mesh grid. The SDF MLP keeps the
original's geometric init with radius 0.3, so the mesh stages run on a sphere of
radius 0.3 of the normalised frame (DESIGN.md: time the mesh stages on a fixed
sphere and report the vertex count) while every stage runs the real network.

Default (dense backend): each configuration runs in its own subprocess, so that its
peak resident size (``ru_maxrss``) is its own: ``package`` (reconstruct_sparseneus and
the one mesh stage) and ``reference`` (test/sparseneus_reference.py, the inference
before the CPU speed work, through the same mesh stage), alternated ``--repeat`` times.
Per stage it reports the best seconds over the repeats (the machine may be shared:
the best run is the least disturbed one) and the peak RSS sampled every 5 ms during
the stage; the total is SparseNeuS plus the mesh stage (views and network set-up not
included); the ratio is reference / package, measured in the same run. The process CPU
time (all threads) is reported too: on a shared CPU it is the steadier measure of work
(``--threads 1`` makes it free of thread synchronisation). Prints a table;
writes benchmarks/results/sparseneus_<device>.json.

``--backend torchsparse`` (torchsparse 1.4, tools/build_torchsparse.sh) runs the
reconstruction on torchsparse in this process and then, in the same process and on
the same cost volume, times the 3D CNN stage on both backends (dense first, ``--repeat``
times each, best time): seconds and peak RSS above the stage's starting RSS, as
torchsparse / dense ratios, plus the largest output difference. Large blocks are
then allocated with mmap at a fixed threshold (mallopt) so that memory freed by
one measurement is returned and not silently reused by the next. Writes
benchmarks/results/sparseneus_<device>_torchsparse.json.

    python benchmarks/sparseneus.py [--threads 2] [--device cpu] [--full-grid] [--backend dense|torchsparse]
                                    [--repeat 3] [--configs package,reference] [--out PATH]
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
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
        self.cpu_seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str):
        cpu_start = time.process_time()
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
            self.cpu_seconds[name] = time.process_time() - cpu_start
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


def build_inputs(seed: int = 0):
    """The benchmark's views and network (random weights, the SDF MLP's geometric init, radius 0.3)."""
    torch.manual_seed(seed)
    views = render_sphere_views(size=256)
    net = SparseNeuS()
    net.sdf_network_lod0.sdf_layer._geometric_init(39, 128, 16, 0.3)
    return views, net


@torch.no_grad()
def reference_surface(views, net: SparseNeuS, cfg: SparseNeuSConfig, timer: StageTimer, stats: SparseNeuSStats):
    """The frozen reference chain (test/sparseneus_reference.py), stage by stage, as a Surface."""
    import numpy as np
    import sparseneus_reference as ref

    from one2345_ros.mesh import world_similarity
    from one2345_ros.mesh.extract import SdfGrid, Surface
    from one2345_ros.recon.sparseneus.frame import reconstruction_frame

    net.configure(batchnorm=cfg.batchnorm, backend="dense")
    frame = reconstruction_frame(views)
    images = torch.from_numpy(np.ascontiguousarray(views.images)).permute(0, 3, 1, 2).float() / 255.0
    proj = torch.from_numpy(frame.projections()).float()
    centers = torch.from_numpy(frame.c2w[:, :3, 3]).float()
    n = cfg.volume_resolution
    with timer.stage("features"):
        fused = ref.fused_features(net, images)
    with timer.stage("cost_volume"):
        compressed = ref.compressed_features(net, fused)
        mask = ref.active_voxels(proj, n, frame.width, frame.height)
        cost = ref.cost_volume(compressed, proj, mask)
        del compressed
        stats.active_voxels = int(mask.sum())
    with timer.stage("cnn_3d"):
        volume = ref.regularize(net, cost, mask)
        del cost
    with timer.stage("sdf_grid"):
        grid, stats.sdf_evaluations = ref.sdf_grid(
            lambda p: ref.sdf(net, p, volume), cfg.mesh_resolution, cfg.mesh_near_surface
        )

    def colors(vertices_n):
        verts = torch.from_numpy(np.ascontiguousarray(vertices_n)).float()
        return ref.vertex_colors(net, verts, volume, mask[None, None].float(), fused, images, proj, centers)

    return Surface(
        grid=SdfGrid(values=grid, bbox=np.array([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]])),
        grid_to_world=world_similarity(frame.radius, frame.center, frame.ref_c2w),
        colors=colors,
    )


def run_configuration(config: str, args) -> dict:
    """One configuration in this process: seconds and peak RSS per stage, the process's max RSS."""
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    views, net = build_inputs()
    cfg = SparseNeuSConfig(device=args.device, mesh_near_surface=not args.full_grid, backend="dense")
    timer = MemoryTimer(device)
    stats = SparseNeuSStats()
    start, cpu_start = time.perf_counter(), time.process_time()
    if config == "reference":
        surface = reference_surface(views, net, cfg, timer, stats)
    else:
        surface = reconstruct_sparseneus(views, cfg, net, timer=timer, stats=stats)
    mesh = make_mesh(surface, views, MeshConfig(), timer)  # the one mesh stage: marching cubes, clean, colours
    total, cpu_total = time.perf_counter() - start, time.process_time() - cpu_start
    return {
        "config": config, "seconds": dict(timer.timings), "peak_rss_mb": timer.peak_mb, "total_seconds": total,
        "cpu_seconds": timer.cpu_seconds, "total_cpu_seconds": cpu_total,
        "process_max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "active_voxels": stats.active_voxels, "sdf_evaluations": stats.sdf_evaluations,
        "vertices": len(mesh.vertices), "faces": len(mesh.faces),
    }  # fmt: skip


def compare_configurations(args) -> dict:
    """Each configuration in a fresh subprocess, alternated ``args.repeat`` times; the best run of each."""
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    runs: dict[str, list[dict]] = {c: [] for c in configs}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeat):
            for c in configs:
                out = Path(tmp) / f"{c}_{r}.json"
                cmd = [sys.executable, __file__, "--worker", c, "--worker-out", str(out)]
                cmd += ["--threads", str(args.threads), "--device", args.device]
                cmd += ["--full-grid"] if args.full_grid else []
                subprocess.run(cmd, check=True)
                runs[c].append(json.loads(out.read_text()))
                print(f"run {r + 1}/{args.repeat} {c:<10} total {runs[c][-1]['total_seconds']:6.2f} s, "
                      f"max RSS {runs[c][-1]['process_max_rss_mb']:6.0f} MB", flush=True)  # fmt: skip
    best = {}
    for c, rs in runs.items():
        stages = list(rs[0]["seconds"])
        best[c] = {
            "total_seconds": min(x["total_seconds"] for x in rs),
            "total_seconds_runs": [x["total_seconds"] for x in rs],
            "seconds": {s: min(x["seconds"][s] for x in rs) for s in stages},
            "cpu_seconds": {s: min(x["cpu_seconds"][s] for x in rs) for s in stages},
            "total_cpu_seconds": min(x["total_cpu_seconds"] for x in rs),
            "peak_rss_mb": {s: max(x["peak_rss_mb"][s] for x in rs) for s in stages},
            "process_max_rss_mb": max(x["process_max_rss_mb"] for x in rs),
            **{k: rs[0][k] for k in ("active_voxels", "sdf_evaluations", "vertices", "faces")},
        }
    return best


def print_comparison(best: dict) -> None:
    configs = list(best)
    stages = list(best[configs[0]]["seconds"])
    head = "".join(f"{c + ' s':>14}{'peak MB':>9}" for c in configs)
    ratio = "reference" in best and "package" in best
    print(f"{'stage':<16}{head}" + (f"{'ref/pkg':>9}" if ratio else ""))
    for s in stages:
        row = "".join(f"{best[c]['seconds'][s]:>14.2f}{best[c]['peak_rss_mb'][s]:>9.0f}" for c in configs)
        extra = f"{best['reference']['seconds'][s] / best['package']['seconds'][s]:>8.1f}x" if ratio else ""
        print(f"{s:<16}{row}{extra}")
    row = "".join(f"{best[c]['total_seconds']:>14.2f}{best[c]['process_max_rss_mb']:>9.0f}" for c in configs)
    extra = f"{best['reference']['total_seconds'] / best['package']['total_seconds']:>8.1f}x" if ratio else ""
    print(f"{'total':<16}{row}{extra}   (peak: process max RSS)")
    row = "".join(f"{best[c]['total_cpu_seconds']:>14.2f}{'':>9}" for c in configs)
    extra = f"{best['reference']['total_cpu_seconds'] / best['package']['total_cpu_seconds']:>8.1f}x" if ratio else ""
    print(f"{'total CPU s':<16}{row}{extra}   (process CPU time, all threads)")
    for c in configs:
        b = best[c]
        print(f"{c}: active voxels {b['active_voxels']}, SDF evaluations {b['sdf_evaluations']}, "
              f"vertices {b['vertices']}, faces {b['faces']}, totals of the runs "
              + ", ".join(f"{t:.2f}" for t in b["total_seconds_runs"]))  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--full-grid", action="store_true", help="evaluate all 256^3 grid points (as the original)")
    ap.add_argument("--backend", choices=("dense", "torchsparse"), default="dense", help="sparse 3D CNN backend")
    ap.add_argument("--repeat", type=int, default=None, help="runs per configuration (dense: 3) or 3D CNN runs per "
                    "backend (torchsparse: 1)")  # fmt: skip
    ap.add_argument("--configs", default="package,reference", help="dense: the configurations to compare")
    ap.add_argument("--worker", choices=("package", "reference"), help=argparse.SUPPRESS)
    ap.add_argument("--worker-out", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help="JSON path (default: benchmarks/results/sparseneus_<device>*.json)")
    args = ap.parse_args()
    if args.worker:
        args.worker_out.write_text(json.dumps(run_configuration(args.worker, args)))
        return
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    if args.backend == "torchsparse":
        return run_torchsparse(args, device, name)
    args.repeat = args.repeat or 3
    load_start = os.getloadavg()
    print(f"SparseNeuS full size, 32 views 256x256, 96^3 volume, 256^3 grid, {args.device} ({name}), "
          f"{args.threads} threads, backend dense, best of {args.repeat} runs per configuration, "
          "each in its own process")  # fmt: skip
    best = compare_configurations(args)
    print_comparison(best)
    result = {
        "device": args.device, "device_name": name, "threads": args.threads, "full_grid": args.full_grid,
        "backend": "dense", "repeat": args.repeat, "configurations": best, "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "command": "python benchmarks/sparseneus.py " + " ".join(sys.argv[1:]),
        "note": "seconds: the best of the runs per stage and in total; peak RSS: the largest over the runs "
                "(per stage sampled every 5 ms, total = ru_maxrss of the configuration's own process); "
                "CPU shared with other jobs while measured",
    }  # fmt: skip
    if "reference" in best and "package" in best:
        ref, pkg = best["reference"], best["package"]
        result["ratio_reference_over_package"] = {
            "total_seconds": ref["total_seconds"] / pkg["total_seconds"],
            "total_cpu_seconds": ref["total_cpu_seconds"] / pkg["total_cpu_seconds"],
            "seconds": {s: ref["seconds"][s] / pkg["seconds"][s] for s in pkg["seconds"]},
            "process_max_rss_mb": ref["process_max_rss_mb"] / pkg["process_max_rss_mb"],
        }
    result["load_average_start_end"] = [load_start[0], os.getloadavg()[0]]
    out = args.out or ROOT / "benchmarks" / "results" / f"sparseneus_{device.type}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")


def run_torchsparse(args, device, name) -> None:
    """--backend torchsparse: the reconstruction on torchsparse, then the 3D CNN on both backends."""
    args.repeat = args.repeat or 1
    mmap_fixed = fixed_mmap_threshold()
    torch.set_num_threads(args.threads)
    load_start = os.getloadavg()
    views, net = build_inputs()
    cfg = SparseNeuSConfig(device=args.device, mesh_near_surface=not args.full_grid, backend=args.backend)
    timer = MemoryTimer(device)
    stats = SparseNeuSStats()
    captured = {}
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
    result["load_average_start_end"] = [load_start[0], os.getloadavg()[0]]
    out = args.out or ROOT / "benchmarks" / "results" / f"sparseneus_{device.type}_torchsparse.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
