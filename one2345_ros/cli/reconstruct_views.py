"""``one2345 reconstruct-views DIR --out OUT``: a views folder -> mesh in that folder's world frame."""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import config as C
from .common import add_config_args, config_flag, error_message, load_args_config


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("reconstruct-views", help="views folder (views.json or One-2-3-45 output) -> mesh")
    p.add_argument("folder", help="views folder (views.json) or a One-2-3-45 output folder (pose.json)")
    p.add_argument("--out", required=True, help="output folder (new, empty, or an earlier result folder)")
    config_flag(p, "--backend", "backend", choices=("auto", "hull", "sparseneus"), help="reconstruction backend")
    config_flag(p, "--sparseneus", "sparseneus.checkpoint", help="SparseNeuS checkpoint (ckpt_215000.pth)")
    config_flag(p, "--resolution", "hull.resolution", type=int, help="hull grid resolution")
    config_flag(p, "--format", "mesh.format", choices=("ply", "glb", "obj"), help="mesh file format (default ply)")
    add_config_args(p)
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from ..mesh import make_mesh
    from ..recon import make_reconstructor
    from ..results.files import check_output_dir, write_failure, write_result
    from ..results.result import ReconstructionResult, failed_result
    from ..timing import StageTimer
    from ..views.folder import read_views_folder
    from .progress import print_timings

    out = Path(args.out)
    cfg = None
    try:
        check_output_dir(out)
        cfg = load_args_config(args)
        C.require_models(cfg, views=False)
        timer = StageTimer()
        with timer.stage("read"):
            views = read_views_folder(args.folder)
        reconstructor = make_reconstructor(cfg)
        with timer.stage("reconstruct"):
            surface = reconstructor.reconstruct(views)
        with timer.stage("mesh"):
            mesh = make_mesh(surface, views, cfg.mesh)
    except Exception as exc:
        write_failure(out, failed_result(error_message(exc), config=C.to_dict(cfg) if cfg else {}))
        raise
    result = ReconstructionResult(
        ok=True, mesh=mesh, frame="views_world", frame_id="views_world", units="views", view_source="folder",
        backend=reconstructor.name, timings=dict(timer.timings), config=C.to_dict(cfg),
        diagnostics={"views_folder": str(Path(args.folder).resolve()), "n_views": len(views.images)},
    )  # fmt: skip
    path = write_result(out, result, cfg.mesh)
    print(f"mesh: {len(mesh.vertices)} vertices, {len(mesh.faces)} faces -> {path.parent}")
    print_timings(result.timings)
    return 0
