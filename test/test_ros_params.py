"""config/params.yaml maps onto the pipeline and node dataclasses; bad parameters give clear errors."""

import pytest
import yaml

from one2345_ros.config import ConfigError
from one2345_ros.ros.node_config import default_parameters, load_params_file, settings_from_parameters

from ros_helpers import REPO

PARAMS = REPO / "config" / "params.yaml"


def _flat(d, prefix=""):
    out = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {prefix + k: v})
    return out


def test_params_file_lists_every_parameter_with_its_default():
    section = yaml.safe_load(PARAMS.read_text())["one2345_reconstructor"]["ros__parameters"]
    flat = _flat(section)
    defaults = default_parameters()
    assert sorted(flat) == sorted(defaults), "config/params.yaml must list exactly the declared parameters"
    assert {k: v for k, v in flat.items() if v != defaults[k]} == {}


def test_params_file_loads_into_both_dataclasses():
    settings = load_params_file(PARAMS)
    assert settings.node.sync_slop_s == 0.05 and settings.node.marker_face_budget == 50000
    assert settings.pipeline.zero123.device == "auto" and settings.pipeline.metric.depth_scale == 0.0


def test_ros_builtins_tolerated_and_ints_accepted_for_floats():
    params = dict(default_parameters())
    params.update({"use_sim_time": True, "qos_overrides./image.subscription.reliability": "reliable",
                   "start_type_description_service": True, "ros.sync_slop_s": 1, "zero123.device": "cuda:1"})  # fmt: skip
    settings = settings_from_parameters(params)
    assert settings.node.sync_slop_s == 1.0 and settings.pipeline.zero123.device == "cuda:1"


@pytest.mark.parametrize(
    "name, value, message",
    [("ros.input_reliability", "fast", "ros.input_reliability: 'fast' is not one of best_effort, reliable"),
     ("zero123.device", "gpu0", "zero123.device: 'gpu0' is not"),
     ("ros.sync_slop_s", -0.1, "ros.sync_slop_s: must be >= 0"),
     ("ros.sync_queue_size", 0, "ros.sync_queue_size: must be > 0"),
     ("sparseneus.checkpoint", "/nonexistent/ckpt_215000.pth", "sparseneus.checkpoint: /nonexistent/ckpt_215000.pth does not exist"),
     ("ros.queue_requests", "2", "ros.queue_requests: expected an integer"),
     ("ros.slop", 0.1, "unknown configuration key(s) ros.slop"),
     ("zero123.stepz", 10, "unknown configuration key(s) zero123.stepz")],
)  # fmt: skip
def test_bad_parameters_named_in_the_error(name, value, message):
    params = dict(default_parameters())
    params[name] = value
    with pytest.raises(ConfigError) as info:
        settings_from_parameters(params)
    assert message in str(info.value)


def test_all_problems_reported_at_once(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("one2345_reconstructor:\n  ros__parameters:\n    mesh: {format: stl}\n    ros: {marker_type: cubes}\n")
    with pytest.raises(ConfigError) as info:
        load_params_file(path)
    text = str(info.value)
    assert str(path) in text and "mesh.format: 'stl'" in text and "ros.marker_type: 'cubes'" in text
