"""A textured or vertex-coloured mesh -> RGB, mask and depth at any pinhole camera.

Used for synthetic scenes (tests, benchmarks, the demo) and for pictures of results
(contact sheets). Ray casting is :mod:`raycast`'s (exact float64 hits), which keeps the
texture lookup free of float32 jitter.

Conventions (cameras.py): ``K`` 3x3, ``c2w`` OpenCV 4x4, pixel (0, 0) is the centre
of the top-left pixel. Depth is z in the OpenCV camera frame (0 on background).
Colours: albedo from UV textures (bilinear, repeat addressing, like glTF's default
sampler), vertex colours or face colours, multiplied by
``ambient + diffuse * max(0, n . l)`` with the light fixed in the *world* frame, so
that a surface point looks the same from nearby views (the elevation estimator
matches features between views). The background is white.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import trimesh

from . import cameras
from .raycast import RayCaster, RayHits

BACKGROUND = 255
"""Background value of every channel (views are RGB on white)."""

MAX_RAYS_PER_CHUNK = 1 << 18
"""Rays cast per Embree call; bounds memory for large or supersampled images."""


@dataclass(frozen=True)
class Shading:
    """Lambert shading with one directional light fixed in the world frame.

    colour = albedo * (ambient + diffuse * max(0, n . light_dir)).
    """

    light_dir: tuple[float, float, float] = (0.3, -0.55, 0.78)
    """Direction *towards* the light in world coordinates (z up): above and in front
    of the -y side (where the canonical input camera sits), a little to the right."""
    ambient: float = 0.45
    diffuse: float = 0.55


@dataclass
class RenderResult:
    """One rendered view.

    rgb: uint8 [H, W, 3] on white; mask: bool [H, W] (coverage >= 0.5);
    depth: float32 [H, W], z in the OpenCV camera frame at the pixel centre, 0 where
    the centre ray misses; alpha: float32 [H, W] fraction of subsamples that hit
    (0/1 without supersampling).
    """

    rgb: np.ndarray
    mask: np.ndarray
    depth: np.ndarray
    alpha: np.ndarray


def corner_normals(mesh: trimesh.Trimesh, crease_angle_deg: float = 30.0) -> np.ndarray:
    """Shading normals per face corner [F, 3, 3] that stay sharp across creases.

    trimesh's vertex normals average over *every* face at a vertex, which rounds
    off box edges when the corners are shared. Here a corner averages (area
    weighted) only the faces at its vertex whose normals lie within
    ``crease_angle_deg`` of its own face's normal. Faces meet at a vertex when their
    corners share a position (so UV seams, which duplicate vertices, are smooth).
    """
    faces = np.asarray(mesh.faces)
    n_faces = len(faces)
    face_normals = np.asarray(mesh.face_normals, dtype=np.float64)
    weighted = face_normals * np.asarray(mesh.area_faces, dtype=np.float64)[:, None]
    # vertices duplicated at UV seams share a position: group corners by position so
    # that seams do not show in the shading
    _, position_id = np.unique(np.asarray(mesh.vertices), axis=0, return_inverse=True)
    # incidence list (position, face, corner), grouped by position
    vert = position_id.reshape(-1)[faces].ravel()
    face = np.repeat(np.arange(n_faces), 3)
    order = np.argsort(vert, kind="stable")
    vert, face, corner = vert[order], face[order], order
    starts = np.searchsorted(vert, vert, side="left")
    sizes = np.searchsorted(vert, vert, side="right") - starts
    # every (corner, other face at the same vertex) pair: sum(deg^2) pairs
    pair_corner = np.repeat(np.arange(len(vert)), sizes)
    first = np.repeat(starts, sizes)
    within = np.arange(len(pair_corner)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    pair_other = face[first + within]
    pair_self = face[pair_corner]
    cos_limit = np.cos(np.deg2rad(crease_angle_deg))
    keep = np.einsum("ij,ij->i", face_normals[pair_self], face_normals[pair_other]) >= cos_limit
    summed = np.zeros((len(vert), 3))
    np.add.at(summed, pair_corner[keep], weighted[pair_other[keep]])
    out = np.empty((n_faces * 3, 3))
    out[corner] = summed
    out = out.reshape(n_faces, 3, 3)
    norm = np.linalg.norm(out, axis=-1, keepdims=True)
    # degenerate faces (zero area everywhere around): use the face normal
    return np.where(norm > 1e-12, out / np.maximum(norm, 1e-12), face_normals[:, None, :])


class AlbedoSampler:
    """Surface colour (float RGB in [0, 255]) at barycentric points of faces."""

    def __init__(self, mesh: trimesh.Trimesh):
        self.faces = np.asarray(mesh.faces)
        visual = mesh.visual
        self.kind = "face"
        if isinstance(visual, trimesh.visual.TextureVisuals):
            material = visual.material
            image = getattr(material, "image", None)
            if image is None:
                image = getattr(material, "baseColorTexture", None)
            factor = getattr(material, "baseColorFactor", None)
            self.factor = np.ones(3) if factor is None else np.asarray(factor, dtype=np.float64)[:3] / 255.0
            if image is not None and visual.uv is not None:
                if len(visual.uv) != len(mesh.vertices):
                    raise ValueError(f"texture has {len(visual.uv)} UVs for {len(mesh.vertices)} vertices")
                self.kind = "texture"
                self.uv = np.asarray(visual.uv, dtype=np.float64)
                # RGBA textures are treated as opaque: alpha is not used for cut-outs
                self.texture = np.asarray(image.convert("RGB"), dtype=np.float32)
            else:
                main = np.asarray(material.main_color, dtype=np.float64)[:3]
                self.colors = np.broadcast_to(main, (len(self.faces), 3))
        elif isinstance(visual, trimesh.visual.ColorVisuals) and visual.kind == "vertex":
            self.kind = "vertex"
            self.colors = np.asarray(visual.vertex_colors, dtype=np.float64)[:, :3]
        if self.kind == "face" and not hasattr(self, "colors"):
            self.colors = np.asarray(mesh.visual.face_colors, dtype=np.float64)[:, :3]

    def sample(self, face: np.ndarray, bary: np.ndarray) -> np.ndarray:
        """Colours [M, 3] (float64, 0-255) at ``bary`` [M, 3] in faces ``face`` [M]."""
        corners = self.faces[face]  # [M, 3]
        if self.kind == "face":
            return self.colors[face]
        if self.kind == "vertex":
            return np.einsum("mk,mkc->mc", bary, self.colors[corners])
        uv = np.einsum("mk,mkc->mc", bary, self.uv[corners])
        return bilinear_lookup(self.texture, uv) * self.factor


def bilinear_lookup(texture: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Bilinear texture lookup with repeat addressing.

    texture: [h, w, C]; uv: [M, 2] with (0, 0) the *bottom*-left corner of the image
    (trimesh/OBJ convention; glTF files are flipped on load by trimesh). Texel
    centres sit at ((i + 0.5) / w, 1 - (j + 0.5) / h). Returns float64 [M, C].
    """
    h, w = texture.shape[:2]
    x = uv[:, 0] * w - 0.5
    y = (1.0 - uv[:, 1]) * h - 0.5
    x0 = np.floor(x)
    y0 = np.floor(y)
    fx = (x - x0)[:, None]
    fy = (y - y0)[:, None]
    x0 = x0.astype(np.int64)
    y0 = y0.astype(np.int64)
    xa, xb = x0 % w, (x0 + 1) % w
    ya, yb = y0 % h, (y0 + 1) % h
    top = texture[ya, xa] * (1.0 - fx) + texture[ya, xb] * fx
    bottom = texture[yb, xa] * (1.0 - fx) + texture[yb, xb] * fx
    return top * (1.0 - fy) + bottom * fy


