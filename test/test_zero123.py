"""Zero123 pipeline and generator on tiny random components (CPU, diffusers-test style)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from one2345_ros.views.base import ViewRequest
from one2345_ros.views.zero123.pipeline import Zero123Pipeline, ldm_ddim_timesteps, set_scheduler_timesteps
from one2345_ros.config import DeviceError, torch_device
from one2345_ros.views.zero123.generator import CPU_REFUSAL, Zero123Generator
from one2345_ros.views.zero123.weights import zero123_ddim_scheduler

from zero123_tiny import tiny_components, tiny_pipeline


def _image(seed: int, size: int = 256) -> np.ndarray:
    """An object-like test image: a coloured disc on white."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    disc = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size * 0.3) ** 2
    img = np.full((size, size, 3), 255, np.uint8)
    img[disc] = rng.integers(0, 200, size=3, dtype=np.uint8)
    return img


@pytest.fixture(scope="module")
def pipe() -> Zero123Pipeline:
    return tiny_pipeline()


def _generator(pipe, preset="faithful", max_batch=0) -> Zero123Generator:
    return Zero123Generator(pipe, preset=preset, steps_stage1=2, steps_stage2=2, max_batch=max_batch)


# ------------------------------------------------------------------ conditioning


def test_camera_embedding_known_view_pairs(pipe):
    T = pipe.camera_embeddings([0.0, 30.0, -10.0, 0.0], [0.0, 90.0, 180.0, -90.0], [0.0, 0.0, 0.5, 0.0]).numpy()
    expected = [
        [0.0, 0.0, 1.0, 0.0],  # same view
        [math.pi / 6, 1.0, 0.0, 0.0],  # 30 deg down, quarter orbit right
        [-math.pi / 18, 0.0, -1.0, 0.5],  # 10 deg up, behind, farther
        [0.0, -1.0, 0.0, 0.0],  # quarter orbit left
    ]
    np.testing.assert_allclose(T, expected, atol=1e-6)


def test_stable_zero123_uses_absolute_cond_polar():
    gen = _generator(tiny_pipeline(camera_embedding="cond_polar"))
    img = _image(0)
    stage2 = ViewRequest(img, (30.0, 120.0), ((-10.0, 0.0, 0.0), (0.0, 10.0, 0.0)), (0, 1))
    T = gen.request_embeddings([stage2], input_polar_deg=60.0).numpy()
    # conditioning view = input (polar 60) + 30 -> polar 90 = pi/2 in the fourth slot
    np.testing.assert_allclose(T[:, 3], [math.pi / 2, math.pi / 2], atol=1e-6)
    np.testing.assert_allclose(T[0, :3], [-math.pi / 18, 0.0, 1.0], atol=1e-6)
    T_unknown = gen.request_embeddings([stage2], input_polar_deg=None).numpy()  # 90 assumed before the estimate
    np.testing.assert_allclose(T_unknown[:, 3], np.deg2rad(120.0), atol=1e-6)
    with pytest.raises(ValueError, match="cond_polar_deg"):
        gen.pipe.camera_embeddings([0.0], [0.0])


def test_ldm_ddim_timesteps_match_the_original_sampler():
    sched = zero123_ddim_scheduler()
    ts50 = set_scheduler_timesteps(sched, 50, "cpu", ldm_ddim=True).numpy()
    assert ts50[0] == 981 and ts50[-1] == 1 and len(ts50) == 50
    sched.set_timesteps(50)
    np.testing.assert_array_equal(ts50, sched.timesteps.numpy())  # same as diffusers "leading" for 50
    ts75 = ldm_ddim_timesteps(75)
    assert len(ts75) == 77 and ts75[0] == 989 and set(np.diff(ts75)) == {-13}  # LDM runs 77 steps for 75
    assert sched.config.beta_start == 0.00085 and sched.config.beta_end == 0.012


def test_cond_latents_are_unscaled_mode_and_cfg_uses_zeros(pipe):
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    lat = pipe.encode_latents(x)
    with torch.no_grad():
        np.testing.assert_array_equal(lat.numpy(), pipe.vae.encode(x).latent_dist.mode().numpy())
    # With guidance 1 the eps is the conditional branch only; with s it is e_u + s (e_c - e_u), e_u from zeros.
    noisy, ctx = torch.randn(2, 4, 8, 8), torch.randn(2, 1, 32)
    t = torch.tensor(501)
    with torch.inference_mode():
        e_c = pipe._guided_eps(noisy, t, lat.expand(2, -1, -1, -1), ctx, 1.0, False)
        e_u = pipe.unet(torch.cat([noisy, torch.zeros_like(noisy)], 1), t, encoder_hidden_states=torch.zeros_like(ctx)).sample
        e = pipe._guided_eps(noisy, t, lat.expand(2, -1, -1, -1), ctx, 3.0, True)
    torch.testing.assert_close(e, e_u + 3.0 * (e_c - e_u), atol=1e-5, rtol=1e-5)


