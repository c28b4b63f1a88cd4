"""The pipeline's result and its result.json form (DESIGN.md contract, schema 2).

A :class:`ReconstructionResult` is built once, at the end of the pipeline (or of a failed
request). result.json holds the documented fields; everything else a run measured
(the elevation estimator's details, the depth fit, the generator, ground-truth errors in the
demo) sits under the one key ``diagnostics``.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .planner import OBJECT_AXES
from ..types import CANONICAL_FRAME_ID, ElevationSource, Frame, ScaleSource, Units

SCHEMA_VERSION = 2

AXES = {
    "camera_optical": "OpenCV optical frame of frame_id: x right, y down, z forward",
    "canonical": "canonical frame: z up, object centre at the origin, input camera in the y-z plane at -y "
    "(Zero123 world with the input view at azimuth 0, radius 1.2)",
    "views_world": "the views folder's world frame (its c2w matrices)",
}
"""How each frame's axes lie, written beside every file in result.json."""
GLTF_AXES = "glTF y-up: the result frame turned by (x, y, z) -> (x, z, -y) (a rotation, not a mirror); for viewers"


@dataclass
class ReconstructionResult:
    """What one reconstruction produced.

    ``mesh``: ``trimesh.Trimesh`` (RGBA uint8 vertex colours) in ``frame``/``frame_id``, in
    ``units``. ``canonical_to_frame``: (4, 4) similarity from the canonical frame to that frame.
    ``views``: the posed generated views (views.plan.PlannedViews), ``input_image`` /
    ``input_mask``: the request's image and mask (for the contact sheet).
    """

    ok: bool = False
    error: str | None = None
    object_id: str = "object"
    stamp_ns: int = 0
    mesh: Any = None
    frame: Frame = "canonical"
    frame_id: str = CANONICAL_FRAME_ID
    units: Units = "canonical"
    scale_source: ScaleSource = "none"
    canonical_to_frame: np.ndarray = field(default_factory=lambda: np.eye(4))
    object_pose: np.ndarray = field(default_factory=lambda: np.eye(4))
    """(4, 4) the result frame <- the object frame (results/planner.py: oriented-bounding-box centre and axes)."""
    object_extents: np.ndarray = field(default_factory=lambda: np.zeros(3))
    """Sides of the oriented bounding box along the object frame's x, y, z, in ``units``."""
    elevation_deg: float | None = None
    polar_deg: float | None = None
    elevation_source: ElevationSource = "image"
    elevation_image_deg: float | None = None
    elevation_gravity_deg: float | None = None
    confidence: float = 0.0
    elevation_reason: str = ""
    view_source: str = "zero123"
    """'zero123', 'oracle' (synthetic renders of a known mesh) or 'folder'."""
    backend: str = "hull"
    views: Any = None
    input_image: np.ndarray | None = None
    input_mask: np.ndarray | None = None
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    diagnostics: dict = field(default_factory=dict)

    def to_json(self, files: dict[str, dict] | None = None) -> dict:
        """The result.json document. ``files``: what was written beside it (results.files)."""
        files = files or {}
        n_v = int(len(self.mesh.vertices)) if self.mesh is not None else 0
        n_f = int(len(self.mesh.faces)) if self.mesh is not None else 0
        return {
            "schema_version": SCHEMA_VERSION,
            "ok": self.ok,
            "error": self.error,
            "object_id": self.object_id,
            "stamp_ns": int(self.stamp_ns),
            "mesh": files.get("mesh", {}).get("path"),
            "files": files,
            "vertices": n_v,
            "faces": n_f,
            "frame": self.frame,
            "frame_id": self.frame_id,
            "units": self.units,
            "axes": AXES[self.frame],
            "scale_source": self.scale_source,
            "canonical_to_frame": np.asarray(self.canonical_to_frame).tolist(),
            "object_frame": {"pose": np.asarray(self.object_pose).tolist(), "extents": np.asarray(self.object_extents).tolist(),
                             "axes": OBJECT_AXES},
            "elevation_deg": self.elevation_deg,
            "polar_deg": self.polar_deg,
            "elevation_source": self.elevation_source,
            "elevation_image_deg": self.elevation_image_deg,
            "elevation_gravity_deg": self.elevation_gravity_deg,
            "confidence": self.confidence,
            "elevation_reason": self.elevation_reason,
            "views": self.view_source,
            "backend": self.backend,
            "warnings": list(self.warnings),
            "timings": {k: round(float(v), 4) for k, v in self.timings.items()},
            "versions": versions(),
            "config": self.config,
            "diagnostics": self.diagnostics,
        }


def failed_result(error: str, object_id: str = "object", stamp_ns: int = 0, config: dict | None = None,
                  warnings: list[str] | None = None) -> ReconstructionResult:  # fmt: skip
    """The result of a request that failed: ``ok`` false, the reason, nothing else."""
    return ReconstructionResult(ok=False, error=error, object_id=object_id, stamp_ns=stamp_ns, config=config or {},
                                warnings=list(warnings or []))  # fmt: skip


def versions() -> dict[str, str]:
    """Versions of the libraries that shape a result (for result.json)."""
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for dist in ("one2345_ros", "torch", "numpy", "trimesh", "scikit-image", "diffusers", "transformers", "opencv-python-headless"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            continue
    return out
