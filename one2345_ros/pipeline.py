"""The whole image-to-mesh pipeline, ROS-free: orchestration only, in numbered steps.

inputs (prepared once: inputs/prepare.py)
  1. preprocess       crop to the mask, 256x256 on white, the crop as a virtual camera
  2. gravity          the elevation from a gravity-aligned camera pose, when there is one
  3. first views      stage-1 views 0-3 and their neighbours (views/plan.py)
  4. elevation        the image estimate from the four views 0_0..0_3, then the one choice
  5. remaining views  the ring the elevation picks, its neighbours; every view posed once
  6. reconstruct      hull or SparseNeuS -> a signed field (recon/)
  7. mesh             the one mesh stage for every backend (mesh/)
  8. scale            canonical frame -> the camera's optical frame in metres (scale.py); with depth, the
                      visible side then moved onto the measured surface (mesh/fuse_depth.py)
  9. result           built once, here
"""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import config as C
from .elevation.choice import choose_elevation
from .elevation.gravity import gravity_elevation
from .geometry import cameras as cam
from .mesh import make_mesh
from .mesh.fuse_depth import fuse_depth
from .preprocess import preprocess
from .results.planner import object_frame
from .results.result import ReconstructionResult, failed_result
from .scale import fit_metric
from .timing import StageProgressFn, StageTimer
from .types import CANONICAL_FRAME_ID, Cancelled, InputError, ReconstructionInputs
from .views.base import ViewGenerator
from .views.plan import ViewPlan

PROGRESS = {"preprocess": 0.0, "first views": 0.02, "elevation": 0.35, "remaining views": 0.37, "reconstruct": 0.7,
            "mesh": 0.85, "scale": 0.95, "done": 1.0}  # fmt: skip
"""Fraction of the whole request done when each stage starts (the views report within their span)."""


@dataclass
class _Scale:
    """What step 8 decided: the frame the mesh ends up in."""

    frame: str = "canonical"
    frame_id: str = CANONICAL_FRAME_ID
    units: str = "canonical"
    source: str = "none"
    canonical_to_frame: np.ndarray | None = None


