"""``one2345 demo``: the whole pipeline on a bundled object with a known answer.

A bundled object is rendered by a realistic camera (640x480, f = 600 px, object
off-centre) at a chosen elevation (synthetic/scenes.py); the oracle renders the plan's
views of the true object where Zero123 would imagine them; the pipeline reconstructs it;
the mesh is compared with the truth in the canonical frame.

Acceptance is what silhouettes can recover: the visual hull cannot see into an open cup, so
its volume is judged against the *hull of the true object* from the same 32 views at the
true elevation (the best any silhouette method can do), and its surface against the true
object (Chamfer-L1). Both figures against the truth are printed and stored either way.

The elevation is estimated from the oracle's four nearby views (the image estimator), as on
a robot without TF; ``--gravity`` hands the pipeline the true camera pose as a
gravity-aligned pose instead. The demo's inputs are written beside the result
(``inputs/``), so ``one2345 reconstruct`` can be run on them (README).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np

from .. import config as C
from .common import add_config_args, config_flag, load_args_config

CHAMFER_THRESHOLD = 0.02
"""Chamfer-L1 to the true object below 2 % of its bounding-box diagonal."""
HULL_IOU_THRESHOLD = 0.8
"""Volume IoU with the true object's own visual hull (what silhouettes can recover) above 0.8."""


def add_scene_args(p: argparse.ArgumentParser, object_help: str) -> None:
    """The demo scene's flags, shared by ``demo`` and ``ros-demo``: object, elevation, seed, hull resolution."""
    p.add_argument("--object", default="mallet", help=object_help)
    p.add_argument("--elevation", type=float, default=None, help="input camera elevation (deg); default seeded random")
    p.add_argument("--seed", type=int, default=0, help="scene seed (elevation, azimuth, object placement)")
    config_flag(p, "--resolution", "hull.resolution", type=int, help="hull grid resolution (default 128)")


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("demo", help="reconstruct a bundled object rendered at a known elevation (oracle views)")
    p.add_argument("--out", default="one2345-demo", help="output folder (default one2345-demo/)")
    add_scene_args(p, "bundled object name (house, mallet, mug) or 'all'")
    p.add_argument("--check", action="store_true", help="exit 1 if an object misses the accuracy thresholds")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--gravity", action="store_true",
        help="give the pipeline the true camera pose as a gravity-aligned pose (default: elevation from images)",
    )  # fmt: skip
    add_config_args(p)
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from ..results.files import check_output_dir
    from ..synthetic.assets import list_objects

    names = list_objects() if args.object == "all" else [args.object]
    out = Path(args.out)
    targets = [out / name for name in names] if len(names) > 1 else [out]
    for target in targets:
        check_output_dir(target)
    base = load_args_config(args)
    summaries = [
        run_object(name, target, base, args.seed + k, args.elevation, args.gravity, not args.quiet)
        for k, (name, target) in enumerate(zip(names, targets))
    ]
    return 0 if all(s["passed"] for s in summaries) or not args.check else 1


def demo_config(base: C.Config, mesh_path: Path, c2w: np.ndarray) -> C.Config:
    """The demo's configuration: oracle views of the bundled mesh seen by the true camera, visual hull."""
    cfg = C.from_dict(C.Config, C.to_dict(base))
    cfg.views, cfg.backend = "oracle", "hull"
    cfg.oracle.mesh = str(mesh_path)
    cfg.oracle.input_c2w = np.asarray(c2w, dtype=np.float64).reshape(-1).tolist()
    return cfg


def truth_hull(oracle, true_polar_deg: float, hull: C.HullConfig):
    """The visual hull of the true object from the plan's 32 views at the true elevation: silhouettes
    rendered straight from the truth (no shading needed), carved at the demo's resolution."""
    from ..geometry import cameras as cam
    from ..mesh import mesh_from_grid
    from ..recon.hull import reconstruct_hull
    from ..types import ViewSet

    plan = cam.stage2_views(cam.one2345_plan(true_polar_deg))
    c2w = np.stack([v.c2w() for v in plan])
    masks = oracle.render_masks(c2w)  # = render_views(c2w, supersample=1) masks
    images = np.where(masks[..., None], np.uint8(0), np.uint8(255)).repeat(3, axis=-1)
    views = ViewSet(images=images, K=np.broadcast_to(cam.view_intrinsics(), (len(plan), 3, 3)).copy(), c2w=c2w,
                    names=[v.name for v in plan], masks=masks, near_far=cam.ONE2345_NEAR_FAR)  # fmt: skip
    return mesh_from_grid(reconstruct_hull(views, hull))


