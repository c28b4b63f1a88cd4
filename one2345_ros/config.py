"""Configuration: one dataclass per component, one loader, all validation.

A YAML file (plain, or the node's ``params.yaml`` in ROS form), ROS parameters and command-line
overrides all go through :func:`from_dict` into the same :class:`Config`, and every value is
checked there: types, choices (``Literal`` fields), ranges (field ``metadata``), devices and
weight files (existence and format, without loading them). So the CLI and the node reject the
same bad values, before any model loads, naming the dotted key and what is allowed.

Nested dataclasses are dotted names (``zero123.steps_stage1``): the ROS parameter names and the
keys of ``--set KEY=VALUE``. Unknown keys are an error, except the parameters every ROS node
carries (:data:`ROS_BUILTIN_PARAMETERS`). This module imports nothing heavy, so the node and the
CLI read configuration before torch is loaded.
"""

from __future__ import annotations

import dataclasses
import json
import os
import typing
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

ZERO123_ENV = "ONE2345_ZERO123"
SPARSENEUS_ENV = "ONE2345_SPARSENEUS"


class ConfigError(ValueError):
    """A configuration value or key is invalid; the message names it."""


def _at_least(low: float) -> dict:
    return {"min": low}


def _between(low: float, high: float) -> dict:
    return {"min": low, "max": high}


DEVICE = {"device": True}
WEIGHTS = {"weights": True}


@dataclass
class InputConfig:
    mask_threshold: int = field(default=127, metadata=_between(0, 254))
    """uint8 masks: values > this are the object (0/1 masks: > 0). Soft masks are thresholded with a warning."""
    min_mask_pixels: int = field(default=64, metadata=_at_least(1))
    """Masks with fewer object pixels are refused as empty."""
    keep_largest_component: bool = False
    """A mask in several parts: keep only the largest (else reconstruct all of it, with a warning)."""
    depth_scale: float = field(default=0.0, metadata=_at_least(0.0))
    """Divisor turning depth pixels into metres; 0 = by encoding (16UC1: 1000, 32FC1: 1)."""


@dataclass
class PreprocessConfig:
    fill_ratio: float = field(default=0.75, metadata=_between(0.1, 1.0))
    """Fraction of the output side the object's longer bounding-box side fills (One-2-3-45: 0.75)."""
    size: int = field(default=256, metadata=_at_least(32))
    """Output side in pixels (Zero123 works at 256)."""


@dataclass
class Zero123Config:
    model: str = field(default="", metadata=WEIGHTS)
    """Diffusers folder or original .ckpt; empty = $ONE2345_ZERO123."""
    image_encoder: str = field(default="", metadata=WEIGHTS)
    """CLIP vision folder, needed when converting a .ckpt without the visual tower."""
    variant: Literal["auto", "ema", "fp16_ema", "fp16", "main"] = "auto"
    """Weight files: 'auto' (EMA weights when the folder has them, e.g. bennyguo's fp16_ema; else the
    default files), 'ema' (required), 'fp16_ema', 'fp16' or 'main' (diffusers' default files).
    For a .ckpt: auto/ema = the EMA copy, main = the raw weights."""
    preset: Literal["faithful", "fast"] = "faithful"
    """'faithful' (DDIM eta 1, 75/50 steps as One-2-3-45, which run 76/49) or 'fast' (DPM-Solver++ 2M, ~20 steps)."""
    steps_stage1: int = field(default=0, metadata=_at_least(0))
    """Denoising steps for stage-1 views; 0 = the preset's value."""
    steps_stage2: int = field(default=0, metadata=_at_least(0))
    """Denoising steps for stage-2 views; 0 = the preset's value."""
    guidance_scale: float = field(default=3.0, metadata=_at_least(0.0))
    dtype: Literal["fp32", "fp16", "bf16"] = "fp32"
    device: str = field(default="auto", metadata=DEVICE)
    """'auto' (CUDA when available), 'cuda', 'cuda:N' or 'cpu'."""
    allow_cpu: bool = False
    """Run Zero123 on a CPU (one request takes hours) instead of refusing."""
    max_batch: int = field(default=32, metadata=_at_least(1))
    """Largest UNet batch (CFG doubles the views) per forward; larger calls are chunked."""
    compile: bool = False
    """torch.compile the UNet (CUDA only)."""
    allow_pickle: bool = False
    """Allow full pickle loading of trusted checkpoints that weights_only=True rejects."""
    camera_embedding: Literal["auto", "delta_radius", "cond_polar"] = "auto"
    """Fourth slot of T: 'delta_radius' (Zero123, Zero123-XL), 'cond_polar' (Stable Zero123) or 'auto'
    (the saved cc_projection config; Stable Zero123 by folder/file name)."""
    both_rings: bool = False
    """Generate both second-ring candidates (views 4-11) with views 0-3, before the elevation is known:
    4 extra stage-1 views, one fewer sequential batch (3 instead of 4)."""


