"""The SparseNeuS inference as it was before the CPU speed work (commit 2b81b87), kept as the reference.

A frozen, plain copy of the original per-stage code (InPlaceABN in Python ops, active voxels and the cost
volume one view at a time, the dense-masked 3D CNN with gathered BatchNorm statistics, the SDF MLP on
concatenated inputs, the colour network on concatenated per-view features), written as functions of the
network's parameters so that the optimised modules can change freely. test_sparseneus_equivalence.py compares
the package's results with it; ``benchmarks/sparseneus.py`` times both.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

MIN_VISIBLE_VIEWS = 2


# ------------------------------------------------------------------ 2D features


def inplace_abn(bn, x: torch.Tensor) -> torch.Tensor:
    if bn.bn_mode == "batch":
        dims = [0, *range(2, x.dim())]
        mean, var = x.mean(dim=dims), x.var(dim=dims, unbiased=False)
    else:
        mean, var = bn.running_mean, bn.running_var
    shape = (1, -1) + (1,) * (x.dim() - 2)
    scale = (bn.weight.abs() + bn.eps) / torch.sqrt(var + bn.eps)
    y = (x - mean.view(shape)) * scale.view(shape) + bn.bias.view(shape)
    return F.leaky_relu(y, bn.slope)


def conv_abn(m, x: torch.Tensor) -> torch.Tensor:
    return inplace_abn(m.bn, m.conv(x))


def _seq(blocks, x):
    for m in blocks:
        x = conv_abn(m, x)
    return x


def _up(x: torch.Tensor, s: int) -> torch.Tensor:
    return F.interpolate(x, scale_factor=s, mode="bilinear", align_corners=True)


def fused_features(net, images: torch.Tensor) -> torch.Tensor:
    f = net.pyramid_feature_network
    conv0 = _seq(f.conv0, images)
    conv1 = _seq(f.conv1, conv0)
    conv2 = _seq(f.conv2, conv1)
    feat2 = f.toplayer(conv2)
    feat1 = _up(feat2, 2) + f.lat1(conv1)
    feat0 = _up(feat1, 2) + f.lat0(conv0)
    return torch.cat([_up(feat2, 4), _up(f.smooth1(feat1), 2), f.smooth0(feat0)], dim=1)


def compressed_features(net, fused: torch.Tensor) -> torch.Tensor:
    return conv_abn(net.sdf_network_lod0.compress_layer, fused)


# ------------------------------------------------------------ cost volume


def voxel_centers(n: int) -> torch.Tensor:
    t = torch.linspace(-1.0, 1.0, n)
    return torch.stack(torch.meshgrid(t, t, t, indexing="ij"), dim=-1)


def project_to_grid(proj: torch.Tensor, pts: torch.Tensor, width: int, height: int):
    p = proj[:, :3] @ pts.t() + proj[:, 3:]
    z = p[2]
    z = torch.where(z >= 0, z.clamp(min=1e-6), z)
    u = p[0] / z
    v = p[1] / z
    grid = torch.stack([2 * u / (width - 1) - 1, 2 * v / (height - 1) - 1], dim=-1)
    valid = (grid.abs() <= 1).all(dim=-1) & (z > 0)
    return grid, valid


def active_voxels(proj: torch.Tensor, n: int, width: int, height: int) -> torch.Tensor:
    pts = voxel_centers(n).view(-1, 3)
    count = torch.zeros(pts.shape[0], dtype=torch.int32)
    for view_proj in proj:
        count += project_to_grid(view_proj, pts, width, height)[1].to(torch.int32)
    return (count >= MIN_VISIBLE_VIEWS).view(n, n, n)


def cost_volume(features: torch.Tensor, proj: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    V, C, H, W = features.shape
    n = mask.shape[0]
    pts = voxel_centers(n)[mask]
    total = torch.zeros(C, pts.shape[0])
    total_sq = torch.zeros_like(total)
    count = torch.zeros(pts.shape[0])
    for v in range(V):
        grid, valid = project_to_grid(proj[v], pts, W, H)
        f = F.grid_sample(features[v : v + 1], grid.view(1, 1, -1, 2), padding_mode="zeros", align_corners=True)
        f = f.view(C, -1)
        total += f
        total_sq.addcmul_(f, f)
        count += valid.to(count.dtype)
    inv = 1.0 / (count + 1e-5)
    mean = total * inv
    var = total_sq * inv - mean**2
    out = torch.zeros(1, 2 * C, n, n, n)
    out[0][:, mask] = torch.cat([var, mean], dim=0)
    return out


# ------------------------------------------------------------------- 3D CNN

_COARSE_PAD = (1, 2, 1, 2, 1, 2)


def torchsparse_kernel_to_conv3d(kernel: torch.Tensor) -> torch.Tensor:
    cin, cout = kernel.shape[1:]
    return kernel.reshape(3, 3, 3, cin, cout).permute(4, 3, 2, 1, 0).contiguous()


def torchsparse_kernel_to_conv_transpose3d(kernel: torch.Tensor) -> torch.Tensor:
    cin, cout = kernel.shape[1:]
    return kernel.reshape(3, 3, 3, cin, cout).permute(3, 4, 2, 1, 0).contiguous()


def downsample_mask(mask: torch.Tensor) -> torch.Tensor:
    near = F.max_pool3d(F.pad(mask[None, None].float(), _COARSE_PAD), kernel_size=3, stride=2)[0, 0] > 0
    if not mask.any():
        return near
    lower = torch.nonzero(mask).min(dim=0).values
    keep = near
    for axis in range(3):
        ok = 2 * torch.arange(near.shape[axis]) >= lower[axis]
        shape = [1, 1, 1]
        shape[axis] = -1
        keep = keep & ok.view(shape)
    return keep


def _normalize_dense(bn, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    if bn.bn_mode == "batch":
        active = x[0][:, mask]
        mean, var = active.mean(dim=[1]), active.var(dim=[1], unbiased=False)
    else:
        mean, var = bn.running_mean, bn.running_var
    scale = bn.weight / torch.sqrt(var + bn.eps)
    shift = bn.bias - mean * scale
    return x * scale.view(1, -1, 1, 1, 1) + shift.view(1, -1, 1, 1, 1)


def _block(block, x: torch.Tensor, out_mask: torch.Tensor) -> torch.Tensor:
    conv = block.conv
    if conv.transposed:
        w = torchsparse_kernel_to_conv_transpose3d(conv.kernel)
        X, Y, Z = out_mask.shape
        y = F.conv_transpose3d(x, w, stride=2, padding=1)[:, :, :X, :Y, :Z]
    else:
        w = torchsparse_kernel_to_conv3d(conv.kernel)
        y = F.conv3d(x, w, padding=1) if conv.stride == 1 else F.conv3d(F.pad(x, _COARSE_PAD), w, stride=2)
    y = torch.relu(_normalize_dense(block.bn, y, out_mask))
    return y * out_mask[None, None].to(y.dtype)


def regularize(net, cost: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    r = net.sdf_network_lod0.sparse_costreg_net
    x = cost * mask[None, None].to(cost.dtype)
    m1 = downsample_mask(mask)
    m2 = downsample_mask(m1)
    m3 = downsample_mask(m2)
    conv0 = _block(r.conv0, x, mask)
    conv2 = _block(r.conv2, _block(r.conv1, conv0, m1), m1)
    conv4 = _block(r.conv4, _block(r.conv3, conv2, m2), m2)
    x = _block(r.conv6, _block(r.conv5, conv4, m3), m3)
    x = conv4 + _block(r.conv7, x, m2)
    x = conv2 + _block(r.conv9, x, m1)
    return conv0 + _block(r.conv11, x, mask)


# --------------------------------------------------------------------- SDF


def positional_encoding(x: torch.Tensor, n_freqs: int) -> torch.Tensor:
    out = [x]
    for k in range(n_freqs):
        f = 2.0**k
        out += [torch.sin(f * x), torch.cos(f * x)]
    return torch.cat(out, dim=-1)


def _linear(lin, x: torch.Tensor) -> torch.Tensor:
    w = lin.weight_g * lin.weight_v / lin.weight_v.norm(dim=1, keepdim=True)
    return F.linear(x, w, lin.bias)


def sample_latent(volume: torch.Tensor, pts: torch.Tensor) -> torch.Tensor:
    n = volume.shape[-1]
    grid = pts.flip(-1).view(1, 1, 1, -1, 3)
    out = F.grid_sample(volume, grid, mode="bilinear", padding_mode="border", align_corners=True)
    idx = (pts + 1.0) / 2.0 * (n - 1)
    inside = ((idx > 0) & (idx < n)).all(dim=-1)
    return out.view(volume.shape[1], -1).t() * inside[:, None].to(out.dtype)


def sample_volume(volume: torch.Tensor, pts: torch.Tensor) -> torch.Tensor:
    grid = pts.flip(-1).view(1, 1, 1, -1, 3)
    out = F.grid_sample(volume, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    return out.view(volume.shape[1], -1).t()


def sdf_and_feature(net, pts: torch.Tensor, volume: torch.Tensor) -> torch.Tensor:
    layer = net.sdf_network_lod0.sdf_layer
    latent = sample_latent(volume, pts)
    x = F.softplus(_linear(layer.lin0, positional_encoding(pts, layer.n_freqs)), beta=100)
    x = F.softplus(_linear(layer.lin1, torch.cat([x, latent], dim=1)), beta=100)
    return _linear(layer.lin2, torch.cat([x, latent], dim=1))


def sdf(net, pts: torch.Tensor, volume: torch.Tensor) -> torch.Tensor:
    return sdf_and_feature(net, pts, volume)[:, 0]


@torch.no_grad()
def _evaluate(sdf_fn, pts: torch.Tensor, chunk: int) -> torch.Tensor:
    out = [sdf_fn(part).reshape(-1) for part in pts.split(chunk)]
    return torch.cat(out) if out else pts.new_zeros(0)


def _points(axis, ix, iy, iz):
    return torch.stack([axis[ix], axis[iy], axis[iz]], dim=-1)


def sdf_grid(sdf_fn, res: int, near_surface: bool = True, chunk: int = 131072, band_cells: float = 2.0):
    axis = torch.linspace(-1.0, 1.0, res)
    if not near_surface or res <= 32:
        idx = torch.arange(res)
        ix, iy, iz = torch.meshgrid(idx, idx, idx, indexing="ij")
        vals = _evaluate(sdf_fn, _points(axis, ix.reshape(-1), iy.reshape(-1), iz.reshape(-1)), chunk)
        return vals.view(res, res, res).numpy(), res**3
    rc = max(17, (res - 1) // 4 + 1)
    caxis = torch.linspace(-1.0, 1.0, rc)
    cidx = torch.arange(rc)
    cx, cy, cz = torch.meshgrid(cidx, cidx, cidx, indexing="ij")
    coarse = _evaluate(sdf_fn, _points(caxis, cx.reshape(-1), cy.reshape(-1), cz.reshape(-1)), chunk).view(rc, rc, rc)
    corners = torch.stack(
        [coarse[a : rc - 1 + a, b : rc - 1 + b, c : rc - 1 + c] for a in (0, 1) for b in (0, 1) for c in (0, 1)]
    )
    band = band_cells * (2.0 / (rc - 1)) * 3**0.5
    flagged = (corners.amin(0) <= 0) & (corners.amax(0) >= 0) | (corners.abs().amin(0) < band)
    flagged = F.max_pool3d(flagged[None, None].float(), 3, stride=1, padding=1)[0, 0] > 0
    fine = F.interpolate(coarse[None, None], size=(res, res, res), mode="trilinear", align_corners=True)[0, 0]
    cell = torch.clamp((torch.arange(res) * (rc - 1)) // (res - 1), max=rc - 2)
    sel = flagged[cell[:, None, None], cell[None, :, None], cell[None, None, :]]
    ix, iy, iz = torch.nonzero(sel, as_tuple=True)
    fine[ix, iy, iz] = _evaluate(sdf_fn, _points(axis, ix, iy, iz), chunk)
    return fine.numpy(), int(rc**3 + ix.numel())


# ----------------------------------------------------------------- colours


def rendering_network(ren, geometry, rgb_feat, ray_diff, mask):
    n_views = rgb_feat.shape[1]
    mask = mask.to(rgb_feat.dtype)[..., None]
    rgb_in = rgb_feat[..., :3]
    rgb_feat = rgb_feat + ren.ray_dir_fc(ray_diff)
    exp_dot = torch.exp(ren.s.abs() * (ray_diff[..., 3:] - 1.0))
    weight = (exp_dot - exp_dot.min(dim=1, keepdim=True).values) * mask
    weight = weight / (weight.sum(dim=1, keepdim=True) + 1e-8)
    mean = (rgb_feat * weight).sum(dim=1, keepdim=True)
    var = (weight * (rgb_feat - mean) ** 2).sum(dim=1, keepdim=True)
    globalfeat = torch.cat([mean, var], dim=-1).expand(-1, n_views, -1)
    geo = geometry[:, None, :].expand(-1, n_views, -1)
    x = ren.base_fc(torch.cat([geo, globalfeat, rgb_feat], dim=-1))
    x_vis = ren.vis_fc(x * weight)
    x_res, vis = x_vis[..., :-1], x_vis[..., -1:]
    vis = torch.sigmoid(vis) * mask
    x = x + x_res
    vis = ren.vis_fc2(x * vis) * mask
    logits = ren.rgb_fc(torch.cat([x, vis, ray_diff], dim=-1))
    logits = logits.masked_fill(mask == 0, -1e9)
    blend = F.softmax(logits, dim=1)
    return (rgb_in * blend).sum(dim=1)


def _cam2pixel(proj, pts, width, height):
    p = pts @ proj[:, :3].t() + proj[:, 3]
    z = p[:, 2].clamp(min=1e-3)
    grid = torch.stack([2 * (p[:, 0] / z) / (width - 1) - 1, 2 * (p[:, 1] / z) / (height - 1) - 1], dim=-1)
    grid = torch.where(grid.abs() > 1, torch.full_like(grid, 2.0), grid)
    return grid, (grid.abs() < 1).all(dim=-1)


def vertex_colors(net, verts, volume, mask_volume, fused, images, proj, centers, chunk: int = 4096) -> np.ndarray:
    V, _, H, W = images.shape
    maps = torch.cat([images, fused], dim=1)
    out = []
    for part in verts.split(chunk):
        with torch.enable_grad():
            x = part.detach().clone().requires_grad_(True)
            s = sdf(net, x, volume)
            grad = torch.autograd.grad(s.sum(), x)[0]
        normal = F.normalize(grad, dim=-1, eps=1e-6)
        geo = sample_volume(volume, part)
        inside = (part.abs() < 1.0).all(dim=-1) & (sample_volume(mask_volume, part)[:, 0] > 0)
        feats, valid = [], []
        for v in range(V):
            grid, ok = _cam2pixel(proj[v], part, W, H)
            smp = F.grid_sample(maps[v : v + 1], grid.view(1, 1, -1, 2), padding_mode="zeros", align_corners=True)
            feats.append(smp.view(maps.shape[1], -1).t())
            valid.append(ok)
        rgb_feat = torch.stack(feats, dim=1)
        mask = torch.stack(valid, dim=1) & inside[:, None]
        to_src = centers[None, :, :] - part[:, None, :]
        to_src = to_src / (to_src.norm(dim=-1, keepdim=True) + 1e-6)
        diff = normal[:, None, :] - to_src
        diff = diff / diff.norm(dim=-1, keepdim=True).clamp(min=1e-6)
        dot = (normal[:, None, :] * to_src).sum(dim=-1, keepdim=True)
        ray_diff = torch.cat([diff, dot], dim=-1)
        with torch.no_grad():
            out.append(rendering_network(net.rendering_network_lod0, geo, rgb_feat, ray_diff, mask))
    rgb = torch.cat(out).numpy() if out else np.zeros((0, 3), np.float32)
    return np.clip(rgb * 255.0, 0, 255).astype(np.uint8)


# --------------------------------------------------------------- the chain


@torch.no_grad()
def reconstruct(net, images: torch.Tensor, proj: torch.Tensor, centers: torch.Tensor, n: int, res: int,
                near_surface: bool = True) -> dict:  # fmt: skip
    """Every intermediate of the reference chain on CPU float32 tensors: images (V, 3, H, W) in [0, 1], proj
    (V, 3, 4) normalised cameras, centers (V, 3) camera centres; ``colors(vertices_n)`` gives vertex colours."""
    _, _, H, W = images.shape
    fused = fused_features(net, images)
    compressed = compressed_features(net, fused)
    mask = active_voxels(proj, n, W, H)
    cost = cost_volume(compressed, proj, mask)
    volume = regularize(net, cost, mask)
    grid, evaluations = sdf_grid(lambda p: sdf(net, p, volume), res, near_surface)

    def colors(vertices_n: np.ndarray) -> np.ndarray:
        verts = torch.from_numpy(np.ascontiguousarray(vertices_n)).float()
        return vertex_colors(net, verts, volume, mask[None, None].float(), fused, images, proj, centers)

    return {"fused": fused, "compressed": compressed, "mask": mask, "cost": cost, "volume": volume, "grid": grid,
            "evaluations": evaluations, "colors": colors}  # fmt: skip


# ------------------------------------------------------------ the comparison


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| / max |b|."""
    return float((a.float() - b.float()).abs().max() / b.float().abs().max().clamp(min=1e-30))


