"""``one2345 reconstruct IMAGE --mask M --out DIR``: the whole image-to-mesh path from files."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from .. import config as C
from ..types import InputError
from ..inputs.files import read_mask, read_rgb


def add_reconstruct_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("reconstruct", help="image + mask [+ depth, camera info] -> mesh and result.json")
    p.add_argument("image", help="RGB image (PNG/JPEG)")
    p.add_argument("--mask", required=True, help="mask image, non-zero = object")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--depth", help="16-bit PNG in millimetres or .npy float32 in metres")
    p.add_argument("--depth-scale", type=float, default=0.0, help="divisor to metres (overrides mm / m)")
    p.add_argument("--camera-info", help="ROS calibration YAML or JSON {width, height, K, D}")
    p.add_argument("--frame-id", default="camera_optical_frame", help="frame_id of the image (metric results)")
    p.add_argument("--views", default=None, help="'zero123' (default) or 'oracle:MESH' for synthetic scenes")
    p.add_argument("--oracle-c2w", help="JSON 4x4 OpenCV c2w of the input camera in MESH's frame (+z up)")
    p.add_argument("--gravity-c2w", help="JSON 4x4 OpenCV c2w of the camera in a gravity-aligned (z-up) frame")
    p.add_argument("--zero123", help="Zero123 diffusers folder or .ckpt (default $ONE2345_ZERO123)")
    p.add_argument("--sparseneus", help="SparseNeuS checkpoint (default $ONE2345_SPARSENEUS; none: visual hull)")
    p.add_argument("--allow-cpu", action="store_true", help="run Zero123 on a CPU (hours per image)")
    p.add_argument("--object-distance", type=float, default=None, help="camera-to-object distance in metres")
    p.add_argument("--object-size", type=float, default=None, help="largest object extent in metres")
    p.add_argument("--config", help="YAML config")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=reconstruct_main)
    return p


def read_matrix_json(path: str, what: str) -> np.ndarray:
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{what} file not found: {p}")
    try:
        m = np.asarray(json.loads(p.read_text()), dtype=np.float64)
    except (json.JSONDecodeError, TypeError, ValueError) as exc:
        raise InputError(f"{p}: {what} must be a JSON 4x4 matrix") from exc
    if m.shape != (4, 4) or not np.all(np.isfinite(m)):
        raise InputError(f"{p}: {what} must be a finite 4x4 matrix, got shape {m.shape}")
    return m


def read_depth(path: str, depth_scale: float) -> np.ndarray:
    """Depth file -> float32 metres (16-bit PNG: millimetres; .npy float32: metres)."""
    from ..scale import depth_to_metres

    p = Path(path)
    if not p.is_file():
        raise InputError(f"depth file not found: {p}")
    if p.suffix.lower() == ".npy":
        depth = np.load(p, allow_pickle=False)
        if depth.dtype != np.float32 or depth.ndim != 2:
            raise InputError(f"{p}: .npy depth must be float32 [H, W] in metres, got {depth.dtype} {depth.shape}")
        return depth_to_metres(depth, "32FC1", depth_scale)
    raw = read_mask(p)  # PIL keeps 16-bit PNGs as uint16 ("I;16")
    if raw.dtype != np.uint16:
        raise InputError(f"{p}: PNG depth must be 16-bit (millimetres), got {raw.dtype}")
    return depth_to_metres(raw, "16UC1", depth_scale)


def _generator(args, cfg: C.PipelineConfig):
    spec = args.views or cfg.views
    if spec.startswith("oracle:"):
        import trimesh

        from ..synthetic.oracle import OracleGenerator

        mesh_path = Path(spec.split(":", 1)[1])
        if not mesh_path.is_file():
            raise InputError(f"oracle mesh not found: {mesh_path}")
        if not args.oracle_c2w:
            raise InputError("--views oracle:MESH needs --oracle-c2w (the input camera's c2w in MESH's frame)")
        cfg.views = "oracle"
        mesh = trimesh.load(str(mesh_path), force="mesh")
        return OracleGenerator(mesh, read_matrix_json(args.oracle_c2w, "--oracle-c2w"), cfg.preprocess.fill_ratio)
    if spec != "zero123":
        raise InputError(f"--views must be 'zero123' or 'oracle:MESH', got {spec!r}")
    cfg.views = "zero123"
    return None  # the pipeline loads Zero123 from cfg.zero123


def reconstruct_main(args) -> int:
    from ..inputs.calibration import read_camera_info, undistort
    from .progress import StageBar, print_timings
    from ..results.files import save_failure, save_result
    from ..pipeline import Pipeline, ReconstructionInputs

    cfg = C.load_yaml(args.config) if args.config else C.PipelineConfig()
    if args.zero123:
        cfg.zero123.model = args.zero123
    if args.allow_cpu:
        cfg.zero123.allow_cpu = True
    if args.sparseneus:
        cfg.sparseneus.checkpoint = args.sparseneus
    if args.object_distance is not None:
        cfg.metric.object_distance_m = args.object_distance
    if args.object_size is not None:
        cfg.metric.object_size_m = args.object_size
    out = Path(args.out)
    try:
        image = read_rgb(args.image)
        mask = read_mask(args.mask)
        depth = read_depth(args.depth, args.depth_scale or cfg.metric.depth_scale) if args.depth else None
        K = None
        if args.camera_info:
            calib = read_camera_info(args.camera_info)
            if (calib.width, calib.height) != (image.shape[1], image.shape[0]):
                raise InputError(
                    f"camera info is for {calib.width}x{calib.height} but the image is {image.shape[1]}x{image.shape[0]}"
                )
            if calib.distorted:
                mask = (np.asarray(mask) > 0).astype(np.uint8) * 255
                image, mask, depth = undistort(calib, image, mask, depth)
            K = calib.K
        inputs = ReconstructionInputs(
            image=image,
            mask=mask,
            depth=depth,
            K=K,
            frame_id=args.frame_id,
            gravity_c2w=read_matrix_json(args.gravity_c2w, "--gravity-c2w") if args.gravity_c2w else None,
        )
        pipeline = Pipeline(cfg, generator=_generator(args, cfg))
        bar = StageBar(not args.quiet)
        try:
            result = pipeline.reconstruct(inputs, progress=bar)
        finally:
            bar.close()
    except (ValueError, OSError) as exc:
        save_failure(out, str(exc), C.to_dict(cfg))
        raise
    path = save_result(out, result, cfg.mesh.format)
    print(
        f"elevation {result.elevation_deg:.1f} deg ({result.elevation_source}, confidence {result.confidence:.2f}); "
        f"{len(result.mesh.vertices)} vertices in frame '{result.frame_id}' ({result.units}, scale from "
        f"{result.scale_source}) -> {path.parent}"
    )
    print_timings(result.timings)
    return 0