@dataclass
class ElevationConfig:
    source: Literal["auto", "image", "gravity", "fused"] = "auto"
    """'image', 'gravity', 'fused' or 'auto' (gravity when a gravity pose is given, else image)."""
    mode: Literal["default", "faithful"] = "default"
    """'default' or 'faithful' (One-2-3-45's estimator step for step: its error, integer search, no refinement)."""
    matcher: Literal["sift", "dense", "sift+dense", "loftr"] = "sift"
    """'sift' (OpenCV SIFT), 'dense' (OpenCV DIS optical flow), 'sift+dense' (both; none needs weights) or
    'loftr' (kornia, needs loftr_weights)."""
    silhouettes: bool = True
    """Default mode: also fit the silhouettes' epipolar tangency (what carries smooth, low-texture objects)."""
    loftr_weights: str = field(default="", metadata=WEIGHTS)
    polar_min_deg: float = field(default=30.0, metadata=_between(0.0, 180.0))
    polar_max_deg: float = field(default=150.0, metadata=_between(0.0, 180.0))
    """Coarse candidates: polar_min_deg, + coarse_step_deg, ... below polar_max_deg (the original's 30..140)."""
    coarse_step_deg: float = field(default=10.0, metadata=_at_least(0.1))
    fine_step_deg: float = field(default=1.0, metadata=_at_least(0.01))
    fine_radius_deg: float = field(default=10.0, metadata=_at_least(0.0))
    """Fine candidates: the best coarse polar +- this (the original's best-10..best+9: polar 20..149 reachable)."""
    fallback_polar_deg: float = field(default=90.0, metadata=_between(0.0, 180.0))
    """Polar angle used when no estimate can be made (One-2-3-45 uses 90); the source is then 'fallback'."""
    min_confidence: float = field(default=0.0, metadata=_between(0.0, 1.0))
    """0: an image estimate is always used, whatever its confidence (as the original). Above 0: estimates
    with a lower confidence are replaced by the fallback (source 'fallback', reason recorded)."""
    sift_contrast_threshold: float = field(default=0.01, metadata=_at_least(0.0))
    """OpenCV SIFT contrastThreshold (OpenCV's default 0.04 finds too few points on 256x256 views)."""
    ratio_test: float = field(default=0.8, metadata=_between(0.0, 1.0))
    """Lowe's ratio for SIFT matches."""
    mask_margin_px: int = field(default=2, metadata=_at_least(0))
    """Matches must lie this far inside the silhouette (contour points are not fixed surface points)."""
    ransac_threshold_px: float = field(default=2.0, metadata=_at_least(0.0))
    """Epipolar RANSAC threshold per pair (0 disables); generated views are only roughly consistent."""
    track_radius_px: float = field(default=1.0, metadata=_at_least(0.0))
    """Matches of view a with views b and t share a point when their view-a points are this close (original: 1 px)."""
    robust_scale_px: float = field(default=2.0, metadata=_at_least(0.01))
    """Scale of the Cauchy loss on reprojection errors: larger errors count logarithmically."""
    min_tracks: int = field(default=12, metadata=_at_least(1))
    """Fewer three-view observations than this and no usable silhouettes: no estimate (the fallback is used)."""
    refine_view_poses: bool = True
    """After the grid search, refine the polar jointly with a small pose error per view (generated views are
    imperfect)."""
    view_pose_sigma_deg: float = field(default=0.5, metadata=_at_least(0.0))
    """Prior standard deviation of each view's pose error in that refinement."""


