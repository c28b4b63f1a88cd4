"""Elevation estimation: exact geometry, oracle-rendered known answers, failures, gravity, CLI."""

import json

import numpy as np
import pytest
from PIL import Image

from one2345_ros.config import ElevationConfig
from one2345_ros.elevation.choice import choose_elevation, elevation_from_gravity
from one2345_ros.elevation.estimate import estimate_elevation, search_polar
from one2345_ros.elevation.geometry import (
    CAP_ERROR_PX,
    build_observations,
    hypothesis_c2w,
    refine_with_view_poses,
    reprojection_errors,
)
from one2345_ros.elevation.match import PairMatches, match_views
from one2345_ros.geometry import cameras as cam
from one2345_ros.types import InputError

K256 = cam.view_intrinsics(256)
ORACLE_CASES = [("mug", 20.0, 35.0), ("mallet", -10.0, 150.0), ("house", 45.0, -60.0)]
"""(bundled object, true elevation, input azimuth in the mesh frame)."""
TOLERANCE_DEG = 3.0


def _input_camera(mesh, elevation, azimuth):
    centre = mesh.bounding_box.centroid
    eye = centre + cam.camera_center(cam.polar_from_elevation(elevation), azimuth, 3.0 * float(np.max(mesh.extents)))
    return cam.look_at(eye, centre)


def _elevation_views(oracle):
    targets = [(dp, da, 0.0) for dp, da in cam.ELEVATION_VIEW_OFFSETS]
    return oracle.generate(np.full((256, 256, 3), 255, np.uint8), (0.0, 0.0), targets, None, [0, 1, 2, 3])


@pytest.fixture(scope="module")
def oracle_views():
    from one2345_ros.synthetic.assets import load_object
    from one2345_ros.views.oracle import OracleGenerator

    out = {}
    for name, elevation, azimuth in ORACLE_CASES:
        mesh = load_object(name)
        oracle = OracleGenerator(mesh, _input_camera(mesh, elevation, azimuth))
        # The oracle orbits the point the centred crop looks at, as Zero123 does; its
        # views are consistent with the elevation seen from there (within ~1 deg of
        # the bounding-box centre's).
        assert oracle.true_elevation_deg == pytest.approx(elevation, abs=1.5)
        out[name] = (oracle.true_elevation_deg, _elevation_views(oracle))
    return out


# ------------------------------------------------------------------ exact geometry


def _synthetic_pairs(polar_deg, n=200, noise_px=0.0, seed=0, view_errors_deg=None):
    """Matches of random 3-D points seen by the four views at ``polar_deg``, each
    view off its nominal pose by ``view_errors_deg`` [4, 2] (d_polar, d_azimuth)."""
    rng = np.random.default_rng(seed)
    points = rng.uniform(-0.3, 0.3, size=(n, 3))
    offsets = np.asarray(cam.ELEVATION_VIEW_OFFSETS) + (0.0 if view_errors_deg is None else np.asarray(view_errors_deg))
    c2w = cam.spherical_to_c2w(polar_deg + offsets[:, 0], offsets[:, 1])
    uv = [cam.project(points, K256, cam.invert_rigid(c2w[k]))[0] + rng.normal(0, noise_px, (n, 2)) for k in range(4)]
    return {(i, j): PairMatches(i, j, uv[i], uv[j], np.ones(n)) for i in range(4) for j in range(i + 1, 4)}


def test_hypothesis_cameras_are_the_elevation_views_in_order():
    c2w = hypothesis_c2w([70.0])[0]
    polar, azimuth, radius = cam.c2w_to_spherical(c2w)
    np.testing.assert_allclose(polar, [60.0, 80.0, 70.0, 70.0], atol=1e-9)
    np.testing.assert_allclose(azimuth, [0.0, 0.0, -10.0, 10.0], atol=1e-9)
    np.testing.assert_allclose(radius, cam.ZERO123_RADIUS, atol=1e-12)


