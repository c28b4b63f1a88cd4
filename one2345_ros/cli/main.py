"""The ``one2345`` command line.

Every command exits non-zero with a one-line reason, no traceback, on bad input or
missing weights (set ONE2345_DEBUG=1 for the traceback).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .. import config as C
from .progress import print_timings

EXIT_BAD_INPUT = 2


def _load_config(args) -> C.PipelineConfig:
    cfg = C.load_yaml(args.config) if getattr(args, "config", None) else C.PipelineConfig()
    return cfg


# ---------------------------------------------------------------------- commands


def cmd_demo(args) -> int:
    from .demo import run_demo

    cfg = _load_config(args)
    summaries = run_demo(
        out_dir=Path(args.out),
        objects=args.object,
        elevation_deg=args.elevation,
        seed=args.seed,
        cfg=cfg,
        resolution=args.resolution,
        show_progress=not args.quiet,
        use_gravity=args.gravity,
    )
    worst_ok = all(s["passed"] for s in summaries)
    return 0 if worst_ok or not args.check else 1


def cmd_reconstruct_views(args) -> int:
    from ..views.folder import read_views_folder
    from ..results.files import save_result
    from ..recon import make_reconstructor
    from ..results.result import ReconstructionResult
    from ..timing import StageTimer

    cfg = _load_config(args)
    if args.backend:
        cfg.backend = args.backend
    if args.checkpoint:
        cfg.sparseneus.checkpoint = args.checkpoint
    if args.resolution:
        cfg.hull.resolution = args.resolution
    timer = StageTimer()
    with timer.stage("read"):
        views = read_views_folder(args.folder)
    reconstructor = make_reconstructor(cfg)
    with timer.stage("reconstruct"):
        mesh = reconstructor.reconstruct(views)
    result = ReconstructionResult(
        ok=True,
        mesh=mesh,
        frame="views_world",
        frame_id="views_world",
        units="views",
        views="folder",
        backend=reconstructor.name,
        timings=dict(timer.timings),
        config=C.to_dict(cfg),
    )
    path = save_result(args.out, result, cfg.mesh.format)
    print(f"mesh: {len(mesh.vertices)} vertices, {len(mesh.faces)} faces -> {path.parent}")
    print_timings(result.timings)
    return 0


def _read_matrix(path: str, shape: tuple[int, int], key: str, what: str):
    """A JSON matrix file: the bare nested list, or an object with it under ``key``."""
    import json

    import numpy as np

    from ..types import InputError

    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise InputError(f"cannot read {what} file {path}: {exc.strerror or exc}") from exc
    except json.JSONDecodeError as exc:
        raise InputError(f"{what} file {path} is not JSON: {exc}") from exc
    if isinstance(data, dict):
        data = data.get(key)
    try:
        matrix = np.asarray(data, dtype=np.float64)
    except (TypeError, ValueError):
        matrix = np.zeros(0)
    if matrix.shape != shape:
        raise InputError(f"{what} file {path}: need a {shape[0]}x{shape[1]} matrix (or {{\"{key}\": ...}})")
    return matrix


def cmd_elevation(args) -> int:
    import json

    import numpy as np

    from ..geometry import cameras as cam
    from ..elevation.estimate import estimate_elevation
    from ..elevation.choice import choose_elevation, elevation_from_gravity
    from ..types import InputError
    from ..inputs.files import read_rgb

    cfg = _load_config(args).elevation
    for name in ("source", "matcher", "loftr_weights"):
        if getattr(args, name):
            setattr(cfg, name, getattr(args, name))
    views = []
    for k, path in enumerate(args.views):
        image = read_rgb(path)
        if image.shape[:2] != (cam.VIEW_SIZE, cam.VIEW_SIZE):
            size = f"{cam.VIEW_SIZE}x{cam.VIEW_SIZE}"
            raise InputError(f"view {k} ({path}) is {image.shape[1]}x{image.shape[0]}, need {size}")
        views.append(image)
    gravity = None
    if args.gravity_c2w:
        c2w = _read_matrix(args.gravity_c2w, (4, 4), "c2w", "gravity pose")
        K = _read_matrix(args.intrinsics, (3, 3), "K", "intrinsics") if args.intrinsics else cam.view_intrinsics()
        center = args.pixel_center if args.pixel_center else K[:2, 2]
        gravity = elevation_from_gravity(c2w, K, center)
    estimate = None if cfg.source == "gravity" else estimate_elevation(np.stack(views), cfg)
    d = choose_elevation(cfg, estimate, gravity)
    out = {
        "elevation_deg": d.chosen_deg,
        "polar_deg": float(cam.polar_from_elevation(d.chosen_deg)),
        "confidence": d.confidence,
        "reason": d.image_reason,
        "elevation_source": d.source,
        "elevation_image_deg": d.image_deg,
        "elevation_gravity_deg": d.gravity_deg,
        "disagreement_deg": d.disagreement_deg,
    }
    if estimate is not None:
        details = estimate.to_dict(curve=args.curve)
        out.update({k: v for k, v in details.items() if k not in out})
    print(json.dumps(out, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="one2345", description="One-2-3-45 single-image 3D reconstruction")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="reconstruct a bundled object rendered at a known elevation (oracle views)")
    p.add_argument("--out", default="one2345-demo", help="output folder (default one2345-demo/)")
    p.add_argument("--object", default="mallet", help="bundled object name (house, mallet, mug) or 'all'")
    p.add_argument("--elevation", type=float, default=None, help="input camera elevation (deg); default seeded random")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resolution", type=int, default=128, help="hull grid resolution")
    p.add_argument("--config", help="YAML config")
    p.add_argument("--check", action="store_true", help="exit 1 if an object misses the accuracy thresholds")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--gravity", action="store_true",
        help="give the pipeline the true camera pose as a gravity-aligned pose "
        "(default: estimate the elevation from images)",
    )  # fmt: skip
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("elevation", help="four nearby views -> input camera elevation (JSON on stdout)")
    p.add_argument(
        "views", nargs=4, metavar="V",
        help="the four 256x256 views on white at (d_polar, d_azimuth) = (-10, 0), (+10, 0), (0, -10), (0, +10) deg",
    )  # fmt: skip
    p.add_argument("--matcher", choices=["sift", "loftr"], help="feature matcher (default sift)")
    p.add_argument("--loftr-weights", help="LoFTR checkpoint (indoor_ds_new.ckpt) for --matcher loftr")
    p.add_argument(
        "--source", choices=["auto", "image", "gravity", "fused"], help="elevation source rule (default auto)"
    )
    p.add_argument("--gravity-c2w", help="JSON 4x4 OpenCV c2w of the camera in a gravity-aligned (z up) frame")
    p.add_argument("--intrinsics", help="JSON 3x3 K of the image the gravity pose belongs to (default: the 256 view's)")
    p.add_argument(
        "--pixel-center", type=float, nargs=2, metavar=("U", "V"),
        help="object centre in that image (default: principal point)",
    )  # fmt: skip
    p.add_argument("--curve", action="store_true", help="include the error curve in the JSON")
    p.add_argument("--config", help="YAML config (its elevation section is used)")
    p.set_defaults(func=cmd_elevation)

    p = sub.add_parser("reconstruct-views", help="views folder (views.json or One-2-3-45 output) -> mesh")
    p.add_argument("folder")
    p.add_argument("--out", required=True)
    p.add_argument("--backend", choices=["auto", "hull", "sparseneus"])
    p.add_argument("--checkpoint", help="SparseNeuS checkpoint (ckpt_215000.pth)")
    p.add_argument("--resolution", type=int, help="hull grid resolution")
    p.add_argument("--config", help="YAML config")
    p.set_defaults(func=cmd_reconstruct_views)

    # Commands whose code lives with their component (heavy imports stay lazy).
    from .reconstruct import add_reconstruct_parser
    from ..ros.bag import add_bag_parser

    add_reconstruct_parser(sub)
    add_bag_parser(sub)
    p = sub.add_parser("convert-zero123", help="original Zero123 .ckpt -> diffusers folder", add_help=False)
    p.set_defaults(func=_convert_zero123)
    return parser


def _convert_zero123(args) -> int:
    """Re-parse with the converter's own parser (it imports torch and diffusers)."""
    from .convert import add_convert_zero123_parser

    parser = argparse.ArgumentParser(prog="one2345")
    add_convert_zero123_parser(parser.add_subparsers(dest="command", required=True))
    parsed = parser.parse_args(["convert-zero123", *args.rest])
    return int(parsed.func(parsed))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["convert-zero123"]:
        args = argparse.Namespace(func=_convert_zero123, rest=argv[1:])
    else:
        args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("one2345: interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError, ImportError) as exc:
        # InputError, ConfigError and the weight loaders' errors are ValueErrors
        # whose message names the problem; show it without a traceback.
        if os.environ.get("ONE2345_DEBUG"):
            raise
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"one2345: error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