@dataclass
class HullConfig:
    resolution: int = field(default=128, metadata=_at_least(8))
    """Voxels per side of the carving grid."""
    min_view_fraction: float = field(default=1.0, metadata=_between(0.0, 1.0))
    """A voxel is kept if inside the silhouette in at least this fraction of the views that see it."""
    min_seen_views: int = field(default=1, metadata=_at_least(1))
    """A voxel seen (projected on the image, in front of the camera) by fewer views is carved."""
    coarse_resolution: int = field(default=32, metadata=_at_least(8))
    """Nodes per side of the coarse carving that derives the bounding box when the views give none."""


@dataclass
class SparseNeuSConfig:
    checkpoint: str = field(default="", metadata=WEIGHTS)
    """One-2-3-45 ckpt_215000.pth; empty = $ONE2345_SPARSENEUS (none: hull reconstruction)."""
    backend: Literal["dense", "torchsparse"] = "dense"
    """Sparse 3D CNN backend: 'dense' (plain PyTorch) or 'torchsparse'."""
    batchnorm: Literal["batch", "running"] = "batch"
    """'batch' statistics as the original runs at inference, or 'running'."""
    volume_resolution: int = field(default=96, metadata=_at_least(8))
    mesh_resolution: int = field(default=256, metadata=_at_least(16))
    device: str = field(default="auto", metadata=DEVICE)
    mesh_near_surface: bool = True
    """Evaluate the fine SDF grid only near the surface found on a coarse grid (exact there);
    false evaluates every grid point, as the original does."""
    chunk_points: int = field(default=131072, metadata=_at_least(1))
    """Points per SDF-network call when filling the mesh grid."""
    allow_pickle: bool = False
    """Allow full pickle loading of a trusted checkpoint that weights_only=True rejects."""


@dataclass
class MeshConfig:
    format: Literal["ply", "glb", "obj"] = "ply"
    """File of the mesh in the result's frame (PLY and OBJ keep its axes: metric results load in the
    camera's optical frame). GLB is y-up by the glTF standard, so its axes differ (result.json says so)."""
    preview_glb: bool = True
    """Also write mesh.glb (glTF, y-up) for viewers, beside a PLY or OBJ mesh."""
    keep_largest_component: bool = True
    face_budget: int = field(default=0, metadata=_at_least(0))
    """Decimate to at most this many faces (0 = no limit); quadric decimation (fast-simplification)."""
    min_component_fraction: float = field(default=0.01, metadata=_between(0.0, 1.0))
    """With keep_largest_component off: drop components with fewer than this fraction of the faces."""
    colors: Literal["auto", "network", "views", "none"] = "auto"
    """Vertex colours: 'network' (SparseNeuS's rendering network, as the original), 'views' (projected from
    the generated views, visibility by ray casting), 'none', or 'auto' (the backend's own when it has one)."""


@dataclass
class MetricConfig:
    object_distance_m: float = field(default=0.0, metadata=_at_least(0.0))
    """Distance from the camera to the object's centre, when there is no depth (0 = unknown)."""
    object_size_m: float = field(default=0.0, metadata=_at_least(0.0))
    """Largest extent of the object, when there is neither depth nor distance (0 = unknown)."""
    fuse_depth: bool = True
    """With depth: move the mesh's visible side onto the measured depth after the fit (mesh/fuse_depth.py); the
    unseen side stays the reconstruction's. False: the depth only places and scales the reconstruction."""
    fuse_window_px: int = field(default=2, metadata=_between(1, 10))
    """Half side of the pixel window a vertex's robust depth is read from: (2 r + 1)^2 pixels."""
    fuse_max_toward: float = field(default=0.1, metadata=_between(0.0, 1.0))
    """Largest move of a vertex towards the camera, in bounding-box diagonals of the mesh; nearer readings
    (an occluder, flying pixels) are ignored."""
    fuse_max_away: float = field(default=0.3, metadata=_between(0.0, 1.0))
    """Largest move away from the camera, in bounding-box diagonals: how deep the camera may carve into the
    reconstruction (a cup's opening that a visual hull closes)."""
    fuse_falloff: float = field(default=0.02, metadata=_between(0.001, 1.0))
    """Decay length of the displacement from the measured vertices into their neighbourhood, in bounding-box
    diagonals (no seam at the silhouette; vertices beyond 4 decay lengths do not move)."""
    fuse_edge_jump: float = field(default=0.02, metadata=_between(0.001, 1.0))
    """A depth jump to a neighbouring pixel above this fraction of the range marks an occlusion edge (readings
    there are not used)."""