def test_reprojection_error_is_zero_only_at_the_true_polar():
    pairs = _synthetic_pairs(63.0)
    obs = build_observations(pairs, K256, radius_px=1e-6)
    assert len(obs) == 12 * 200  # every (pair, third view) combination, every point
    err = reprojection_errors(obs, [63.0, 60.0, 66.0, 90.0], K256[0, 0])
    assert err[0].max() < 1e-6
    assert (err[1:].mean(axis=1) > 0.05).all()
    assert (err < CAP_ERROR_PX).all()


@pytest.mark.parametrize("polar", [37.0, 63.4, 90.0, 118.7])
def test_search_recovers_sub_degree_polar_from_noisy_matches(polar):
    pairs = _synthetic_pairs(polar, noise_px=0.3, seed=int(polar))
    cfg = ElevationConfig()
    obs = build_observations(pairs, K256, cfg.track_radius_px)
    found, curve_polar, curve_error, coarse = search_polar(obs, cfg, K256[0, 0])
    assert found == pytest.approx(polar, abs=0.5)
    assert curve_polar[np.argmin(curve_error)] == pytest.approx(polar, abs=1.0)
    assert len(coarse) == 13 and np.all(np.diff(curve_polar) > 0)


@pytest.mark.parametrize("polar", [40.0, 60.0])
def test_pose_refinement_recovers_view_pose_errors(polar):
    """Views off their nominal azimuth by 1.5 deg bias the fixed-pose search by
    degrees; the refinement finds the view errors and the polar."""
    errors = np.array([[0.5, 0.0], [-0.5, 0.0], [0.0, -1.5], [0.0, 1.5]])
    pairs = _synthetic_pairs(polar, noise_px=0.3, view_errors_deg=errors)
    cfg = ElevationConfig()
    obs = build_observations(pairs, K256, cfg.track_radius_px)
    searched, *_ = search_polar(obs, cfg, K256[0, 0])
    assert abs(searched - polar) > 2.0
    refined, corrections = refine_with_view_poses(obs, searched, K256[0, 0], 0.5, cfg.robust_scale_px, (30.0, 150.0))
    assert refined == pytest.approx(polar, abs=0.3)
    np.testing.assert_allclose(corrections, errors, atol=0.1)


# ------------------------------------------------------------- oracle-rendered views


@pytest.mark.parametrize("name", [c[0] for c in ORACLE_CASES])
def test_known_elevation_from_oracle_views(oracle_views, name):
    truth, views = oracle_views[name]
    est = estimate_elevation(views, ElevationConfig())
    assert est.reason == ""
    assert not est.fallback_used
    assert est.confidence >= ElevationConfig().min_confidence
    assert est.elevation_deg == pytest.approx(truth, abs=TOLERANCE_DEG)
    assert est.polar_deg == pytest.approx(90.0 - est.elevation_deg)


def test_error_curve_has_its_minimum_at_the_truth(oracle_views):
    truth, views = oracle_views["mug"]
    est = estimate_elevation(views, ElevationConfig())
    true_polar = 90.0 - truth
    curve_min = est.curve_polar_deg[np.argmin(est.curve_error)]
    assert curve_min == pytest.approx(true_polar, abs=TOLERANCE_DEG)
    far = np.abs(est.curve_polar_deg - true_polar) >= 20.0
    assert est.curve_error[far].min() > 1.5 * est.curve_error.min()


