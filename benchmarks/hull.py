"""Visual hull + mesh stage timing: 32 stage-2 views of 256^2 at a 128^3 grid.

Usage: python benchmarks/hull.py [--resolution 128] [--size 256]
Prints a table and writes benchmarks/results/hull.json. The scene is an analytic
off-centre sphere (exact silhouettes and a two-colour texture), so the quality
columns are errors against the truth. Times are wall clock on this machine, one run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "test")]

from hull_scenes import ellipsoid_mesh, ellipsoid_viewset  # noqa: E402

from one2345_ros.config import HullConfig, MeshConfig  # noqa: E402
from one2345_ros.evaluation.mesh_metrics import compare_meshes  # noqa: E402
from one2345_ros.mesh.clean import clean_mesh  # noqa: E402
from one2345_ros.mesh.color import vertex_colors  # noqa: E402
from one2345_ros.mesh.extract import SdfGrid, extract_mesh, grid_axes  # noqa: E402
from one2345_ros.mesh.files import export_mesh  # noqa: E402
from one2345_ros.recon.hull import close_boundary, derive_bbox, hull_field, prepare_silhouettes  # noqa: E402
from one2345_ros.timing import StageTimer  # noqa: E402

SCENE = dict(center=(0.05, -0.03, 0.02), radii=(0.3, 0.3, 0.3))
"""A sphere, so that the derived box is a cube and the grid the full resolution^3."""


def paint(points):
    return np.where(points[:, :1] > 0.05, [220.0, 40.0, 30.0], [30.0, 60.0, 200.0])


def run(resolution: int = 128, size: int = 256) -> dict:
    views = ellipsoid_viewset(size=size, color_fn=paint, **SCENE)
    config = HullConfig(resolution=resolution)
    timer = StageTimer()
    with timer.stage("silhouettes"):
        sil = prepare_silhouettes(views)
    with timer.stage("bbox"):
        bbox = derive_bbox(sil, views.near_far, config)
    with timer.stage("field"):
        axes = grid_axes(bbox, resolution)
        values = close_boundary(hull_field(axes, sil, config), float(max(np.diff(a).max() for a in axes)))
        grid = SdfGrid(values=values, bbox=bbox)
    with timer.stage("marching_cubes"):
        mesh = extract_mesh(grid)
    with timer.stage("clean"):
        mesh = clean_mesh(mesh, MeshConfig())
    with timer.stage("colours"):
        mesh.visual.vertex_colors = vertex_colors(mesh, views)
    with tempfile.TemporaryDirectory() as tmp, timer.stage("export_glb"):
        export_mesh(mesh, Path(tmp) / "mesh.glb")
    metrics = compare_meshes(mesh, ellipsoid_mesh(**SCENE))
    return {
        "views": len(views.images),
        "image_size": size,
        "grid": list(values.shape),
        "vertices": len(mesh.vertices),
        "faces": len(mesh.faces),
        "timings_s": timer.timings,
        "hull_s": sum(timer.timings[k] for k in ("silhouettes", "bbox", "field")),
        "mesh_s": sum(timer.timings[k] for k in ("marching_cubes", "clean", "colours", "export_glb")),
        "total_s": timer.total,
        "chamfer_l1": metrics.chamfer_l1,
        "volume_iou": metrics.volume_iou,
        "f_score": metrics.f_score,
        "cpu_count": os.cpu_count(),
        "load_avg_1min": os.getloadavg()[0],
        "note": "one run on a shared 2-core machine (other jobs running): an upper bound",
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()
    result = run(args.resolution, args.size)
    print(f"{'stage':<16}{'seconds':>10}")
    for name, seconds in result["timings_s"].items():
        print(f"{name:<16}{seconds:>10.3f}")
    print(f"{'hull total':<16}{result['hull_s']:>10.3f}")
    print(f"{'mesh total':<16}{result['mesh_s']:>10.3f}")
    print(
        f"grid {result['grid']}, {result['vertices']} vertices, {result['faces']} faces; "
        f"Chamfer-L1 {result['chamfer_l1']:.4f}, IoU {result['volume_iou']:.3f}, F {result['f_score']:.3f}; "
        f"load avg {result['load_avg_1min']:.1f} on {result['cpu_count']} cores"
    )
    out = ROOT / "benchmarks" / "results" / "hull.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