class Pipeline:
    """Owns the models; ``reconstruct`` runs one request. Not thread-safe: one caller at a time.

    Args:
        cfg: the configuration (validated here too, so values set in code are checked).
        generator: a view generator to use instead of the configured one (tests, benchmarks).
        reconstructor: a reconstruction backend to use instead of the configured one.
    """

    def __init__(self, cfg: C.Config | None = None, generator: ViewGenerator | None = None, reconstructor=None):
        self.cfg = C.resolve_environment(cfg or C.Config())
        C.validate(self.cfg)
        self.generator = generator
        self.reconstructor = reconstructor

    # -------------------------------------------------------------- model life cycle

    def load(self) -> None:
        """Load the configured models (view generator, SparseNeuS); idempotent."""
        if self.generator is None and not self._per_object_oracles():
            self.generator = make_generator(self.cfg)
        if self.reconstructor is None:
            from .recon import make_reconstructor

            C.require_models(self.cfg, views=False)
            self.reconstructor = make_reconstructor(self.cfg)

    def unload(self) -> None:
        """Drop the models and free accelerator memory."""
        self.generator = None
        self.reconstructor = None
        # Only a process that imported torch can hold accelerator memory: importing it here just to
        # ask cost 2-5 s at every node deactivate/shutdown with torch-free pipelines (oracle + hull).
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_available():
            torch.cuda.empty_cache()

    # ----------------------------------------------------------------- reconstruct

    def reconstruct(
        self,
        inputs: ReconstructionInputs,
        progress: StageProgressFn | None = None,
        cancel: threading.Event | None = None,
    ) -> ReconstructionResult:
        """Run the pipeline on one prepared request (inputs.prepare.prepare_inputs).

        Raises:
            InputError: unusable input (the message names the problem).
            Cancelled: ``cancel`` was set; checked between stages.
        """
        (result,) = self.reconstruct_objects([inputs], progress, cancel, raise_errors=True)
        return result

    def reconstruct_objects(
        self,
        objects: list[ReconstructionInputs],
        progress: StageProgressFn | None = None,
        cancel: threading.Event | None = None,
        generators: list[ViewGenerator] | None = None,
        raise_errors: bool = False,
    ) -> list[ReconstructionResult]:
        """Several objects of one image (inputs.prepare.prepare_objects), their views generated together:
        every denoising call holds the views of every object. One result per object, in order; an
        object that fails gets ``ok: false`` and its reason while the others go on (``raise_errors``:
        raise the first failure instead, as :meth:`reconstruct` does).

        ``generators``: one view generator per object (e.g. an oracle of each object); default: the
        pipeline's, shared. Raises Cancelled when ``cancel`` is set (checked between stages).
        """
        self.load()
        cfg = self.cfg
        report = progress or (lambda stage, fraction: None)
        items = [_Object(inputs) for inputs in objects]
        if generators is None:
            generators = [self.generator_for(item.inputs) for item in items]
        for item, generator in zip(items, generators):
            item.generator = generator

        def stage(name: str) -> None:
            if cancel is not None and cancel.is_set():
                raise Cancelled(f"cancelled before {name}")
            report(name, PROGRESS[name])

        def views_progress(name: str, fraction: float) -> None:
            if cancel is not None and cancel.is_set():
                raise Cancelled(f"cancelled during {name}")
            span = PROGRESS["reconstruct"] - PROGRESS["first views"]
            report(name, PROGRESS["first views"] + span * fraction)

        def each(name: str, fn) -> None:
            """Run step ``fn(item)`` for every live object; a failure ends that object only."""
            for item in items:
                if item.error is not None:
                    continue
                try:
                    with item.timer.stage(name):
                        fn(item)
                except Cancelled:
                    raise
                except Exception as exc:  # this object fails; the others go on
                    if raise_errors:
                        raise
                    item.error = exc

        # 1. Preprocess
        stage("preprocess")
        each("preprocess", lambda it: setattr(it, "pre", preprocess(it.inputs.image, it.inputs.mask, cfg.preprocess)))

        # 2. Gravity elevation (TF on a robot)
        each("gravity", lambda it: _gravity(it, cfg.elevation))

        # 3. First views, every object in the same calls
        stage("first views")
        live = [it for it in items if it.error is None]
        plan_timer = StageTimer()
        plan = ViewPlan([it.generator for it in live], [it.pre.image for it in live], cfg.seed,
                        cfg.zero123.both_rings, views_progress, plan_timer)  # fmt: skip
        first = plan.first_views([it.prior for it in live]) if live else []
        for it, views in zip(live, first):
            it.elevation_views = views

        # 4. Elevation: the image estimate, then the one choice of source and fallback
        stage("elevation")
        each("elevation", lambda it: _elevation(it, cfg.elevation))

        # 5. Remaining views, every view posed once
        stage("remaining views")
        polars = [it.polar if it.error is None else 90.0 for it in live]  # a failed object's views are not used
        for it, planned in zip(live, plan.complete(polars) if live else []):
            it.planned = planned

        # 6. Reconstruct
        stage("reconstruct")
        each("reconstruct", lambda it: _reconstruct(it, self.reconstructor))

        # 7. Mesh
        stage("mesh")
        each("mesh", lambda it: _mesh(it, cfg.mesh))

        # 8. Scale: canonical -> camera frame in metres when a scale source exists; with depth, the measured
        #    surface then replaces the object's visible side (metric.fuse_depth), timed as scale.fuse_depth
        stage("scale")
        each("scale", lambda it: _scale(it, cfg.metric))

        # 9. Results
        report("done", PROGRESS["done"])
        shared = {f"{k}": v for k, v in plan_timer.timings.items()}
        return [self._result(it, shared, len(live)) for it in items]

    def _per_object_oracles(self) -> bool:
        """Oracles built per object or request: a folder of meshes, or no fixed input pose (the node
        looks the camera up in oracle.mesh_frame by TF and passes the oracle as ``generators``)."""
        oracle = self.cfg.oracle
        return self.cfg.views == "oracle" and bool(oracle.mesh) and (_oracle_needs_pose(self.cfg)
                                                                       or Path(oracle.mesh).is_dir())  # fmt: skip

    def generator_for(self, inputs: ReconstructionInputs) -> ViewGenerator:
        """The view generator of one object: the pipeline's (Zero123, or one given in code), or with
        ``views: oracle`` and a folder as ``oracle.mesh``, the oracle of ``<folder>/<object_id>.*``."""
        if self.generator is None and self._per_object_oracles():
            from .views.oracle import oracle_from_config

            if _oracle_needs_pose(self.cfg):
                raise InputError("views: 'oracle' without oracle.input_c2w: the input camera's pose comes with each "
                                 "request (the node looks it up in oracle.mesh_frame by TF)")  # fmt: skip

            return oracle_from_config(self.cfg.oracle, self.cfg.preprocess.fill_ratio, object_id=inputs.object_id)
        return self.generator

    def _result(self, it: _Object, shared_timings: dict[str, float], n_objects: int) -> ReconstructionResult:
        cfg = self.cfg
        if it.error is not None:
            return failed_result(_message(it.error), it.inputs.object_id, it.inputs.stamp_ns, C.to_dict(cfg),
                                 it.warnings)  # fmt: skip
        timings = _ordered_timings(it.timer.timings, shared_timings)
        diagnostics = {"zero123_input_polar_deg": it.planned.conditioning_polar_deg, **it.scale_diagnostics}
        if n_objects > 1:
            diagnostics["objects_in_batch"] = n_objects
        if it.decision.disagreement_deg is not None:
            diagnostics["elevation_disagreement_deg"] = it.decision.disagreement_deg
        if it.gravity_center:
            diagnostics["gravity_center_from"] = it.gravity_center
        if it.estimate is not None:
            diagnostics["elevation_estimate"] = it.estimate.to_dict()
        describe = getattr(it.generator, "describe", None)
        if callable(describe):
            diagnostics["generator"] = describe()
        scaled = it.scaled
        pose, extents = object_frame(it.mesh)
        return ReconstructionResult(
            ok=True,
            object_id=it.inputs.object_id,
            stamp_ns=it.inputs.stamp_ns,
            mesh=it.mesh,
            frame=scaled.frame,
            frame_id=scaled.frame_id,
            units=scaled.units,
            scale_source=scaled.source,
            canonical_to_frame=scaled.canonical_to_frame if scaled.canonical_to_frame is not None else np.eye(4),
            object_pose=pose,
            object_extents=extents,
            elevation_deg=float(it.decision.chosen_deg),
            polar_deg=it.polar,
            elevation_source=it.decision.source,
            elevation_image_deg=it.decision.image_deg,
            elevation_gravity_deg=it.decision.gravity_deg,
            confidence=float(it.decision.confidence),
            elevation_reason=it.decision.reason,
            view_source=getattr(it.generator, "name", "unknown"),
            backend=self.reconstructor.name,
            views=it.planned,
            input_image=it.inputs.image,
            input_mask=it.inputs.mask,
            warnings=it.warnings,
            timings=timings,
            config=C.to_dict(cfg),
            diagnostics=diagnostics,
        )


