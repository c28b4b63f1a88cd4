"""``one2345 elevation V0 V1 V2 V3``: the input camera's elevation from four nearby views (JSON on stdout)."""

from __future__ import annotations

import argparse
import json

from .common import add_config_args, config_flag, load_args_config


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("elevation", help="four nearby views -> input camera elevation (JSON on stdout)")
    p.add_argument(
        "views", nargs=4, metavar="V",
        help="the four 256x256 views on white at (d_polar, d_azimuth) = (-10, 0), (+10, 0), (0, -10), (0, +10) deg",
    )  # fmt: skip
    config_flag(p, "--matcher", "elevation.matcher", choices=["sift", "dense", "sift+dense", "loftr"],
                help="feature matcher (default sift)")
    config_flag(p, "--loftr-weights", "elevation.loftr_weights", help="LoFTR checkpoint (indoor_ds_new.ckpt)")
    config_flag(p, "--mode", "elevation.mode", choices=["default", "faithful"],
                help="default, or the original One-2-3-45 estimator step for step (faithful)")
    config_flag(p, "--source", "elevation.source", choices=["auto", "image", "gravity", "fused"],
                help="elevation source rule (default auto)")  # fmt: skip
    p.add_argument("--gravity-c2w", help="JSON 4x4 OpenCV c2w of the camera in a gravity-aligned (z up) frame")
    p.add_argument("--intrinsics", help="JSON 3x3 K of the image the gravity pose belongs to (default: the 256 view's)")
    p.add_argument(
        "--pixel-center", type=float, nargs=2, metavar=("U", "V"),
        help="object centre in that image (default: principal point)",
    )  # fmt: skip
    p.add_argument("--curve", action="store_true", help="include the error curve in the JSON")
    add_config_args(p)
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    import numpy as np

    from ..elevation.choice import choose_elevation
    from ..elevation.estimate import estimate_elevation
    from ..elevation.gravity import elevation_from_gravity
    from ..geometry import cameras as cam
    from ..inputs.calibration import check_K
    from ..inputs.files import read_matrix, read_rgb
    from ..types import InputError

    cfg = load_args_config(args).elevation
    views = []
    for k, path in enumerate(args.views):
        image = read_rgb(path)
        if image.shape[:2] != (cam.VIEW_SIZE, cam.VIEW_SIZE):
            size = f"{cam.VIEW_SIZE}x{cam.VIEW_SIZE}"
            raise InputError(f"view {k} ({path}) is {image.shape[1]}x{image.shape[0]}, need {size}")
        views.append(image)
    gravity = None
    if args.gravity_c2w:
        c2w = read_matrix(args.gravity_c2w, (4, 4), "gravity pose", key="c2w")
        K = check_K(read_matrix(args.intrinsics, (3, 3), "intrinsics", key="K"), args.intrinsics) if args.intrinsics \
            else cam.view_intrinsics()  # fmt: skip
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
