"""The one result writer (CLI, node and ``bag``): a result folder, written all or nothing.

Layout of a result folder::

    result.json      the contract (results/result.py); lists every file with its frame, axes, units
    mesh.<format>    mesh.format (PLY by default: in the result's frame, metres in the camera frame)
    mesh.glb         with mesh.preview_glb, for viewers (glTF is y-up: result.json says so)
    views.png        contact sheet: input + mask outline, the mesh from three sides, the generated views
    views/           the generated views as a views folder (views.json), posed in the canonical frame

Everything is written into a temporary folder beside the target, which then replaces the
target in two renames: a reader sees the old result or the new one, never a mix, and a failed
run leaves a result.json with ``ok: false`` and no stale mesh or views. Files get the umask's
permissions (results/atomic.py).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..config import MeshConfig
from ..types import InputError
from .atomic import DIR_MODE, write_image_atomic, write_json_atomic
from .planner import OBJECT_AXES, in_object_frame
from .result import AXES, GLTF_AXES, ReconstructionResult

RESULT_JSON = "result.json"
OBJECTS_JSON = "objects.json"
POINTS_PLY = "points.ply"
CONTACT_SHEET = "views.png"
VIEWS_FOLDER = "views"


def check_output_dir(out_dir: str | os.PathLike) -> Path:
    """Refuse an output folder that cannot take a result, before any work is done.

    Accepted: a missing folder whose parent can be created and written, an empty folder, or an
    earlier result folder (it holds result.json, or objects.json for several objects). Anything
    else (a file, a folder of other files, no write permission) is an InputError that says what
    to do.
    """
    out = Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise InputError(f"output {out} is a file, not a folder: choose a folder path for --out")
    ours = (out / RESULT_JSON).is_file() or (out / OBJECTS_JSON).is_file()
    if out.is_dir() and any(out.iterdir()) and not ours:
        raise InputError(f"output folder {out} holds other files and no {RESULT_JSON}: refusing to replace it; "
                         "choose a new or empty folder")  # fmt: skip
    parent = out.resolve().parent
    existing = parent
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"cannot write the output folder {out}: no write permission in {existing}")
    return out


def unique_stem(object_id: str, stamp_ns: int) -> str:
    """``<object_id>_<stamp ns>_<8 hex>``: unique per result, because RViz caches meshes by URI."""
    return f"{object_id}_{int(stamp_ns)}_{uuid.uuid4().hex[:8]}"


def mesh_file_entry(result: ReconstructionResult, name: str, fmt: str) -> dict:
    """result.json's description of one mesh file: its frame, axes and units."""
    entry = {"path": name, "format": fmt, "frame": result.frame, "frame_id": result.frame_id, "units": result.units}
    entry["axes"] = GLTF_AXES if fmt == "glb" else AXES[result.frame]
    return entry


def write_result(
    out_dir: str | os.PathLike,
    result: ReconstructionResult,
    mesh: MeshConfig | None = None,
    extra: Callable[[Path], dict[str, dict]] | None = None,
) -> Path:
    """Write ``result`` as the folder ``out_dir`` (see the module docstring); returns result.json's path.

    A result with ``ok`` false writes result.json alone (and removes an earlier mesh and views).
    ``extra(folder)`` writes more files into the folder being built and returns their result.json entries.
    """
    from ..mesh.files import export_mesh
    from .contact_sheet import contact_sheet

    mesh = mesh or MeshConfig()
    out = check_output_dir(out_dir)
    with _staging(out) as tmp:
        files: dict[str, dict] = {}
        if result.ok and result.mesh is not None:
            name = f"mesh.{mesh.format}"
            export_mesh(result.mesh, tmp / name, mesh.format)
            files["mesh"] = mesh_file_entry(result, name, mesh.format)
            if mesh.preview_glb and mesh.format != "glb":
                export_mesh(result.mesh, tmp / "mesh.glb", "glb")
                files["mesh_preview"] = mesh_file_entry(result, "mesh.glb", "glb")
            name = f"mesh_object.{mesh.format}"
            export_mesh(in_object_frame(result.mesh, result.object_pose), tmp / name, mesh.format)
            files["mesh_object"] = {"path": name, "format": mesh.format, "frame": "object", "units": result.units,
                                    "axes": OBJECT_AXES, "pose_in_frame_id": np.asarray(result.object_pose).tolist(),
                                    "note": "the mesh in the object's own frame: "
                                            "place it with pose_in_frame_id"}  # fmt: skip
            write_image_atomic(tmp / CONTACT_SHEET, contact_sheet(result))
            files["contact_sheet"] = {"path": CONTACT_SHEET}
            if result.views is not None:
                from ..views.folder import write_views_folder

                planned = result.views
                sources = [i for i, stage in enumerate(planned.stages) if stage == 2]
                write_views_folder(tmp / VIEWS_FOLDER, planned.views, sources)
                files["views"] = {"path": f"{VIEWS_FOLDER}/", "frame": "canonical", "units": "canonical",
                                  "axes": AXES["canonical"],
                                  "note": "all generated views; 'sources' in views.json: "
                                          "the 32 the mesh is built from"}  # fmt: skip
        if extra is not None:
            files.update(extra(tmp))
        write_json_atomic(tmp / RESULT_JSON, result.to_json(files))
    return out / RESULT_JSON


