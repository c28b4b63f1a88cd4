"""Configuration: one dataclass per component, loaded strictly from YAML or ROS parameters.

YAML files and ROS parameters map onto the same dataclasses. Nested dataclasses
become dotted ROS parameter names (``zero123.steps_stage1``). Unknown keys are an
error, except the parameters every ROS node carries (:data:`ROS_BUILTIN_PARAMETERS`).
This module imports nothing heavy so that the node and the CLI can read
configuration before torch is loaded.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A configuration value or key is invalid; the message names it."""


@dataclass
class PreprocessConfig:
    fill_ratio: float = 0.75
    """Fraction of the output side the object's longer bounding-box side fills (One-2-3-45: 0.75)."""
    size: int = 256
    """Output side in pixels (Zero123 works at 256)."""
    mask_threshold: int = 127
    """uint8 masks: values > threshold are the object. Masks must be (near) binary."""


@dataclass
class Zero123Config:
    model: str = ""
    """Diffusers folder or original .ckpt; empty = $ONE2345_ZERO123."""
    image_encoder: str = ""
    """CLIP vision folder, needed when converting a .ckpt without the visual tower."""
    preset: str = "faithful"
    """'faithful' (DDIM eta 1, 75/50 steps as One-2-3-45) or 'fast' (DPM-Solver++ 2M, ~20 steps)."""
    steps_stage1: int = 0
    """Denoising steps for stage-1 views; 0 = the preset's value."""
    steps_stage2: int = 0
    """Denoising steps for stage-2 views; 0 = the preset's value."""
    guidance_scale: float = 3.0
    dtype: str = "fp32"
    """'fp32', 'fp16' or 'bf16'."""
    device: str = "auto"
    """'auto' (CUDA when available), 'cuda', 'cuda:N' or 'cpu'."""
    allow_cpu: bool = False
    """Run Zero123 on a CPU (one request takes hours) instead of refusing."""
    max_batch: int = 32
    """Largest UNet batch (CFG doubles the views) per forward; larger calls are chunked."""
    compile: bool = False
    """torch.compile the UNet (CUDA only)."""
    allow_pickle: bool = False
    """Allow full pickle loading of trusted checkpoints that weights_only=True rejects."""
    camera_embedding: str = "auto"
    """Fourth slot of T: 'delta_radius' (Zero123, Zero123-XL), 'cond_polar' (Stable Zero123) or 'auto'
    (the saved cc_projection config; Stable Zero123 by folder/file name)."""
    both_rings: bool = False
    """Generate both second-ring candidates (views 4-11) with views 0-3, before the elevation is known:
    4 extra stage-1 views, one fewer sequential batch (3 instead of 4)."""


@dataclass
class ElevationConfig:
    source: str = "auto"
    """'image', 'gravity', 'fused' or 'auto' (gravity when a gravity pose is given, else image)."""
    mode: str = "default"
    """'default' or 'faithful' (One-2-3-45's estimator step for step: its error, integer search, no refinement)."""
    matcher: str = "sift"
    """'sift' (OpenCV SIFT), 'dense' (OpenCV DIS optical flow), 'sift+dense' (both; none needs weights) or
    'loftr' (kornia, needs loftr_weights)."""
    silhouettes: bool = True
    """Default mode: also fit the silhouettes' epipolar tangency (what carries smooth, low-texture objects)."""
    loftr_weights: str = ""
    polar_min_deg: float = 30.0
    polar_max_deg: float = 150.0
    """Coarse candidates: polar_min_deg, + coarse_step_deg, ... below polar_max_deg (the original's 30..140)."""
    coarse_step_deg: float = 10.0
    fine_step_deg: float = 1.0
    fine_radius_deg: float = 10.0
    """Fine candidates: the best coarse polar +- this (the original's best-10..best+9: polar 20..149 reachable)."""
    fallback_polar_deg: float = 90.0
    """Polar angle used when no estimate can be made (One-2-3-45 uses 90); the source is then 'fallback'."""
    min_confidence: float = 0.0
    """0: an image estimate is always used, whatever its confidence (as the original). Above 0: estimates
    with a lower confidence are replaced by the fallback (source 'fallback', reason recorded)."""
    sift_contrast_threshold: float = 0.01
    """OpenCV SIFT contrastThreshold (OpenCV's default 0.04 finds too few points on 256x256 views)."""
    ratio_test: float = 0.8
    """Lowe's ratio for SIFT matches."""
    mask_margin_px: int = 2
    """Matches must lie this far inside the silhouette (contour points are not fixed surface points)."""
    ransac_threshold_px: float = 2.0
    """Epipolar RANSAC threshold per pair (0 disables); generated views are only roughly consistent."""
    track_radius_px: float = 1.0
    """Matches of view a with views b and t share a point when their view-a points are this close (original: 1 px)."""
    robust_scale_px: float = 2.0
    """Scale of the Cauchy loss on reprojection errors: larger errors count logarithmically."""
    min_tracks: int = 12
    """Fewer three-view observations than this and no usable silhouettes: no estimate (the fallback is used)."""
    refine_view_poses: bool = True
    """After the grid search, refine the polar jointly with a small pose error per view (generated views are imperfect)."""
    view_pose_sigma_deg: float = 0.5
    """Prior standard deviation of each view's pose error in that refinement."""


@dataclass
class HullConfig:
    resolution: int = 128
    """Voxels per side of the carving grid."""
    min_view_fraction: float = 1.0
    """A voxel is kept if inside the silhouette in at least this fraction of the views that see it."""
    min_seen_views: int = 1
    """A voxel seen (projected on the image, in front of the camera) by fewer views is carved."""
    coarse_resolution: int = 32
    """Nodes per side of the coarse carving that derives the bounding box when the views give none."""


