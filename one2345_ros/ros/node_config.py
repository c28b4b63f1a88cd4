"""The node's own settings and the validation of all its parameters (ROS-free).

One parameter set fills two dataclasses: the pipeline's :class:`~one2345_ros.config.PipelineConfig`
(dotted names such as ``zero123.device``) and :class:`NodeConfig` under the ``ros.`` prefix
(``ros.sync_slop_s``). ``config/params.yaml`` lists every one of them. Unknown names are an
error, so a misspelt parameter stops the node at start instead of being ignored.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import config as core_config
from ..config import ConfigError, PipelineConfig

NODE_PREFIX = "ros."
NODE_NAME = "one2345_reconstructor"


@dataclass
class NodeConfig:
    autostart: bool = True
    """Configure and activate (load the models) at start; false = wait for lifecycle commands."""
    sync_slop_s: float = 0.05
    """ApproximateTimeSynchronizer slop: largest stamp difference within an image/mask pair."""
    sync_queue_size: int = 10
    use_depth: bool = False
    """Subscribe to `depth` and synchronise it with image and mask."""
    use_camera_info: bool = False
    """Subscribe to `camera_info` and synchronise it (needed for metric output in the camera frame)."""
    input_reliability: str = "best_effort"
    """QoS of the inputs: 'best_effort' (SensorDataQoS, matches any publisher) or 'reliable'."""
    input_history_depth: int = 5
    queue_requests: int = 0
    """Requests waiting while one runs: 0 = reject a request while busy; N = queue up to N."""
    request_timeout_s: float = 900.0
    """A service request waiting longer is cancelled and answered with a timeout (0 = no limit)."""
    max_input_age_s: float = 0.0
    """Refuse a latest pair older than this (against the node clock); 0 = any age."""
    min_mask_pixels: int = 64
    """Masks with fewer object pixels are rejected as empty."""
    marker_type: str = "triangle_list"
    """~/marker as 'triangle_list' (vertex colours, decimated) or 'mesh_resource' (the mesh file)."""
    marker_face_budget: int = 50000
    """TRIANGLE_LIST markers are decimated to at most this many faces (0 = no limit)."""
    publish_points: bool = True
    publish_views: bool = True
    publish_tf: bool = True
    """Broadcast the object frame one2345/<object_id> on /tf_static."""
    publish_collision_object: bool = False
    """Publish a moveit_msgs/CollisionObject (needs moveit_msgs; metric results only)."""
    collision_object_topic: str = "/collision_object"
    write_mesh: bool = True
    """Write the mesh and result.json under output_dir (needed for mesh_uri and MESH_RESOURCE)."""
    gravity_frame: str = ""
    """A z-up TF frame (REP-103: base_link, odom, map); the camera's pose in it at the image
    stamp is handed to the pipeline for gravity elevation. '' = no gravity."""
    tf_timeout_s: float = 0.2
    """How long a request waits for that transform."""


_CHOICES = {
    "ros.input_reliability": ("best_effort", "reliable"),
    "ros.marker_type": ("triangle_list", "mesh_resource"),
    "views": ("zero123", "oracle"),
    "backend": ("auto", "hull", "sparseneus"),
    "zero123.preset": ("faithful", "fast"),
    "zero123.dtype": ("fp32", "fp16", "bf16"),
    "elevation.source": ("auto", "image", "gravity", "fused"),
    "elevation.matcher": ("sift", "loftr"),
    "sparseneus.backend": ("dense", "torchsparse"),
    "mesh.format": ("glb", "ply", "obj"),
}
_DEVICES = ("zero123.device", "sparseneus.device")
_NON_NEGATIVE = ("ros.tf_timeout_s", "ros.sync_slop_s", "ros.queue_requests", "ros.request_timeout_s", "ros.max_input_age_s",
                 "ros.min_mask_pixels", "ros.marker_face_budget", "metric.depth_scale")  # fmt: skip
_POSITIVE = ("ros.sync_queue_size", "ros.input_history_depth")
_WEIGHT_FILES = ("zero123.model", "zero123.image_encoder", "sparseneus.checkpoint", "elevation.loftr_weights")


@dataclass
class Settings:
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    node: NodeConfig = field(default_factory=NodeConfig)


def default_parameters() -> dict[str, Any]:
    """Every parameter the node declares, dotted name -> default."""
    params = core_config.flatten(PipelineConfig())
    params.update(core_config.flatten(NodeConfig(), NODE_PREFIX))
    return params


def settings_from_parameters(params: dict[str, Any]) -> Settings:
    """Validate dotted parameters (ROS's view of the YAML) into :class:`Settings`.

    Raises ConfigError naming every bad parameter.
    """
    # Parameters every ROS node carries are not ours; drop them before nesting the names
    # (qos_overrides./image.subscription.reliability would nest oddly).
    params = {k: v for k, v in params.items() if not _is_ros_builtin(k)}
    node_part = {k[len(NODE_PREFIX) :]: v for k, v in params.items() if k.startswith(NODE_PREFIX)}
    core_part = {k: v for k, v in params.items() if not k.startswith(NODE_PREFIX)}
    node = core_config.from_dict(NodeConfig, core_config.unflatten(node_part), NODE_PREFIX)
    pipeline = core_config.from_dict(PipelineConfig, core_config.unflatten(core_part))
    settings = Settings(pipeline=pipeline, node=node)
    problems = validate(settings)
    if problems:
        raise ConfigError("invalid parameters:\n  " + "\n  ".join(problems))
    return settings


def _is_ros_builtin(name: str) -> bool:
    return name in core_config.ROS_BUILTIN_PARAMETERS or name.startswith(core_config.ROS_BUILTIN_PREFIXES)


def load_params_file(path: str | os.PathLike, node_name: str = NODE_NAME) -> Settings:
    """The node's Settings from a ROS parameter file (``node: ros__parameters: ...``) or a plain mapping."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError as exc:
        raise ConfigError(f"parameter file not found: {path}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    sections = {k: v for k, v in data.items() if isinstance(v, dict) and "ros__parameters" in v}
    if sections:
        data = (sections.get(node_name) or sections.get("/**") or next(iter(sections.values())))["ros__parameters"]
    try:
        return settings_from_parameters(_flatten_mapping(data))
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def _flatten_mapping(data: dict, prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(_flatten_mapping(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def validate(settings: Settings) -> list[str]:
    """Range and choice checks the dataclass types cannot express; one line per problem."""
    flat = core_config.flatten(settings.pipeline)
    flat.update(core_config.flatten(settings.node, NODE_PREFIX))
    problems = []
    for name, choices in _CHOICES.items():
        if flat[name] not in choices:
            problems.append(f"{name}: {flat[name]!r} is not one of {', '.join(choices)}")
    for name in _DEVICES:
        device = flat[name]
        if device not in ("auto", "cpu", "cuda") and not (device.startswith("cuda:") and device[5:].isdigit()):
            problems.append(f"{name}: {device!r} is not 'auto', 'cpu', 'cuda' or 'cuda:N'")
    for name in _NON_NEGATIVE:
        if flat[name] < 0:
            problems.append(f"{name}: must be >= 0, got {flat[name]}")
    for name in _POSITIVE:
        if flat[name] <= 0:
            problems.append(f"{name}: must be > 0, got {flat[name]}")
    for name in _WEIGHT_FILES:
        path = flat[name]
        if path and not Path(os.path.expanduser(path)).exists():
            problems.append(f"{name}: {path} does not exist (set it to the downloaded weights, or '' for the default)")
    if settings.pipeline.elevation.source == "gravity" and not settings.node.gravity_frame:
        problems.append("elevation.source: 'gravity' needs ros.gravity_frame (a z-up TF frame such as base_link)")
    if settings.node.publish_collision_object and not settings.node.collision_object_topic:
        problems.append("ros.collision_object_topic: empty while ros.publish_collision_object is true")
    return problems
