"""Elevation estimation benchmark: accuracy and speed on oracle views.

    python benchmarks/elevation.py                 # 24 objects x 5 elevations, clean + perturbed
    python benchmarks/elevation.py --objects 4 --elevations 2   # quick look

The estimator's thresholds were tuned on the cases of ``--seed 0``; the default
seed 1 draws other cameras (and perturbations) for a held-out figure. Each case is
also estimated with ``refine_view_poses=False`` (the original's fixed-pose search
alone), reported as "*_fixed_poses".

Objects: ``assets.make_random_object(seed)`` (distinct textured compositions of
primitives) plus the bundled mug, mallet and house. Each object gets an input
camera at an elevation drawn in [-20, 60] deg (stratified) and a random azimuth;
the oracle renders the four elevation views relative to it. The perturbed set
imitates Zero123's imperfections (DESIGN.md): each generated view's pose jittered
uniformly by +-2 deg in polar and azimuth, Gaussian blur sigma 0.5-1.5 px, colour
jitter +-10 % brightness, contrast and saturation, silhouette erosion or dilation
of 1-2 px. Timing covers ``estimate_elevation`` alone (not rendering), with
OpenCV limited to 2 threads; the machine may be shared, so times are upper bounds.

Prints a table and writes benchmarks/results/elevation.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from one2345_ros.geometry import cameras as cam  # noqa: E402
from one2345_ros.config import ElevationConfig  # noqa: E402
from one2345_ros.elevation.estimate import estimate_elevation  # noqa: E402

ELEVATION_RANGE_DEG = (-20.0, 60.0)
POSE_JITTER_DEG = 2.0
BLUR_SIGMA_PX = (0.5, 1.5)
COLOUR_JITTER = 0.10
SILHOUETTE_PX = (1, 2)
ORACLE_ATTEMPTS = 10
SKIPPED_AZIMUTHS: list[tuple[str, float]] = []
"""(object, elevation) of input cameras the oracle could not normalise (redrawn in the same stratum)."""


def input_camera(mesh, elevation_deg: float, azimuth_deg: float) -> np.ndarray:
    """OpenCV c2w of a camera at the given elevation looking at the bbox centre."""
    center = mesh.bounding_box.centroid
    distance = 3.0 * float(np.max(mesh.extents))
    eye = center + cam.camera_center(cam.polar_from_elevation(elevation_deg), azimuth_deg, distance)
    return cam.look_at(eye, center)


def elevation_views(oracle, jitter_deg: np.ndarray | None = None) -> np.ndarray:
    """uint8 [4, 256, 256, 3]: the four elevation views, each pose optionally jittered by (d_polar, d_az)."""
    targets = np.array([(dp, da, 0.0) for dp, da in cam.ELEVATION_VIEW_OFFSETS])
    if jitter_deg is not None:
        targets[:, :2] += jitter_deg
    blank = np.full((oracle.size, oracle.size, 3), 255, np.uint8)
    return oracle.generate(blank, (0.0, 0.0), [tuple(t) for t in targets], None, [0, 1, 2, 3])


def perturb_image(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Colour jitter, blur and silhouette erosion/dilation of one view on white."""
    fg = ~(rgb > 245).all(axis=-1)
    img = rgb.astype(np.float32) / 255.0
    # colour jitter on the object only (the background stays white, as Zero123's does)
    b, c, s = rng.uniform(1 - COLOUR_JITTER, 1 + COLOUR_JITTER, size=3)
    obj = img * b
    mean = obj[fg].mean() if fg.any() else 0.5
    obj = (obj - mean) * c + mean
    grey = obj.mean(axis=-1, keepdims=True)
    obj = np.clip((obj - grey) * s + grey, 0.0, 1.0)
    img = np.where(fg[..., None], obj, 1.0)
    # silhouette erosion (object edge -> white) or dilation (edge colours spread outwards)
    r = int(rng.integers(SILHOUETTE_PX[0], SILHOUETTE_PX[1] + 1))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    fg8 = fg.astype(np.uint8)
    if rng.random() < 0.5:
        new_fg = cv2.erode(fg8, kernel).astype(bool)
        img = np.where(new_fg[..., None], img, 1.0)
    else:
        new_fg = cv2.dilate(fg8, kernel).astype(bool)
        spread = cv2.erode(img, kernel)  # min filter: darker object colours grow into the white
        img = np.where((new_fg & ~fg)[..., None], spread, img)
    img = cv2.GaussianBlur(img, (0, 0), float(rng.uniform(*BLUR_SIGMA_PX)))
    return np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)


def make_cases(n_objects: int, n_elevations: int, seed: int):
    """Yield (name, true elevation, clean views, perturbed views)."""
    from one2345_ros.synthetic.assets import list_objects, load_object, make_random_object
    from one2345_ros.views.oracle import OracleGenerator

    rng = np.random.default_rng(seed)
    bundled = list_objects()
    names = bundled + [f"random_{k}" for k in range(max(0, n_objects - len(bundled)))]
    names = names[:n_objects]
    edges = np.linspace(*ELEVATION_RANGE_DEG, n_elevations + 1)
    for name in names:
        mesh = load_object(name) if name in bundled else make_random_object(int(name.split("_")[1]))
        for k in range(n_elevations):
            for _attempt in range(ORACLE_ATTEMPTS):
                elevation = float(rng.uniform(edges[k], edges[k + 1]))
                try:
                    oracle = OracleGenerator(mesh, input_camera(mesh, elevation, float(rng.uniform(-180, 180))))
                    break
                except RuntimeError:
                    # The oracle's 75 %-fill scale fit does not always converge (some
                    # elongated objects); another camera in the same stratum avoids it.
                    SKIPPED_AZIMUTHS.append((name, elevation))
            else:
                raise RuntimeError(f"oracle scale fit failed {ORACLE_ATTEMPTS} times for {name} at {elevation:.1f} deg")
            clean = elevation_views(oracle)
            jittered = elevation_views(oracle, rng.uniform(-POSE_JITTER_DEG, POSE_JITTER_DEG, size=(4, 2)))
            perturbed = np.stack([perturb_image(v, rng) for v in jittered])
            yield name, oracle.true_elevation_deg, clean, perturbed


