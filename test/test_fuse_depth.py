"""Depth fusion (mesh/fuse_depth.py) on rendered RGB-D scenes with known truth, alone and as part of step 8.

The truth is an ellipsoid seen by a 640x480 camera (f = 600 px) at 0.6 m; the "reconstruction" is the
marching-cubes mesh of a larger, bumpy ellipsoid (a visual hull's kind of error: 4 mm too far out, plus
+-1.5 mm of waviness), so every figure below can fail. Depth noise as benchmarks/fusion.py: sigma =
1 mm + 0.2 % of the range, 5 % dropout.
"""

from __future__ import annotations

import numpy as np
import pytest
import trimesh
from scipy import ndimage
from scipy.spatial import cKDTree

from one2345_ros import config as C
from one2345_ros.evaluation.visibility import closest_points, visible_hidden_chamfer
from one2345_ros.geometry import cameras as cam
from one2345_ros.geometry.render import Renderer
from one2345_ros.inputs.calibration import make_calibration
from one2345_ros.inputs.prepare import prepare_inputs, prepare_objects
from one2345_ros.mesh import make_mesh
from one2345_ros.mesh.extract import SdfGrid, Surface, extract_mesh
from one2345_ros.mesh.fuse_depth import fuse_depth, visible_vertices
from one2345_ros.pipeline import Pipeline
from one2345_ros.synthetic.scenes import render_objects
from one2345_ros.views.oracle import OracleGenerator

K = cam.intrinsics(600.0, 600.0, 319.5, 239.5)
W, H = 640, 480
CENTRE = np.array([0.03, -0.02, 0.6])
RADII = np.array([0.06, 0.045, 0.035])
ROTATION = trimesh.transformations.euler_matrix(0.4, -0.3, 0.7)[:3, :3]
INFLATE_M = 0.004
MEAN_ABS_NOISE = (0.001 + 0.002 * CENTRE[2]) * np.sqrt(2.0 / np.pi)
"""Mean |noise| of the depth at the object's range (1.76 mm): what the visible part is compared with."""
GOAL = 1.5 * MEAN_ABS_NOISE


def chamfer(mesh, truth, occluders=()):
    """Visible/hidden Chamfer with fewer samples than the benchmark (10,000; 100,000 for the nearest points)."""
    return visible_hidden_chamfer(mesh, truth, occluders, n_samples=10_000, dense_samples=100_000)


def ellipsoid(centre, radii, rotation, subdivisions: int = 5) -> trimesh.Trimesh:
    mesh = trimesh.creation.icosphere(subdivisions=subdivisions)
    mesh.vertices = mesh.vertices * radii @ rotation.T + centre
    return mesh


def bumpy_field(points, centre, radii, rotation):
    """Negative inside an ellipsoid ``INFLATE_M`` larger than (centre, radii, rotation), with waves (~ metres)."""
    q = (points - centre) @ rotation / (radii + INFLATE_M)
    waves = 0.03 * np.sin(5.0 * q[..., 0]) * np.cos(4.0 * q[..., 1])
    return (np.linalg.norm(q, axis=-1) - 1.0 - waves) * float(np.min(radii))


def grid_of(field, centre, half: float, nodes: int) -> SdfGrid:
    bbox = np.stack([centre - half, centre + half])
    axes = [np.linspace(bbox[0, d], bbox[1, d], nodes) for d in range(3)]
    points = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)
    return SdfGrid(values=field(points).astype(np.float32), bbox=bbox)


def position_colors(vertices: np.ndarray) -> np.ndarray:
    """RGB uint8 from the position (any smooth colouring: fusion must keep it)."""
    v = np.asarray(vertices, dtype=np.float64)
    span = np.ptp(v, axis=0) + 1e-12
    return np.clip(255 * (v - v.min(axis=0)) / span, 0, 255).astype(np.uint8)


