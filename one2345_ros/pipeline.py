"""The whole image-to-mesh pipeline, ROS-free.

image + mask (+ depth, K, gravity pose)
  -> preprocess -> plan views (generator) with the elevation estimate
  -> reconstruct (SparseNeuS or visual hull) -> mesh -> canonical / camera frame
  -> ReconstructionResult with per-stage timings.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from .geometry import cameras as cam
from . import config as C
from .elevation.choice import ElevationDecision, decide_elevation
from .types import InputError, ViewSet
from .scale import fit_metric
from .preprocess import preprocess
from .results.result import CANONICAL_FRAME_ID, ReconstructionResult
from .timing import StageProgressFn, StageTimer
from .views.base import ViewGenerator
from .views.plan import PlanResult, run_one2345_plan


class Cancelled(Exception):
    """The caller's cancel event was set; raised between stages."""


@dataclass
class ReconstructionInputs:
    """One reconstruction request.

    image: uint8 [H, W, 3] RGB. mask: [H, W] bool/uint8/float (see preprocess).
    depth: float32 [H, W] metres (0 or NaN = no reading), optional.
    K: 3x3 intrinsics of ``image`` with distortion already undone, optional.
    gravity_c2w: 4x4 OpenCV c2w of the camera in a gravity-aligned frame (z up), optional.
    """

    image: np.ndarray
    mask: np.ndarray
    depth: np.ndarray | None = None
    K: np.ndarray | None = None
    frame_id: str = ""
    gravity_c2w: np.ndarray | None = None
    object_id: str = "object"


def stage2_viewset(views: PlanResult, input_azimuth_deg: float) -> ViewSet:
    """The 32 stage-2 views as posed images in the Zero123 world (input at ``input_azimuth_deg``)."""
    planned, images = views.stage2()
    c2w = np.stack([cam.spherical_to_c2w(v.polar_deg, v.azimuth_deg + input_azimuth_deg) for v in planned])
    K = np.broadcast_to(cam.view_intrinsics(images.shape[1]), (len(planned), 3, 3)).copy()
    return ViewSet(
        images=images,
        K=K,
        c2w=c2w,
        names=[v.name for v in planned],
        near_far=cam.ONE2345_NEAR_FAR,
        reference_c2w=cam.spherical_to_c2w(views.polar_deg, input_azimuth_deg),
    )


class Pipeline:
    """Owns the models; ``reconstruct`` runs one request. Not thread-safe: one caller at a time."""

    def __init__(self, cfg: C.PipelineConfig | None = None, generator: ViewGenerator | None = None):
        self.cfg = cfg or C.PipelineConfig()
        self.generator = generator
        self.reconstructor = None

    # -------------------------------------------------------------- model life cycle

    def load(self) -> None:
        """Load the configured models (view generator, SparseNeuS); idempotent."""
        if self.generator is None:
            self.generator = _make_generator(self.cfg)
        if self.reconstructor is None:
            from .recon import make_reconstructor

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
        """Run the pipeline on one request.

        Raises:
            InputError: unusable input (the message names the problem).
            Cancelled: ``cancel`` was set; checked between stages.
        """
        self.load()
        cfg = self.cfg
        timer = StageTimer()
        report = progress or (lambda stage, fraction: None)

        def checkpoint(stage: str, fraction: float) -> None:
            if cancel is not None and cancel.is_set():
                raise Cancelled(f"cancelled before {stage}")
            report(stage, fraction)

        checkpoint("preprocess", 0.0)
        with timer.stage("preprocess"):
            pre = preprocess(inputs.image, inputs.mask, cfg.preprocess)
            if inputs.depth is not None and inputs.depth.shape != inputs.image.shape[:2]:
                raise InputError(f"depth is {inputs.depth.shape[::-1]} but image is {inputs.image.shape[1::-1]}")

        decision = ElevationDecision()
        estimate = decide_elevation(cfg.elevation, inputs, pre, decision)

        def plan_progress(stage: str, fraction: float) -> None:
            checkpoint(stage, 0.05 + 0.6 * fraction)

        views = run_one2345_plan(
            self.generator,
            pre.image,
            estimate,
            seed=cfg.seed,
            input_polar_prior_deg=decision.polar_hint_deg,
            both_rings=cfg.zero123.both_rings,
            progress=plan_progress,
        )
        for stage, seconds in views.timings.items():
            timer.timings[stage] = timer.timings.get(stage, 0.0) + seconds

        checkpoint("reconstruct", 0.7)
        viewset = stage2_viewset(views, cfg.input_azimuth_deg)
        with timer.stage("reconstruct"):
            mesh = self.reconstructor.reconstruct(viewset)
        # Undo the internal azimuth: the canonical frame has the input view at azimuth 0.
        to_canonical = np.eye(4)
        to_canonical[:3, :3] = cam.rotation_z(-cfg.input_azimuth_deg)
        mesh.apply_transform(to_canonical)

        names, images = views.ordered()
        result = ReconstructionResult(
            ok=True,
            mesh=mesh,
            frame="canonical",
            frame_id=CANONICAL_FRAME_ID,
            units="canonical",
            scale_source="none",
            elevation_deg=float(cam.elevation_from_polar(views.polar_deg)),
            polar_deg=views.polar_deg,
            views=getattr(self.generator, "name", "unknown"),
            backend=self.reconstructor.name,
            view_images=images,
            view_names=names,
            config=C.to_dict(cfg),
        )
        decision.fill(result)
        result.zero123_input_polar_deg = views.conditioning_polar_deg
        checkpoint("metric", 0.95)
        with timer.stage("metric"):
            apply_metric(result, inputs, pre, cfg.metric)
        result.timings = dict(timer.timings)
        report("done", 1.0)
        return result


def apply_metric(result: ReconstructionResult, inputs: ReconstructionInputs, pre, cfg: C.MetricConfig) -> None:
    """Move the mesh into the camera's optical frame in metres when a scale source exists.

    Needs the intrinsics (camera_info) and one of: depth, object_distance_m,
    object_size_m. Otherwise the mesh stays canonical and result.json says why.
    """
    has_scale = inputs.depth is not None or cfg.object_distance_m > 0 or cfg.object_size_m > 0
    if inputs.K is None:
        if has_scale:
            result.extra["metric_note"] = "no camera_info: the mesh stays in the canonical frame"
        return
    fit = fit_metric(result.mesh, result.polar_deg, inputs.K, pre.crop, pre.source_mask, inputs.depth, cfg)
    if fit is None:
        result.extra["metric_note"] = "no scale source (depth, object_distance_m, object_size_m)"
        return
    result.mesh.apply_transform(fit.canonical_to_camera)
    result.frame = "camera_optical"
    result.frame_id = inputs.frame_id or "camera_optical_frame"
    result.units = "m"
    result.scale_source = fit.source
    result.canonical_to_frame = fit.canonical_to_camera
    result.extra["object_distance_m"] = fit.distance_m
    if fit.depth_residual_m is not None:
        result.extra["depth_fit_residual_m"] = fit.depth_residual_m
        result.extra["depth_fit_pixels"] = fit.depth_pixels


def _make_generator(cfg: C.PipelineConfig) -> ViewGenerator:
    if cfg.views == "zero123":
        from .views.zero123.generator import Zero123Generator

        return Zero123Generator.from_config(cfg.zero123)
    if cfg.views == "oracle":
        raise InputError("views 'oracle' needs a generator built from a known mesh (--views oracle:MESH)")
    raise InputError(f"unknown views source {cfg.views!r}: use 'zero123' or 'oracle'")
