"""Renderer against analytic scenes: depth, silhouettes, texture and colour lookup, shading."""

import numpy as np
import pytest
import trimesh
from PIL import Image

from one2345_ros.geometry import cameras
from one2345_ros.geometry.render import Renderer, Shading, bilinear_lookup, corner_normals, render
from one2345_ros.synthetic.assets import load_object


def _quad(z=2.0, half=1.0):
    """Square facing a camera at the origin looking along +z (OpenCV); uv (0, 0) at the
    image's bottom-left corner as seen by that camera (y down in the image)."""
    v = np.array([[-half, half, z], [half, half, z], [half, -half, z], [-half, -half, z]])
    uv = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    faces = np.array([[0, 2, 1], [0, 3, 2]])
    return v, faces, uv


def test_plane_depth_is_exact_z():
    half = 5.0
    corners = [[-half, -half, 0], [half, -half, 0], [half, half, 0], [-half, half, 0]]
    plane = trimesh.Trimesh(corners, [[0, 1, 2], [0, 2, 3]])
    K = cameras.intrinsics(150.0, 160.0, 79.3, 61.7)
    c2w = cameras.look_at(np.array([0.4, -1.3, 1.1]), np.array([0.1, 0.2, 0.0]))
    out = render(plane, K, c2w, 160, 120, shading=None)
    assert out.mask.all()
    origins, dirs = cameras.pixel_rays(K, c2w, 160, 120)
    t = -origins[..., 2] / dirs[..., 2]
    z_expected = t * (dirs @ c2w[:3, 2])
    np.testing.assert_allclose(out.depth, z_expected, atol=1e-4, rtol=0)
    assert out.depth.dtype == np.float32