class Renderer:
    """Renders one mesh from many cameras; caches the Embree scene, normals and texture.

    ``shading=None`` renders the bare albedo (exact texture / vertex colours).
    """

    def __init__(self, mesh: trimesh.Trimesh, shading: Shading | None = Shading(), crease_angle_deg: float = 30.0):
        self._caster = RayCaster(mesh)  # first: it checks the mesh
        self.mesh = mesh
        self.shading = shading
        self._face_normals = np.asarray(mesh.face_normals, dtype=np.float64)
        self._corner_normals = corner_normals(mesh, crease_angle_deg)
        self._albedo = AlbedoSampler(mesh)
        if shading is not None:
            light = np.asarray(shading.light_dir, dtype=np.float64)
            self._light = light / np.linalg.norm(light)

    def intersect(self, origins: np.ndarray, directions: np.ndarray) -> RayHits:
        """First hits of rays ``origins``/``directions`` [N, 3] (unit directions)."""
        return self._caster.intersect(origins, directions)

    def shade(self, hits: RayHits, directions: np.ndarray) -> np.ndarray:
        """Colours [M, 3] (float64, 0-255) of ``hits`` seen along ``directions`` [N, 3]."""
        albedo = self._albedo.sample(hits.face, hits.bary)
        if self.shading is None:
            return albedo
        d = directions[hits.ray]
        normal = np.einsum("mk,mkc->mc", hits.bary, self._corner_normals[hits.face])
        # two-sided: light the side facing the camera (open cups, thin shells)
        back = np.einsum("ij,ij->i", self._face_normals[hits.face], d) > 0.0
        normal[back] *= -1.0
        normal /= np.maximum(np.linalg.norm(normal, axis=-1, keepdims=True), 1e-12)
        lambert = np.maximum(normal @ self._light, 0.0)
        return albedo * (self.shading.ambient + self.shading.diffuse * lambert)[:, None]

    def _render_once(self, K, c2w, width: int, height: int, want_color: bool = True):
        """Colour float [H, W, 3] (white background), hit mask [H, W], z-depth [H, W]."""
        c2w = np.asarray(c2w, dtype=np.float64)
        K = np.asarray(K, dtype=np.float64)
        forward = c2w[:3, 2]
        color = np.full((height * width, 3), float(BACKGROUND))
        hit = np.zeros(height * width, dtype=bool)
        depth = np.zeros(height * width)
        rows = max(1, MAX_RAYS_PER_CHUNK // max(width, 1))
        for row0 in range(0, height, rows):
            band = min(rows, height - row0)
            K_band = K.copy()
            K_band[1, 2] -= row0  # the band is an image whose top row is row0
            origins, dirs = cameras.pixel_rays(K_band, c2w, width, band)
            origins, dirs = origins.reshape(-1, 3), dirs.reshape(-1, 3)
            hits = self.intersect(origins, dirs)
            idx = row0 * width + hits.ray
            hit[idx] = True
            depth[idx] = hits.t * (dirs[hits.ray] @ forward)
            if want_color:
                color[idx] = self.shade(hits, dirs)
        return color.reshape(height, width, 3), hit.reshape(height, width), depth.reshape(height, width)

    def render(self, K, c2w, width: int, height: int, supersample: int = 1) -> RenderResult:
        """Render the mesh seen by camera ``K`` [3, 3], ``c2w`` [4, 4] (OpenCV) into
        a ``width`` x ``height`` image. ``supersample`` = s casts s x s rays per pixel
        (box filter) for antialiased RGB and mask edges; depth stays the pixel-centre z."""
        color, alpha, depth = self._render(K, c2w, width, height, supersample, want_depth=True)
        rgb = np.clip(np.rint(color), 0, 255).astype(np.uint8)
        return RenderResult(rgb=rgb, mask=alpha >= 0.5, depth=depth.astype(np.float32), alpha=alpha)

    def render_rgb(self, K, c2w, width: int, height: int, supersample: int = 1) -> np.ndarray:
        """``render(...).rgb`` without the rest: with supersampling, the pixel-centre depth
        pass is skipped (the same pixels as :meth:`render`, bit for bit)."""
        color, _, _ = self._render(K, c2w, width, height, supersample, want_depth=False)
        return np.clip(np.rint(color), 0, 255).astype(np.uint8)

    def render_mask(self, K, c2w, width: int, height: int) -> np.ndarray:
        """``render(...).mask`` without supersampling, colours or depth: the pixel centres that hit."""
        width, height = int(width), int(height)
        if width <= 0 or height <= 0:
            raise ValueError(f"image size must be positive, got {width}x{height}")
        _check_camera(K, c2w)
        _, hit, _ = self._render_once(K, c2w, width, height, want_color=False)
        return hit

    def _render(self, K, c2w, width, height, supersample, want_depth: bool):
        """Colour float [H, W, 3], alpha float32 [H, W] and (``want_depth`` or no supersampling) depth [H, W]."""
        width, height, supersample = int(width), int(height), int(supersample)
        if width <= 0 or height <= 0:
            raise ValueError(f"image size must be positive, got {width}x{height}")
        if supersample < 1:
            raise ValueError(f"supersample must be >= 1, got {supersample}")
        _check_camera(K, c2w)
        depth = None
        if supersample == 1:
            color, hit, depth = self._render_once(K, c2w, width, height)
            alpha = hit.astype(np.float32)
        else:
            s = supersample
            K_sub = cameras.scale_intrinsics(K, s)
            color, hit, _ = self._render_once(K_sub, c2w, width * s, height * s)
            color = color.reshape(height, s, width, s, 3).mean(axis=(1, 3))
            alpha = hit.reshape(height, s, width, s).mean(axis=(1, 3)).astype(np.float32)
            if want_depth:
                _, _, depth = self._render_once(K, c2w, width, height, want_color=False)
        return color, alpha, depth


def _check_camera(K, c2w) -> None:
    K = np.asarray(K)
    c2w = np.asarray(c2w)
    if K.shape != (3, 3):
        raise ValueError(f"K must be 3x3, got shape {K.shape}")
    if c2w.shape != (4, 4):
        raise ValueError(f"c2w must be 4x4, got shape {c2w.shape}")
    if not np.all(np.isfinite(K)) or not np.all(np.isfinite(c2w)):
        raise ValueError("K and c2w must be finite")
    R = c2w[:3, :3].astype(np.float64)
    if not np.allclose(R.T @ R, np.eye(3), atol=1e-6) or np.linalg.det(R) < 0:
        raise ValueError("c2w must be rigid: its 3x3 block is not a proper rotation")


def render(
    mesh: trimesh.Trimesh,
    K,
    c2w,
    width: int,
    height: int,
    shading: Shading | None = Shading(),
    supersample: int = 1,
) -> RenderResult:
    """One view of ``mesh`` (see :class:`Renderer`; build one Renderer for many views)."""
    return Renderer(mesh, shading=shading).render(K, c2w, width, height, supersample=supersample)