def test_matches_use_each_views_own_mask():
    """The original tests view 0's point with view 1's x (keep0 bug); here a match
    whose view-0 point is on the background is dropped even when that x is on the object."""
    views = np.full((4, 256, 256, 3), 255, np.uint8)
    views[:, 60:200, 60:200] = 90  # object square in every view
    on_i, on_j = np.array([[100.0, 100.0], [150.0, 120.0]]), np.array([[105.0, 101.0], [150.0, 125.0]])
    bug_i, bug_j = np.array([[20.0, 100.0]]), np.array([[100.0, 100.0]])  # view-i point on background

    class FixedMatcher:
        name = "fixed"

        def match(self, views, masks):
            pts_i, pts_j = np.concatenate([on_i, bug_i]), np.concatenate([on_j, bug_j])
            return {(i, j): PairMatches(i, j, pts_i, pts_j, np.ones(3)) for i in range(4) for j in range(i + 1, 4)}

    pairs = match_views(views, ElevationConfig(), FixedMatcher())
    for m in pairs.values():
        np.testing.assert_array_equal(m.pts_i, on_i)
        np.testing.assert_array_equal(m.pts_j, on_j)


# ------------------------------------------------------------------------ failures


def _assert_fallback(est, words):
    cfg = ElevationConfig()
    assert est.confidence < cfg.min_confidence
    assert est.fallback_used
    assert est.polar_deg == cfg.fallback_polar_deg
    assert est.elevation_deg == pytest.approx(90.0 - cfg.fallback_polar_deg)
    assert any(w in est.reason for w in words), est.reason


def test_blank_views_give_low_confidence_with_reason():
    _assert_fallback(estimate_elevation(np.full((4, 256, 256, 3), 255, np.uint8)), ["blank"])


def test_textureless_views_give_low_confidence_with_reason():
    views = np.full((4, 256, 256, 3), 255, np.uint8)
    yy, xx = np.mgrid[:256, :256]
    for k, (dx, dy) in enumerate([(0, -6), (0, 6), (-6, 0), (6, 0)]):
        views[k][(xx - 128 - dx) ** 2 + (yy - 128 - dy) ** 2 < 90**2] = (180, 60, 60)  # plain disc
    est = estimate_elevation(views)
    _assert_fallback(est, ["too few matches"])
    assert est.estimated_polar_deg is None


def test_identical_views_are_degenerate(oracle_views):
    _, views = oracle_views["house"]
    _assert_fallback(estimate_elevation(np.stack([views[0]] * 4)), ["no parallax"])


@pytest.mark.parametrize(
    "views",
    [
        np.zeros((3, 256, 256, 3), np.uint8),
        np.zeros((4, 256, 256), np.uint8),
        np.zeros((4, 256, 200, 3), np.uint8),
        np.zeros((4, 256, 256, 3), np.float32),
        [[0]],
    ],
    ids=["three views", "grey", "not square", "float", "list"],
)
def test_wrong_inputs_give_low_confidence_instead_of_raising(views):
    est = estimate_elevation(views)
    _assert_fallback(est, ["views", "view"])


def test_unknown_matcher_and_missing_loftr_weights_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="sift"):
        estimate_elevation(np.full((4, 256, 256, 3), 200, np.uint8), ElevationConfig(matcher="orb"))
    missing = tmp_path / "indoor_ds_new.ckpt"
    with pytest.raises(FileNotFoundError, match=r"indoor_ds_new\.ckpt"):
        cfg = ElevationConfig(matcher="loftr", loftr_weights=str(missing))
        estimate_elevation(np.full((4, 256, 256, 3), 200, np.uint8), cfg)


