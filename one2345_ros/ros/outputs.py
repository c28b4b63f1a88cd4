"""Mesh files for mesh_uri / MESH_RESOURCE markers, with a result.json beside each (ROS-free)."""

from __future__ import annotations

import uuid
from pathlib import Path

from ..results import atomic as core_io
from ..mesh.files import export_mesh


def unique_stem(object_id: str, stamp_ns: int) -> str:
    """``<object_id>_<stamp ns>_<8 hex>``: unique per result, because RViz caches meshes by URI."""
    return f"{object_id}_{int(stamp_ns)}_{uuid.uuid4().hex[:8]}"


def write_result_files(result, output_dir: str | Path, stem: str, mesh_format: str = "glb") -> Path:
    """Write ``<stem>.<format>`` and ``<stem>.result.json`` atomically; returns the mesh path.

    Same conventions as every mesh file the project writes (mesh.export_mesh): GLB is
    rotated to glTF's y-up, PLY/OBJ keep the result's frame.
    """
    folder = Path(output_dir).expanduser().resolve()
    folder.mkdir(parents=True, exist_ok=True)
    mesh_path = folder / f"{stem}.{mesh_format}"
    export_mesh(result.mesh, mesh_path, mesh_format)  # the one writer: atomic, glTF y-up for GLB
    core_io.write_json_atomic(folder / f"{stem}.result.json", result.to_json(mesh_path.name))
    return mesh_path
