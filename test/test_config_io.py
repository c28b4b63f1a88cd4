"""Strict config loading and views-folder / atomic-file I/O."""

import json

import numpy as np
import pytest

from one2345_ros.geometry import cameras as cam
from one2345_ros import config as C
from one2345_ros.results.atomic import atomic_path, safe_child, write_image_atomic, write_json_atomic
from one2345_ros.types import InputError, ViewSet
from one2345_ros.views.folder import read_views_folder, write_views_folder


def test_yaml_plain_and_ros_forms(tmp_path):
    plain = tmp_path / "plain.yaml"
    plain.write_text("views: oracle\nzero123:\n  steps_stage1: 20\n  dtype: bf16\nhull:\n  resolution: 64\n")
    cfg = C.load_yaml(plain)
    assert cfg.views == "oracle" and cfg.zero123.steps_stage1 == 20 and cfg.hull.resolution == 64
    ros = tmp_path / "ros.yaml"
    ros.write_text(
        "one2345_reconstructor:\n  ros__parameters:\n    use_sim_time: false\n"
        "    qos_overrides./tf.publisher.depth: 1\n    zero123.dtype: fp16\n    seed: 3\n"
    )
    cfg = C.load_yaml(ros, node_name="one2345_reconstructor")
    assert cfg.zero123.dtype == "fp16" and cfg.seed == 3


@pytest.mark.parametrize(
    "text,match",
    [
        ("zero123:\n  stepz: 3\n", "unknown configuration key.*zero123.stepz"),
        ("hull:\n  resolution: high\n", "hull.resolution: expected an integer"),
        ("zero123: 5\n", "zero123: expected a mapping"),
        ("seed: 1.5\n", "seed: expected an integer"),
        ("zero123:\n  allow_cpu: 1\n", "allow_cpu: expected true/false"),
    ],
)
def test_yaml_errors_name_the_key(tmp_path, text, match):
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(C.ConfigError, match=match):
        C.load_yaml(p)


def test_flatten_unflatten_round_trip():
    cfg = C.PipelineConfig()
    cfg.zero123.steps_stage2 = 7
    flat = C.flatten(cfg)
    assert flat["zero123.steps_stage2"] == 7 and "metric.object_size_m" in flat
    assert C.from_dict(C.PipelineConfig, C.unflatten(flat)) == cfg


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "result.json"
    write_json_atomic(target, {"a": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_safe_child_refuses_escapes(tmp_path):
    assert safe_child(tmp_path, "a/b.glb") == (tmp_path / "a/b.glb").resolve()
    for bad in ("../x.glb", "/etc/passwd", "a/../../x", ""):
        with pytest.raises(InputError):
            safe_child(tmp_path, bad)


def make_views(n=4, masks=True):
    rng = np.random.default_rng(0)
    plan = cam.stage2_views(cam.one2345_plan(70.0))[:n]
    images = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
    return ViewSet(
        images=images,
        K=np.broadcast_to(cam.view_intrinsics(32), (n, 3, 3)).copy(),
        c2w=np.stack([v.c2w() for v in plan]),
        names=[v.name for v in plan],
        masks=rng.random((n, 32, 32)) > 0.5 if masks else None,
        reference=1,
        near_far=(0.5, 1.8),
    )


def test_views_folder_round_trip(tmp_path):
    views = make_views()
    write_views_folder(tmp_path / "v", views)
    back = read_views_folder(tmp_path / "v")
    np.testing.assert_array_equal(back.images, views.images)
    np.testing.assert_array_equal(back.masks, views.masks)
    np.testing.assert_allclose(back.c2w, views.c2w, atol=0)
    np.testing.assert_allclose(back.K, views.K, atol=0)
    assert back.reference == 1 and back.near_far == (0.5, 1.8)


def test_views_folder_errors(tmp_path):
    views = make_views(masks=False)
    folder = write_views_folder(tmp_path / "v", views)
    doc = json.loads((folder / "views.json").read_text())
    doc["images"][0]["c2w"] = [[1, 0, 0], [0, 1, 0]]
    (folder / "views.json").write_text(json.dumps(doc))
    with pytest.raises(InputError, match=r"images\[0\].c2w: expected a finite 4x4"):
        read_views_folder(folder)
    doc["images"][0]["file"] = "../outside.png"
    (folder / "views.json").write_text(json.dumps(doc))
    with pytest.raises(InputError, match="escapes"):
        read_views_folder(folder)
    with pytest.raises(InputError, match="no views.json"):
        read_views_folder(tmp_path)


def test_one2345_output_folder(tmp_path):
    plan = cam.one2345_plan(70.0, cam.ONE2345_INPUT_AZIMUTH_DEG)
    (tmp_path / "stage1_8").mkdir()
    (tmp_path / "stage2_8").mkdir()
    c2ws = {}
    for v in plan:
        sub = "stage2_8" if v.stage == 2 else "stage1_8"
        write_image_atomic(tmp_path / sub / f"{v.name}.png", np.full((8, 8, 3), 255, np.uint8))
        c2ws[f"{v.name}.png"] = cam.opencv_to_opengl(v.c2w()).tolist()
    write_json_atomic(
        tmp_path / "pose.json", {"intrinsics": cam.view_intrinsics().tolist(), "near_far": [0.5, 1.8], "c2ws": c2ws}
    )
    views = read_views_folder(tmp_path)
    assert len(views.names) == 32 and views.names[:5] == ["0_0", "0_1", "0_2", "0_3", "1_0"]
    np.testing.assert_allclose(views.c2w[0], plan[8].c2w(), atol=1e-12)
    np.testing.assert_allclose(views.frame_c2w(), plan[0].c2w(), atol=1e-12)


def test_the_nodes_params_file_loads_for_the_cli():
    from pathlib import Path

    cfg = C.load_yaml(Path(__file__).parents[1] / "config" / "params.yaml", node_name="one2345_reconstructor")
    assert cfg == C.PipelineConfig()  # the file lists every default
