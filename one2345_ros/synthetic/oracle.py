"""Oracle view generator: renders the true mesh where Zero123 would imagine it.

Built from a mesh (z up) and the TRUE input camera (OpenCV c2w in the mesh frame).
It normalises the object as preprocessing does to the real input: the bounding-box
centre goes to the origin, a rotation about z puts the input camera at azimuth 0
(the canonical frame, DESIGN.md) and a scale makes the silhouette seen from the
input direction at radius 1.2 with ``cameras.view_intrinsics()`` fill
``fill_ratio`` of the 256-pixel side (larger bounding-box side). Views are then
rendered at absolute poses ``true input polar + cond_pose + target`` in that frame.

Rendering happens in the mesh's own frame with the equivalent rigid camera (a
pinhole image does not change when the scene and the camera translation are scaled
together), so the light stays fixed relative to the object and matches an input
image rendered from the mesh directly.

The oracle answers with images only: ``cond_image``, ``input_polar_deg`` and the
seeds are ignored, and nothing of the truth flows back through ``generate``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import trimesh

from ..geometry import cameras
from ..geometry.render import RenderResult, Renderer, Shading
from ..views.base import ProgressFn, ViewRequest, check_generate_args

SCALE_FIT_OVERSAMPLE = 4
"""The silhouette size is measured on a render this many times finer than the view,
so the fitted fill is accurate to a fraction of a view pixel."""

SCALE_FIT_TOLERANCE_PX = 1.0 / SCALE_FIT_OVERSAMPLE
"""The measured side is quantised to 1/SCALE_FIT_OVERSAMPLE view pixels."""
SCALE_FIT_MAX_ITERATIONS = 12
SCALE_BRACKET = 0.05
"""Relative half-width of the bisection bracket around the coarse scale."""
RECENTRE_MAX_ITERATIONS = 10
RECENTRE_TOLERANCE_PX = 1.0 / SCALE_FIT_OVERSAMPLE
"""The silhouette box is measured to 1/SCALE_FIT_OVERSAMPLE view pixels."""


class OracleGenerator:
    """ViewGenerator that renders a known mesh (name ``"oracle"``).

    Args:
        mesh: the true object, z up, any units.
        input_c2w: [4, 4] OpenCV c2w of the true input camera in ``mesh``'s frame.
        fill_ratio: silhouette side / image side of the input view (One-2-3-45: 0.75).
        size: side of the square views (256 for Zero123).
        supersample: rays per pixel side, for antialiased edges like real images.
        shading: world-fixed Lambert light (None: bare albedo).
        center: orbit centre: "crop" (default) the point the preprocessed crop is
            centred on, as Zero123 sees it; "bbox" the 3-D bounding-box centre.
    """

    name = "oracle"

    def __init__(
        self,
        mesh: trimesh.Trimesh,
        input_c2w,
        fill_ratio: float = 0.75,
        size: int = cameras.VIEW_SIZE,
        supersample: int = 2,
        shading: Shading | None = Shading(),
        center: str = "crop",
    ):
        input_c2w = np.asarray(input_c2w, dtype=np.float64)
        if input_c2w.shape != (4, 4):
            raise ValueError(f"input_c2w must be a 4x4 OpenCV c2w, got shape {input_c2w.shape}")
        if not 0.0 < fill_ratio < 1.0:
            raise ValueError(f"fill_ratio must be in (0, 1), got {fill_ratio}")
        self.mesh = mesh
        self.input_c2w = input_c2w
        self.fill_ratio = float(fill_ratio)
        self.size = int(size)
        self.supersample = int(supersample)
        self.K = cameras.view_intrinsics(self.size)
        self._renderer = Renderer(mesh, shading=shading)
        lo, hi = mesh.bounds
        self.bbox_center = (lo + hi) / 2.0
        """Bounding-box centre of the object in the mesh frame (the elevation truth's centre)."""
        if center not in ("crop", "bbox"):
            raise ValueError(f"center must be 'crop' or 'bbox', got {center!r}")
        self._set_frame(self.bbox_center)
        if center == "crop":
            self._recentre_on_crop()
        T = np.eye(4)
        T[:3, :3] = self.scale * self._rotation
        T[:3, 3] = -self.scale * (self._rotation @ self.center)
        self.canonical_from_mesh = T
        """[4, 4] similarity taking mesh coordinates to the canonical frame."""

    def _set_frame(self, center) -> None:
        """Orbit centre, true input direction, canonical rotation and scale for ``center``."""
        lo, hi = self.mesh.bounds
        offset = self.input_c2w[:3, 3] - center
        if np.linalg.norm(offset) < 1e-9 * max(1.0, float(np.max(hi - lo))):
            raise ValueError("the input camera sits at the object centre; its direction is undefined")
        polar, azimuth, _ = cameras.c2w_to_spherical(cameras.make_transform(np.eye(3), offset))
        self.center = np.asarray(center, dtype=np.float64)
        """Orbit centre in the mesh frame: the canonical origin."""
        self.true_polar_deg = float(polar)
        """Polar angle (deg from +z) of the input camera seen from the orbit centre."""
        self.true_elevation_deg = float(cameras.elevation_from_polar(polar))
        self.input_azimuth_deg = float(azimuth)
        """Azimuth of the input camera in the mesh frame (it becomes 0 in the canonical frame)."""
        self._rotation = cameras.rotation_z(-self.input_azimuth_deg)
        self.scale = self._fit_scale()
        """Canonical units per mesh unit."""

    def _recentre_on_crop(self) -> None:
        """Move the orbit centre onto the ray preprocessing centres.

        Preprocessing centres the silhouette's 2-D bounding box, not the projection
        of the 3-D box centre (they differ by many pixels for a mallet seen from
        above). Zero123 imagines the camera orbiting the point its input looks at,
        so the oracle orbits the point whose projection is the crop's principal
        point (128) when the silhouette box is centred (127.5), at the depth of the
        box centre. Fixed-point iteration: each step re-renders the input view.
        """
        f = SCALE_FIT_OVERSAMPLE
        K = cameras.scale_intrinsics(self.K, f)
        target = (self.size - 1) / 2.0
        for _ in range(RECENTRE_MAX_ITERATIONS):
            c2w = self.mesh_c2w(self.input_c2w_canonical())
            hit = self._renderer.hit_mask(K, c2w, self.size * f, self.size * f)
            rows, cols = np.nonzero(hit.any(axis=1))[0], np.nonzero(hit.any(axis=0))[0]
            # silhouette box centre in view pixels (pixel centres at integers)
            uv = (np.array([cols[0] + cols[-1], rows[0] + rows[-1]]) / 2.0 + 0.5) / f - 0.5
            error = float(np.max(np.abs(uv - target)))
            if error <= RECENTRE_TOLERANCE_PX:
                return
            shift = uv - target + self.K[:2, 2]  # the pixel that must become the principal point
            depth = cameras.ZERO123_RADIUS / self.scale
            new_center = cameras.unproject(shift[None], np.array([depth]), self.K, c2w)[0]
            self._set_frame(new_center)
        if error <= 1.0:  # quantised measurements can cycle within a pixel; good enough
            return
        raise RuntimeError(f"oracle recentring did not converge (silhouette box centre {error:.2f} px off)")

    # ------------------------------------------------------------------ frames

    def canonical_mesh(self) -> trimesh.Trimesh:
        """The true mesh in the canonical frame (to compare reconstructions with)."""
        out = self.mesh.copy()
        out.apply_transform(self.canonical_from_mesh)
        return out

    def input_c2w_canonical(self) -> np.ndarray:
        """The canonical input camera: polar = true polar, azimuth 0, radius 1.2."""
        return cameras.spherical_to_c2w(self.true_polar_deg, 0.0, cameras.ZERO123_RADIUS)

    def mesh_c2w(self, c2w_canonical, scale: float | None = None) -> np.ndarray:
        """Rigid c2w in the mesh frame that sees the mesh exactly as ``c2w_canonical``
        [..., 4, 4] sees the canonical mesh."""
        s = self.scale if scale is None else scale
        c2w_canonical = np.asarray(c2w_canonical, dtype=np.float64)
        R_back = self._rotation.T
        R = np.einsum("ij,...jk->...ik", R_back, c2w_canonical[..., :3, :3])
        t = np.einsum("ij,...j->...i", R_back, c2w_canonical[..., :3, 3]) / s + self.center
        return cameras.make_transform(R, t)

    # ------------------------------------------------------------------ scale

    def _silhouette_side_px(self, scale: float, f: int) -> float:
        """Larger side (view pixels) of the input view's silhouette bbox at ``scale``,
        measured on a render ``f`` times finer than the view; inf if it touches the border."""
        K = cameras.scale_intrinsics(self.K, f)
        hit = self._renderer.hit_mask(K, self.mesh_c2w(self.input_c2w_canonical(), scale), self.size * f, self.size * f)
        if not hit.any():
            raise ValueError("the object is not visible from the input camera direction")
        rows, cols = np.nonzero(hit.any(axis=1))[0], np.nonzero(hit.any(axis=0))[0]
        if rows[0] == 0 or cols[0] == 0 or rows[-1] == hit.shape[0] - 1 or cols[-1] == hit.shape[1] - 1:
            return float("inf")  # clipped by the image border: too large to measure
        # (max - min + 1) pixels, as a bounding box of a view-resolution mask counts them
        return max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1) / f

    def _fit_scale(self) -> float:
        target = self.fill_ratio * self.size
        lo, hi = self.mesh.bounds
        # first guess from the orthographic size; perspective makes the rest iterative
        scale = target * cameras.ZERO123_RADIUS / (self.K[0, 0] * float(np.max(hi - lo)))
        # Coarse fixed-point steps at view resolution (cheap), then a bisection on
        # the fine render: the side grows monotonically with the scale but in
        # quantised jumps (thin parts appear a pixel row at a time), which can make a
        # fixed-point update cycle around the target; a bracket cannot.
        best = (float("inf"), scale)
        for _ in range(SCALE_FIT_MAX_ITERATIONS):
            side = self._silhouette_side_px(scale, 1)
            best = min(best, (abs(side - target), scale))
            if abs(side - target) <= 1.0:
                break
            scale *= 0.7 if side == float("inf") else target / side
        scale = best[1]
        f = SCALE_FIT_OVERSAMPLE
        lo, hi = scale * (1.0 - SCALE_BRACKET), scale * (1.0 + SCALE_BRACKET)
        if not self._silhouette_side_px(lo, f) <= target <= self._silhouette_side_px(hi, f):
            raise RuntimeError(f"oracle scale fit: no scale within {SCALE_BRACKET:.0%} of {scale:.4g} fills {target:.1f} px")
        best = (float("inf"), scale)
        for _ in range(SCALE_FIT_MAX_ITERATIONS):
            mid = 0.5 * (lo + hi)
            side = self._silhouette_side_px(mid, f)
            best = min(best, (abs(side - target), mid))
            if abs(side - target) <= SCALE_FIT_TOLERANCE_PX:
                break
            lo, hi = (mid, hi) if side < target else (lo, mid)
        scale = best[1]
        return scale

    # ------------------------------------------------------------------ views

    def render_views(
        self, c2ws_canonical, K=None, size: int | None = None, supersample: int | None = None
    ) -> list[RenderResult]:
        """Render canonical cameras [N, 4, 4] (or one [4, 4]) into ``size`` x ``size``
        images with ``K`` (default: the views' size and ``view_intrinsics``). Depth is
        returned in canonical units."""
        c2ws = np.asarray(c2ws_canonical, dtype=np.float64).reshape(-1, 4, 4)
        size = self.size if size is None else int(size)
        K = cameras.view_intrinsics(size) if K is None else np.asarray(K, dtype=np.float64)
        ss = self.supersample if supersample is None else supersample
        out = []
        for c2w in self.mesh_c2w(c2ws):
            r = self._renderer.render(K, c2w, size, size, supersample=ss)
            r.depth = (r.depth * self.scale).astype(np.float32)
            out.append(r)
        return out

    def target_c2ws(self, cond_pose: tuple[float, float], targets: Sequence[tuple[float, float, float]]) -> np.ndarray:
        """Canonical c2w [N, 4, 4] of ``targets`` relative to a view at ``cond_pose``."""
        t = np.asarray(targets, dtype=np.float64).reshape(-1, 3)
        polar = self.true_polar_deg + cond_pose[0] + t[:, 0]
        azimuth = cond_pose[1] + t[:, 1]
        return cameras.spherical_to_c2w(polar, azimuth, cameras.ZERO123_RADIUS + t[:, 2])

    def generate(
        self,
        cond_image: np.ndarray,
        cond_pose: tuple[float, float],
        targets: Sequence[tuple[float, float, float]],
        input_polar_deg: float | None,
        seeds: Sequence[int],
        progress: ProgressFn | None = None,
    ) -> np.ndarray:
        """uint8 [N, size, size, 3] RGB on white of ``targets`` (see views/base.py)."""
        check_generate_args(cond_image, targets, seeds)
        c2ws = self.target_c2ws(cond_pose, targets)
        images = np.empty((len(c2ws), self.size, self.size, 3), dtype=np.uint8)
        for i, c2w in enumerate(self.mesh_c2w(c2ws)):
            images[i] = self._renderer.render(self.K, c2w, self.size, self.size, supersample=self.supersample).rgb
            if progress is not None:
                progress(i + 1, len(c2ws))
        return images

    def generate_batch(
        self,
        requests: Sequence[ViewRequest],
        input_polar_deg: float | None,
        progress: ProgressFn | None = None,
        stage: int = 1,
    ) -> list[np.ndarray]:
        """:meth:`generate` for each request; ``progress`` counts targets over all requests.
        ``stage`` (the plan stage, which sets a diffusion model's step count) does not matter here."""
        total = sum(len(r.targets) for r in requests)
        done = 0
        out = []
        for req in requests:

            def inner(i: int, _n: int, base: int = done) -> None:
                if progress is not None:
                    progress(base + i, total)

            out.append(self.generate(req.cond_image, req.cond_pose, req.targets, input_polar_deg, req.seeds, inner))
            done += len(req.targets)
        return out
