"""The ``one2345`` command line.

Every command exits non-zero with a one-line reason, no traceback, on bad input or
missing weights (set ONE2345_DEBUG=1 for the traceback).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from . import config as C

EXIT_BAD_INPUT = 2


def _load_config(args) -> C.PipelineConfig:
    cfg = C.load_yaml(args.config) if getattr(args, "config", None) else C.PipelineConfig()
    return cfg


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
    )
    worst_ok = all(s["passed"] for s in summaries)
    return 0 if worst_ok or not args.check else 1


def cmd_reconstruct_views(args) -> int:
    from .io import read_views_folder
    from .outputs import save_result
    from .recon import make_reconstructor
    from .result import ReconstructionResult
    from .timing import StageTimer

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="one2345", description="One-2-3-45 single-image 3D reconstruction")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="reconstruct a bundled object rendered at a known elevation (oracle views)")
    p.add_argument("--out", default="one2345-demo", help="output folder (default one2345-demo/)")
    p.add_argument("--object", default="mug", help="bundled object name, or 'all'")
    p.add_argument("--elevation", type=float, default=None, help="input camera elevation (deg); default seeded random")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resolution", type=int, default=128, help="hull grid resolution")
    p.add_argument("--config", help="YAML config")
    p.add_argument("--check", action="store_true", help="exit 1 if an object misses the accuracy thresholds")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("reconstruct-views", help="views folder (views.json or One-2-3-45 output) -> mesh")
    p.add_argument("folder")
    p.add_argument("--out", required=True)
    p.add_argument("--backend", choices=["auto", "hull", "sparseneus"])
    p.add_argument("--checkpoint", help="SparseNeuS checkpoint (ckpt_215000.pth)")
    p.add_argument("--resolution", type=int, help="hull grid resolution")
    p.add_argument("--config", help="YAML config")
    p.set_defaults(func=cmd_reconstruct_views)

    # Commands whose code lives with their component (heavy imports stay lazy).
    from .reconstruct_cmd import add_reconstruct_parser
    from .ros.bag import add_bag_parser

    add_reconstruct_parser(sub)
    add_bag_parser(sub)
    p = sub.add_parser("convert-zero123", help="original Zero123 .ckpt -> diffusers folder", add_help=False)
    p.set_defaults(func=_convert_zero123)
    return parser


def _convert_zero123(args) -> int:
    """Re-parse with the converter's own parser (it imports torch and diffusers)."""
    from .views.zero123_convert import add_convert_zero123_parser

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