def summarise(rows: list[dict]) -> dict:
    err = np.array([r["abs_error_deg"] for r in rows])
    conf = np.array([r["confidence"] for r in rows])
    sec = np.array([r["seconds"] for r in rows])
    return {
        "n": len(rows),
        "median_abs_error_deg": float(np.median(err)),
        "p90_abs_error_deg": float(np.percentile(err, 90)),
        "max_abs_error_deg": float(err.max()),
        "median_confidence": float(np.median(conf)),
        "low_confidence": int((conf < ElevationConfig().min_confidence).sum()),
        "median_seconds": float(np.median(sec)),
        "p90_seconds": float(np.percentile(sec, 90)),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=24, help="number of objects (bundled first, then random)")
    parser.add_argument("--elevations", type=int, default=5, help="elevations per object (stratified in [-20, 60])")
    parser.add_argument("--seed", type=int, default=1, help="case seed (the thresholds were tuned on seed 0)")
    parser.add_argument("--matcher", default="sift")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "elevation.json"))
    args = parser.parse_args(argv)
    cv2.setNumThreads(2)
    cfg = ElevationConfig(matcher=args.matcher)
    cfg_fixed = dataclasses.replace(cfg, refine_view_poses=False)
    rows = {"clean": [], "perturbed": [], "clean_fixed_poses": [], "perturbed_fixed_poses": []}
    render_seconds = 0.0
    t0 = time.perf_counter()
    cases = make_cases(args.objects, args.elevations, args.seed)
    estimate_elevation(np.full((4, 256, 256, 3), 255, np.uint8), cfg)  # import and build once
    while True:
        t = time.perf_counter()
        case = next(cases, None)
        render_seconds += time.perf_counter() - t
        if case is None:
            break
        name, truth, clean, perturbed = case
        for kind, views, config in (
            ("clean", clean, cfg),
            ("perturbed", perturbed, cfg),
            ("clean_fixed_poses", clean, cfg_fixed),
            ("perturbed_fixed_poses", perturbed, cfg_fixed),
        ):
            est = estimate_elevation(views, config)
            found = est.estimated_elevation_deg
            rows[kind].append(
                {
                    "object": name,
                    "true_elevation_deg": truth,
                    "estimated_elevation_deg": found,
                    "abs_error_deg": abs(found - truth) if found is not None else abs(est.elevation_deg - truth),
                    "confidence": est.confidence,
                    "reason": est.reason,
                    "observations": est.n_observations,
                    "seconds": est.seconds,
                }
            )
        clean_err, perturbed_err = rows["clean"][-1]["abs_error_deg"], rows["perturbed"][-1]["abs_error_deg"]
        print(f"{name:>10} {truth:6.1f}  clean {clean_err:5.2f}  perturbed {perturbed_err:5.2f}", flush=True)
    summary = {kind: summarise(r) for kind, r in rows.items()}
    print()
    print(f"{'views':<22} {'n':>4} {'median':>7} {'p90':>6} {'max':>6} {'conf<0.3':>8} {'median s':>9} {'p90 s':>6}")
    for kind, s in summary.items():
        print(
            f"{kind:<22} {s['n']:4d} {s['median_abs_error_deg']:7.2f} {s['p90_abs_error_deg']:6.2f} "
            f"{s['max_abs_error_deg']:6.2f} {s['low_confidence']:8d} {s['median_seconds']:9.3f} {s['p90_seconds']:6.3f}"
        )
    print("(errors in degrees; seconds per estimate of four 256x256 views, estimate only)")
    out = {
        "benchmark": "elevation",
        "command": "python benchmarks/elevation.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "matcher": args.matcher,
        "objects": args.objects,
        "elevations_per_object": args.elevations,
        "elevation_range_deg": ELEVATION_RANGE_DEG,
        "perturbation": {
            "pose_jitter_deg": POSE_JITTER_DEG,
            "blur_sigma_px": BLUR_SIGMA_PX,
            "colour_jitter": COLOUR_JITTER,
            "silhouette_px": SILHOUETTE_PX,
        },
        "summary": summary,
        "acceptance": {
            "clean": summary["clean"]["median_abs_error_deg"] <= 2 and summary["clean"]["p90_abs_error_deg"] <= 5,
            "perturbed": summary["perturbed"]["median_abs_error_deg"] <= 4
            and summary["perturbed"]["p90_abs_error_deg"] <= 10,
            "time": summary["clean"]["median_seconds"] <= 0.5 and summary["perturbed"]["median_seconds"] <= 0.5,
        },
        "machine": {"cpu_threads_opencv": cv2.getNumThreads(), "platform": platform.platform(), "shared_cpu": True},
        "render_seconds": render_seconds,
        "oracle_scale_fit_failures_redrawn": SKIPPED_AZIMUTHS,
        "total_seconds": time.perf_counter() - t0,
        "rows": rows,
    }
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