def test_sphere_mask_area_matches_perspective_circle():
    radius, distance, f, size = 0.5, 2.0, 400.0, 512
    sphere = trimesh.creation.icosphere(subdivisions=5, radius=radius)
    K = cameras.intrinsics(f, f, (size - 1) / 2, (size - 1) / 2)
    c2w = cameras.look_at(np.array([0.0, -distance, 0.0]), np.zeros(3))
    out = render(sphere, K, c2w, size, size)
    rho = f * np.tan(np.arcsin(radius / distance))  # image radius of the silhouette circle
    assert out.mask.sum() == pytest.approx(np.pi * rho**2, rel=0.01)
    # nearest point: depth = distance - radius at the centre pixel
    assert out.depth[size // 2, size // 2] == pytest.approx(distance - radius, abs=2e-3)
    assert (out.depth[~out.mask] == 0).all() and (out.rgb[~out.mask] == 255).all()


def test_unprojected_depth_lies_on_rotated_cube_surface():
    R = trimesh.transformations.random_rotation_matrix(np.random.default_rng(0).random(3))
    cube = trimesh.creation.box((0.6, 0.6, 0.6))
    cube.apply_transform(R)
    K = cameras.view_intrinsics()
    c2w = cameras.spherical_to_c2w(70.0, 25.0, 1.5)
    out = render(cube, K, c2w, 256, 256)
    v, u = np.nonzero(out.mask)
    pts = cameras.unproject(np.stack([u, v], -1).astype(float), out.depth[v, u].astype(np.float64), K, c2w)
    local = pts @ R[:3, :3]  # back into the cube's frame
    # on the surface of an axis-aligned cube the largest |coordinate| is the half side
    np.testing.assert_allclose(np.abs(local).max(axis=1), 0.3, atol=1e-4)


def test_unprojected_depth_lies_on_mug_surface():
    mug = load_object("mug")
    K = cameras.view_intrinsics()
    c2w = cameras.spherical_to_c2w(55.0, 40.0, 1.8)
    out = Renderer(mug).render(K, c2w, 256, 256)
    v, u = np.nonzero(out.mask)
    pick = np.random.default_rng(1).choice(len(u), 150, replace=False)
    u, v = u[pick], v[pick]
    pts = cameras.unproject(np.stack([u, v], -1).astype(float), out.depth[v, u].astype(np.float64), K, c2w)
    tris = mug.triangles  # brute force over all triangles (trimesh's proximity query needs rtree)
    dist = [np.linalg.norm(trimesh.triangles.closest_point(tris, np.tile(p, (len(tris), 1))) - p, axis=1).min()
            for p in pts]
    assert max(dist) < 1e-4


def test_texture_lookup_exact_colours_and_orientation():
    v, faces, uv = _quad()
    texels = np.array([[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [255, 255, 0]]], dtype=np.uint8)  # red TL, green TR
    visual = trimesh.visual.TextureVisuals(uv=uv, image=Image.fromarray(texels))
    quad = trimesh.Trimesh(v, faces, visual=visual, process=False)
    K = cameras.intrinsics(100.0, 100.0, 100.0, 100.0)  # pixel 75/125 <-> +-0.5 at z = 2: texel centres
    out = render(quad, K, np.eye(4), 201, 201, shading=None)
    assert out.rgb[75, 75].tolist() == [255, 0, 0]
    assert out.rgb[75, 125].tolist() == [0, 255, 0]
    assert out.rgb[125, 75].tolist() == [0, 0, 255]
    assert out.rgb[125, 125].tolist() == [255, 255, 0]
    # halfway between red and green texel centres: bilinear average
    np.testing.assert_allclose(out.rgb[75, 100], [127.5, 127.5, 0], atol=0.6)
    # pixel 88: x = -0.24, u = 0.38, texel x = 0.26 -> 0.74 red + 0.26 green
    np.testing.assert_allclose(out.rgb[75, 88].astype(float), [255 * 0.74, 255 * 0.26, 0], atol=1.0)


def test_bilinear_lookup_matches_manual_interpolation():
    tex = np.random.default_rng(3).random((5, 7, 3)).astype(np.float32)
    uv = np.array([[(2 + 0.5 + 0.3) / 7, 1 - (1 + 0.5 + 0.6) / 5]])  # between texels (x 2..3, y 1..2)
    expect = (tex[1, 2] * 0.7 * 0.4 + tex[1, 3] * 0.3 * 0.4 + tex[2, 2] * 0.7 * 0.6 + tex[2, 3] * 0.3 * 0.6)
    np.testing.assert_allclose(bilinear_lookup(tex, uv)[0], expect, atol=1e-6)


def test_vertex_colours_interpolate_barycentrically():
    v = np.array([[-1.0, 1.0, 2.0], [1.0, 1.0, 2.0], [0.0, -1.0, 2.0]])
    colors = np.array([[255, 0, 0, 255], [0, 255, 0, 255], [0, 0, 255, 255]], dtype=np.uint8)
    tri = trimesh.Trimesh(v, [[0, 2, 1]], vertex_colors=colors, process=False)
    K = cameras.intrinsics(100.0, 100.0, 100.0, 100.0)
    out = render(tri, K, np.eye(4), 201, 201, shading=None)
    for (px, py) in [(100, 100), (80, 120), (110, 90), (100, 140)]:
        p = np.array([(px - 100) / 50.0, (py - 100) / 50.0])  # point on the z = 2 plane
        A = np.array([[v[0, 0] - v[2, 0], v[1, 0] - v[2, 0]], [v[0, 1] - v[2, 1], v[1, 1] - v[2, 1]]])
        l0, l1 = np.linalg.solve(A, p - v[2, :2])
        expect = l0 * colors[0, :3] + l1 * colors[1, :3] + (1 - l0 - l1) * colors[2, :3]
        np.testing.assert_allclose(out.rgb[py, px], expect, atol=1.0)


def test_shading_is_view_independent_and_lambertian():
    shading = Shading(light_dir=(0.0, 0.0, 1.0), ambient=0.3, diffuse=0.6)
    v, faces, _ = _quad(z=0.0)
    flat = trimesh.Trimesh(v, faces[:, [0, 2, 1]], process=False)  # normal +z
    flat.visual.face_colors = [200, 100, 50, 255]
    K = cameras.view_intrinsics()
    a = render(flat, K, cameras.spherical_to_c2w(40.0, 10.0, 3.0), 256, 256, shading=shading)
    b = render(flat, K, cameras.spherical_to_c2w(70.0, -60.0, 3.0), 256, 256, shading=shading)
    for out in (a, b):  # the same colour from two very different views: n . l = 1
        expect = np.rint(np.array([200, 100, 50]) * 0.9)
        np.testing.assert_array_equal(out.rgb[out.mask], np.tile(expect, (out.mask.sum(), 1)))
    c2w = cameras.spherical_to_c2w(40.0, 10.0, 3.0)
    tilted = render(flat, K, c2w, 256, 256, shading=Shading((1.0, 0.0, 1.0), 0.3, 0.6))
    expect = np.array([200, 100, 50]) * (0.3 + 0.6 * np.sqrt(0.5))
    np.testing.assert_allclose(tilted.rgb[tilted.mask], np.tile(expect, (tilted.mask.sum(), 1)), atol=0.6)


def test_same_surface_point_same_colour_from_nearby_views():
    mug = load_object("mug")
    r = Renderer(mug)
    K = cameras.view_intrinsics()
    c2w_a, c2w_b = cameras.spherical_to_c2w(60.0, 0.0, 1.6), cameras.spherical_to_c2w(60.0, 10.0, 1.6)
    a, b = r.render(K, c2w_a, 256, 256), r.render(K, c2w_b, 256, 256)
    v, u = np.nonzero(a.mask)
    pts = cameras.unproject(np.stack([u, v], -1).astype(float), a.depth[v, u].astype(np.float64), K, c2w_a)
    uv_b, z_b = cameras.project(pts, K, cameras.invert_rigid(c2w_b))
    ub, vb = np.rint(uv_b[:, 0]).astype(int), np.rint(uv_b[:, 1]).astype(int)
    # points that land on a pixel centre of view b and are visible there
    ok = (np.abs(uv_b - np.rint(uv_b)).max(axis=1) < 0.05) & (ub >= 0) & (ub < 256) & (vb >= 0) & (vb < 256)
    ok[ok] &= np.abs(b.depth[vb[ok], ub[ok]] - z_b[ok]) < 1e-4
    assert ok.sum() > 100
    diff = np.abs(a.rgb[v[ok], u[ok]].astype(int) - b.rgb[vb[ok], ub[ok]].astype(int))
    assert np.median(diff) <= 2


def test_supersampling_antialiases_edges_and_keeps_centre_depth():
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=0.4)
    K = cameras.view_intrinsics()
    c2w = cameras.spherical_to_c2w(80.0, 0.0, 1.2)
    r = Renderer(sphere)
    one, three = r.render(K, c2w, 256, 256), r.render(K, c2w, 256, 256, supersample=3)
    np.testing.assert_array_equal(one.depth, three.depth)
    partial = (three.alpha > 0) & (three.alpha < 1)
    assert partial.sum() > 200  # a ring of edge pixels
    np.testing.assert_array_equal(three.mask, three.alpha >= 0.5)
    assert np.abs(three.mask.astype(int) - one.mask).sum() < 0.1 * partial.sum() + 10
    assert (three.rgb[partial] < 255).any(axis=-1).all()  # edges blend towards white, not cut