@dataclass(eq=False)
class _Object:
    """One object's state through the steps (ReconstructionInputs in, the step results, or its error)."""

    inputs: ReconstructionInputs
    generator: Any = None
    timer: StageTimer = field(default_factory=StageTimer)
    warnings: list[str] = field(default_factory=list)
    error: BaseException | None = None
    pre: Any = None
    gravity_deg: float | None = None
    gravity_center: str = ""
    prior: float | None = None
    elevation_views: np.ndarray | None = None
    estimate: Any = None
    decision: Any = None
    polar: float = 90.0
    planned: Any = None
    surface: Any = None
    mesh: Any = None
    scaled: _Scale = field(default_factory=lambda: _Scale())
    scale_diagnostics: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.warnings = list(self.inputs.warnings)


def _gravity(it: _Object, cfg: C.ElevationConfig) -> None:
    """Step 2: the elevation from a gravity pose (needs K), along the ray to the object's 3-D centre (from
    its masked depth; the mask box's centre without depth); the Stable Zero123 polar prior."""
    inputs = it.inputs
    if inputs.gravity_c2w is not None:
        if inputs.K is None:
            it.warnings.append("gravity pose ignored: it needs the camera intrinsics (camera_info)")
        else:
            g = gravity_elevation(inputs.gravity_c2w, inputs.K, inputs.mask, inputs.depth)
            it.gravity_deg, it.gravity_center = g.elevation_deg, g.center_source
    if cfg.source == "gravity" and it.gravity_deg is None:
        raise InputError("elevation.source is 'gravity' but the request has no usable gravity-aligned camera pose "
                         "(TF and camera_info)")  # fmt: skip
    it.prior = None if it.gravity_deg is None else float(cam.polar_from_elevation(it.gravity_deg))


def _elevation(it: _Object, cfg: C.ElevationConfig) -> None:
    """Step 4: the image estimate (unless gravity only), then the one choice of source and fallback."""
    if cfg.source != "gravity":
        from .elevation.estimate import estimate_elevation

        it.estimate = estimate_elevation(it.elevation_views, cfg)
    it.decision = choose_elevation(cfg, it.estimate, it.gravity_deg)
    it.polar = float(cam.polar_from_elevation(it.decision.chosen_deg))


