"""The one config loader: YAML (plain and ROS forms), overrides, ROS parameters, every check, weight files.

The CLI and the node must reject the same bad values with the same message, before any model loads.
"""

import struct
import subprocess
import sys
import zipfile

import pytest
import yaml
from ros_helpers import REPO

from one2345_ros import config as C
from one2345_ros.ros.params import config_from_parameters, default_parameters

PARAMS = REPO / "config" / "params.yaml"


def _flat(d, prefix=""):
    out = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {prefix + k: v})
    return out


def test_yaml_plain_and_ros_forms(tmp_path):
    plain = tmp_path / "plain.yaml"
    plain.write_text("zero123:\n  steps_stage1: 20\n  dtype: bf16\nhull:\n  resolution: 64\n")
    cfg = C.load_config(plain)
    assert cfg.zero123.steps_stage1 == 20 and cfg.zero123.dtype == "bf16" and cfg.hull.resolution == 64
    ros = tmp_path / "ros.yaml"
    ros.write_text(
        "one2345_reconstructor:\n  ros__parameters:\n    use_sim_time: false\n"
        "    qos_overrides./tf.publisher.depth: 1\n    zero123.dtype: fp16\n    seed: 3\n"
    )
    cfg = C.load_config(ros)
    assert cfg.zero123.dtype == "fp16" and cfg.seed == 3


def test_params_file_lists_every_parameter_with_its_default():
    section = yaml.safe_load(PARAMS.read_text())["one2345_reconstructor"]["ros__parameters"]
    flat = _flat(section)
    defaults = default_parameters()
    assert sorted(flat) == sorted(defaults), "config/params.yaml must list exactly the declared parameters"
    assert {k: v for k, v in flat.items() if v != defaults[k]} == {}
    assert C.load_config(PARAMS, environ={}) == C.Config()  # and the CLI reads it


def test_test_knobs_are_not_user_parameters():
    names = set(default_parameters())
    assert not {"input_azimuth_deg", "output_dir"} & names  # output_dir is the node's: ros.output_dir
    assert "ros.output_dir" in names and "inputs.min_mask_pixels" in names


@pytest.mark.parametrize(
    "key, value, message",
    [("mesh.format", "stl", "mesh.format: 'stl' is not one of ply, glb, obj"),
     ("elevation.source", "gravityy", "elevation.source: 'gravityy' is not one of auto, image, gravity, fused"),
     ("zero123.dtype", "fp8", "zero123.dtype: 'fp8' is not one of fp32, fp16, bf16"),
     ("ros.input_reliability", "fast", "ros.input_reliability: 'fast' is not one of best_effort, reliable"),
     ("zero123.device", "gpu0", "zero123.device: 'gpu0' is not 'auto', 'cpu', 'cuda' or 'cuda:N'"),
     ("ros.sync_slop_s", -0.1, "ros.sync_slop_s: must be >= 0.0, got -0.1"),
     ("ros.sync_queue_size", 0, "ros.sync_queue_size: must be >= 1, got 0"),
     ("preprocess.fill_ratio", 1.5, "preprocess.fill_ratio: must be <= 1.0, got 1.5"),
     ("sparseneus.checkpoint", "/nonexistent/ckpt_215000.pth",
      "sparseneus.checkpoint: /nonexistent/ckpt_215000.pth does not exist"),
     ("ros.queue_requests", "2", "ros.queue_requests: expected an integer, got '2'"),
     ("zero123.stepz", 10, "unknown configuration key(s) zero123.stepz")],
)  # fmt: skip
def test_node_and_cli_reject_the_same_values_the_same_way(tmp_path, key, value, message):
    params = dict(default_parameters())
    params[key] = value
    with pytest.raises(C.ConfigError) as node_error:
        config_from_parameters(params)
    assert message in str(node_error.value)
    # The CLI: the same value from a YAML file, through the one loader, before any model loads.
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(C.unflatten({key: value})))
    with pytest.raises(C.ConfigError) as cli_error:
        C.load_config(path)
    assert message in str(cli_error.value) and str(path) in str(cli_error.value)


