"""Writing a result to disk: mesh, result.json, contact sheet, views folder.

Every file is written atomically; result.json is written last, and also on
failure (``ok: false`` with the error), so a reader never sees a result.json that
points at a missing or half-written mesh.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..geometry import cameras as cam
from ..types import ViewSet
from .atomic import write_image_atomic, write_json_atomic
from ..views.folder import write_views_folder
from .result import ReconstructionResult

RESULT_JSON = "result.json"
CONTACT_SHEET = "views.png"


def save_result(out_dir: str | os.PathLike, result: ReconstructionResult, mesh_format: str = "glb") -> Path:
    """Write ``result`` into ``out_dir``; returns the path of result.json."""
    from ..mesh.files import export_mesh
    from .contact_sheet import contact_sheet

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    mesh_file = None
    if result.ok and result.mesh is not None:
        mesh_file = f"mesh.{mesh_format}"
        export_mesh(result.mesh, out_dir / mesh_file)
    if result.view_images is not None and len(result.view_images):
        sheet = contact_sheet(result.view_images, result.view_names, columns=8)
        write_image_atomic(out_dir / CONTACT_SHEET, sheet)
        _write_generated_views(out_dir / "views", result)
    path = out_dir / RESULT_JSON
    write_json_atomic(path, result.to_json(mesh_file))
    return path


def save_failure(out_dir: str | os.PathLike, error: str, config: dict | None = None) -> Path:
    """result.json with ``ok: false`` for a request that failed."""
    result = ReconstructionResult(ok=False, error=error, config=config or {})
    path = Path(out_dir) / RESULT_JSON
    write_json_atomic(path, result.to_json(None))
    return path


def _write_generated_views(folder: Path, result: ReconstructionResult) -> None:
    """All generated views as a views folder in the canonical frame (DESIGN.md contract)."""
    polar = result.polar_deg if result.polar_deg is not None else 90.0
    plan = {v.name: v for v in cam.one2345_plan(polar)}
    keep = [i for i, n in enumerate(result.view_names) if n in plan]
    if not keep:
        return
    names = [result.view_names[i] for i in keep]
    images = np.asarray(result.view_images)[keep]
    views = ViewSet(
        images=images,
        K=np.broadcast_to(cam.view_intrinsics(images.shape[1]), (len(keep), 3, 3)).copy(),
        c2w=np.stack([plan[n].c2w() for n in names]),
        names=names,
        reference=0,
        near_far=cam.ONE2345_NEAR_FAR,
    )
    write_views_folder(folder, views)