def test_corner_normals_keep_box_edges_sharp_and_sphere_smooth():
    box = trimesh.creation.box((1.0, 2.0, 3.0))
    np.testing.assert_allclose(corner_normals(box), np.repeat(box.face_normals[:, None], 3, 1), atol=1e-12)
    sphere = trimesh.creation.icosphere(subdivisions=3)
    radial = sphere.vertices[sphere.faces] / np.linalg.norm(sphere.vertices[sphere.faces], axis=-1, keepdims=True)
    assert np.einsum("fkc,fkc->fk", corner_normals(sphere), radial).min() > 0.999
    # a UV seam duplicates vertices: the normals across it stay smooth
    split = sphere.copy()
    split.unmerge_vertices()
    np.testing.assert_allclose(corner_normals(split), corner_normals(sphere), atol=1e-12)


def test_bad_cameras_are_rejected():
    r = Renderer(trimesh.creation.box())
    with pytest.raises(ValueError, match="K must be 3x3"):
        r.render(np.eye(4), np.eye(4), 10, 10)
    with pytest.raises(ValueError, match="rigid"):
        r.render(np.eye(3), np.diag([2.0, 1.0, 1.0, 1.0]), 10, 10)
    with pytest.raises(ValueError, match="positive"):
        r.render(np.eye(3), np.eye(4), 0, 10)