def write_objects(
    out_dir: str | os.PathLike,
    results: list[ReconstructionResult],
    refused: dict[str, str] | None = None,
    mesh: MeshConfig | None = None,
    cloud_points: int = 20000,
) -> Path:
    """Several objects of one image as one folder, all or nothing: a result folder per object
    (``<object_id>/``, as :func:`write_result`), ``points.ply`` (every completed surface sampled
    uniformly, with normals, colours and the object's label index) and ``objects.json`` (each
    object's id, folder, ok/error, pose and extents; the refused ones with their reason).
    Returns objects.json's path.
    """
    from .planner import labelled_samples

    mesh = mesh or MeshConfig()
    out = check_output_dir(out_dir)
    refused = refused or {}
    with _staging(out) as tmp:
        entries, meshes = [], []
        for label, result in enumerate(results, start=1):
            write_result(tmp / result.object_id, result, mesh)
            entry = {"object_id": result.object_id, "label": label, "folder": f"{result.object_id}/", "ok": result.ok,
                     "error": result.error}  # fmt: skip
            if result.ok and result.mesh is not None:
                entry.update(frame_id=result.frame_id, units=result.units, pose=np.asarray(result.object_pose).tolist(),
                             extents=np.asarray(result.object_extents).tolist(), warnings=result.warnings)  # fmt: skip
                meshes.append((label, result.mesh))
            entries.append(entry)
        entries += [{"object_id": oid, "ok": False, "error": reason, "refused": True}
                    for oid, reason in refused.items()]  # fmt: skip
        files = {}
        if meshes:
            write_labelled_cloud(tmp / POINTS_PLY, *labelled_samples(meshes, cloud_points))
            files["points"] = {"path": POINTS_PLY, "frame_id": results[0].frame_id, "units": results[0].units,
                               "fields": "x y z nx ny nz red green blue alpha label (label = the objects' 'label')",
                               "note": "the completed surfaces sampled uniformly by area"}  # fmt: skip
        write_json_atomic(tmp / OBJECTS_JSON, {"schema_version": 1, "objects": entries, "files": files})
    return out / OBJECTS_JSON


def write_labelled_cloud(path: Path, points: np.ndarray, normals: np.ndarray, rgb: np.ndarray,
                         labels: np.ndarray) -> None:  # fmt: skip
    """A binary PLY point cloud with normals, colours and a ``label`` per point (trimesh's exporter)."""
    import trimesh

    cloud = trimesh.PointCloud(points, colors=np.column_stack([rgb, np.full(len(rgb), 255, np.uint8)]))
    cloud.vertex_attributes = {"nx": normals[:, 0].astype(np.float32), "ny": normals[:, 1].astype(np.float32),
                               "nz": normals[:, 2].astype(np.float32), "label": labels.astype(np.uint32)}  # fmt: skip
    from .atomic import write_bytes_atomic

    write_bytes_atomic(path, trimesh.exchange.ply.export_ply(cloud, encoding="binary", include_attributes=True))


def write_failure(out_dir: str | os.PathLike, result: ReconstructionResult) -> Path | None:
    """result.json for a failed request, replacing any earlier result there; None when ``out_dir``
    itself is unusable (the error then names the folder)."""
    try:
        return write_result(out_dir, result)
    except (InputError, OSError):
        return None


class _staging:
    """A temporary folder beside ``out`` that replaces ``out`` when the block ends without error."""

    def __init__(self, out: Path):
        self.out = out

    def __enter__(self) -> Path:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.", suffix=".tmp", dir=self.out.parent))
        os.chmod(self.tmp, DIR_MODE)
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        old = None
        if self.out.exists():
            old = self.out.with_name(f".{self.out.name}.{uuid.uuid4().hex[:8]}.old")
            os.replace(self.out, old)
        os.replace(self.tmp, self.out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