def noisy(depth: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = depth.astype(np.float64)
    hit = out > 0
    out[hit] += rng.normal(size=int(hit.sum())) * (0.001 + 0.002 * out[hit])
    out[~hit] = np.nan
    out[rng.random(out.shape) < 0.05] = np.nan
    return out.astype(np.float32)


def test_split_chamfer_counts_only_what_the_camera_sees():
    truth = ellipsoid(np.array([0.0, 0.0, 0.5]), np.full(3, 0.05), np.eye(3), subdivisions=4)
    pushed = truth.copy()
    back = pushed.vertices[:, 2] > 0.5  # the far half, which the camera at the origin cannot see
    pushed.vertices[back] += 0.003 * (pushed.vertices[back] - [0.0, 0.0, 0.5]) / 0.05
    split = visible_hidden_chamfer(pushed, truth, n_samples=5000, dense_samples=50_000)
    assert 0.4 < split.visible_fraction < 0.5  # a cap a little smaller than the half sphere
    assert split.visible < 1e-4 and split.hidden > 1e-3
    wall = trimesh.creation.box(extents=(1.0, 1.0, 0.01))
    wall.apply_translation([0.0, 0.0, 0.2])
    hidden = visible_hidden_chamfer(pushed, truth, occluders=[wall], n_samples=5000, dense_samples=50_000)
    assert hidden.visible_fraction == 0.0 and np.isnan(hidden.visible)


@pytest.fixture(scope="module")
def scene():
    """Truth and reconstruction in the camera's optical frame, the rendered mask and noisy depth."""
    truth = ellipsoid(CENTRE, RADII, ROTATION)
    rendered = Renderer(truth).render(K, np.eye(4), W, H)
    recon = extract_mesh(grid_of(lambda p: bumpy_field(p, CENTRE, RADII, ROTATION), CENTRE, 0.075, 72))
    rgb = position_colors(recon.vertices)
    recon.visual.vertex_colors = np.concatenate([rgb, np.full((len(rgb), 1), 255, np.uint8)], axis=1)
    depth = noisy(rendered.depth, np.random.default_rng(0))
    fused, info = fuse_depth(recon, depth, K, rendered.mask, C.MetricConfig())
    return truth, recon, rendered, depth, fused, info


def test_fusion_brings_the_visible_part_to_the_depth_noise(scene):
    truth, recon, _, _, fused, info = scene
    before = chamfer(recon, truth)
    after = chamfer(fused, truth)
    assert before.visible > 1.4 * GOAL  # the reconstruction's visible side is wrong to start with
    assert after.visible < GOAL
    # measured: visible 4.0 -> 1.1 mm (goal 2.6 mm), hidden 3.90 -> 3.89 mm
    assert after.hidden < 1.01 * before.hidden
    # the rest: grazing, or beyond the true silhouette (this reconstruction is too large sideways too)
    assert info["target_vertices"] > 0.6 * info["visible_vertices"]


def test_a_reconstruction_already_within_the_noise_stays(scene):
    """The truth itself (another tessellation, 0.03 mm off): its offsets to the depth are noise, so fusion
    must not replace it with the noise (before the significance gain: visible 0.03 -> 0.14 mm, the 90th
    percentile of the vertices' moves 0.58 mm)."""
    truth, _, rendered, depth, _, _ = scene
    good = ellipsoid(CENTRE, RADII, ROTATION, subdivisions=4)
    fused, info = fuse_depth(good, depth, K, rendered.mask, C.MetricConfig())
    before, after = chamfer(good, truth), chamfer(fused, truth)
    assert info["target_vertices"] > 0.6 * info["visible_vertices"]  # it had targets, and kept still
    # measured: visible 0.025 -> 0.031 mm, hidden 0.0258 -> 0.0262 mm, 90 % of the vertices moved < 0.04 mm
    assert after.visible < max(1.5 * before.visible, 0.05 * MEAN_ABS_NOISE)
    assert after.hidden < before.hidden + 0.01 * MEAN_ABS_NOISE  # a ratio of figures of a few um is noise
    moved = np.linalg.norm(np.asarray(fused.vertices) - np.asarray(good.vertices), axis=1)
    assert np.percentile(moved, 90) < 0.05 * MEAN_ABS_NOISE


def test_hidden_side_far_from_the_visible_side_does_not_move(scene):
    _, recon, _, _, fused, _ = scene
    vertices = np.asarray(recon.vertices)
    visible = visible_vertices(recon, 1e-4)
    falloff = C.MetricConfig().fuse_falloff * float(np.linalg.norm(recon.extents))
    # Euclidean distance bounds the distance along the surface from below: these are farther still.
    distance, _ = cKDTree(vertices[visible]).query(vertices)
    far = distance > 5 * falloff
    assert far.sum() > 0.2 * len(vertices)
    moved = np.linalg.norm(np.asarray(fused.vertices) - vertices, axis=1)
    assert moved[far].max() < 1e-6
    assert moved[visible].max() > 0.002  # and the visible side did move


def test_colours_and_faces_are_kept(scene):
    _, recon, _, _, fused, _ = scene
    np.testing.assert_array_equal(fused.faces, recon.faces)
    np.testing.assert_array_equal(fused.visual.vertex_colors, recon.visual.vertex_colors)
    assert not np.allclose(fused.vertices, recon.vertices)


def _occluder_box() -> trimesh.Trimesh:
    """A 2 cm wide bar 20 cm in front of the object, across it (an object nearer the camera)."""
    box = trimesh.creation.box(extents=(0.02, 0.3, 0.02))
    box.apply_translation([CENTRE[0] + 0.01, CENTRE[1], 0.4])
    return box


def _corrupt(depth: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """30 % more dropout; the mask's outer 2 px read the background (+0.3 m) or a foreground (-0.2 m) in
    alternate blocks (segmentation errors, mixed pixels); half of the next ring are flying pixels between."""
    out = depth.copy()
    out[rng.random(out.shape) < 0.30] = np.nan
    ring = mask & ~ndimage.binary_erosion(mask, iterations=2)
    v, u = np.nonzero(ring)
    far = ((u // 6 + v // 6) % 2) == 0
    out[v[far], u[far]] = out[v[far], u[far]] + 0.3
    out[v[~far], u[~far]] = out[v[~far], u[~far]] - 0.2
    inner = ndimage.binary_erosion(mask, iterations=2) & ~ndimage.binary_erosion(mask, iterations=3)
    v, u = np.nonzero(inner & (rng.random(mask.shape) < 0.5))
    out[v, u] = out[v, u] + rng.uniform(-0.2, 0.3, len(v))
    return out


def test_dropout_and_edge_outliers_do_not_pull_the_surface(scene):
    truth, recon, rendered, depth, clean, _ = scene
    corrupted = _corrupt(depth, rendered.mask, np.random.default_rng(1))
    fused, _ = fuse_depth(recon, corrupted, K, rendered.mask, C.MetricConfig())
    assert chamfer(fused, truth).visible < GOAL  # measured 1.6 mm (clean depth: 1.0 mm)
    # The outliers are 0.2-0.3 m off. Had they pulled a vertex, it would be farther from the truth than both
    # the reconstruction and the fusion of clean depth put it; near the silhouette, where the outliers hide
    # the measurement, vertices keep (more of) the reconstruction's position instead.
    errors = [closest_points(truth, np.asarray(m.vertices))[1] for m in (recon, clean, fused)]
    assert np.all(errors[2] <= np.maximum(errors[0], errors[1]) + 0.0005)


def test_a_foreground_occluder_inside_the_mask_is_ignored(scene):
    """An amodal mask: the occluder's readings (20 cm nearer) and its flying pixels lie inside the object's mask."""
    truth, recon, rendered, _, _, _ = scene
    box = _occluder_box()
    front = Renderer(box).render(K, np.eye(4), W, H)
    z = np.where(rendered.depth > 0, rendered.depth, np.inf)
    zb = np.where(front.depth > 0, front.depth, np.inf)
    depth = np.minimum(z, zb)
    depth[~np.isfinite(depth)] = 0.0
    # flying pixels: the columns beside the bar blend both depths
    cols = np.nonzero(front.mask.any(axis=0))[0]
    for c in (cols.min() - 1, cols.max() + 1):
        rows = rendered.mask[:, c]
        depth[rows, c] = 0.5 * (depth[rows, c] + 0.4)
    depth = noisy(depth.astype(np.float32), np.random.default_rng(2))
    fused, _ = fuse_depth(recon, depth, K, rendered.mask, C.MetricConfig())
    after = chamfer(fused, truth, occluders=[box])
    assert after.visible < GOAL
    # Nothing was pulled towards the bar: every vertex stays behind the true surface's front minus the noise.
    moved_toward = np.asarray(recon.vertices)[:, 2] - np.asarray(fused.vertices)[:, 2]
    assert moved_toward.max() < 0.004


def test_no_usable_depth_changes_nothing(scene):
    _, recon, rendered, depth, _, _ = scene
    fused, info = fuse_depth(recon, np.full_like(depth, np.nan), K, rendered.mask, C.MetricConfig())
    np.testing.assert_array_equal(fused.vertices, recon.vertices)
    assert info["target_vertices"] == 0 and info["moved_vertices"] == 0


# ----------------------------------------------------------------------------- step 8 of the pipeline


class BlankViews:
    """A view generator that answers with white images (the stub reconstruction does not look at them)."""

    name = "blank"

    def generate(self, cond_image, cond_pose, targets, input_polar_deg, seeds, progress=None):
        return np.full((len(targets), 256, 256, 3), 255, np.uint8)


class KnownSurface:
    """A reconstruction backend that returns the bumpy ellipsoid in the canonical frame, with colours."""

    name = "known"

    def __init__(self, oracle: OracleGenerator, world_centre, world_rotation, nodes: int = 56):
        self.to_canonical = oracle.canonical_from_mesh
        self.world_centre, self.world_rotation, self.nodes = world_centre, world_rotation, nodes

    def surface(self) -> Surface:
        to_world = np.linalg.inv(self.to_canonical)
        scale = float(np.cbrt(np.linalg.det(self.to_canonical[:3, :3])))
        centre = cam.transform_points(self.to_canonical, self.world_centre[None])[0]

        def field(points):
            return bumpy_field(cam.transform_points(to_world, points.reshape(-1, 3)).reshape(points.shape),
                               self.world_centre, RADII, self.world_rotation)  # fmt: skip

        grid = grid_of(field, centre, 0.075 * scale, self.nodes)
        return Surface(grid=grid, colors=lambda v: position_colors(v))

    def reconstruct(self, views) -> Surface:
        return self.surface()


@pytest.fixture(scope="module")
def world():
    """The ellipsoid in a z-up world, a camera 0.6 m away looking at it, the rendered RGB-D input."""
    centre = np.array([0.1, 0.2, 0.05])
    truth = ellipsoid(centre, RADII, ROTATION, subdivisions=4)
    c2w = cam.look_at(centre + cam.camera_center(60.0, 30.0, 0.6), centre + np.array([0.01, -0.01, 0.0]))
    rendered = Renderer(truth).render(K, c2w, W, H)
    backend = KnownSurface(OracleGenerator(truth, c2w), centre, ROTATION)
    return truth, c2w, rendered, backend


def _run(world, depth: bool, *overrides: str):
    _, c2w, rendered, backend = world
    cfg = C.load_config(overrides=dict(C.parse_override(o) for o in ("elevation.source=gravity", *overrides)))
    measured = noisy(rendered.depth, np.random.default_rng(3)) if depth else None
    calibration = make_calibration(K, [], "plumb_bob", W, H, "cam")
    inputs = prepare_inputs(rendered.rgb, rendered.mask, cfg.inputs, depth=measured, depth_encoding="32FC1",
                            calibration=calibration, frame_id="cam", gravity_c2w=c2w)  # fmt: skip
    result = Pipeline(cfg, generator=BlankViews(), reconstructor=backend).reconstruct(inputs)
    unfused = make_mesh(backend.surface(), None, cfg.mesh)
    unfused.apply_transform(result.canonical_to_frame)
    return cfg, inputs, result, unfused


@pytest.fixture(scope="module")
def fused_run(world):
    return _run(world, True)


def test_pipeline_fuses_depth_in_step_8_by_default(fused_run):
    cfg, inputs, result, unfused = fused_run
    assert cfg.metric.fuse_depth and result.scale_source == "depth"
    assert "scale.fuse_depth" in result.timings and result.timings["scale.fuse_depth"] <= result.timings["scale"]
    info = result.diagnostics["fuse_depth"]
    assert info["target_vertices"] > 100
    # step 8 is the depth fit, then exactly fuse_depth on the placed mesh
    expected, _ = fuse_depth(unfused, inputs.depth, inputs.K, inputs.mask, cfg.metric)
    np.testing.assert_allclose(result.mesh.vertices, expected.vertices, atol=1e-12)
    assert np.abs(np.asarray(result.mesh.vertices) - np.asarray(unfused.vertices)).max() > 0.002
    np.testing.assert_array_equal(result.mesh.visual.vertex_colors, unfused.visual.vertex_colors)


def test_pipeline_with_fuse_depth_false_keeps_the_reconstruction(world):
    _, _, result, unfused = _run(world, True, "metric.fuse_depth=false")
    assert result.scale_source == "depth"
    assert "fuse_depth" not in result.diagnostics and "scale.fuse_depth" not in result.timings
    np.testing.assert_array_equal(result.mesh.vertices, unfused.vertices)  # bit for bit
    np.testing.assert_array_equal(result.mesh.visual.vertex_colors, unfused.visual.vertex_colors)


def test_pipeline_without_depth_does_not_fuse(world):
    distance = float(np.linalg.norm(world[1][:3, 3] - world[0].bounding_box.centroid))
    _, _, result, unfused = _run(world, False, f"metric.object_distance_m={distance}")
    assert result.scale_source == "object_distance"
    assert "fuse_depth" not in result.diagnostics and "scale.fuse_depth" not in result.timings
    np.testing.assert_array_equal(result.mesh.vertices, unfused.vertices)


class KnownSurfaces:
    """Several objects' KnownSurface, answered in the order the pipeline reconstructs them (the request's)."""

    name = "known"

    def __init__(self, backends):
        self.backends, self.calls = backends, 0

    def reconstruct(self, views) -> Surface:
        backend = self.backends[self.calls % len(self.backends)]
        self.calls += 1
        return backend.surface()


def test_several_objects_each_fused_with_its_own_mask():
    """Two ellipsoids side by side in one request (labels): each object's step 8 fuses the depth inside its
    own mask only, and each visible side ends within the goal of its own truth."""
    centres = [np.array([0.1, 0.12, 0.05]), np.array([0.1, 0.28, 0.05])]
    rotations = [ROTATION, trimesh.transformations.euler_matrix(-0.2, 0.5, 1.1)[:3, :3]]
    truths = [ellipsoid(c, RADII, r, subdivisions=4) for c, r in zip(centres, rotations)]
    middle = 0.5 * (centres[0] + centres[1])
    c2w = cam.look_at(middle + cam.camera_center(60.0, 90.0, 0.6), middle)
    # Half the resolution of the other tests (f = 300 px, 320x240): the depth fit's ICP, which dominates this
    # test's time, then has ~1,000 points per object instead of its cap of 3,000.
    k_half, w_half, h_half = cam.intrinsics(300.0, 300.0, 159.5, 119.5), W // 2, H // 2
    scene = render_objects(truths, k_half, c2w, w_half, h_half, supersample=1)
    masks = {"a": scene.labels == 1, "b": scene.labels == 2}
    assert all(m.sum() > 500 for m in masks.values())
    # a coarser grid than the single object's: the depth fit's ICP dominates this test's time
    backends = [KnownSurface(OracleGenerator(t, c2w), c, r, nodes=32) for t, c, r in zip(truths, centres, rotations)]
    cfg = C.load_config(overrides=dict([C.parse_override("elevation.source=gravity")]))
    depth = noisy(scene.depth, np.random.default_rng(4))
    calibration = make_calibration(k_half, [], "plumb_bob", w_half, h_half, "cam")
    prepared, refused = prepare_objects(scene.image, masks, cfg.inputs, depth=depth, depth_encoding="32FC1",
                                        calibration=calibration, frame_id="cam", gravity_c2w=c2w)  # fmt: skip
    assert not refused
    results = Pipeline(cfg, generator=BlankViews(), reconstructor=KnownSurfaces(backends)).reconstruct_objects(prepared)
    in_camera = [t.copy().apply_transform(cam.invert_rigid(c2w)) for t in truths]
    for k, (inputs, result, backend) in enumerate(zip(prepared, results, backends)):
        assert result.ok and result.scale_source == "depth" and result.diagnostics["objects_in_batch"] == 2
        assert "scale.fuse_depth" in result.timings and result.diagnostics["fuse_depth"]["target_vertices"] > 100
        unfused = make_mesh(backend.surface(), None, cfg.mesh)
        unfused.apply_transform(result.canonical_to_frame)
        expected, _ = fuse_depth(unfused, inputs.depth, inputs.K, inputs.mask, cfg.metric)
        np.testing.assert_allclose(result.mesh.vertices, expected.vertices, atol=1e-12)
        other = in_camera[1 - k]
        before, after = chamfer(unfused, in_camera[k], [other]), chamfer(result.mesh, in_camera[k], [other])
        # measured: visible 0.70 -> 0.51 and 0.74 -> 0.52 mm (the depth fit already took the hull's 4 mm
        # inflation out on average; the waviness left is ~0.4 x the noise, so only part of it is significant
        # at this resolution), hidden 4.36 -> 4.34 and 2.207 -> 2.206 mm
        assert after.visible < min(GOAL, 0.8 * before.visible)
        assert after.hidden < 1.01 * before.hidden
        # the pose and extents describe the fused mesh
        np.testing.assert_allclose(result.object_pose[:3, 3], result.mesh.bounding_box_oriented.centroid, atol=2e-3)