def test_cached_camera_rays_are_exactly_the_unprojected_pixels():
    """pixel_rays reuses the camera-frame rays per (K, size); the rays are bit for bit those
    of unproject at depth 1 (the uncached formula), and the cache cannot be written to."""
    K = cameras.intrinsics(150.0, 160.0, 79.3, 61.7)
    c2w = cameras.look_at(np.array([0.4, -1.3, 1.1]), np.array([0.1, 0.2, 0.0]))
    u, v = np.meshgrid(np.arange(160, dtype=np.float64), np.arange(120, dtype=np.float64))
    uv = np.stack([u, v], axis=-1).reshape(-1, 2)
    points = cameras.unproject(uv, np.ones(len(uv)), K, c2w)
    expected = points - c2w[:3, 3]
    expected /= np.linalg.norm(expected, axis=-1, keepdims=True)
    for _ in range(2):  # computed, then cached
        origins, dirs = cameras.pixel_rays(K, c2w, 160, 120)
        np.testing.assert_array_equal(dirs.reshape(-1, 3), expected)
        np.testing.assert_array_equal(origins.reshape(-1, 3), np.broadcast_to(c2w[:3, 3], expected.shape))
    cached = cameras.camera_rays(K, 160, 120)
    assert cached is cameras.camera_rays(K.copy(), 160, 120) and not cached.flags.writeable
    assert cameras.camera_rays(K, 160, 121) is not cached


@pytest.mark.parametrize("supersample", [1, 2])
def test_render_rgb_is_the_rgb_of_render(supersample):
    """render_rgb (no pixel-centre depth pass) gives render's RGB bit for bit."""
    r = Renderer(load_object("mug"))
    K = cameras.view_intrinsics()
    c2w = cameras.spherical_to_c2w(70.0, 40.0, 2.2)
    rgb = r.render_rgb(K, c2w, 256, 256, supersample=supersample)
    np.testing.assert_array_equal(rgb, r.render(K, c2w, 256, 256, supersample=supersample).rgb)
    assert rgb.dtype == np.uint8 and rgb.shape == (256, 256, 3)


def test_raycaster_finds_the_triangles_trimesh_finds():
    """RayCaster queries Embree directly; the hits are trimesh's first hits, ray for ray."""
    from one2345_ros.geometry.raycast import RayCaster, embree_intersector

    mug = load_object("mug")
    origins, dirs = cameras.pixel_rays(cameras.view_intrinsics(), cameras.spherical_to_c2w(65.0, 10.0, 2.2), 256, 256)
    origins, dirs = origins.reshape(-1, 3), dirs.reshape(-1, 3)
    face, ray = embree_intersector(mug).intersects_id(origins, dirs, multiple_hits=False)
    hits = RayCaster(mug).intersect(origins, dirs)
    assert len(ray) > 1000
    np.testing.assert_array_equal(hits.ray, ray)
    np.testing.assert_array_equal(hits.face, face)


def test_render_mask_is_the_mask_of_render():
    """render_mask (no colours, no depth) gives render's mask bit for bit."""
    r = Renderer(load_object("house"))
    K = cameras.view_intrinsics()
    c2w = cameras.spherical_to_c2w(60.0, 200.0, 2.2)
    mask = r.render_mask(K, c2w, 256, 256)
    np.testing.assert_array_equal(mask, r.render(K, c2w, 256, 256).mask)
    assert mask.dtype == bool and mask.any()