def compare_with_reference(net, views, cfg, mesh_cfg=None) -> dict:
    """The package (``reconstruct_sparseneus`` and the one mesh stage) against the reference chain on the same
    inputs: the differences of every stage's output, the SDF grid, the meshes and the colours.

    ``colors_*`` compare the two colour functions on the same vertices (the reference mesh's, normalised), so
    they measure the colour stage plus the rounding of the volume and features it reads; ``mesh_*`` compare
    the two final meshes, each with its own colours.
    """
    from scipy.spatial import cKDTree

    from one2345_ros.mesh import make_mesh
    from one2345_ros.mesh.extract import SdfGrid, Surface, extract_mesh
    from one2345_ros.recon.sparseneus import reconstruct_sparseneus
    from one2345_ros.recon.sparseneus.frame import reconstruction_frame

    inter: dict = {}
    surface = reconstruct_sparseneus(views, cfg, net, intermediates=inter)
    mesh = make_mesh(surface, views, mesh_cfg)
    centers = torch.from_numpy(reconstruction_frame(views).c2w[:, :3, 3]).float()
    ref = reconstruct(net, inter["images"], inter["proj"], centers, cfg.volume_resolution, cfg.mesh_resolution,
                      cfg.mesh_near_surface)  # fmt: skip
    ref_surface = Surface(grid=SdfGrid(ref["grid"], surface.grid.bbox), grid_to_world=surface.grid_to_world,
                          colors=ref["colors"])  # fmt: skip
    ref_mesh = make_mesh(ref_surface, views, mesh_cfg)
    grid, ref_grid = surface.grid.values, ref["grid"]
    out = {
        "fused_rel": _rel(inter["fused"], ref["fused"]),
        "compressed_rel": _rel(inter["compressed"], ref["compressed"]),
        "mask_equal": bool(torch.equal(inter["mask"], ref["mask"])),
        "active_voxels": int(ref["mask"].sum()),
        "cost_rel": _rel(inter["cost"], ref["cost"]),
        "cost_bitwise": bool(torch.equal(inter["cost"], ref["cost"])),
        "volume_rel": _rel(inter["volume"], ref["volume"]),
        "sdf_grid_max_abs": float(np.abs(grid - ref_grid).max()),
        "sdf_grid_abs_max": float(np.abs(ref_grid).max()),
        "sdf_grid_sign_flips": int(((grid > 0) != (ref_grid > 0)).sum()),
        "vertices": [len(mesh.vertices), len(ref_mesh.vertices)],
        "faces": [len(mesh.faces), len(ref_mesh.faces)],
    }
    same = mesh.faces.shape == ref_mesh.faces.shape and bool(np.array_equal(mesh.faces, ref_mesh.faces))
    out["faces_equal"] = same
    v, v_ref = np.asarray(mesh.vertices), np.asarray(ref_mesh.vertices)
    if same:
        out["mesh_vertices_max_abs"] = float(np.abs(v - v_ref).max())
        c, c_ref = (np.asarray(m.visual.vertex_colors)[:, :3].astype(int) for m in (mesh, ref_mesh))
        out["mesh_colors_max_abs"] = int(np.abs(c - c_ref).max())
    else:  # symmetric Hausdorff distance between the vertex sets
        out["mesh_vertices_hausdorff"] = float(max(cKDTree(v_ref).query(v)[0].max(), cKDTree(v).query(v_ref)[0].max()))
    out["world_extent"] = float(np.ptp(v_ref, axis=0).max())
    verts_n = np.asarray(extract_mesh(SdfGrid(ref_grid, surface.grid.bbox)).vertices)
    colors, ref_colors = surface.colors(verts_n).astype(int), ref["colors"](verts_n).astype(int)
    diff = np.abs(colors - ref_colors)
    out["colors_max_abs"] = int(diff.max())
    out["colors_differing_fraction"] = float((diff > 0).any(axis=1).mean())
    out["colors_vertices"] = len(verts_n)
    return out
