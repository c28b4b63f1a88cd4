"""Mesh files: GLB, PLY and OBJ, written atomically, read back in our frame.

GLB only: glTF is y-up, so the mesh is rotated on the way out and back on the way in.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import trimesh

from ..geometry import cameras as cam
from ..results.atomic import atomic_path
from ..types import InputError

MESH_FORMATS = ("glb", "ply", "obj")


def mesh_format(path: str | os.PathLike, file_format: str | None = None) -> str:
    """'glb', 'ply' or 'obj' from ``file_format`` or the file suffix; anything else is an error."""
    fmt = (file_format or Path(path).suffix.lstrip(".")).lower()
    if fmt not in MESH_FORMATS:
        raise InputError(f"{path}: unsupported mesh format {fmt!r} (use one of {', '.join(MESH_FORMATS)})")
    return fmt


def export_mesh(mesh: trimesh.Trimesh, path: str | os.PathLike, file_format: str | None = None) -> Path:
    """Write ``mesh`` atomically as GLB, PLY (binary) or OBJ, with its vertex colours.

    GLB only: glTF is y-up, so the mesh is rotated by :func:`cameras.z_up_to_y_up`
    ((x, y, z) -> (x, z, -y), a proper rotation, never a mirror) on the way out.
    PLY and OBJ keep the mesh's own frame. :func:`load_mesh` undoes the rotation.
    """
    path = Path(path)
    fmt = mesh_format(path, file_format)
    out = mesh.copy()
    if fmt == "glb":
        out.apply_transform(cam.z_up_to_y_up())
    with atomic_path(path) as tmp:
        if fmt == "obj":
            # trimesh's default 8 decimals cannot hold float64 round trips within 1e-6 for
            # coordinates in metres far from the origin; 10 keeps them.
            data = trimesh.exchange.obj.export_obj(out, include_color=True, include_normals=False, digits=10)
            tmp.write_text(data)
        else:
            out.export(tmp, file_type=fmt)
    return path


def load_mesh(path: str | os.PathLike) -> trimesh.Trimesh:
    """Read a mesh written by :func:`export_mesh` (or any single mesh trimesh reads) in our frame.

    GLB files are rotated back from glTF's y-up with the inverse of
    :func:`cameras.z_up_to_y_up`; vertices and faces are kept as stored (no merging).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"mesh file not found: {path}")
    fmt = Path(path).suffix.lstrip(".").lower()
    try:
        mesh = trimesh.load(path, force="mesh", process=False)
    except Exception as exc:  # trimesh raises many types for malformed files
        raise InputError(f"cannot read mesh {path}: {exc}") from exc
    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
        raise InputError(f"{path}: no triangle mesh found")
    if fmt in ("glb", "gltf"):
        mesh.apply_transform(np.linalg.inv(cam.z_up_to_y_up()))
    return mesh
