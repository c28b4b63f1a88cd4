"""Depth fusion: the visible side of the metric mesh on the measured depth, the hidden side kept.

Scenes as benchmarks/metric.py (a 640x480 camera with f = 600 px; bundled and random objects of
5-30 cm at 0.4-1.2 m, elevations 0-60 deg, off the optical axis), placed on a table (a slab under
the object, so the depth has a background), and in every second scene a box between the camera and
the object hiding part of it. The mask is what a segmenter gives: the object's visible pixels,
grown by one pixel (its border reads the table or the box: occlusion-edge outliers). The oracle
still renders the whole object, which the crop of a partly hidden object does not quite match
(Zero123 would imagine the hidden part instead). Depth: sigma = 1 mm +
0.2 % of the range, 5 % dropout, and half of the pixels at depth jumps over 2 cm are flying pixels
(a random blend of the two sides). Oracle views, the visual hull, the elevation from the images,
scale from depth.

Per object, against the truth in the camera frame: Chamfer-L1 on the VISIBLE and the HIDDEN part of
the true surface (evaluation/visibility.py: split by ray casting from the camera, the box and the
table included; a reconstruction point belongs to the part of its nearest true point), without and
with fusion; centre error (bounding-box centre) and size error (bounding-box diagonal); times. The
fused mesh is step 8's ``fuse_depth`` applied to the unfused result of the same run
(test/test_fuse_depth.py checks that the pipeline gives exactly that). The noise compared with is
the mean |noise| at the object's range: sigma(z) * sqrt(2 / pi), z = the true centre's depth.
``--alternatives`` adds the truncated-SDF update of the hull's grid before marching cubes (the
option not taken; see docs/DESIGN.md "Depth fusion").

    python benchmarks/fusion.py [--scenes 20] [--seed 0] [--alternatives] [--out benchmarks/results/fusion.json]
"""

from __future__ import annotations

import argparse
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import trimesh
from scipy import ndimage

from one2345_ros.config import Config, MeshConfig
from one2345_ros.evaluation.visibility import visible_hidden_chamfer
from one2345_ros.geometry import cameras as cam
from one2345_ros.geometry.render import Renderer
from one2345_ros.inputs.calibration import make_calibration
from one2345_ros.inputs.prepare import prepare_inputs
from one2345_ros.mesh.clean import clean_mesh
from one2345_ros.mesh.extract import SdfGrid, extract_mesh
from one2345_ros.mesh.fuse_depth import fuse_depth, usable_depth
from one2345_ros.pipeline import Pipeline
from one2345_ros.recon import make_reconstructor
from one2345_ros.results.atomic import write_json_atomic
from one2345_ros.synthetic.assets import list_objects, load_object, make_random_object
from one2345_ros.views.oracle import OracleGenerator

K = cam.intrinsics(600.0, 600.0, 319.5, 239.5)
WIDTH, HEIGHT = 640, 480
SIZE_RANGE_M = (0.05, 0.30)
DISTANCE_RANGE_M = (0.4, 1.2)
ELEVATION_RANGE_DEG = (0.0, 60.0)
DEPTH_SIGMA = (0.001, 0.002)
"""sigma = 1 mm + 0.2 % of the range."""
DEPTH_DROPOUT = 0.05
FLYING_JUMP_M = 0.02
FLYING_FRACTION = 0.5
GOAL_X_NOISE = 1.5
"""Goal: visible-part Chamfer with fusion <= 1.5 x the mean |noise| at the object's range."""


def sigma_at(z_m: float) -> float:
    return DEPTH_SIGMA[0] + DEPTH_SIGMA[1] * z_m


