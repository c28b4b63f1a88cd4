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

from collections.abc import Sequence

import numpy as np
import trimesh

from ..geometry import cameras
from ..geometry.render import Renderer, RenderResult, Shading
from .base import ProgressFn, ViewRequest, check_generate_args

RECENTRE_MAX_ITERATIONS = 30
DEFAULT_SHADING = Shading()
RECENTRE_TOLERANCE_PX = 1e-3
"""The silhouette box centre ends within this of the view centre (view pixels)."""


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
        shading: Shading | None = DEFAULT_SHADING,
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
        self._shading = shading
        self._renderer_cache: Renderer | None = None
        self._vertices = np.asarray(mesh.vertices, dtype=np.float64)
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
        box centre. Fixed-point iteration on the exact (continuous) silhouette box.
        """
        target = (self.size - 1) / 2.0
        error = float("inf")
        for _ in range(RECENTRE_MAX_ITERATIONS):
            c2w = self.mesh_c2w(self.input_c2w_canonical())
            u0, u1, v0, v1 = self._silhouette_box(self.scale)
            uv = np.array([(u0 + u1) / 2.0, (v0 + v1) / 2.0])
            error = float(np.max(np.abs(uv - target)))
            if error <= RECENTRE_TOLERANCE_PX:
                return
            shift = uv - target + self.K[:2, 2]  # the pixel that must become the principal point
            depth = cameras.ZERO123_RADIUS / self.scale
            new_center = cameras.unproject(shift[None], np.array([depth]), self.K, c2w)[0]
            self._set_frame(new_center)
        if error > 0.05:
            raise RuntimeError(f"oracle recentring did not converge (silhouette box centre {error:.3f} px off)")

    @property
    def _renderer(self) -> Renderer:
        """Built on first use: fitting the frame needs no renderer (the Embree scene costs more than the fit)."""
        if self._renderer_cache is None:
            self._renderer_cache = Renderer(self.mesh, shading=self._shading)
        return self._renderer_cache

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

    def _silhouette_box(self, scale: float) -> tuple[float, float, float, float]:
        """(u_min, u_max, v_min, v_max), view pixels, of the input view's silhouette at ``scale``.

        Exact and continuous: a triangle projects inside the hull of its vertices'
        projections, so the silhouette's box is the projected vertices' box (no render,
        no pixel quantisation). +-inf when part of the object is behind the camera.
        """
        w2c = cameras.invert_rigid(self.mesh_c2w(self.input_c2w_canonical(), scale))
        uv, depth = cameras.project(self._vertices, self.K, w2c)
        if np.any(depth <= 0):
            return -np.inf, np.inf, -np.inf, np.inf
        return float(uv[:, 0].min()), float(uv[:, 0].max()), float(uv[:, 1].min()), float(uv[:, 1].max())

    def _silhouette_side_px(self, scale: float) -> float:
        """Larger side of the silhouette's box: what preprocessing scales to ``fill_ratio`` of the view."""
        u0, u1, v0, v1 = self._silhouette_box(scale)
        return max(u1 - u0, v1 - v0)

    def _fit_scale(self) -> float:
        """The scale at which the silhouette side fills ``fill_ratio`` of the view (a monotone 1-D root)."""
        from scipy.optimize import brentq

        target = self.fill_ratio * self.size
        lo, hi = self.mesh.bounds
        # first guess from the orthographic size; perspective moves the root a little
        guess = target * cameras.ZERO123_RADIUS / (self.K[0, 0] * float(np.max(hi - lo)))
        low, high = 0.5 * guess, 1.5 * guess
        for _ in range(40):  # widen the bracket until it holds the root
            if self._silhouette_side_px(low) < target:
                break
            low *= 0.5
        for _ in range(40):
            if self._silhouette_side_px(high) > target:
                break
            high *= 1.5
        if not self._silhouette_side_px(low) < target < self._silhouette_side_px(high):
            raise RuntimeError(f"oracle scale fit: no scale makes the silhouette {target:.1f} px wide")
        return float(brentq(lambda s: self._silhouette_side_px(s) - target, low, high, xtol=1e-12,
                            rtol=1e-10, maxiter=200))  # fmt: skip

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

    def render_masks(self, c2ws_canonical, K=None, size: int | None = None) -> np.ndarray:
        """bool [N, size, size]: :meth:`render_views`' masks without supersampling (the pixel centres that hit)."""
        c2ws = np.asarray(c2ws_canonical, dtype=np.float64).reshape(-1, 4, 4)
        size = self.size if size is None else int(size)
        K = cameras.view_intrinsics(size) if K is None else np.asarray(K, dtype=np.float64)
        return np.stack([self._renderer.render_mask(K, c2w, size, size) for c2w in self.mesh_c2w(c2ws)])

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
            images[i] = self._renderer.render_rgb(self.K, c2w, self.size, self.size, supersample=self.supersample)
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


def oracle_from_config(cfg, fill_ratio: float = 0.75, input_c2w=None, object_id: str | None = None) -> OracleGenerator:
    """The oracle of ``oracle.mesh`` seen by ``input_c2w`` (default ``oracle.input_c2w``, 16 numbers row-major).

    cfg: config.OracleConfig. With several objects, ``oracle.mesh`` is a folder and the object's mesh
    is the file ``<object_id>.<any extension trimesh reads>`` in it. Raises InputError for a missing or
    unreadable mesh or a bad pose.
    """
    from pathlib import Path

    from ..mesh.files import load_mesh
    from ..types import InputError

    mesh_path = Path(cfg.mesh)
    if mesh_path.is_dir():
        found = sorted(p for p in mesh_path.glob(f"{object_id}.*") if p.is_file()) if object_id else []
        if not found:
            raise InputError(f"oracle: no mesh for object {object_id!r} in {mesh_path} "
                             f"(expected {object_id}.ply, .obj, ...)")  # fmt: skip
        mesh_path = found[0]

    c2w = np.asarray(cfg.input_c2w if input_c2w is None else input_c2w, dtype=np.float64)
    if c2w.size != 16 or not np.all(np.isfinite(c2w)):
        raise InputError(f"oracle: the input camera pose must be 16 finite numbers (a 4x4 c2w), got {c2w.size}")
    c2w = c2w.reshape(4, 4)
    R = c2w[:3, :3]
    if not np.allclose(R.T @ R, np.eye(3), atol=1e-6) or np.linalg.det(R) <= 0 or not np.allclose(c2w[3], [0, 0, 0, 1]):
        raise InputError("oracle: the input camera pose is not a rigid 4x4 c2w (rotation block and last row [0 0 0 1])")
    return OracleGenerator(load_mesh(mesh_path), c2w, fill_ratio, supersample=cfg.supersample)
