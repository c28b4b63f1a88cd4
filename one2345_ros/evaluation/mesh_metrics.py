"""Reconstruction metrics of DESIGN.md "Metrics": Chamfer-L1, F-score and volume IoU.

* Chamfer-L1: the mean of the two directed mean nearest-neighbour (Euclidean)
  distances between ``n_samples`` points sampled uniformly (seeded) on each
  surface, divided by the TRUE mesh's bounding-box diagonal.
* F-score at ``f_threshold`` (2 %) of that diagonal: harmonic mean of precision
  (predicted samples near the truth) and recall (true samples near the prediction).
* Volume IoU on a ``iou_resolution``^3 grid of voxel centres over the union of both
  bounding boxes.

Inside test (meshes need not be perfectly watertight): ray parity along grid lines.
For each of the three axes, one ray per grid line is cast with embree through the
whole box and every crossing is recorded, so a voxel centre's parity is the number
of crossings before it. A voxel is inside when at least two of the three axes say
so: a small hole or a ray grazing an edge flips one axis's answer along one line,
and the vote outvotes it. The lines are nudged by ~1e-7 of the box size so that
they do not run exactly through the edges of axis-aligned meshes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import trimesh
from scipy.spatial import cKDTree

N_SAMPLES = 30_000
F_THRESHOLD = 0.02
IOU_RESOLUTION = 128


@dataclass(frozen=True)
class MeshMetrics:
    """Distances are fractions of the true mesh's bounding-box diagonal."""

    chamfer_l1: float
    f_score: float
    precision: float
    recall: float
    volume_iou: float
    diagonal: float
    """Bounding-box diagonal of the true mesh, in its units."""

    def to_dict(self) -> dict:
        return asdict(self)


def compare_meshes(
    predicted: trimesh.Trimesh,
    true: trimesh.Trimesh,
    n_samples: int = N_SAMPLES,
    f_threshold: float = F_THRESHOLD,
    iou_resolution: int = IOU_RESOLUTION,
    seed: int = 0,
) -> MeshMetrics:
    """Chamfer-L1, F-score and volume IoU of ``predicted`` against ``true`` (same frame)."""
    for name, mesh in (("predicted", predicted), ("true", true)):
        if len(mesh.faces) == 0 or mesh.area <= 0:
            raise ValueError(f"compare_meshes: the {name} mesh has no surface")
    chamfer, precision, recall, f_score = surface_distances(predicted, true, n_samples, f_threshold, seed)
    iou = volume_iou(predicted, true, iou_resolution)
    diagonal = float(np.linalg.norm(true.bounds[1] - true.bounds[0]))
    return MeshMetrics(chamfer, f_score, precision, recall, float(iou), diagonal)


def surface_distances(
    predicted: trimesh.Trimesh,
    true: trimesh.Trimesh,
    n_samples: int = N_SAMPLES,
    f_threshold: float = F_THRESHOLD,
    seed: int = 0,
) -> tuple[float, float, float, float]:
    """(Chamfer-L1, precision, recall, F-score) of the surfaces, without the volume grid."""
    diagonal = float(np.linalg.norm(true.bounds[1] - true.bounds[0]))
    pred_points = sample_surface(predicted, n_samples, seed)
    true_points = sample_surface(true, n_samples, seed + 1)
    d_pred_to_true, _ = cKDTree(true_points).query(pred_points)
    d_true_to_pred, _ = cKDTree(pred_points).query(true_points)
    chamfer = 0.5 * (d_pred_to_true.mean() + d_true_to_pred.mean()) / diagonal
    tau = f_threshold * diagonal
    precision = float(np.mean(d_pred_to_true < tau))
    recall = float(np.mean(d_true_to_pred < tau))
    f_score = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return float(chamfer), precision, recall, float(f_score)


def sample_surface(mesh: trimesh.Trimesh, count: int, seed: int) -> np.ndarray:
    """``count`` points (count, 3) uniform over the surface area, reproducible for a seed."""
    points, _faces = trimesh.sample.sample_surface(mesh, count, seed=seed)
    return np.asarray(points, dtype=np.float64)


def volume_iou(a: trimesh.Trimesh, b: trimesh.Trimesh, resolution: int = IOU_RESOLUTION) -> float:
    """Intersection over union of the volumes of ``a`` and ``b`` on a voxel grid over both boxes."""
    lo = np.minimum(a.bounds[0], b.bounds[0])
    hi = np.maximum(a.bounds[1], b.bounds[1])
    axes = [lo[d] + (np.arange(resolution) + 0.5) * (hi[d] - lo[d]) / resolution for d in range(3)]
    occ_a = occupancy(a, axes)
    occ_b = occupancy(b, axes)
    union = np.count_nonzero(occ_a | occ_b)
    return 0.0 if union == 0 else np.count_nonzero(occ_a & occ_b) / union


def occupancy(mesh: trimesh.Trimesh, axes) -> np.ndarray:
    """Inside test (nx, ny, nz) bool at the grid ``axes`` by 2-of-3 axis ray-parity votes."""
    axes = [np.asarray(a, dtype=np.float64) for a in axes]
    votes = np.zeros(tuple(len(a) for a in axes), dtype=np.int8)
    for axis in range(3):
        votes += _parity_along(mesh, axes, axis)
    return votes >= 2


_NUDGE = (1.37e-7, 2.71e-7)
"""Relative offsets of the ray lines from the voxel centres (see module doc)."""


def _parity_along(mesh: trimesh.Trimesh, axes, axis: int) -> np.ndarray:
    other = [d for d in range(3) if d != axis]
    extent = max(float(np.ptp(np.concatenate([a, mesh.bounds[:, d]]))) for d, a in enumerate(axes))
    grid_a, grid_b = np.meshgrid(axes[other[0]], axes[other[1]], indexing="ij")
    n_lines = grid_a.size
    origins = np.zeros((n_lines, 3))
    origins[:, other[0]] = grid_a.ravel() + _NUDGE[0] * extent
    origins[:, other[1]] = grid_b.ravel() + _NUDGE[1] * extent
    start = min(axes[axis][0], mesh.bounds[0, axis]) - 0.01 * extent
    origins[:, axis] = start
    directions = np.zeros((n_lines, 3))
    directions[:, axis] = 1.0
    _tri, ray_index, locations = mesh.ray.intersects_id(
        origins, directions, multiple_hits=True, max_hits=10_000, return_locations=True
    )
    # Parity of a centre = number of crossings on its line at or before it: mark each
    # crossing at the first centre after it, then a running sum along the line.
    centres = axes[axis]
    first_after = np.searchsorted(centres, locations[:, axis], side="left")
    events = np.bincount(ray_index * (len(centres) + 1) + first_after, minlength=n_lines * (len(centres) + 1))
    events = events.reshape(n_lines, len(centres) + 1)[:, :-1]
    inside = (np.cumsum(events, axis=1) % 2) == 1
    inside = inside.reshape(len(axes[other[0]]), len(axes[other[1]]), len(centres))
    # Back to [x, y, z] order: the line axes come first, the ray axis last.
    return np.moveaxis(inside, 2, axis)