def run_object(name: str, out: Path, base: C.Config, seed: int, elevation_deg: float | None, use_gravity: bool,
               show_progress: bool = True) -> dict:  # fmt: skip
    """Render the scene, reconstruct, compare with the truth, write the result folder; returns the summary."""
    from ..evaluation.mesh_metrics import compare_meshes, volume_iou
    from ..inputs.calibration import make_calibration
    from ..inputs.prepare import prepare_inputs
    from ..pipeline import Pipeline
    from ..results.files import write_result
    from ..synthetic.assets import object_path
    from ..synthetic.scenes import DEMO_HEIGHT, DEMO_WIDTH, demo_scene
    from .progress import StageBar, print_timings

    scene = demo_scene(name, seed, elevation_deg)
    cfg = demo_config(base, object_path(name), scene.c2w)
    pipeline = Pipeline(cfg)
    calibration = make_calibration(scene.K, [], "plumb_bob", DEMO_WIDTH, DEMO_HEIGHT, "demo camera")
    inputs = prepare_inputs(scene.image, scene.mask, cfg.inputs, calibration=calibration, frame_id="demo_camera",
                            object_id=name, gravity_c2w=scene.c2w if use_gravity else None)  # fmt: skip
    print(f"[{name}] true elevation {scene.elevation_deg:.1f} deg, azimuth {scene.azimuth_deg:.1f} deg")
    bar = StageBar(show_progress)
    try:
        result = pipeline.reconstruct(inputs, progress=bar)
    finally:
        bar.close()
    oracle = pipeline.generator
    scores = compare_meshes(result.mesh, oracle.canonical_mesh())
    hull_iou = volume_iou(result.mesh, truth_hull(oracle, oracle.true_polar_deg, cfg.hull))
    passed = scores.chamfer_l1 < CHAMFER_THRESHOLD and hull_iou > HULL_IOU_THRESHOLD
    image_error = None if result.elevation_image_deg is None else abs(result.elevation_image_deg - scene.elevation_deg)
    result.diagnostics["truth"] = {
        "object": name,
        "elevation_deg": scene.elevation_deg,
        "elevation_error_deg": abs(result.elevation_deg - scene.elevation_deg),
        "elevation_image_deg": result.elevation_image_deg,
        "elevation_image_error_deg": image_error,
        "elevation_gravity_deg": result.elevation_gravity_deg,
        "chamfer_l1": scores.chamfer_l1,
        "f_score": scores.f_score,
        "volume_iou": scores.volume_iou,
        "volume_iou_vs_true_hull": hull_iou,
        "acceptance": f"Chamfer-L1 < {CHAMFER_THRESHOLD} and volume IoU with the true object's visual hull > "
        f"{HULL_IOU_THRESHOLD}",
        "passed": passed,
    }

    def write_inputs(folder: Path) -> dict:
        return write_demo_inputs(folder / "inputs", scene, object_path(name))

    path = write_result(out, result, cfg.mesh, extra=write_inputs)
    _print_summary(name, result, scene.elevation_deg, scores, hull_iou, passed)
    print_timings(result.timings)
    print(f"[{name}] wrote {path.parent}/ (mesh, views.png contact sheet, views/, inputs/, result.json)")
    return {**result.diagnostics["truth"], "timings": result.timings}


def write_demo_inputs(folder: Path, scene, mesh_path: Path) -> dict:
    """The scene as files ``one2345 reconstruct`` reads: image, mask, depth (16-bit mm), camera info,
    the camera's c2w in the object's frame and the object mesh. Returns their result.json entries."""
    from ..results.atomic import write_image_atomic, write_json_atomic

    folder.mkdir(parents=True, exist_ok=True)
    write_image_atomic(folder / "image.png", scene.image)
    write_image_atomic(folder / "mask.png", scene.mask.astype(np.uint8) * 255)
    depth_mm = np.where(np.isfinite(scene.depth) & (scene.depth > 0), np.round(scene.depth * 1000.0), 0)
    write_image_atomic(folder / "depth.png", np.clip(depth_mm, 0, 65535).astype(np.uint16))
    height, width = scene.mask.shape
    write_json_atomic(folder / "camera_info.json", {"width": width, "height": height, "K": scene.K, "D": []})
    write_json_atomic(folder / "c2w.json", {"c2w": scene.c2w, "frame": "object mesh frame, OpenCV camera axes"})
    shutil.copyfile(mesh_path, folder / "object.glb")
    return {"inputs": {"path": "inputs/", "note": "the demo scene: one2345 reconstruct inputs/image.png --mask "
                       "inputs/mask.png --camera-info inputs/camera_info.json --views oracle:inputs/object.glb "
                       "--oracle-c2w inputs/c2w.json --out OUT"}}  # fmt: skip


def _print_summary(name, result, true_elevation, scores, hull_iou, passed) -> None:
    truth = result.diagnostics["truth"]
    if truth["elevation_image_error_deg"] is None:
        image_part = "no image estimate"
    else:
        image_part = (f"image estimate {result.elevation_image_deg:.1f} deg, "
                      f"error {truth['elevation_image_error_deg']:.2f} deg")  # fmt: skip
    if result.elevation_reason:
        image_part += f" ({result.elevation_reason})"
    print(f"[{name}] {image_part}")
    print(
        f"[{name}] elevation used {result.elevation_deg:.1f} deg ({result.elevation_source}, error "
        f"{abs(result.elevation_deg - true_elevation):.2f} deg); Chamfer-L1 {100 * scores.chamfer_l1:.2f} % of the "
        f"bbox diagonal; F-score@2% {scores.f_score:.3f}; volume IoU {scores.volume_iou:.3f} with the true object, "
        f"{hull_iou:.3f} with its visual hull -> {'PASS' if passed else 'FAIL'}"
    )
    if scores.volume_iou < HULL_IOU_THRESHOLD <= hull_iou:
        print(f"[{name}] note: silhouettes cannot reveal this object's concavities (an open cup), so the visual "
              "hull fills them: its IoU with the true object is capped; "
              "the SparseNeuS backend can recover them")  # fmt: skip
    for warning in result.warnings:
        print(f"[{name}] warning: {warning}")
