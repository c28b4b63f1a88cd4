"""Test fixtures for SparseNeuS: checkpoints in the official layout, rendered views.

``official_shapes`` writes the One-2-3-45 checkpoint layout from its formulas
(featurenet.py, sparse_sdf_network.py, tsparse/modules.py, rendering_network.py),
independently of the package's modules; test_sparseneus_checkpoint checks that the
full-size result equals test/data/one2345_sparseneus_keys.json.
"""

from __future__ import annotations

import numpy as np
import torch

from one2345_ros.geometry import cameras as cam
from one2345_ros.recon.sparseneus.network import ONE2345_ARCH, SparseNeuSArch
from one2345_ros.types import ViewSet

TINY_ARCH = SparseNeuSArch(
    feature_channels=(4, 4, 8), compress_channels=4, regnet_widths=(4, 4, 8, 8), sdf_hidden=16, pe_freqs=2
)


def _abn(prefix: str, c: int) -> dict:
    return {f"{prefix}.weight": [c], f"{prefix}.bias": [c], f"{prefix}.running_mean": [c],
            f"{prefix}.running_var": [c], f"{prefix}.num_batches_tracked": []}  # fmt: skip


def official_shapes(arch: SparseNeuSArch = ONE2345_ARCH) -> dict[str, dict[str, list[int]]]:
    """{network: {key: shape}} of the official checkpoint for channel widths ``arch``."""
    c0, c1, c2 = arch.feature_channels
    fpn: dict = {}
    blocks = {"conv0": [(3, c0, 3), (c0, c0, 3)], "conv1": [(c0, c1, 5), (c1, c1, 3), (c1, c1, 3)],
              "conv2": [(c1, c2, 5), (c2, c2, 3), (c2, c2, 3)]}  # fmt: skip
    for name, layers in blocks.items():
        for i, (cin, cout, k) in enumerate(layers):
            fpn[f"{name}.{i}.conv.weight"] = [cout, cin, k, k]
            fpn.update(_abn(f"{name}.{i}.bn", cout))
    for name, cin, cout, k in (("toplayer", c2, c2, 1), ("lat1", c1, c2, 1), ("lat0", c0, c2, 1),
                               ("smooth1", c2, c1, 3), ("smooth0", c2, c0, 3)):  # fmt: skip
        fpn[f"{name}.weight"] = [cout, cin, k, k]
        fpn[f"{name}.bias"] = [cout]
    fused, cc = arch.fused_channels, arch.compress_channels
    r0, r1, r2, r3 = arch.regnet_widths
    sdf: dict = {"compress_layer.conv.weight": [cc, fused, 3, 3], **_abn("compress_layer.bn", cc)}
    convs = [(0, 2 * cc, r0), (1, r0, r1), (2, r1, r1), (3, r1, r2), (4, r2, r2), (5, r2, r3), (6, r3, r3),
             (7, r3, r2), (9, r2, r1), (11, r1, r0)]  # fmt: skip
    for i, cin, cout in convs:
        sdf[f"sparse_costreg_net.conv{i}.net.0.kernel"] = [27, cin, cout]
        sdf.update(_abn(f"sparse_costreg_net.conv{i}.net.1", cout))
    h, pe = arch.sdf_hidden, 3 + 6 * arch.pe_freqs
    for i, cin in enumerate((pe, h + r0, h + r0)):
        sdf[f"sdf_layer.lin{i}.bias"] = [h]
        sdf[f"sdf_layer.lin{i}.weight_g"] = [h, 1]
        sdf[f"sdf_layer.lin{i}.weight_v"] = [h, cin]
    f = fused + 3
    ren: dict = {"s": []}
    for name, sizes in (("ray_dir_fc", (4, 16, f)), ("base_fc", (3 * f + r0, 64, 32)), ("vis_fc", (32, 32, 33)),
                        ("vis_fc2", (32, 32, 1)), ("rgb_fc", (37, 16, 8, 1))):  # fmt: skip
        for j in range(len(sizes) - 1):
            ren[f"{name}.{2 * j}.weight"] = [sizes[j + 1], sizes[j]]
            ren[f"{name}.{2 * j}.bias"] = [sizes[j + 1]]
    return {"pyramid_feature_network": fpn, "sdf_network_lod0": sdf,
            "variance_network_lod0": {"variance": []}, "rendering_network_lod0": ren}  # fmt: skip


def make_checkpoint(arch: SparseNeuSArch = ONE2345_ARCH, seed: int = 0, abn_counters: bool = True) -> dict:
    """A checkpoint dict exactly as Runner.save_checkpoint writes it, with random weights.

    Includes a real Adam state_dict (one step taken) over the trainable tensors.
    ``abn_counters=False`` leaves out the nine InPlaceABN num_batches_tracked keys
    (inplace_abn 1.0.x).
    """
    g = torch.Generator().manual_seed(seed)
    nets: dict = {}
    params = []
    for net, shapes in official_shapes(arch).items():
        sd = {}
        for key, shape in shapes.items():
            if key.endswith("num_batches_tracked"):
                if not abn_counters and (net == "pyramid_feature_network" or key.startswith("compress_layer")):
                    continue
                sd[key] = torch.tensor(7, dtype=torch.long)
            elif key.endswith("running_var"):
                sd[key] = 0.5 + torch.rand(shape, generator=g)
            else:
                sd[key] = 0.1 * torch.randn(shape, generator=g)
                if not key.endswith("running_mean"):
                    params.append(sd[key])
        nets[net] = sd
    leaves = [p.clone().requires_grad_(True) for p in params]
    opt = torch.optim.Adam(leaves, lr=2e-4)
    sum(p.sum() for p in leaves).backward()
    opt.step()
    return {"optimizer": opt.state_dict(), "iter_step": 215000, "val_step": 0,
            **{k: nets[k] for k in ("sdf_network_lod0", "rendering_network_lod0",
                                    "variance_network_lod0", "pyramid_feature_network")}}  # fmt: skip