@dataclass
class OracleConfig:
    mesh: str = ""
    """Mesh file (any format trimesh reads, +z up) the synthetic views are rendered from; for several objects
    a folder holding ``<object_id>.<ext>`` per object."""
    input_c2w: list[float] = field(default_factory=list)
    """16 numbers, row-major: OpenCV c2w of the input camera in the mesh's frame ([] = from TF on the node)."""
    mesh_frame: str = ""
    """The node: TF frame the mesh is defined in; the camera's pose in it is looked up at the image stamp."""
    supersample: int = field(default=2, metadata=_between(1, 4))
    """Rays per pixel side of the synthetic views (2: antialiased edges like real images; 1: 4x fewer rays)."""


@dataclass
class RosConfig:
    autostart: bool = True
    """Configure and activate (load the models) at start; false = wait for lifecycle commands."""
    output_dir: str = "one2345_output"
    """Result folders (mesh, result.json, views) are written here; mesh_uri points into it."""
    sync_slop_s: float = field(default=0.05, metadata=_at_least(0.0))
    """ApproximateTimeSynchronizer slop: largest stamp difference within an image/mask pair."""
    sync_queue_size: int = field(default=10, metadata=_at_least(1))
    use_depth: bool = False
    """Subscribe to `depth` and synchronise it with image and mask."""
    use_camera_info: bool = False
    """Subscribe to `camera_info` and synchronise it (needed for metric output in the camera frame)."""
    use_labels: bool = False
    """Subscribe to `labels` (a label image: instance ids, 0 = background) instead of `mask`: every
    object of the latest set is reconstructed."""
    input_reliability: Literal["best_effort", "reliable"] = "best_effort"
    """QoS of the inputs: 'best_effort' (SensorDataQoS, matches any publisher) or 'reliable'."""
    input_history_depth: int = field(default=5, metadata=_at_least(1))
    queue_requests: int = field(default=0, metadata=_at_least(0))
    """Requests waiting while one runs: 0 = reject a request while busy; N = queue up to N."""
    request_timeout_s: float = field(default=900.0, metadata=_at_least(0.0))
    """A service request waiting longer is cancelled and answered with a timeout (0 = no limit)."""
    max_input_age_s: float = field(default=0.0, metadata=_at_least(0.0))
    """Refuse a latest pair older than this (against the node clock); 0 = any age."""
    marker_type: Literal["triangle_list", "mesh_resource"] = "triangle_list"
    """~/marker as 'triangle_list' (vertex colours, decimated) or 'mesh_resource' (the mesh file)."""
    marker_face_budget: int = field(default=50000, metadata=_at_least(0))
    """TRIANGLE_LIST markers are decimated to at most this many faces (0 = no limit)."""
    publish_points: bool = True
    surface_points: int = field(default=20000, metadata=_at_least(0))
    """~/surface_points: this many points sampled uniformly on the request's surfaces (0 = not published)."""
    publish_views: bool = True
    publish_tf: bool = True
    """Broadcast the object frame one2345/<object_id> on /tf_static."""
    publish_collision_object: bool = False
    """Publish a moveit_msgs/CollisionObject (needs moveit_msgs; metric results only)."""
    collision_object_topic: str = "/collision_object"
    write_mesh: bool = True
    """Write each result folder under output_dir (needed for mesh_uri and MESH_RESOURCE)."""
    gravity_frame: str = ""
    """A z-up TF frame (REP-103: base_link, odom, map); the camera's pose in it at the image
    stamp is handed to the pipeline for gravity elevation. '' = no gravity."""
    tf_timeout_s: float = field(default=0.2, metadata=_at_least(0.0))
    """How long a request waits for that transform."""


