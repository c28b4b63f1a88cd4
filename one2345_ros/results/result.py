"""The pipeline's result object and its result.json form (DESIGN.md contract)."""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from typing import Any

import numpy as np

SCHEMA_VERSION = 1
CANONICAL_FRAME_ID = "one2345_canonical"


@dataclass
class ReconstructionResult:
    """What one reconstruction produced.

    ``mesh`` is a ``trimesh.Trimesh`` with per-vertex colours (RGBA uint8) in the
    frame named by ``frame``/``frame_id`` and units ``units``.
    ``canonical_to_frame`` is the 4x4 similarity taking canonical coordinates to
    that frame (identity for the canonical frame).
    """

    ok: bool = False
    error: str | None = None
    mesh: Any = None
    frame: str = "canonical"
    frame_id: str = CANONICAL_FRAME_ID
    units: str = "canonical"
    scale_source: str = "none"
    canonical_to_frame: np.ndarray = field(default_factory=lambda: np.eye(4))
    elevation_deg: float | None = None
    polar_deg: float | None = None
    elevation_source: str = "image"
    elevation_image_deg: float | None = None
    elevation_gravity_deg: float | None = None
    confidence: float = 0.0
    elevation_reason: str = ""
    zero123_input_polar_deg: float | None = None
    """Absolute polar handed to Stable Zero123 before the elevation was known."""
    views: str = "oracle"
    backend: str = "hull"
    timings: dict[str, float] = field(default_factory=dict)
    view_images: np.ndarray | None = None
    """Generated views (N, 256, 256, 3) uint8, for the contact sheet."""
    view_names: list[str] = field(default_factory=list)
    config: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)
    """Additional figures (errors against ground truth in the demo...)."""

    def to_json(self, mesh_file: str | None) -> dict:
        """The result.json document; ``mesh_file`` is the mesh's name beside it."""
        n_v = int(len(self.mesh.vertices)) if self.mesh is not None else 0
        n_f = int(len(self.mesh.faces)) if self.mesh is not None else 0
        doc = {
            "schema_version": SCHEMA_VERSION,
            "ok": self.ok,
            "error": self.error,
            "mesh": mesh_file if self.ok else None,
            "vertices": n_v,
            "faces": n_f,
            "frame": self.frame,
            "frame_id": self.frame_id,
            "units": self.units,
            "scale_source": self.scale_source,
            "canonical_to_frame": np.asarray(self.canonical_to_frame).tolist(),
            "elevation_deg": self.elevation_deg,
            "polar_deg": self.polar_deg,
            "elevation_source": self.elevation_source,
            "elevation_image_deg": self.elevation_image_deg,
            "elevation_gravity_deg": self.elevation_gravity_deg,
            "confidence": self.confidence,
            "elevation_reason": self.elevation_reason,
            "zero123_input_polar_deg": self.zero123_input_polar_deg,
            "views": self.views,
            "backend": self.backend,
            "timings": {k: round(float(v), 4) for k, v in self.timings.items()},
            "versions": versions(),
            "config": self.config,
        }
        doc.update(self.extra)
        return doc


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