def test_every_problem_is_reported_at_once(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("one2345_reconstructor:\n  ros__parameters:\n"
                    "    mesh: {format: stl}\n    ros: {marker_type: cubes}\n")  # fmt: skip
    with pytest.raises(C.ConfigError) as info:
        C.load_config(path)
    text = str(info.value)
    assert str(path) in text and "mesh.format: 'stl'" in text and "ros.marker_type: 'cubes'" in text


def test_set_overrides_parse_values_by_type(tmp_path):
    key, value = C.parse_override("zero123.steps_stage1=20")
    assert (key, value) == ("zero123.steps_stage1", 20)
    assert C.parse_override("mesh.preview_glb=false") == ("mesh.preview_glb", False)
    assert C.parse_override("oracle.mesh=123") == ("oracle.mesh", "123")  # a string field keeps its text
    cfg = C.load_config(None, dict([C.parse_override("hull.resolution=64"), C.parse_override("zero123.dtype=bf16")]))
    assert cfg.hull.resolution == 64 and cfg.zero123.dtype == "bf16"
    with pytest.raises(C.ConfigError, match="expected KEY=VALUE"):
        C.parse_override("hull.resolution")


def test_the_cli_refuses_a_bad_value_before_loading_anything(tmp_path):
    """Through the real command: exit 2, the key and the allowed values, no model, no result."""
    image = tmp_path / "rgb.png"
    proc = subprocess.run(
        [sys.executable, "-m", "one2345_ros.cli.main", "reconstruct", str(image), "--mask", str(image), "--out",
         str(tmp_path / "out"), "--set", "mesh.format=stl"], capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "mesh.format: 'stl' is not one of ply, glb, obj" in proc.stderr and "Traceback" not in proc.stderr
    assert "torch" not in proc.stderr


def test_environment_fills_empty_weight_paths_once(tmp_path):
    ckpt = tmp_path / "ckpt.pth"
    with zipfile.ZipFile(ckpt, "w") as z:
        z.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
    cfg = C.load_config(None, environ={C.SPARSENEUS_ENV: str(ckpt)})
    assert cfg.sparseneus.checkpoint == str(ckpt)
    explicit = C.load_config(None, {"sparseneus.checkpoint": str(ckpt)}, environ={C.SPARSENEUS_ENV: "/elsewhere"})
    assert explicit.sparseneus.checkpoint == str(ckpt)


def test_weight_files_are_checked_for_format_not_just_existence(tmp_path):
    text = tmp_path / "notes.pth"
    text.write_text("this is not a checkpoint\n")
    assert "not a PyTorch checkpoint or safetensors file" in C.check_weight_path(str(text))
    good = tmp_path / "good.pth"
    with zipfile.ZipFile(good, "w") as z:
        z.writestr("archive/data.pkl", b"\x80\x02}q\x00." * 100)
    assert C.check_weight_path(str(good)) == ""
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    assert "truncated or corrupt" in C.check_weight_path(str(truncated))
    header = b'{"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}'
    safe = tmp_path / "w.safetensors"
    safe.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 16)
    assert C.check_weight_path(str(safe)) == ""
    safe.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 5)
    assert "truncated" in C.check_weight_path(str(safe))
    with pytest.raises(C.ConfigError, match="sparseneus.checkpoint: .*notes.pth is not a PyTorch checkpoint"):
        C.load_config(None, {"sparseneus.checkpoint": str(text)})


def test_required_weights_are_named_with_how_to_get_them():
    with pytest.raises(C.ConfigError, match="zero123.model .*kxic/zero123-xl"):
        C.require_models(C.load_config(None, environ={}))
    with pytest.raises(C.ConfigError, match="sparseneus.checkpoint .*ckpt_215000.pth"):
        C.require_models(C.load_config(None, {"backend": "sparseneus"}, environ={}), views=False)


def test_node_only_rules():
    with pytest.raises(C.ConfigError, match="ros.gravity_frame"):
        config_from_parameters({"elevation.source": "gravity"})
    assert C.load_config(None, {"elevation.source": "gravity"}).elevation.source == "gravity"  # CLI: --gravity-c2w
