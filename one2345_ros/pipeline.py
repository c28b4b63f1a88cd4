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

import threading
from dataclasses import dataclass

import numpy as np

from . import config as C
from .elevation.choice import choose_elevation, elevation_from_gravity
from .geometry import cameras as cam
from .mesh import make_mesh
from .mesh.fuse_depth import fuse_depth
from .preprocess import preprocess
from .results.result import ReconstructionResult
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
    diagnostics: dict | None = None


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
        if self.generator is None:
            self.generator = make_generator(self.cfg)
        if self.reconstructor is None:
            from .recon import make_reconstructor

            C.require_models(self.cfg, views=False)
            self.reconstructor = make_reconstructor(self.cfg)

    def unload(self) -> None:
        """Drop the models and free accelerator memory."""
        self.generator = None
        self.reconstructor = None
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:
            pass

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
        self.load()
        cfg = self.cfg
        timer = StageTimer()
        report = progress or (lambda stage, fraction: None)
        warnings = list(inputs.warnings)

        def stage(name: str) -> None:
            if cancel is not None and cancel.is_set():
                raise Cancelled(f"cancelled before {name}")
            report(name, PROGRESS[name])

        def views_progress(name: str, fraction: float) -> None:
            if cancel is not None and cancel.is_set():
                raise Cancelled(f"cancelled during {name}")
            span = PROGRESS["reconstruct"] - PROGRESS["first views"]
            report(name, PROGRESS["first views"] + span * fraction)

        # 1. Preprocess
        stage("preprocess")
        with timer.stage("preprocess"):
            pre = preprocess(inputs.image, inputs.mask, cfg.preprocess)

        # 2. Gravity elevation (TF on a robot)
        gravity_deg = None
        if inputs.gravity_c2w is not None:
            if inputs.K is None:
                warnings.append("gravity pose ignored: it needs the camera intrinsics (camera_info)")
            else:
                gravity_deg = elevation_from_gravity(inputs.gravity_c2w, inputs.K, pre.pixel_center)
        if cfg.elevation.source == "gravity" and gravity_deg is None:
            raise InputError("elevation.source is 'gravity' but the request has no usable gravity-aligned camera pose "
                             "(TF and camera_info)")  # fmt: skip
        prior = None if gravity_deg is None else float(cam.polar_from_elevation(gravity_deg))

        # 3. First views
        stage("first views")
        plan = ViewPlan(self.generator, [pre.image], cfg.seed, cfg.zero123.both_rings, views_progress, timer)
        (elevation_views,) = plan.first_views([prior])

        # 4. Elevation: the image estimate, then the one choice of source and fallback
        stage("elevation")
        with timer.stage("elevation"):
            estimate = None
            if cfg.elevation.source != "gravity":
                from .elevation.estimate import estimate_elevation

                estimate = estimate_elevation(elevation_views, cfg.elevation)
            decision = choose_elevation(cfg.elevation, estimate, gravity_deg)
        polar = float(cam.polar_from_elevation(decision.chosen_deg))

        # 5. Remaining views, every view posed once
        stage("remaining views")
        (planned,) = plan.complete([polar])

        # 6. Reconstruct
        stage("reconstruct")
        with timer.stage("reconstruct"):
            surface = self.reconstructor.reconstruct(planned.sources())
        for name, seconds in surface.timings.items():
            timer.timings[f"reconstruct.{name}"] = seconds

        # 7. Mesh
        stage("mesh")
        mesh_timer = StageTimer()
        with timer.stage("mesh"):
            mesh = make_mesh(surface, planned.sources(), cfg.mesh, mesh_timer)
        timer.timings.update({f"mesh.{k}": v for k, v in mesh_timer.timings.items()})

        # 8. Scale: canonical -> camera frame in metres when a scale source exists; with depth, the measured
        #    surface then replaces the reconstruction's visible side (metric.fuse_depth)
        stage("scale")
        with timer.stage("scale"):
            scaled = _scale(mesh, polar, inputs, pre, cfg.metric, warnings)
            if scaled.canonical_to_frame is not None:
                mesh.apply_transform(scaled.canonical_to_frame)
            if scaled.source == "depth" and cfg.metric.fuse_depth:
                with timer.stage("scale.fuse_depth"):
                    mesh, fusion = fuse_depth(mesh, inputs.depth, inputs.K, pre.source_mask, cfg.metric)
                scaled.diagnostics["fuse_depth"] = fusion

        # 9. Result
        report("done", PROGRESS["done"])
        diagnostics = {"zero123_input_polar_deg": planned.conditioning_polar_deg, **(scaled.diagnostics or {})}
        if decision.disagreement_deg is not None:
            diagnostics["elevation_disagreement_deg"] = decision.disagreement_deg
        if estimate is not None:
            diagnostics["elevation_estimate"] = estimate.to_dict()
        describe = getattr(self.generator, "describe", None)
        if callable(describe):
            diagnostics["generator"] = describe()
        return ReconstructionResult(
            ok=True,
            object_id=inputs.object_id,
            stamp_ns=inputs.stamp_ns,
            mesh=mesh,
            frame=scaled.frame,
            frame_id=scaled.frame_id,
            units=scaled.units,
            scale_source=scaled.source,
            canonical_to_frame=scaled.canonical_to_frame if scaled.canonical_to_frame is not None else np.eye(4),
            elevation_deg=float(decision.chosen_deg),
            polar_deg=polar,
            elevation_source=decision.source,
            elevation_image_deg=decision.image_deg,
            elevation_gravity_deg=decision.gravity_deg,
            confidence=float(decision.confidence),
            elevation_reason=decision.image_reason,
            view_source=getattr(self.generator, "name", "unknown"),
            backend=self.reconstructor.name,
            views=planned,
            input_image=inputs.image,
            input_mask=inputs.mask,
            warnings=warnings,
            timings=dict(timer.timings),
            config=C.to_dict(cfg),
            diagnostics=diagnostics,
        )


def _scale(mesh, polar_deg: float, inputs: ReconstructionInputs, pre, cfg: C.MetricConfig,
           warnings: list[str]) -> _Scale:  # fmt: skip
    """Step 8: needs the intrinsics (camera_info) and one of depth, object_distance_m, object_size_m."""
    has_scale = inputs.depth is not None or cfg.object_distance_m > 0 or cfg.object_size_m > 0
    if inputs.K is None:
        if has_scale:
            warnings.append("no camera_info: the mesh stays in the canonical frame, without metric scale")
        return _Scale()
    fit = fit_metric(mesh, polar_deg, inputs.K, pre.crop, pre.source_mask, inputs.depth, cfg)
    if fit is None:
        note = "no scale source (depth, metric.object_distance_m, metric.object_size_m)"
        return _Scale(diagnostics={"metric_note": note})
    diagnostics = {"object_distance_m": fit.distance_m}
    if fit.depth_residual_m is not None:
        diagnostics.update(depth_fit_residual_m=fit.depth_residual_m, depth_fit_pixels=fit.depth_pixels)
    return _Scale("camera_optical", inputs.frame_id or "camera_optical_frame", "m", fit.source, fit.canonical_to_camera,
                  diagnostics)  # fmt: skip


def make_generator(cfg: C.Config) -> ViewGenerator:
    """The configured view generator: Zero123 from its weights, or the oracle from its mesh and camera pose."""
    C.require_models(cfg, backend=False)
    if cfg.views == "zero123":
        from .views.zero123.generator import Zero123Generator

        return Zero123Generator.from_config(cfg.zero123)
    from .views.oracle import oracle_from_config

    return oracle_from_config(cfg.oracle, cfg.preprocess.fill_ratio)
