"""Elevation estimation benchmark: accuracy and speed on oracle views, per condition and mode.

    python benchmarks/elevation.py                       # seed 1 (held out), full set, both modes
    python benchmarks/elevation.py --seed 0              # the cases the thresholds were tuned on
    python benchmarks/elevation.py --textured 4 --low-texture 2 --elevations 2   # quick look

Objects (held out from tuning by seed: object seeds and cameras both change with ``--seed``):

* textured: the bundled mug, mallet and house, then ``make_random_object`` compositions;
* low-texture: ``make_low_texture_object`` (smooth shading, one or two nearly flat
  colours, few corners; every fifth is a yellow toy duck).

Each object gets input cameras at elevations drawn stratified in [-20, 70] deg and a
random azimuth; the bundled objects and the first low-texture object also get
elevations 60, 65 and 70 exactly. The truth is the oracle's: the elevation seen from
the point its views orbit. By default that is the bounding-box centre
(``--oracle-center bbox``: the truth is the requested elevation); ``crop`` orbits the
point the centred crop looks at, as Zero123 does (within ~1.5 deg of the box
centre's elevation), and costs ~5x more per case in the oracle's recentring. Both
give the estimator the same kind of views: four cameras at the nominal offsets
around one point; only the point the truth refers to differs.

Conditions (the four elevation views of every case):

* ``clean``: the oracle's renders.
* ``perturbed`` (DESIGN.md): each view's pose jittered uniformly by +-2 deg in polar and
  azimuth, Gaussian blur sigma 0.5-1.5 px, colour jitter +-10 % brightness, contrast and
  saturation, silhouette erosion or dilation of 1-2 px.
* ``zero123``: a Zero123-like degradation: pose jitter as above; a view-dependent
  colour shift (per-view channel gains +-8 %, offsets +-8 grey levels and a smooth
  +-6 % brightness field); a small shape inconsistency between views (a smooth random
  displacement field, up to ~1 px, independent per view); softer edges (the
  silhouette feathered over ~1 px) and a slight blur (sigma 0.6 px).

Modes (rows), all on the same views, each adding one improvement to the previous:

* ``faithful``: the original estimator step for step (its mask test with the keep0
  bug, its error formula, integer search over polar 30..140 then best-10..best+9, no
  refinement, fallback only when a pair has no matches), fed with SIFT matches
  because LoFTR's weights cannot be downloaded here.
* ``default_points``: the default mode's point pipeline alone: each match tested in
  its own mask, RANSAC per pair, all twelve (pair, third view) combinations, Cauchy
  loss, the sub-degree search (no silhouettes, no pose refinement).
* ``default_fixed_poses``: + the silhouettes' epipolar tangency.
* ``default``: + the per-view pose refinement (the default configuration).
* ``default_dense``: the default with DIS optical-flow correspondences added
  (``matcher: sift+dense``).
* ``default_gated``: the default estimates, replaced by the fallback (0 deg) when the
  confidence is below 0.3 (``min_confidence: 0.3``, the old behaviour).

Each row reports the median and p90 absolute error, the number of errors above
10 deg, the number of fallbacks (elevation source "fallback") and the median time per
estimate (``estimate_elevation`` alone, OpenCV limited to 2 threads, shared machine).
Renders are cached under ``--cache`` (the oracle's scale fit takes ~10-20 s per case);
the perturbations are re-applied from their seeds on every run.

Prints a table and writes benchmarks/results/elevation.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import platform
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from one2345_ros.config import ElevationConfig
from one2345_ros.elevation.choice import choose_elevation
from one2345_ros.elevation.estimate import estimate_elevation
from one2345_ros.geometry import cameras as cam

ELEVATION_RANGE_DEG = (-20.0, 70.0)
HIGH_ELEVATIONS_DEG = (60.0, 65.0, 70.0)
POSE_JITTER_DEG = 2.0
BLUR_SIGMA_PX = (0.5, 1.5)
COLOUR_JITTER = 0.10
SILHOUETTE_PX = (1, 2)
Z123_GAIN, Z123_OFFSET, Z123_FIELD = 0.08, 8.0, 0.06
Z123_WARP_PX, Z123_WARP_CELL_PX = 1.0, 40.0
Z123_FEATHER_PX, Z123_BLUR_PX = 1.0, 0.6
ORACLE_ATTEMPTS = 10
ERROR_LIMIT_DEG = 10.0
CONDITIONS = ("clean", "perturbed", "zero123")
FAMILIES = ("textured", "low_texture")
CACHE_VERSION = 1


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


# --------------------------------------------------------------- degradations


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


def _smooth_field(rng: np.random.Generator, size: int, cell_px: float) -> np.ndarray:
    """Smooth random field in [-1, 1] with features about ``cell_px`` wide: float32 [size, size]."""
    n = max(2, int(np.ceil(size / cell_px)) + 1)
    coarse = rng.uniform(-1.0, 1.0, (n, n)).astype(np.float32)
    return cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC).clip(-1.0, 1.0)


def zero123_like(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """View-dependent colour shift, small shape inconsistency and softer edges of one view."""
    size = rgb.shape[0]
    fg = ~(rgb > 245).all(axis=-1)
    img = rgb.astype(np.float32) / 255.0
    # colour: per-channel gain and offset, and a smooth brightness field, on the object only
    gain = rng.uniform(1 - Z123_GAIN, 1 + Z123_GAIN, 3).astype(np.float32)
    offset = rng.uniform(-Z123_OFFSET, Z123_OFFSET, 3).astype(np.float32) / 255.0
    field = 1.0 + Z123_FIELD * _smooth_field(rng, size, size / 2)
    obj = np.clip((img * gain + offset) * field[..., None], 0.0, 1.0)
    # spread the object colours outwards so that warping and feathering never pull in white
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7))
    grown = np.where(fg[..., None], obj, cv2.erode(np.where(fg[..., None], obj, 1.0), kernel))
    # shape: a smooth displacement field, independent per view
    dx = Z123_WARP_PX * _smooth_field(rng, size, Z123_WARP_CELL_PX)
    dy = Z123_WARP_PX * _smooth_field(rng, size, Z123_WARP_CELL_PX)
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    map_x, map_y = xx + dx, yy + dy
    obj = cv2.remap(grown, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    alpha = cv2.remap(fg.astype(np.float32), map_x, map_y, cv2.INTER_LINEAR, borderValue=0.0)
    # softer edges: feathered silhouette, then a slight blur
    alpha = cv2.GaussianBlur(alpha, (0, 0), Z123_FEATHER_PX)
    img = obj * alpha[..., None] + (1.0 - alpha[..., None])
    img = cv2.GaussianBlur(img, (0, 0), Z123_BLUR_PX)
    return np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------- cases


def case_specs(n_textured: int, n_low: int, n_elevations: int, seed: int) -> list[dict]:
    """(family, object, requested elevation) of every case, without rendering."""
    from one2345_ros.synthetic.assets import list_objects

    rng = np.random.default_rng([seed, 0xE1E7])
    bundled = list_objects()
    objects = [("textured", name) for name in bundled[:n_textured]]
    objects += [("textured", f"random_{100 * seed + k}") for k in range(max(0, n_textured - len(bundled)))]
    objects += [("low_texture", f"low_{100 * seed + k}") for k in range(n_low)]
    high = set(bundled) | {f"low_{100 * seed}"}
    edges = np.linspace(*ELEVATION_RANGE_DEG, n_elevations + 1)
    specs = []
    for family, name in objects:
        elevations = [float(rng.uniform(edges[k], edges[k + 1])) for k in range(n_elevations)]
        if name in high:
            elevations += list(HIGH_ELEVATIONS_DEG)
        for elevation in elevations:
            specs.append({"family": family, "object": name, "elevation": elevation, "seed": int(rng.integers(2**31))})
    return specs


def load_mesh(name: str):
    from one2345_ros.synthetic.assets import list_objects, load_object, make_low_texture_object, make_random_object

    if name in list_objects():
        return load_object(name)
    kind, k = name.rsplit("_", 1)
    return make_low_texture_object(int(k)) if kind == "low" else make_random_object(int(k))


def render_case(spec: dict, cache: Path | None, center: str = "bbox") -> dict:
    """Clean and pose-jittered renders of one case (cached as .npz); {} when the oracle found no camera."""
    from one2345_ros.views.oracle import OracleGenerator

    key = json.dumps([CACHE_VERSION, spec] + ([] if center == "crop" else [center]), sort_keys=True)
    path = None
    if cache is not None:
        path = cache / f"{spec['object']}_{hashlib.sha1(key.encode()).hexdigest()[:12]}.npz"
        if path.is_file():
            with np.load(path) as data:
                return {} if "skipped" in data.files else {k: data[k] for k in data.files}
    rng = np.random.default_rng(spec["seed"])
    mesh = load_mesh(spec["object"])
    redrawn = 0
    for attempt in range(ORACLE_ATTEMPTS):
        # the oracle's 75 %-fill scale fit does not always converge (some elongated
        # objects): another azimuth, and after half the attempts an elevation within
        # +-5 deg, avoids it (the truth is the oracle's either way)
        elevation = spec["elevation"] + (rng.uniform(-5, 5) if attempt >= ORACLE_ATTEMPTS // 2 else 0.0)
        try:
            oracle = OracleGenerator(mesh, input_camera(mesh, elevation, float(rng.uniform(-180, 180))), center=center)
            break
        except RuntimeError:
            redrawn += 1
    else:
        oracle = None  # no camera found: the case is skipped and reported
    jitter = rng.uniform(-POSE_JITTER_DEG, POSE_JITTER_DEG, size=(2, 4, 2))
    out = {"skipped": np.int64(1)} if oracle is None else {
        "truth": np.float64(oracle.true_elevation_deg),
        "clean": elevation_views(oracle),
        "jittered_perturbed": elevation_views(oracle, jitter[0]),
        "jittered_zero123": elevation_views(oracle, jitter[1]),
        "jitter": jitter,
        "redrawn": np.int64(redrawn),
    }
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez_compressed(tmp, **out)
        tmp.replace(path)
    return {} if oracle is None else out


def condition_views(case: dict, condition: str, seed: int) -> np.ndarray:
    if condition == "clean":
        return case["clean"]
    rng = np.random.default_rng([seed, CONDITIONS.index(condition)])
    degrade = perturb_image if condition == "perturbed" else zero123_like
    return np.stack([degrade(v, rng) for v in case[f"jittered_{condition}"]])


# ---------------------------------------------------------------------- modes


def mode_configs(matcher: str | None) -> dict[str, ElevationConfig]:
    base = ElevationConfig() if matcher is None else ElevationConfig(matcher=matcher)
    return {
        "faithful": dataclasses.replace(base, mode="faithful"),
        "default_points": dataclasses.replace(base, silhouettes=False, refine_view_poses=False),
        "default_fixed_poses": dataclasses.replace(base, refine_view_poses=False),
        "default": base,
        "default_dense": dataclasses.replace(base, matcher="sift+dense"),
    }


GATED = {"default_gated": ("default", 0.3)}
"""Rows computed from another row's estimates with a confidence gate (name: (row, min_confidence))."""