def test_loftr_checkpoint_round_trip(tmp_path):
    """The LoFTR authors' format ({"state_dict": ...} plus training entries), loaded
    with weights_only=True into kornia's LoFTR with the indoor_new positional encoding."""
    torch = pytest.importorskip("torch")
    from kornia.feature import LoFTR

    from one2345_ros.elevation.match import load_loftr

    torch.manual_seed(0)
    reference = LoFTR(pretrained=None)
    path = tmp_path / "indoor_ds_new.ckpt"
    torch.save({"state_dict": reference.state_dict(), "epoch": 29}, path)
    model = load_loftr(str(path))
    assert not model.training and model.config["coarse"]["temp_bug_fix"]
    for (name, a), (_, b) in zip(reference.state_dict().items(), model.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    torch.save({"state_dict": {"backbone.conv1.weight": torch.zeros(1)}}, tmp_path / "other.ckpt")
    with pytest.raises(ValueError, match="not a LoFTR checkpoint"):
        load_loftr(str(tmp_path / "other.ckpt"))


# ------------------------------------------------------------------------- gravity


@pytest.mark.parametrize("name, elevation, azimuth, seed", [("mallet", 37.0, 20.0, 3), ("mug", -8.0, -120.0, 4)])
def test_gravity_elevation_equals_rendered_truth_off_centre(name, elevation, azimuth, seed):
    from one2345_ros.preprocess import preprocess
    from one2345_ros.synthetic.assets import load_object
    from one2345_ros.synthetic.scenes import render_scene

    mesh = load_object(name)
    scene = render_scene(mesh, elevation, azimuth, np.random.default_rng(seed))
    centre = mesh.bounding_box.centroid
    truth = cam.elevation_of_camera(scene.c2w, centre)
    assert truth == pytest.approx(elevation, abs=1e-9)
    uv, depth = cam.project(centre[None], scene.K, cam.invert_rigid(scene.c2w))
    uv = uv[0]
    # off-centre: the object centre is far from the principal point, so the camera's
    # own pitch is not the answer
    assert np.linalg.norm(uv - scene.K[:2, 2]) > 20.0
    forward = scene.c2w[:3, 2]
    assert abs(np.rad2deg(np.arcsin(-forward[2])) - truth) > 0.5
    # the rendered object's pixel centre: its 3-D centre's pixel, checked against the depth map
    u, v = np.rint(uv).astype(int)
    assert scene.mask[v, u] and scene.depth[v, u] < depth[0]  # the surface in front of the centre
    assert elevation_from_gravity(scene.c2w, scene.K, uv) == pytest.approx(truth, abs=1e-9)
    # the pipeline only has the mask: the centre of its bounding box, whose ray can
    # differ from the true centre's by at most the angle between the two rays
    pre = preprocess(scene.image, scene.mask)
    approx = elevation_from_gravity(scene.c2w, scene.K, pre.pixel_center)
    rays = np.linalg.inv(scene.K) @ np.array([[*uv, 1.0], [*pre.pixel_center, 1.0]]).T
    cos = rays[:, 0] @ rays[:, 1] / np.linalg.norm(rays, axis=0).prod()
    assert abs(approx - truth) <= np.rad2deg(np.arccos(min(cos, 1.0))) + 1e-9


def test_gravity_input_errors():
    with pytest.raises(InputError, match="4x4"):
        elevation_from_gravity(np.eye(3), K256, (128, 128))
    with pytest.raises(InputError, match="rotation"):
        elevation_from_gravity(np.diag([1.0, 2.0, 1.0, 1.0]), K256, (128, 128))


def test_source_rule_reports_both_and_the_disagreement(oracle_views):
    truth, views = oracle_views["mug"]
    est = estimate_elevation(views)
    d = choose_elevation(ElevationConfig(source="auto"), est, gravity_deg=truth + 0.5)
    assert (d.source, d.chosen_deg) == ("gravity", truth + 0.5)
    assert d.disagreement_deg == pytest.approx(abs(truth + 0.5 - est.estimated_elevation_deg))
    d = choose_elevation(ElevationConfig(source="auto"), est, gravity_deg=None)
    assert (d.source, d.chosen_deg) == ("image", est.estimated_elevation_deg)
    d = choose_elevation(ElevationConfig(source="fused"), est, gravity_deg=truth)
    low, high = sorted([truth, est.estimated_elevation_deg])
    assert d.source == "fused" and low <= d.chosen_deg <= high
    with pytest.raises(InputError, match="gravity"):
        choose_elevation(ElevationConfig(source="gravity"), est, gravity_deg=None)


def test_elevation_choice_wiring(oracle_views):
    """What the pipeline does with the four views: the image estimate, then the one choice of source:
    image only without gravity; gravity chosen with the image estimate reported beside it; blank views
    fall back with the reason recorded."""
    from one2345_ros.elevation.choice import choose_elevation
    from one2345_ros.elevation.estimate import estimate_elevation

    truth, views = oracle_views["mallet"]
    estimate = estimate_elevation(views, ElevationConfig())
    d = choose_elevation(ElevationConfig(), estimate, None)
    assert d.chosen_deg == pytest.approx(truth, abs=TOLERANCE_DEG) and d.source == "image"
    d = choose_elevation(ElevationConfig(), estimate, 10.0)
    assert d.chosen_deg == pytest.approx(10.0, abs=1e-9) and d.source == "gravity"
    assert d.image_deg == pytest.approx(truth, abs=TOLERANCE_DEG)
    assert d.disagreement_deg == pytest.approx(abs(10.0 - d.image_deg))
    details = estimate.to_dict()
    assert len(details["curve"]["polar_deg"]) > 13
    json.dumps(details)  # result.json must be able to hold it
    blank = estimate_elevation(np.full((4, 256, 256, 3), 255, np.uint8), ElevationConfig())
    d = choose_elevation(ElevationConfig(), blank, None)
    assert d.chosen_deg == pytest.approx(90.0 - ElevationConfig().fallback_polar_deg)
    assert "blank" in d.image_reason and "fallback" in d.image_reason and d.image_deg is None
    assert d.source == "fallback"  # result.json must not call a fallback elevation an image estimate


# ----------------------------------------------------------------------------- CLI


def _write_views(tmp_path, views):
    paths = []
    for k, v in enumerate(views):
        paths.append(str(tmp_path / f"0_{k}.png"))
        Image.fromarray(v).save(paths[-1])
    return paths


def test_cli_prints_json(oracle_views, tmp_path, capsys):
    from one2345_ros.cli.main import main

    truth, views = oracle_views["house"]
    assert main(["elevation", *_write_views(tmp_path, views), "--curve"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["elevation_deg"] == pytest.approx(truth, abs=TOLERANCE_DEG)
    assert out["polar_deg"] == pytest.approx(90.0 - out["elevation_deg"])
    assert out["confidence"] >= 0.3 and out["elevation_source"] == "image"
    assert len(out["curve"]["polar_deg"]) == len(out["curve"]["error"]) > 13


def test_cli_gravity_pose(oracle_views, tmp_path, capsys):
    from one2345_ros.cli.main import main

    _, views = oracle_views["house"]
    c2w = cam.spherical_to_c2w(70.0, 0.0)  # camera looking at the origin from 20 deg elevation
    (tmp_path / "tf.json").write_text(json.dumps({"c2w": c2w.tolist()}))
    assert main(["elevation", *_write_views(tmp_path, views), "--gravity-c2w", str(tmp_path / "tf.json")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["elevation_source"] == "gravity"
    assert out["elevation_deg"] == pytest.approx(20.0, abs=1e-6)
    assert out["elevation_image_deg"] is not None and out["disagreement_deg"] is not None


def test_cli_unreliable_is_exit_0_unusable_is_not(tmp_path, capsys):
    from one2345_ros.cli.main import main

    blank = _write_views(tmp_path, np.full((4, 256, 256, 3), 255, np.uint8))
    assert main(["elevation", *blank]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["confidence"] == 0.0 and "blank" in out["reason"] and out["fallback_used"]
    Image.fromarray(np.zeros((128, 128, 3), np.uint8)).save(tmp_path / "small.png")
    assert main(["elevation", *blank[:3], str(tmp_path / "small.png")]) != 0
    assert "256x256" in capsys.readouterr().err
    assert main(["elevation", *blank[:3], str(tmp_path / "missing.png")]) != 0