def sphere_color(points: np.ndarray) -> np.ndarray:
    """Smooth colour pattern on the sphere's surface, uint8 (..., 3)."""
    d = points / np.linalg.norm(points, axis=-1, keepdims=True)
    return np.round(255 * (0.5 + 0.4 * d)).astype(np.uint8)


def plan_views(size: int = 256, elevation_deg: float = 20.0) -> ViewSet:
    """The 32 One-2-3-45 stage-2 views (white images): the cameras of the plan in the
    Zero123 world (OpenCV), the input view's camera as reference frame (like
    stage1_8/0.png), K scaled from 256 to ``size``."""
    plan = cam.one2345_plan(float(cam.polar_from_elevation(elevation_deg)))
    views = cam.stage2_views(plan)
    c2w = np.stack([v.c2w() for v in views])
    K = cam.view_intrinsics(size)
    ref = cam.spherical_to_c2w(plan[0].polar_deg - plan[0].d_polar_deg, 0.0)
    return ViewSet(images=np.full((len(views), size, size, 3), 255, np.uint8),
                   K=np.broadcast_to(K, (len(views), 3, 3)).copy(), c2w=c2w, names=[v.name for v in views],
                   near_far=cam.ONE2345_NEAR_FAR, reference_c2w=ref)  # fmt: skip


def render_sphere_views(size: int = 32, radius: float = 0.3, elevation_deg: float = 20.0) -> ViewSet:
    """The 32 One-2-3-45 stage-2 views (:func:`plan_views`) of a coloured sphere at the origin, on white."""
    views = plan_views(size, elevation_deg)
    for img, K, T in zip(views.images, views.K, views.c2w, strict=True):
        o, d = cam.pixel_rays(K, T, size, size)
        b = np.einsum("hwi,hwi->hw", o, d)
        disc = b**2 - (np.einsum("hwi,hwi->hw", o, o) - radius**2)
        hit = disc > 0
        t = -b - np.sqrt(np.where(hit, disc, 0.0))
        img[hit] = sphere_color(o[hit] + t[hit, None] * d[hit])
    return views


def _softplus(x: np.ndarray, beta: float = 100.0) -> np.ndarray:
    return np.logaddexp(0.0, beta * x) / beta


def fibonacci_directions(n: int) -> np.ndarray:
    """(n, 3) unit vectors spread evenly over the sphere (Fibonacci lattice)."""
    i = np.arange(n)
    z = 1.0 - (2.0 * i + 1.0) / n
    phi = i * np.pi * (3.0 - np.sqrt(5.0))
    r = np.sqrt(1.0 - z**2)
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


def sphere_sdf_layer(arch: SparseNeuSArch = ONE2345_ARCH, radius: float = 0.3, latent_weight: float = 0.0,
                     seed: int = 0) -> tuple[dict[str, torch.Tensor], float]:  # fmt: skip
    """The SDF MLP's weights (``sdf_layer.*`` keys of ``sdf_network_lod0``, the checkpoint's shapes) set to a
    sphere: SDF(x) ~ |x| - r + latent_weight * sum(latent), and the zero level set's radius r0 (normalised
    frame) without the latent.

    The original's geometric init (LatentSDFLayer._geometric_init) gives a sphere only roughly: with
    sdf_hidden = 128 random directions its zero level set's radius varies by ~7 %. Here lin0's rows are
    unit directions u_i spread evenly (Fibonacci lattice), lin1 passes them on (identity; softplus(x) ~ x
    for x >= 0) and lin2's first row averages them: (4 / N) sum_i max(0, u_i . x) = |x| within 0.5 % for
    N = 128 (the clamped cosine averages 1/4 over the sphere). The two softplus (beta 100) add an almost
    direction-free ~0.015 at |x| = 0.3, so r0 (found here numerically) is a little below ``radius``.
    The SDF (lin2's first row) sees the latent only through ``latent_weight`` on every channel; lin2's other
    rows (the geometry feature, which no mesh depends on) are random.
    """
    h, latent, d_in = arch.sdf_hidden, arch.latent_channels, 3 + 6 * arch.pe_freqs
    u = fibonacci_directions(h)
    g = torch.Generator().manual_seed(seed)
    w0 = np.zeros((h, d_in))
    w0[:, :3] = u
    w1 = np.zeros((h, h + latent))
    w1[:, :h] = np.eye(h)
    w2 = 0.1 * torch.randn(h, h + latent, generator=g, dtype=torch.float64).numpy()
    w2[0, :h] = 4.0 / h
    w2[0, h:] = latent_weight
    b2 = np.zeros(h)
    b2[0] = -radius
    state: dict[str, torch.Tensor] = {}
    for i, (w, b) in enumerate(((w0, np.zeros(h)), (w1, np.zeros(h)), (w2, b2))):
        state[f"sdf_layer.lin{i}.weight_v"] = torch.tensor(w, dtype=torch.float32)
        norm = np.linalg.norm(w, axis=1, keepdims=True)
        state[f"sdf_layer.lin{i}.weight_g"] = torch.tensor(norm, dtype=torch.float32)
        state[f"sdf_layer.lin{i}.bias"] = torch.tensor(b, dtype=torch.float32)

    def mean_sdf(r: float) -> float:  # over 2000 directions, latent zero
        x = r * fibonacci_directions(2000)
        return float((4.0 / h * _softplus(_softplus(x @ u.T)).sum(axis=1)).mean() - radius)

    lo, hi = 0.0, 2.0 * radius
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if mean_sdf(mid) < 0 else (lo, mid)
    return state, 0.5 * (lo + hi)