@dataclass
class SparseNeuSConfig:
    checkpoint: str = ""
    """One-2-3-45 ckpt_215000.pth; empty = $ONE2345_SPARSENEUS (none: hull reconstruction)."""
    backend: str = "dense"
    """Sparse 3D CNN backend: 'dense' (plain PyTorch) or 'torchsparse'."""
    batchnorm: str = "batch"
    """'batch' statistics as the original runs at inference, or 'running'."""
    volume_resolution: int = 96
    mesh_resolution: int = 256
    device: str = "auto"
    mesh_near_surface: bool = True
    """Evaluate the fine SDF grid only near the surface found on a coarse grid (exact there);
    false evaluates every grid point, as the original does."""
    chunk_points: int = 131072
    """Points per SDF-network call when filling the mesh grid."""
    allow_pickle: bool = False
    """Allow full pickle loading of a trusted checkpoint that weights_only=True rejects."""


@dataclass
class MeshConfig:
    format: str = "glb"
    """'glb', 'ply' or 'obj'."""
    keep_largest_component: bool = True
    face_budget: int = 0
    """Decimate to at most this many faces (0 = no limit); needs the fast-simplification package."""
    min_component_fraction: float = 0.01
    """With keep_largest_component off: drop components with fewer than this fraction of the faces."""
    color_views: bool = True
    """Colour vertices from the views (visibility by ray casting, cosine weights)."""


@dataclass
class MetricConfig:
    depth_scale: float = 0.0
    """Divisor turning depth pixels into metres; 0 = by encoding (16UC1: 1000, 32FC1: 1)."""
    object_distance_m: float = 0.0
    """Distance from the camera to the object's centre, when there is no depth."""
    object_size_m: float = 0.0
    """Largest extent of the object, when there is neither depth nor distance."""


@dataclass
class PipelineConfig:
    views: str = "zero123"
    """'zero123' or 'oracle'."""
    backend: str = "auto"
    """'auto' (sparseneus when a checkpoint is configured, else hull), 'hull' or 'sparseneus'."""
    seed: int = 0
    output_dir: str = "one2345_output"
    input_azimuth_deg: float = 0.0
    """Internal azimuth of the input view; results are returned in the canonical frame either way."""
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    zero123: Zero123Config = field(default_factory=Zero123Config)
    elevation: ElevationConfig = field(default_factory=ElevationConfig)
    hull: HullConfig = field(default_factory=HullConfig)
    sparseneus: SparseNeuSConfig = field(default_factory=SparseNeuSConfig)
    mesh: MeshConfig = field(default_factory=MeshConfig)
    metric: MetricConfig = field(default_factory=MetricConfig)


ROS_BUILTIN_PARAMETERS = ("use_sim_time", "start_type_description_service")
NODE_GROUP = "ros"
"""Group of the node's own settings in params.yaml (one2345_ros/ros/node_config.py);
the pipeline's loader skips it so that one file serves the node and the CLI."""
ROS_BUILTIN_PREFIXES = ("qos_overrides.",)


def _is_ros_builtin(name: str) -> bool:
    # Nested YAML turns "qos_overrides./tf.depth" into a "qos_overrides" group.
    return name in ROS_BUILTIN_PARAMETERS or (name + ".").startswith(ROS_BUILTIN_PREFIXES)


def _coerce(value: Any, typ: Any, name: str) -> Any:
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
    raise ConfigError(f"{name}: unsupported field type {typ!r}")


def from_dict(cls, data: dict | None, prefix: str = ""):
    """Build dataclass ``cls`` from a nested dict; unknown keys raise ConfigError."""
    data = dict(data or {})
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        value = data.pop(f.name)
        name = prefix + f.name
        typ = hints[f.name]
        if dataclasses.is_dataclass(typ):
            if not isinstance(value, dict):
                raise ConfigError(f"{name}: expected a mapping, got {value!r}")
            kwargs[f.name] = from_dict(typ, value, name + ".")
        else:
            kwargs[f.name] = _coerce(value, typ, name)
    unknown = [k for k in data if not _is_ros_builtin(prefix + k)]
    if unknown:
        known = ", ".join(prefix + f.name for f in dataclasses.fields(cls))
        raise ConfigError(f"unknown configuration key(s) {', '.join(prefix + k for k in unknown)}; known: {known}")
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


def load_yaml(path: str | os.PathLike, cls=PipelineConfig, node_name: str | None = None):
    """Load ``cls`` from a YAML file.

    Accepts a plain mapping or the ROS form ``{node_name: {ros__parameters: {...}}}``
    (also with ``/**`` as node name), so one file serves the CLI and the node.
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    ros_sections = {k: v for k, v in data.items() if isinstance(v, dict) and "ros__parameters" in v}
    if ros_sections:
        section = ros_sections.get(node_name) if node_name else None
        if section is None:
            section = ros_sections.get("/**") or next(iter(ros_sections.values()))
        data = section["ros__parameters"]
        # ROS parameter files may use dotted keys or nesting; accept both.
        data = _merge_dotted(data)
        if cls is PipelineConfig:
            data.pop(NODE_GROUP, None)
    try:
        return from_dict(cls, data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def _merge_dotted(data: dict) -> dict:
    flat: dict[str, Any] = {}

    def walk(node, prefix):
        for k, v in node.items():
            if isinstance(v, dict):
                walk(v, f"{prefix}{k}.")
            else:
                flat[f"{prefix}{k}"] = v

    walk(data, "")
    return unflatten(flat)