def summarise(rows: list[dict]) -> dict:
    if not rows:
        return {"n": 0}
    err = np.array([r["abs_error_deg"] for r in rows])
    sec = np.array([r["seconds"] for r in rows])
    return {
        "n": len(rows),
        "median_abs_error_deg": float(np.median(err)),
        "p90_abs_error_deg": float(np.percentile(err, 90)),
        "max_abs_error_deg": float(err.max()),
        "above_10_deg": int((err > ERROR_LIMIT_DEG).sum()),
        "fallbacks": int(sum(r["source"] == "fallback" for r in rows)),
        "median_seconds": float(np.median(sec)),
        "p90_seconds": float(np.percentile(sec, 90)),
    }


def compact_rows(rows: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """Per-case rows for the JSON: each case once (no "all" copies), numbers to 3 decimals."""
    out = {}
    for key, items in rows.items():
        if "/all/" in key:
            continue
        out[key] = [{k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()} for r in items]
    return out


def write_result(path: Path, out: dict) -> None:
    """The JSON with one line per case row (readable, and a tenth of an indented dump)."""
    rows = out["rows"]
    head = json.dumps({k: v for k, v in out.items() if k != "rows"}, indent=1)
    lines = [
        f" {json.dumps(key)}: [\n" + ",\n".join("  " + json.dumps(r) for r in items) + "\n ]"
        for key, items in rows.items()
    ]
    path.write_text(head[:-2] + ',\n "rows": {\n' + ",\n".join(lines) + "\n }\n}\n")


def goals(summary: dict) -> dict:
    """The issue's goals, on the default mode."""

    def ok(key, median, p90, above_frac):
        s = summary.get(key, {})
        if not s.get("n"):
            return None
        return bool(
            s["median_abs_error_deg"] <= median
            and s["p90_abs_error_deg"] <= p90
            and s["above_10_deg"] <= above_frac * s["n"]
        )

    out = {
        "clean_textured (median<=1, p90<=3, none>10)": ok("default/textured/clean", 1, 3, 0),
        "clean_low_texture (median<=2, p90<=5, none>10)": ok("default/low_texture/clean", 2, 5, 0),
    }
    for cond in ("perturbed", "zero123"):
        for family in (*FAMILIES, "all"):
            out[f"{cond}_{family} (median<=2, p90<=6, <=2% >10)"] = ok(f"default/{family}/{cond}", 2, 6, 0.02)
    times = [s["median_seconds"] for k, s in summary.items() if k.startswith("default/") and s.get("n")]
    out["time (median <= 0.5 s per estimate)"] = bool(times) and max(times) <= 0.5
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--textured", type=int, default=20, help="textured objects (bundled first, then random)")
    parser.add_argument("--low-texture", type=int, default=10, help="low-texture objects")
    parser.add_argument("--elevations", type=int, default=5, help="stratified elevations per object in [-20, 70]")
    parser.add_argument("--seed", type=int, default=1, help="case seed (the thresholds were tuned on seed 0)")
    parser.add_argument("--matcher", default=None, help="matcher of every mode (default: the config's)")
    parser.add_argument("--modes", default=None, help="comma-separated subset of the modes")
    parser.add_argument("--oracle-center", default="bbox", choices=("bbox", "crop"), help="point the views orbit")
    parser.add_argument("--cache", default=str(Path(__file__).resolve().parent / ".cache" / "elevation"))
    parser.add_argument("--render-only", action="store_true", help="fill the render cache and stop")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "elevation.json"))
    args = parser.parse_args(argv)
    cv2.setNumThreads(2)
    cache = Path(args.cache) if args.cache else None
    specs = case_specs(args.textured, args.low_texture, args.elevations, args.seed)
    if args.render_only:
        for idx, spec in enumerate(specs):
            t = time.perf_counter()
            case = render_case(spec, cache, args.oracle_center)
            truth = float(case["truth"]) if case else float("nan")
            seconds = time.perf_counter() - t
            print(f"[{idx + 1}/{len(specs)}] {spec['object']:>12} {truth:6.1f} {seconds:5.1f} s", flush=True)
        return 0
    configs = mode_configs(args.matcher)
    if args.modes:
        configs = {k: v for k, v in configs.items() if k in args.modes.split(",")}
    gated = {k: v for k, v in GATED.items() if v[0] in configs}
    rows: dict[str, list[dict]] = {}
    render_seconds = 0.0
    t0 = time.perf_counter()
    for cfg in configs.values():  # imports, matcher construction
        estimate_elevation(np.full((4, 256, 256, 3), 255, np.uint8), cfg)
    redrawn, skipped = [], []
    for idx, spec in enumerate(specs):
        t = time.perf_counter()
        case = render_case(spec, cache, args.oracle_center)
        render_seconds += time.perf_counter() - t
        if not case:
            skipped.append((spec["object"], spec["elevation"]))
            print(f"[{idx + 1}/{len(specs)}] {spec['object']:>10} skipped: the oracle found no camera", flush=True)
            continue
        if int(case["redrawn"]):
            redrawn.append((spec["object"], spec["elevation"], int(case["redrawn"])))
        truth = float(case["truth"])
        line = []
        for condition in CONDITIONS:
            views = condition_views(case, condition, spec["seed"])
            estimates = {}
            for mode, cfg in configs.items():
                estimates[mode] = est = estimate_elevation(views, cfg)
                decisions = {mode: (cfg, est)}
                for gname, (base, threshold) in gated.items():
                    if base == mode:
                        decisions[gname] = (dataclasses.replace(cfg, min_confidence=threshold), est)
                for name, (config, e) in decisions.items():
                    d = choose_elevation(config, e, None)
                    row = {
                        "object": spec["object"],
                        "true_elevation_deg": truth,
                        "elevation_deg": d.chosen_deg,
                        "abs_error_deg": abs(d.chosen_deg - truth),
                        "source": d.source,
                        "confidence": e.confidence,
                        "reason": d.reason,
                        "observations": e.n_observations,
                        "matcher": e.matcher,
                        "seconds": e.seconds,
                    }
                    for key in (f"{name}/{spec['family']}/{condition}", f"{name}/all/{condition}"):
                        rows.setdefault(key, []).append(row)
            if "default" in estimates:
                d = rows[f"default/{spec['family']}/{condition}"][-1]
                line.append(f"{condition} {d['abs_error_deg']:5.2f}")
        print(f"[{idx + 1}/{len(specs)}] {spec['object']:>10} {truth:6.1f}  " + "  ".join(line), flush=True)
    summary = {key: summarise(r) for key, r in sorted(rows.items())}
    print()
    print(f"{'mode':<20} {'objects':<12} {'views':<10} {'n':>4} {'median':>7} {'p90':>6} {'max':>6} "
          f"{'>10':>4} {'fallb':>5} {'med s':>6}")  # fmt: skip
    for mode in list(configs) + list(gated):
        for family in (*FAMILIES, "all"):
            for condition in CONDITIONS:
                s = summary.get(f"{mode}/{family}/{condition}")
                if not s or not s["n"]:
                    continue
                print(
                    f"{mode:<20} {family:<12} {condition:<10} {s['n']:4d} {s['median_abs_error_deg']:7.2f} "
                    f"{s['p90_abs_error_deg']:6.2f} {s['max_abs_error_deg']:6.1f} {s['above_10_deg']:4d} "
                    f"{s['fallbacks']:5d} {s['median_seconds']:6.3f}"
                )
    print("(errors in degrees; seconds per estimate of four 256x256 views, estimate only)")
    met = goals(summary)
    for name, value in met.items():
        print(f"goal {name}: {'met' if value else 'MISSED' if value is not None else 'n/a'}")
    out = {
        "benchmark": "elevation",
        "command": "python benchmarks/elevation.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "seed": args.seed,
        "cases": len(specs),
        "oracle_center": args.oracle_center,
        "modes": {name: dataclasses.asdict(cfg) for name, cfg in configs.items()},
        "gated_rows": {k: {"from": v[0], "min_confidence": v[1]} for k, v in gated.items()},
        "elevation_range_deg": ELEVATION_RANGE_DEG,
        "high_elevations_deg": HIGH_ELEVATIONS_DEG,
        "perturbation": {
            "pose_jitter_deg": POSE_JITTER_DEG,
            "blur_sigma_px": BLUR_SIGMA_PX,
            "colour_jitter": COLOUR_JITTER,
            "silhouette_px": SILHOUETTE_PX,
        },
        "zero123_like": {
            "pose_jitter_deg": POSE_JITTER_DEG,
            "channel_gain": Z123_GAIN,
            "channel_offset_grey": Z123_OFFSET,
            "brightness_field": Z123_FIELD,
            "warp_px": Z123_WARP_PX,
            "warp_cell_px": Z123_WARP_CELL_PX,
            "feather_px": Z123_FEATHER_PX,
            "blur_px": Z123_BLUR_PX,
        },
        "summary": summary,
        "goals": met,
        "machine": {"cpu_threads_opencv": cv2.getNumThreads(), "platform": platform.platform(), "shared_cpu": True},
        "render_seconds": render_seconds,
        "oracle_scale_fit_failures_redrawn": redrawn,
        "skipped_no_oracle_camera": skipped,
        "total_seconds": time.perf_counter() - t0,
        "rows": compact_rows(rows),
    }
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_result(path, out)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