def noisy_depth(depth: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = depth.astype(np.float64)
    hit = out > 0
    out[hit] += rng.normal(0.0, 1.0, hit.sum()) * sigma_at(out[hit])
    out[~hit] = np.nan
    out[rng.random(out.shape) < DEPTH_DROPOUT] = np.nan
    return out.astype(np.float32)


def flying_pixels(depth: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Pixels at a depth jump over FLYING_JUMP_M read, with probability FLYING_FRACTION, a random blend of
    their own depth and their farthest-off 8-neighbour's (time-of-flight and stereo sensors do)."""
    z = np.where(depth > 0, depth, np.nan).astype(np.float64)
    padded = np.pad(z, 1, constant_values=np.nan)
    h, w = z.shape
    jump = np.zeros_like(z)
    other = np.zeros_like(z)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dx or dy:
                neighbour = padded[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]
                d = np.nan_to_num(np.abs(neighbour - z), nan=0.0)
                larger = d > jump
                jump[larger], other[larger] = d[larger], neighbour[larger]
    flying = (jump > FLYING_JUMP_M) & np.isfinite(z) & (rng.random(z.shape) < FLYING_FRACTION)
    t = rng.random(z.shape)
    out = depth.astype(np.float64)
    out[flying] = (1 - t[flying]) * z[flying] + t[flying] * other[flying]
    return out.astype(np.float32)


def _plain(mesh: trimesh.Trimesh, rgb) -> trimesh.Trimesh:
    mesh = trimesh.Trimesh(mesh.vertices, mesh.faces, process=False)
    mesh.visual.face_colors = np.tile(np.array([*rgb, 255], np.uint8), (len(mesh.faces), 1))
    return mesh


@dataclass
class Scene:
    name: str
    mesh: trimesh.Trimesh
    """The object in its own (world) frame."""
    c2w: np.ndarray
    rgb: np.ndarray
    mask: np.ndarray
    depth: np.ndarray
    """Noisy float32 metres, NaN = no reading."""
    truth: trimesh.Trimesh
    """The object in the camera's optical frame."""
    others: trimesh.Trimesh
    """Table and occluder in the camera's optical frame."""
    size_m: float
    distance_m: float
    elevation_deg: float
    occluded_fraction: float


def make_scene(k: int, rng: np.random.Generator, occlude: bool) -> Scene:
    bundled = list_objects()
    name = bundled[k] if k < len(bundled) else f"random_{1000 + k}"
    mesh = load_object(bundled[k]) if k < len(bundled) else make_random_object(1000 + k)
    size = float(rng.uniform(*SIZE_RANGE_M))
    mesh.apply_scale(size / np.max(mesh.extents))
    centre = mesh.bounding_box.centroid
    # The object must fit the image: keep it within ~70 % of the shorter side.
    distance = max(float(rng.uniform(*DISTANCE_RANGE_M)), 1.05 * K[1, 1] * size / (0.7 * HEIGHT))
    elevation = float(rng.uniform(*ELEVATION_RANGE_DEG))
    eye = centre + cam.camera_center(cam.polar_from_elevation(elevation), float(rng.uniform(-180, 180)), distance)
    c2w = cam.look_at(eye, centre + rng.uniform(-0.25, 0.25, 3) * size)
    table = trimesh.creation.box(extents=(4.0, 4.0, 0.02))
    table.apply_translation([centre[0], centre[1], mesh.bounds[0, 2] - 0.01])
    others = [_plain(table, (150, 140, 130))]
    if occlude:
        # A box 30-60 % of the way to the camera, off to one side, looking 30-60 % of the object's size.
        gap = float(rng.uniform(0.3, 0.6)) * distance
        shrink = (distance - gap) / distance
        side = float(rng.choice([-1.0, 1.0]))
        towards = (centre - eye) / np.linalg.norm(centre - eye)
        position = eye + towards * (distance - gap) + c2w[:3, 0] * side * rng.uniform(0.4, 0.6) * size * shrink
        box_size = size * float(rng.uniform(0.3, 0.6)) * shrink
        box = trimesh.creation.box(extents=(box_size, box_size, 2.5 * box_size))
        box.apply_transform(trimesh.transformations.rotation_matrix(rng.uniform(0, np.pi), [0, 0, 1]))
        box.apply_translation(position - [0.0, 0.0, 0.6 * box_size])
        others.append(_plain(box, (60, 90, 160)))
    obj = Renderer(mesh).render(K, c2w, WIDTH, HEIGHT, supersample=2)
    z_obj = np.where(obj.depth > 0, obj.depth, np.inf)
    rgb_behind = np.full((HEIGHT, WIDTH, 3), 255.0)
    z_other = np.full((HEIGHT, WIDTH), np.inf)
    in_front = np.zeros((HEIGHT, WIDTH), dtype=bool)
    for i, other in enumerate(others):
        r = Renderer(other).render(K, c2w, WIDTH, HEIGHT)
        z = np.where(r.depth > 0, r.depth, np.inf)
        nearer = z < z_other
        z_other[nearer], rgb_behind[nearer] = z[nearer], r.rgb[nearer]
        if i > 0:
            in_front |= r.mask & (z < z_obj)
    alpha = obj.alpha[..., None].astype(np.float64)
    image = alpha * obj.rgb + (1 - alpha) * rgb_behind
    image[in_front] = rgb_behind[in_front]
    z = np.minimum(z_obj, z_other)
    depth = noisy_depth(flying_pixels(np.where(np.isfinite(z), z, 0.0).astype(np.float32), rng), rng)
    w2c = cam.invert_rigid(c2w)
    truth = mesh.copy()
    truth.apply_transform(w2c)
    scene_others = trimesh.util.concatenate([trimesh.Trimesh(o.vertices, o.faces, process=False) for o in others])
    scene_others.apply_transform(w2c)
    occluded = float(np.count_nonzero(obj.mask & in_front) / max(np.count_nonzero(obj.mask), 1))
    mask = ndimage.binary_dilation(obj.mask & ~in_front)
    return Scene(name, mesh, c2w, np.clip(np.rint(image), 0, 255).astype(np.uint8), mask, depth, truth,
                 scene_others, size, distance, elevation, occluded)  # fmt: skip


class KeepSurface:
    """The configured backend, keeping the Surface it returned (for the grid-update alternative)."""

    def __init__(self, inner):
        self.inner, self.name, self.surface = inner, inner.name, None

    def reconstruct(self, views):
        self.surface = self.inner.reconstruct(views)
        return self.surface


def tsdf_alternative(surface, canonical_to_camera, depth, mask, cfg, window_px: int = 2, truncation_nodes=3.0):
    """Option (b), not taken: the depth's truncated signed distance replaces the grid near the measured
    surface (|d| <= truncation), free space in front of it is carved, then marching cubes again."""
    grid = surface.grid
    T = np.asarray(canonical_to_camera) @ np.asarray(surface.grid_to_world)
    scale = float(np.cbrt(np.linalg.det(T[:3, :3])))
    z = usable_depth(depth, mask, cfg.fuse_edge_jump)
    h, w = z.shape
    r = window_px
    padded = np.pad(z, r, constant_values=np.nan)
    stack = np.stack([padded[r + dy : r + dy + h, r + dx : r + dx + w] for dy in range(-r, r + 1)
                      for dx in range(-r, r + 1)])  # fmt: skip
    enough = np.count_nonzero(np.isfinite(stack), axis=0) >= 5
    with np.errstate(all="ignore"):
        filtered = np.where(enough, np.nanmedian(np.where(enough, stack, 0.0), axis=0), np.nan)
    nodes = np.stack(np.meshgrid(*grid.axes(), indexing="ij"), axis=-1).reshape(-1, 3)
    points = cam.transform_points(T, nodes)
    uvw = points @ K.T
    u = np.rint(uvw[:, 0] / uvw[:, 2]).astype(np.int64)
    v = np.rint(uvw[:, 1] / uvw[:, 2]).astype(np.int64)
    on_image = (u >= 0) & (u < w) & (v >= 0) & (v < h) & (points[:, 2] > 0)
    measured = np.full(len(nodes), np.nan)
    measured[on_image] = filtered[v[on_image], u[on_image]]
    # signed distance along the ray, in the grid's units (+ in front of the measured surface)
    sdf = (measured - points[:, 2]) * np.linalg.norm(points, axis=1) / points[:, 2] / scale
    truncation = truncation_nodes * float(np.max(grid.spacing))
    values = grid.values.ravel().astype(np.float64)
    near = np.isfinite(sdf) & (np.abs(sdf) <= truncation)
    free = np.isfinite(sdf) & (sdf > truncation)
    values[near] = -sdf[near]
    values[free] = np.maximum(values[free], truncation)
    mesh = clean_mesh(extract_mesh(SdfGrid(values.reshape(grid.values.shape).astype(np.float32), grid.bbox)),
                      MeshConfig())  # fmt: skip
    mesh.apply_transform(T)
    return mesh


def size_and_centre(mesh: trimesh.Trimesh, truth: trimesh.Trimesh) -> tuple[float, float]:
    """(centre error in mm, size error in % of the bounding-box diagonal), camera frame."""
    centre = 1000 * float(np.linalg.norm(mesh.bounding_box.centroid - truth.bounding_box.centroid))
    size = 100 * abs(float(np.linalg.norm(mesh.extents)) / float(np.linalg.norm(truth.extents)) - 1.0)
    return centre, size


def run_scene(k: int, rng: np.random.Generator, seed: int, alternatives: bool) -> dict:
    scene = make_scene(k, rng, occlude=k % 2 == 1)
    cfg = Config(views="oracle", backend="hull", seed=seed)
    cfg.metric.fuse_depth = False  # fused below, the way step 8 does
    backend = KeepSurface(make_reconstructor(cfg))
    inputs = prepare_inputs(
        scene.rgb, scene.mask, cfg.inputs, depth=scene.depth, depth_encoding="32FC1",
        calibration=make_calibration(K, [], "plumb_bob", WIDTH, HEIGHT, "benchmark camera"), frame_id="camera",
    )  # fmt: skip
    start = time.perf_counter()
    result = Pipeline(cfg, generator=OracleGenerator(scene.mesh, scene.c2w), reconstructor=backend).reconstruct(inputs)
    pipeline_s = time.perf_counter() - start
    start = time.perf_counter()
    fused, info = fuse_depth(result.mesh, inputs.depth, inputs.K, inputs.mask, Config().metric)
    fuse_s = time.perf_counter() - start
    z_centre = float(scene.truth.bounding_box.centroid[2])
    noise = sigma_at(z_centre) * np.sqrt(2.0 / np.pi)
    meshes = {"unfused": result.mesh, "fused": fused}
    if alternatives:
        meshes["tsdf"] = tsdf_alternative(backend.surface, result.canonical_to_frame, inputs.depth, inputs.mask,
                                          Config().metric)  # fmt: skip
    row = {"object": scene.name, "size_m": scene.size_m, "distance_m": scene.distance_m,
           "elevation_deg": scene.elevation_deg, "occluded_fraction": scene.occluded_fraction,
           "mean_abs_noise_mm": 1000 * noise, "sigma_mm": 1000 * sigma_at(z_centre), "vertices": len(fused.vertices),
           "pipeline_s": pipeline_s, "fuse_s": fuse_s, "fusion": info,
           "scale_source": result.scale_source, "returned": bool(result.ok and len(fused.faces) > 0)}  # fmt: skip
    for label, mesh in meshes.items():
        split = visible_hidden_chamfer(mesh, scene.truth, occluders=[scene.others])
        centre_mm, size_pct = size_and_centre(mesh, scene.truth)
        row[label] = {"visible_mm": 1000 * split.visible, "hidden_mm": 1000 * split.hidden, "all_mm": 1000 * split.all,
                      "visible_x_noise": split.visible / noise, "truth_to_hidden_mm": 1000 * split.truth_to_hidden,
                      "hidden_to_truth_mm": 1000 * split.hidden_to_truth, "visible_fraction": split.visible_fraction,
                      "centre_error_mm": centre_mm, "size_error_pct": size_pct}  # fmt: skip
    base = row["unfused"]
    for label in meshes:
        if label != "unfused":
            row[label]["hidden_ratio"] = row[label]["hidden_mm"] / base["hidden_mm"]
            row[label]["truth_to_hidden_ratio"] = row[label]["truth_to_hidden_mm"] / base["truth_to_hidden_mm"]
    return row


def print_row(k: int, row: dict) -> None:
    u, f = row["unfused"], row["fused"]
    text = (f"{k:3d} {row['object']:<12} {100 * row['size_m']:4.1f}cm {row['distance_m']:4.2f}m "
            f"occ {row['occluded_fraction']:4.2f} "
            f"|n| {row['mean_abs_noise_mm']:4.2f} | vis {u['visible_mm']:5.2f} -> {f['visible_mm']:5.2f} mm "
            f"({f['visible_x_noise']:4.2f}x) | hid {u['hidden_mm']:5.2f} -> {f['hidden_mm']:5.2f} "
            f"(x{f['hidden_ratio']:5.3f}) | centre {u['centre_error_mm']:5.2f} -> {f['centre_error_mm']:5.2f} mm "
            f"size {u['size_error_pct']:4.2f} -> {f['size_error_pct']:4.2f} % | {row['pipeline_s']:5.1f} s "
            f"+ {row['fuse_s']:4.2f} s")  # fmt: skip
    if "tsdf" in row:
        t = row["tsdf"]
        text += f" | tsdf vis {t['visible_mm']:5.2f} hid {t['hidden_mm']:5.2f} (x{t['hidden_ratio']:5.3f})"
    print(text, flush=True)


def summarise(rows: list[dict]) -> dict:
    def stats(values) -> dict:
        values = np.asarray(values, dtype=np.float64)
        return {"median": float(np.median(values)), "p90": float(np.percentile(values, 90)), "max": float(values.max())}

    labels = [label for label in ("unfused", "fused", "tsdf") if label in rows[0]]
    out = {"objects": len(rows), "returned": int(sum(r["returned"] for r in rows))}
    for label in labels:
        out[label] = {key: stats([r[label][key] for r in rows])
                      for key in ("visible_mm", "visible_x_noise", "hidden_mm", "all_mm", "centre_error_mm",
                                  "size_error_pct")}  # fmt: skip
        out[label]["visible_goal_met"] = int(sum(r[label]["visible_x_noise"] <= GOAL_X_NOISE for r in rows))
        if label != "unfused":
            out[label]["hidden_ratio"] = stats([r[label]["hidden_ratio"] for r in rows])
            out[label]["truth_to_hidden_ratio"] = stats([r[label]["truth_to_hidden_ratio"] for r in rows])
    out["pipeline_s"] = stats([r["pipeline_s"] for r in rows])
    out["fuse_s"] = stats([r["fuse_s"] for r in rows])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--alternatives", action="store_true", help="also the truncated-SDF grid update")
    parser.add_argument("--out", default="benchmarks/results/fusion.json")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    rows = []
    for k in range(args.scenes):
        rows.append(run_scene(k, rng, args.seed, args.alternatives))
        print_row(k, rows[-1])
    summary = summarise(rows)
    print(f"\nobjects returned: {summary['returned']} / {summary['objects']}")
    print(f"{'figure':<34} {'median':>8} {'p90':>8} {'max':>8}")
    for label in [x for x in ("unfused", "fused", "tsdf") if x in summary]:
        for key, s in summary[label].items():
            if isinstance(s, dict):
                print(f"{label + ' ' + key:<34} {s['median']:8.3f} {s['p90']:8.3f} {s['max']:8.3f}")
        print(f"{label + ' visible <= 1.5 x noise':<34} {summary[label]['visible_goal_met']:>8d} of {len(rows)}")
    report = {
        "scenes": rows,
        "summary": summary,
        "goal": "visible-part Chamfer with fusion <= 1.5 x mean |noise| at the object's range; hidden ratio ~ 1",
        "command": "python benchmarks/fusion.py " + " ".join(f"--{k} {v}" for k, v in vars(args).items()
                                                              if not isinstance(v, bool)) +
                   (" --alternatives" if args.alternatives else ""),
        "config": {k: v for k, v in vars(Config().metric).items() if k.startswith("fuse")},
        "machine": f"{platform.processor() or platform.machine()}, CPU",
    }  # fmt: skip
    write_json_atomic(Path(args.out), report)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
