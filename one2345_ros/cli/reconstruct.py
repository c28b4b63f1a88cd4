"""``one2345 reconstruct IMAGE --mask M --out DIR``: the whole image-to-mesh path from files."""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import config as C
from ..types import InputError
from .common import add_config_args, config_flag, error_message, load_args_config


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "reconstruct", help="image + mask (or labels) [+ depth, camera info] -> mesh(es), result.json"
    )
    p.add_argument("image", help="RGB image (PNG/JPEG)")
    objects = p.add_mutually_exclusive_group(required=True)
    objects.add_argument("--mask", help="mask image: 0/255 (or 0/1) mono, object = non-zero")
    objects.add_argument("--labels", help="label image, one id per object, 0 = background (8/16-bit PNG or .npy): "
                         "every object is reconstructed, their views generated together")  # fmt: skip
    p.add_argument("--label-ids", type=int, nargs="+", help="with --labels: only these ids")
    p.add_argument("--out", required=True, help="output folder (new, empty, or an earlier result folder)")
    p.add_argument("--depth", help="16-bit PNG in millimetres or .npy float32 in metres")
    config_flag(p, "--depth-scale", "inputs.depth_scale", type=float, help="divisor to metres (overrides mm / m)")
    p.add_argument("--camera-info", help="ROS calibration YAML or JSON {width, height, K, D}")
    p.add_argument("--frame-id", default="camera_optical_frame", help="frame_id of the image (metric results)")
    p.add_argument("--views", default=None, help="'zero123' (default) or 'oracle:MESH' for synthetic scenes")
    p.add_argument("--oracle-c2w", help="JSON 4x4 OpenCV c2w of the input camera in MESH's frame (+z up)")
    p.add_argument("--gravity-c2w", help="JSON 4x4 OpenCV c2w of the camera in a gravity-aligned (z-up) frame")
    config_flag(p, "--zero123", "zero123.model", help="Zero123 diffusers folder or .ckpt (default $ONE2345_ZERO123)")
    config_flag(p, "--sparseneus", "sparseneus.checkpoint",
                help="SparseNeuS checkpoint (default $ONE2345_SPARSENEUS; none: visual hull)")  # fmt: skip
    config_flag(p, "--allow-cpu", "zero123.allow_cpu", action="store_const", const=True,
                help="run Zero123 on a CPU (hours per image)")  # fmt: skip
    config_flag(p, "--allow-pickle", "zero123.allow_pickle", action="store_const", const=True,
                help="allow full unpickling of a trusted Zero123 checkpoint "
                     "that weights_only loading refuses")  # fmt: skip
    config_flag(p, "--object-distance", "metric.object_distance_m", type=float, help="camera-to-object distance, m")
    config_flag(p, "--object-size", "metric.object_size_m", type=float, help="largest object extent in metres")
    config_flag(p, "--format", "mesh.format", choices=("ply", "glb", "obj"), help="mesh file format (default ply)")
    add_config_args(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
    return p


def views_overrides(views: str | None, oracle_c2w: str | None) -> dict:
    """``--views zero123 | oracle:MESH`` (with ``--oracle-c2w FILE``) -> views / oracle.* config keys."""
    from ..inputs.files import read_matrix

    if views is None:
        return {}
    if views == "zero123":
        return {"views": "zero123"}
    if views.startswith("oracle:"):
        if not oracle_c2w:
            raise InputError("--views oracle:MESH needs --oracle-c2w (the input camera's c2w in MESH's frame)")
        c2w = read_matrix(oracle_c2w, (4, 4), "--oracle-c2w", key="c2w")
        return {"views": "oracle", "oracle.mesh": views.split(":", 1)[1], "oracle.input_c2w": c2w.reshape(-1).tolist()}
    raise InputError(f"--views must be 'zero123' or 'oracle:MESH', got {views!r}")


def _scene_files(args) -> dict:
    """prepare_scene's keywords from the depth, camera info and gravity files."""
    from ..inputs.calibration import read_camera_info
    from ..inputs.files import read_depth, read_matrix

    depth, encoding = read_depth(args.depth) if args.depth else (None, None)
    calibration = read_camera_info(args.camera_info) if args.camera_info else None
    gravity = read_matrix(args.gravity_c2w, (4, 4), "--gravity-c2w", key="c2w") if args.gravity_c2w else None
    return {"depth": depth, "depth_encoding": encoding, "calibration": calibration, "frame_id": args.frame_id,
            "gravity_c2w": gravity}  # fmt: skip


def prepare_from_files(args, cfg: C.Config):
    """Image, mask, depth and camera info files -> ReconstructionInputs through the one policy."""
    from ..inputs.files import read_mask, read_rgb
    from ..inputs.prepare import prepare_inputs

    return prepare_inputs(read_rgb(args.image), read_mask(args.mask), cfg.inputs, **_scene_files(args))


def prepare_labels_from_files(args, cfg: C.Config):
    """Image, label image, depth and camera info files -> (prepared objects, {object id: why refused})."""
    from ..inputs.files import read_labels, read_rgb
    from ..inputs.prepare import object_id_for_label, prepare_objects, split_labels

    masks = {object_id_for_label(k): m for k, m in split_labels(read_labels(args.labels), args.label_ids).items()}
    return prepare_objects(read_rgb(args.image), masks, cfg.inputs, **_scene_files(args))


def run(args) -> int:
    from ..results.files import check_output_dir, write_failure, write_result
    from ..results.result import failed_result
    from .progress import print_timings

    out = Path(args.out)
    cfg = None
    try:
        # Cheap checks first: output folder, configuration and weight files, input files.
        check_output_dir(out)
        cfg = load_args_config(args, views_overrides(args.views, args.oracle_c2w))
        C.require_models(cfg)
        if args.labels:
            return _run_objects(args, cfg, out)
        inputs = prepare_from_files(args, cfg)
        (result,) = _with_progress(cfg, args.quiet, lambda pipeline, bar: [pipeline.reconstruct(inputs, progress=bar)])
    except Exception as exc:
        write_failure(out, failed_result(error_message(exc), config=C.to_dict(cfg) if cfg else {}))
        raise
    path = write_result(out, result, cfg.mesh)
    print(
        f"elevation {result.elevation_deg:.1f} deg ({result.elevation_source}, confidence {result.confidence:.2f}); "
        f"{len(result.mesh.vertices)} vertices in frame '{result.frame_id}' ({result.units}, scale from "
        f"{result.scale_source}) -> {path.parent}"
    )
    for warning in result.warnings:
        print(f"warning: {warning}")
    print_timings(result.timings)
    return 0


def _with_progress(cfg: C.Config, quiet: bool, run):
    """``run(pipeline, progress bar)`` with the configured models loaded and a progress bar shown."""
    from ..pipeline import Pipeline
    from .progress import StageBar

    pipeline = Pipeline(cfg)
    pipeline.load()
    bar = StageBar(not quiet)
    try:
        return run(pipeline, bar)
    finally:
        bar.close()


def _run_objects(args, cfg: C.Config, out: Path) -> int:
    """``--labels``: every object of the label image, their views generated together; one folder each."""
    from ..results.files import write_objects
    from .progress import print_timings

    prepared, refused = prepare_labels_from_files(args, cfg)
    results = []
    if prepared:
        results = _with_progress(cfg, args.quiet, lambda pipeline, bar: pipeline.reconstruct_objects(prepared, bar))
    path = write_objects(out, results, refused, cfg.mesh)
    for result in results:
        if result.ok:
            size = " x ".join(f"{e:.3f}" for e in result.object_extents)
            print(f"{result.object_id}: elevation {result.elevation_deg:.1f} deg ({result.elevation_source}), "
                  f"{len(result.mesh.faces)} faces, box {size} {result.units} in '{result.frame_id}'")  # fmt: skip
            for warning in result.warnings:
                print(f"  warning: {warning}")
        else:
            print(f"{result.object_id}: failed: {result.error}")
    for object_id, reason in refused.items():
        print(f"{object_id}: refused: {reason}")
    ok = [r for r in results if r.ok]
    if ok:
        print_timings(ok[0].timings)
    print(f"{len(ok)} of {len(results) + len(refused)} objects -> {path.parent}")
    if not ok:
        raise InputError(f"no object could be reconstructed ({len(refused) + len(results)} tried); see {path}")
    return 0