@dataclass
class Config:
    """Everything one params.yaml holds: the pipeline's components and, under ``ros``, the node's
    own settings (the pipeline ignores them; the node and ``bag`` read them)."""

    views: Literal["zero123", "oracle"] = "zero123"
    """'zero123', or 'oracle': synthetic views rendered from a known mesh (``oracle``), for demos and tests."""
    backend: Literal["auto", "hull", "sparseneus"] = "auto"
    """'auto' (sparseneus when a checkpoint is configured, else hull), 'hull' or 'sparseneus'."""
    seed: int = 0
    inputs: InputConfig = field(default_factory=InputConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    zero123: Zero123Config = field(default_factory=Zero123Config)
    elevation: ElevationConfig = field(default_factory=ElevationConfig)
    hull: HullConfig = field(default_factory=HullConfig)
    sparseneus: SparseNeuSConfig = field(default_factory=SparseNeuSConfig)
    mesh: MeshConfig = field(default_factory=MeshConfig)
    metric: MetricConfig = field(default_factory=MetricConfig)
    oracle: OracleConfig = field(default_factory=OracleConfig)
    ros: RosConfig = field(default_factory=RosConfig)


ROS_BUILTIN_PARAMETERS = ("use_sim_time", "start_type_description_service")
ROS_BUILTIN_PREFIXES = ("qos_overrides.",)
NODE_NAME = "one2345_reconstructor"


def is_ros_builtin(name: str) -> bool:
    """Parameters every ROS node carries (not ours; tolerated in parameter files)."""
    # Nested YAML turns "qos_overrides./tf.depth" into a "qos_overrides" group.
    return name in ROS_BUILTIN_PARAMETERS or (name + ".").startswith(ROS_BUILTIN_PREFIXES)


# ----------------------------------------------------------------------------- values


def _choices(typ) -> tuple | None:
    return typing.get_args(typ) if typing.get_origin(typ) is Literal else None


def _coerce(value: Any, typ: Any, name: str) -> Any:
    choices = _choices(typ)
    if choices is not None:
        if value not in choices:
            raise ConfigError(f"{name}: {value!r} is not one of {', '.join(map(str, choices))}")
        return value
    if typ is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{name}: expected true/false, got {value!r}")
    if typ is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{name}: expected an integer, got {value!r}")
        return value
    if typ is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{name}: expected a number, got {value!r}")
        return float(value)
    if typ is str:
        if not isinstance(value, str):
            raise ConfigError(f"{name}: expected a string, got {value!r}")
        return value
    if typing.get_origin(typ) is list:
        (item,) = typing.get_args(typ)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{name}: expected a list, got {value!r}")
        return [_coerce(v, item, f"{name}[{i}]") for i, v in enumerate(value)]
    raise ConfigError(f"{name}: unsupported field type {typ!r}")


def _check_range(value, meta: dict, name: str) -> None:
    if "min" in meta and value < meta["min"]:
        raise ConfigError(f"{name}: must be >= {meta['min']}, got {value}")
    if "max" in meta and value > meta["max"]:
        raise ConfigError(f"{name}: must be <= {meta['max']}, got {value}")
    if meta.get("device"):
        numbered = value.startswith("cuda:") and value[5:].isdigit()
        if value not in ("auto", "cpu", "cuda") and not numbered:
            raise ConfigError(f"{name}: {value!r} is not 'auto', 'cpu', 'cuda' or 'cuda:N'")


def from_dict(cls, data: dict | None, prefix: str = ""):
    """Build dataclass ``cls`` from a nested dict, checking every value; unknown keys raise ConfigError.

    Every problem is collected and reported at once, one line each.
    """
    problems: list[str] = []
    obj = _from_dict(cls, data, prefix, problems)
    if problems:
        raise ConfigError(problems[0] if len(problems) == 1 else "invalid configuration:\n  " + "\n  ".join(problems))
    return obj


def _from_dict(cls, data, prefix: str, problems: list[str]):
    data = dict(data or {})
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        value = data.pop(f.name)
        name = prefix + f.name
        typ = hints[f.name]
        try:
            if dataclasses.is_dataclass(typ):
                if not isinstance(value, dict):
                    raise ConfigError(f"{name}: expected a mapping, got {value!r}")
                kwargs[f.name] = _from_dict(typ, value, name + ".", problems)
                continue
            kwargs[f.name] = _coerce(value, typ, name)
            _check_range(kwargs[f.name], f.metadata, name)
        except ConfigError as exc:
            problems.append(str(exc))
            kwargs.pop(f.name, None)
    unknown = [k for k in data if not is_ros_builtin(prefix + k)]
    if unknown:
        known = ", ".join(prefix + f.name for f in dataclasses.fields(cls))
        problems.append(f"unknown configuration key(s) {', '.join(prefix + k for k in unknown)}; known: {known}")
    return cls(**kwargs)


def to_dict(cfg) -> dict:
    """Nested dict of a config dataclass (for result.json and YAML)."""
    return dataclasses.asdict(cfg)


def flatten(cfg, prefix: str = "") -> dict[str, Any]:
    """Dotted-name -> value pairs of a config dataclass (ROS parameter names)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            out.update(flatten(value, prefix + f.name + "."))
        else:
            out[prefix + f.name] = value
    return out


def unflatten(params: dict[str, Any]) -> dict:
    """Dotted names -> nested dict (inverse of :func:`flatten`)."""
    nested: dict = {}
    for name, value in params.items():
        node = nested
        *parents, leaf = name.split(".")
        for p in parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{name}: '{p}' is both a value and a group")
        node[leaf] = value
    return nested


def _flatten_mapping(data: dict, prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(_flatten_mapping(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


# ----------------------------------------------------------------------------- loading


def read_yaml(path: str | os.PathLike, node_name: str = NODE_NAME) -> dict[str, Any]:
    """Dotted parameters of a YAML file: a plain mapping (nested or dotted keys) or the ROS form
    ``{node_name: {ros__parameters: {...}}}`` (also with ``/**`` as the node name)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    sections = {k: v for k, v in data.items() if isinstance(v, dict) and "ros__parameters" in v}
    if sections:
        data = (sections.get(node_name) or sections.get("/**") or next(iter(sections.values())))["ros__parameters"]
    return _flatten_mapping(data)


def parse_override(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` (``--set``) -> (dotted key, YAML-parsed value): ``zero123.steps_stage1=20``."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. zero123.dtype=fp16")
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {text!r}: value is not valid YAML: {exc}") from exc
    if parsed is None:
        parsed = ""
    number = isinstance(parsed, (int, float)) and not isinstance(parsed, bool)
    if number and typing.get_origin(_field_type(key)) is None and _field_type(key) is str:
        parsed = value  # a number where a string is expected (e.g. a file named 123)
    return key.strip(), parsed


def _field_type(dotted: str):
    cls: Any = Config
    typ: Any = None
    for part in dotted.split("."):
        if not dataclasses.is_dataclass(cls):
            return None
        hints = typing.get_type_hints(cls)
        if part not in hints:
            return None
        typ = hints[part]
        cls = typ
    return typ


def load_config(
    path: str | os.PathLike | None = None,
    overrides: dict[str, Any] | None = None,
    *,
    node: bool = False,
    environ=None,
) -> Config:
    """THE loader: defaults <- YAML file <- dotted overrides (CLI flags, ``--set``, ROS parameters),
    then $ONE2345_ZERO123 / $ONE2345_SPARSENEUS for empty weight paths, then :func:`validate`.

    Raises ConfigError naming every bad key and value at once.
    """
    params: dict[str, Any] = read_yaml(path) if path else {}
    params.update(overrides or {})
    params = {k: v for k, v in params.items() if not is_ros_builtin(k)}
    where = f"{path}: " if path else ""
    try:
        cfg = from_dict(Config, unflatten(params))
        resolve_environment(cfg, environ)
        validate(cfg, node=node)
    except ConfigError as exc:
        raise ConfigError(f"{where}{exc}") from exc
    return cfg


def resolve_environment(cfg: Config, environ=None) -> Config:
    """Fill empty weight paths from $ONE2345_ZERO123 and $ONE2345_SPARSENEUS (the one place they are read)."""
    environ = os.environ if environ is None else environ
    if not cfg.zero123.model and environ.get(ZERO123_ENV):
        cfg.zero123.model = environ[ZERO123_ENV]
    if not cfg.sparseneus.checkpoint and environ.get(SPARSENEUS_ENV):
        cfg.sparseneus.checkpoint = environ[SPARSENEUS_ENV]
    return cfg


# ----------------------------------------------------------------------------- validation


def validate(cfg: Config, node: bool = False) -> None:
    """Every check a value needs beyond its field: weight files, and rules between fields.

    Values set in code (not through :func:`from_dict`) get the field checks here too.
    ``node``: also the rules that only the node has (TF frames). Raises ConfigError listing
    every problem.
    """
    problems = []
    hints_cache: dict = {}

    def walk(obj, prefix: str) -> None:
        hints = hints_cache.setdefault(type(obj), typing.get_type_hints(type(obj)))
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            name = prefix + f.name
            if dataclasses.is_dataclass(value):
                walk(value, name + ".")
                continue
            try:
                _coerce(value, hints[f.name], name)
                _check_range(value, f.metadata, name)
                if f.metadata.get("weights") and value:
                    problem = check_weight_path(value)
                    if problem:
                        raise ConfigError(f"{name}: {problem}")
            except ConfigError as exc:
                problems.append(str(exc))

    walk(cfg, "")
    if cfg.elevation.polar_min_deg >= cfg.elevation.polar_max_deg:
        problems.append(f"elevation.polar_min_deg ({cfg.elevation.polar_min_deg}) must be below "
                        f"elevation.polar_max_deg ({cfg.elevation.polar_max_deg})")  # fmt: skip
    if cfg.elevation.matcher == "loftr" and not cfg.elevation.loftr_weights:
        problems.append("elevation.matcher: 'loftr' needs elevation.loftr_weights (indoor_ds_new.ckpt)")
    if cfg.oracle.mesh and not Path(cfg.oracle.mesh).expanduser().exists():
        problems.append(
            f"oracle.mesh: {cfg.oracle.mesh} does not exist (a mesh file, or a folder of <object_id>.* meshes)"
        )
    if cfg.oracle.input_c2w and len(cfg.oracle.input_c2w) != 16:
        problems.append(f"oracle.input_c2w: needs 16 numbers (a row-major 4x4 c2w), got {len(cfg.oracle.input_c2w)}")
    if node:
        if cfg.elevation.source == "gravity" and not cfg.ros.gravity_frame:
            problems.append("elevation.source: 'gravity' needs ros.gravity_frame (a z-up TF frame such as base_link)")
        if cfg.ros.publish_collision_object and not cfg.ros.collision_object_topic:
            problems.append("ros.collision_object_topic: empty while ros.publish_collision_object is true")
    if problems:
        raise ConfigError(problems[0] if len(problems) == 1 else "invalid configuration:\n  " + "\n  ".join(problems))


def require_models(cfg: Config, views: bool = True, backend: bool = True) -> None:
    """The weights that ``cfg.views`` (with ``views``) and ``cfg.backend`` (with ``backend``) need are
    configured, before any model loads.

    Not part of :func:`validate`: a pipeline given its view generator in code needs no Zero123 weights.
    """
    problems = []
    if views and cfg.views == "zero123" and not cfg.zero123.model:
        problems.append(
            f"views: 'zero123' needs zero123.model (--zero123, or ${ZERO123_ENV}): a diffusers folder "
            "such as a local copy of kxic/zero123-xl, or zero123-xl.ckpt (README: Weights); "
            "none is downloaded"
        )
    if views and cfg.views == "oracle":
        if not cfg.oracle.mesh:
            problems.append("views: 'oracle' needs oracle.mesh (the mesh the synthetic views are rendered from)")
        if not cfg.oracle.input_c2w and not cfg.oracle.mesh_frame:
            problems.append("views: 'oracle' needs the input camera's pose in the mesh frame: oracle.input_c2w "
                            "(--oracle-c2w), or oracle.mesh_frame (TF) on the node")  # fmt: skip
    if backend and cfg.backend == "sparseneus" and not cfg.sparseneus.checkpoint:
        problems.append(
            f"backend: 'sparseneus' needs sparseneus.checkpoint (--sparseneus, or ${SPARSENEUS_ENV}): "
            "ckpt_215000.pth from Hugging Face One-2-3-45/code "
            "(SparseNeuS_demo_v1/exp/lod0/checkpoints/)"
        )
    if problems:
        raise ConfigError(problems[0] if len(problems) == 1 else "missing weights:\n  " + "\n  ".join(problems))


ZERO123_SUBFOLDERS = ("unet", "vae", "image_encoder", "scheduler")
CHECKPOINT_SUFFIXES = (".ckpt", ".safetensors", ".pt", ".pth", ".bin")


def check_weight_path(value: str) -> str:
    """Why the weight file or folder ``value`` cannot be used ('' when it looks right).

    Cheap: existence, and the file format from its first and last bytes (a truncated or text
    file is caught here, before minutes of model loading), never the tensors.
    """
    path = Path(value).expanduser()
    if not path.exists():
        return f"{path} does not exist (set it to the downloaded weights, or '' for the default)"
    if path.is_dir():
        # A Zero123 diffusers folder or a CLIP image-encoder folder: config files mark both.
        if (path / "model_index.json").is_file() or all((path / s).is_dir() for s in ZERO123_SUBFOLDERS):
            missing = [s for s in ZERO123_SUBFOLDERS if not (path / s).is_dir()]
            return f"{path} is not a complete diffusers folder (missing {', '.join(missing)})" if missing else ""
        if (path / "config.json").is_file() or (path / "image_encoder").is_dir():
            return ""
        return f"{path} is a folder, but neither a Zero123 diffusers folder (unet/, vae/, ...) nor a model folder"
    return check_weight_file(path)


def check_weight_file(path: Path) -> str:
    """'' for a plausible safetensors file or PyTorch checkpoint (zip or legacy pickle), else the reason."""
    size = path.stat().st_size
    if size == 0:
        return f"{path} is empty"
    with open(path, "rb") as fh:
        head = fh.read(8)
        if path.suffix == ".safetensors":
            header_len = int.from_bytes(head, "little") if len(head) == 8 else -1
            if not 0 < header_len <= size - 8:
                return f"{path} is corrupt: not a safetensors file (bad header length)"
            try:
                header = json.loads(fh.read(header_len))
                end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
            except (ValueError, KeyError, TypeError, IndexError):
                return f"{path} is corrupt: unreadable safetensors header"
            if 8 + header_len + end > size:
                return (
                    f"{path} is truncated: the safetensors header needs {8 + header_len + end} bytes, "
                    f"the file has {size}"
                )
            return ""
    if head[:2] == b"PK":
        if not zipfile.is_zipfile(path):
            return f"{path} is truncated or corrupt: a zip archive (PyTorch checkpoint) without its directory"
        return ""
    if head[:1] == b"\x80":  # legacy (pre-1.6) pickled torch.save: readable only by loading it
        return ""
    return f"{path} is not a PyTorch checkpoint or safetensors file (it starts with {head[:8]!r})"


class DeviceError(ValueError):
    """A component was asked to run where it cannot or should not (missing CUDA, a refused CPU)."""


def torch_device(name: str, allow_cpu: bool = True, cpu_refusal: str = ""):
    """The torch.device a configured device name means ('auto': CUDA when available).

    With ``allow_cpu`` false a CPU device raises DeviceError with ``cpu_refusal``.
    """
    import torch

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"device {name!r} was asked for but CUDA is not available")
    if device.type == "cpu" and not allow_cpu:
        raise DeviceError(cpu_refusal or "this component refuses to run on the CPU")
    return device
