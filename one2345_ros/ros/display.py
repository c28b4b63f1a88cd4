"""Display-side mesh reduction: fit a mesh into a face budget for RViz markers.

A ``Marker.TRIANGLE_LIST`` repeats three points and three colours per face, so a 200k-face
mesh is a 24 MB message that RViz redraws on every update. The marker gets a reduced copy;
the ``ReconstructedObject`` and the mesh file keep full resolution.

Written here with numpy (vertex clustering) rather than a quadric decimator because trimesh's
``simplify_quadric_decimation`` needs the optional ``fast_simplification`` package, which
robot installs do not have; clustering is deterministic, O(n) and averages vertex colours.
"""

from __future__ import annotations

import numpy as np


def cluster_decimate(vertices: np.ndarray, faces: np.ndarray, colors: np.ndarray | None, max_faces: int):
    """Reduce a triangle mesh to at most ``max_faces`` faces by vertex clustering.

    Vertices falling into the same cell of a regular grid over the bounding box merge into
    their mean (colours too); faces that collapse or duplicate are dropped. The grid is
    refined downwards until the budget holds.

    Args:
        vertices: (V, 3) float.
        faces: (F, 3) int indices into ``vertices``.
        colors: (V, C) uint8 per-vertex colours or None.
        max_faces: the budget (> 0). Meshes already within it are returned unchanged.

    Returns:
        ``(vertices (V', 3) float64, faces (F', 3) int64, colors (V', C) uint8 | None)``
        with ``F' <= max_faces``.
    """
    if max_faces <= 0:
        raise ValueError(f"max_faces must be positive, got {max_faces}")
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    if len(faces) <= max_faces:
        return vertices, faces, colors
    lo = vertices.min(axis=0)
    extent = float(np.max(vertices.max(axis=0) - lo)) or 1.0
    # A closed surface in an n^3 grid yields roughly 2*pi*n^2 faces (a sphere in its box);
    # start a little finer than that and coarsen until under budget.
    cells = max(2, int(np.sqrt(max_faces / 2.0)))
    while True:
        out = _cluster_once(vertices, faces, colors, lo, extent / cells)
        if len(out[1]) <= max_faces or cells <= 2:
            if len(out[1]) > max_faces:  # pathological input: keep the first faces
                out = (out[0], out[1][:max_faces], out[2])
            return out
        cells = max(2, int(cells * 0.85))


def _cluster_once(vertices, faces, colors, lo, cell):
    ijk = np.floor((vertices - lo) / cell).astype(np.int64)
    side = int(ijk.max()) + 1
    # One int64 key per cell: 1-D unique is several times faster than unique(axis=0).
    keys = (ijk[:, 0] * side + ijk[:, 1]) * side + ijk[:, 2]
    _, cluster, counts = np.unique(keys, return_inverse=True, return_counts=True)
    cluster = cluster.reshape(-1)
    n = len(counts)
    new_vertices = np.stack([np.bincount(cluster, vertices[:, k], n) for k in range(3)], axis=1) / counts[:, None]
    new_colors = None
    if colors is not None:
        c = np.asarray(colors, dtype=np.float64)
        sums = np.stack([np.bincount(cluster, c[:, k], n) for k in range(c.shape[1])], axis=1)
        new_colors = np.clip(np.rint(sums / counts[:, None]), 0, 255).astype(np.uint8)
    f = cluster[faces]
    keep = (f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 0] != f[:, 2])
    f = f[keep]
    # Drop duplicates regardless of winding start, keep the first orientation seen.
    s = np.sort(f, axis=1)
    if n < 2_000_000:  # n**3 fits in int64: one key per face, fast 1-D unique
        _, first = np.unique((s[:, 0] * n + s[:, 1]) * n + s[:, 2], return_index=True)
    else:
        _, first = np.unique(s, axis=0, return_index=True)
    f = f[np.sort(first)]
    used = np.unique(f)
    remap = np.full(n, -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    return new_vertices[used], remap[f], (new_colors[used] if new_colors is not None else None)