# ------------------------------------------------------------------ generation


def test_generate_eight_views_in_two_steps(pipe):
    gen = _generator(pipe, preset="faithful")
    targets = [(0.0, 90.0 * k, 0.0) for k in range(4)] + [(30.0, 30.0 + 90.0 * k, 0.0) for k in range(4)]
    progress = []
    views = gen.generate(_image(1), (0.0, 0.0), targets, None, list(range(8)), lambda d, t: progress.append((d, t)))
    assert views.shape == (8, 256, 256, 3) and views.dtype == np.uint8
    assert progress == [(1, 2), (2, 2)]
    assert len({v.tobytes() for v in views}) == 8  # every view differs (own T and seed)
    again = gen.generate(_image(1), (0.0, 0.0), targets, None, list(range(8)))
    np.testing.assert_array_equal(views, again)  # seeded: reproducible


@pytest.mark.parametrize("preset", ["faithful", "fast"])
def test_chunked_batch_equals_unchunked(pipe, preset):
    gen = _generator(pipe, preset=preset)
    x = torch.from_numpy(_image(2)[None]).permute(0, 3, 1, 2).float() / 127.5 - 1
    x = torch.nn.functional.interpolate(x, size=(64, 64), mode="bilinear", antialias=True)
    clip, cond = pipe.encode_clip(x), pipe.encode_latents(x)
    T = pipe.camera_embeddings([0, 30, -30, 10, 0, 20, 5], [0, 90, 180, 270, 45, 10, 300])
    ctx = pipe.project_camera(clip.expand(7, -1), T)
    seeds = [11, 12, 13, 14, 15, 16, 17]
    args = (cond.expand(7, -1, -1, -1), ctx, seeds, 3, 3.0, gen.preset.eta, preset == "faithful")
    whole = pipe.denoise(*args, max_batch=0)
    chunked = pipe.denoise(*args, max_batch=4)  # 2 views (4 CFG rows) per UNet call
    alone = pipe.denoise(cond, ctx[3:4], seeds[3:4], 3, 3.0, gen.preset.eta, preset == "faithful")
    scale = whole.abs().max().item()  # the random tiny UNet gives latents of a few units
    assert (whole - chunked).abs().max().item() < 1e-5 * scale
    # A view alone, with its seed, is the same view: nothing depends on the batch.
    assert (whole[3:4] - alone).abs().max().item() < 1e-5 * scale
    assert (whole[3] - whole[4]).abs().max().item() > 0.1 * scale  # views do differ
    images = pipe.decode_latents(torch.cat([whole, chunked]))
    unsaturated = ((images > 0.02) & (images < 0.98)).float().mean().item()
    assert unsaturated > 0.2 and (images[:7] - images[7:]).abs().max().item() < 1e-5


def test_batch_of_different_conditioning_images_equals_separate_calls(pipe):
    gen = _generator(pipe, max_batch=6)
    r1 = ViewRequest(_image(3), (0.0, 0.0), ((0.0, 90.0, 0.0), (30.0, 30.0, 0.0)), (1, 2))
    r2 = ViewRequest(_image(4), (30.0, 120.0), ((-10.0, 0.0, 0.0), (0.0, 10.0, 0.0), (10.0, 0.0, 0.0)), (3, 4, 5))
    together = gen.generate_batch([r1, r2], None, stage=2)
    apart = [gen.generate_batch([r], None, stage=2)[0] for r in (r1, r2)]
    for a, b in zip(together, apart):
        assert a.shape == b.shape
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1  # uint8 rounding of < 1e-5 float differences


def test_device_policy_refuses_cpu_without_allow_cpu():
    with pytest.raises(DeviceError, match="hours"):
        torch_device("cpu", allow_cpu=False, cpu_refusal=CPU_REFUSAL)
    assert torch_device("cpu", allow_cpu=True).type == "cpu"


def test_pipeline_call_returns_images_in_unit_range(pipe):
    pipe_fast = Zero123Pipeline(**{**tiny_components(), "scheduler": zero123_ddim_scheduler()})
    out = pipe_fast(_image(5), [0.0, 30.0], [90.0, 180.0], num_inference_steps=2, output_type="np").images
    assert out.shape == (2, 64, 64, 3) and 0.0 <= out.min() and out.max() <= 1.0