def _reconstruct(it: _Object, reconstructor) -> None:
    """Step 6: the backend's Surface from the 32 stage-2 views."""
    it.surface = reconstructor.reconstruct(it.planned.sources())
    for name, seconds in it.surface.timings.items():
        it.timer.timings[f"reconstruct.{name}"] = seconds


def _mesh(it: _Object, cfg: C.MeshConfig) -> None:
    """Step 7: the one mesh stage."""
    timer = StageTimer()
    it.mesh = make_mesh(it.surface, it.planned.sources(), cfg, timer)
    it.timer.timings.update({f"mesh.{k}": v for k, v in timer.timings.items()})
    it.surface = None  # the backend's tensors are not needed any more


STAGE_ORDER = ("preprocess", "gravity", "views_stage1", "views_stage2", "elevation", "reconstruct", "mesh", "scale")


def _ordered_timings(own: dict[str, float], shared: dict[str, float]) -> dict[str, float]:
    """The object's stage times and the shared view batches' in pipeline order, sub-stages after their stage."""
    merged = {**own, **shared}

    def key(name: str) -> tuple[int, int]:
        stage = name.split(".")[0]
        return (STAGE_ORDER.index(stage) if stage in STAGE_ORDER else len(STAGE_ORDER), "." in name)

    return {k: merged[k] for k in sorted(merged, key=key)}


def _message(exc: BaseException) -> str:
    text = str(exc).strip()
    return text if text else type(exc).__name__


def _scale(it: _Object, cfg: C.MetricConfig) -> None:
    """Step 8: needs the intrinsics (camera_info) and one of depth, object_distance_m, object_size_m. With
    depth and ``metric.fuse_depth``, the metric mesh's visible side is then moved onto this object's depth
    inside its own mask (mesh/fuse_depth.py); its diagnostics go under ``fuse_depth``."""
    inputs = it.inputs
    has_scale = inputs.depth is not None or cfg.object_distance_m > 0 or cfg.object_size_m > 0
    if inputs.K is None:
        if has_scale:
            it.warnings.append("no camera_info: the mesh stays in the canonical frame, without metric scale")
        return
    fit = fit_metric(it.mesh, it.polar, inputs.K, it.pre.crop, it.pre.source_mask, inputs.depth, cfg)
    if fit is None:
        note = "no scale source (depth, metric.object_distance_m, metric.object_size_m)"
        it.scale_diagnostics = {"metric_note": note}
        return
    it.scale_diagnostics = {"object_distance_m": fit.distance_m}
    if fit.depth_residual_m is not None:
        it.scale_diagnostics.update(depth_fit_residual_m=fit.depth_residual_m, depth_fit_pixels=fit.depth_pixels)
    it.scaled = _Scale("camera_optical", inputs.frame_id or "camera_optical_frame", "m", fit.source,
                       fit.canonical_to_camera)  # fmt: skip
    it.mesh.apply_transform(fit.canonical_to_camera)
    if fit.source == "depth" and cfg.fuse_depth:
        with it.timer.stage("scale.fuse_depth"):
            it.mesh, it.scale_diagnostics["fuse_depth"] = fuse_depth(it.mesh, inputs.depth, inputs.K,
                                                                     it.pre.source_mask, cfg)  # fmt: skip


def _oracle_needs_pose(cfg: C.Config) -> bool:
    """views: oracle with the input pose from TF (oracle.mesh_frame) rather than oracle.input_c2w."""
    return not cfg.oracle.input_c2w and bool(cfg.oracle.mesh_frame)


def make_generator(cfg: C.Config) -> ViewGenerator | None:
    """The configured view generator: Zero123 from its weights, or the oracle from its mesh and camera pose
    (None for a folder of meshes: one oracle per object, see Pipeline.generator_for)."""
    C.require_models(cfg, backend=False)
    if cfg.views == "oracle" and (_oracle_needs_pose(cfg) or Path(cfg.oracle.mesh).is_dir()):
        return None
    if cfg.views == "zero123":
        from .views.zero123.generator import Zero123Generator

        return Zero123Generator.from_config(cfg.zero123)
    from .views.oracle import oracle_from_config

    return oracle_from_config(cfg.oracle, cfg.preprocess.fill_ratio)
