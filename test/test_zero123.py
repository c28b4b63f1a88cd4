"""Zero123 pipeline and generator on tiny random components (CPU, diffusers-test style)."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch
from zero123_tiny import tiny_components, tiny_pipeline

from one2345_ros.config import DeviceError, torch_device
from one2345_ros.views.base import ViewRequest
from one2345_ros.views.zero123.generator import CPU_REFUSAL, Zero123Generator
from one2345_ros.views.zero123.pipeline import (
    Zero123Pipeline,
    images_to_uint8,
    ldm_ddim_timesteps,
    set_scheduler_timesteps,
)
from one2345_ros.views.zero123.weights import zero123_ddim_scheduler


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


# Provenance of the expected lists: the original samplers, read (not run, no weights or
# LDM here) at cvlab-columbia/zero123 f426883 (zero123/ldm) and One-2-3-45/One-2-3-45
# 9d5e3a0 (ldm/, the same sampler; utils/zero123_utils.py calls sampler.sample(S=75)
# for stage 1 and S=50 for stage 2):
#   ldm/modules/diffusionmodules/util.py make_ddim_timesteps('uniform', n, 1000):
#       c = 1000 // n; ddim_timesteps = range(0, 1000, c) + 1
#   ldm/models/diffusion/ddim.py DDIMSampler.ddim_sampling(..., t_start=-1):
#       timesteps = ddim_timesteps[:t_start]   -> the highest timestep is dropped
#       time_range = np.flip(timesteps); index = total_steps - i - 1 selects ddim_alphas
# Worked out by hand from those two rules:
#   n = 50: c = 20, range(0, 1000, 20) + 1 = 1, 21, ..., 981 (50 values), minus 981 -> 49 steps 961..1
#   n = 75: c = 13, range(0, 1000, 13) + 1 = 1, 14, ..., 989 (77 values), minus 989 -> 76 steps 976..1
# (CompVis/stable-diffusion's DDIMSampler has no t_start and would run 50 and 77.)
ORIGINAL_TIMESTEPS_50 = [961, 941, 921, 901, 881, 861, 841, 821, 801, 781, 761, 741, 721, 701, 681, 661, 641, 621,
                         601, 581, 561, 541, 521, 501, 481, 461, 441, 421, 401, 381, 361, 341, 321, 301, 281, 261,
                         241, 221, 201, 181, 161, 141, 121, 101, 81, 61, 41, 21, 1]  # fmt: skip
ORIGINAL_TIMESTEPS_75 = [976, 963, 950, 937, 924, 911, 898, 885, 872, 859, 846, 833, 820, 807, 794, 781, 768, 755,
                         742, 729, 716, 703, 690, 677, 664, 651, 638, 625, 612, 599, 586, 573, 560, 547, 534, 521,
                         508, 495, 482, 469, 456, 443, 430, 417, 404, 391, 378, 365, 352, 339, 326, 313, 300, 287,
                         274, 261, 248, 235, 222, 209, 196, 183, 170, 157, 144, 131, 118, 105, 92, 79, 66, 53, 40,
                         27, 14, 1]  # fmt: skip


def test_faithful_timesteps_are_exactly_the_originals():
    assert len(ORIGINAL_TIMESTEPS_50) == 49 and len(ORIGINAL_TIMESTEPS_75) == 76
    sched = zero123_ddim_scheduler()
    for n, expected in ((50, ORIGINAL_TIMESTEPS_50), (75, ORIGINAL_TIMESTEPS_75)):
        assert ldm_ddim_timesteps(n).tolist() == expected
        assert set_scheduler_timesteps(sched, n, "cpu", ldm_ddim=True).tolist() == expected
        # DDIM's step goes t -> t - 1000 // num_inference_steps: the original's stride.
        assert sched.num_inference_steps == n and 1000 // n == expected[0] - expected[1]
    # The faithful preset runs them (and reports it); 1 step would run none in the original.
    gen = Zero123Generator(tiny_pipeline(), preset="faithful")
    assert gen.describe()["steps"] == {"stage1": 75, "stage2": 50}
    assert gen.describe()["denoising_steps_run"] == {"stage1": 76, "stage2": 49}
    with pytest.raises(ValueError, match="at least 2"):
        Zero123Generator(tiny_pipeline(), preset="faithful", steps_stage1=1)
    assert sched.config.beta_start == 0.00085 and sched.config.beta_end == 0.012


def _ldm_ddim_reference(pipe, cond, ctx, seeds, n, eta=1.0, scale=3.0, drop_top=True):
    """The original DDIMSampler's update (ddim.py p_sample_ddim, util.py make_ddim_sampling_parameters),
    written out independently of diffusers: alphas of the full uniform list, the top step dropped."""
    betas = np.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=np.float64) ** 2
    alphacums = np.cumprod(1.0 - betas)
    ddim_ts = np.arange(0, 1000, 1000 // n) + 1
    alphas = alphacums[ddim_ts]
    alphas_prev = np.asarray([alphacums[0], *alphacums[ddim_ts[:-1]].tolist()])
    sigmas = eta * np.sqrt((1 - alphas_prev) / (1 - alphas) * (1 - alphas / alphas_prev))
    x = pipe.initial_latents(seeds)
    gens = [torch.Generator("cpu").manual_seed(s + 1) for s in seeds]
    cond_in, ctx_in = pipe._cfg_inputs(cond, ctx, True)
    run = ddim_ts[:-1] if drop_top else ddim_ts
    for i, step in enumerate(run[::-1]):
        index = len(run) - i - 1
        with torch.inference_mode():
            e_t = pipe._guided_eps(x, torch.tensor(int(step)), cond_in, ctx_in, scale, True).double()
        a_t, a_prev, sigma_t = alphas[index], alphas_prev[index], sigmas[index]
        pred_x0 = (x.double() - np.sqrt(1 - a_t) * e_t) / np.sqrt(a_t)
        dir_xt = np.sqrt(1.0 - a_prev - sigma_t**2) * e_t
        noise = torch.stack([torch.randn(x.shape[1:], generator=g) for g in gens]).double()
        x = (np.sqrt(a_prev) * pred_x0 + dir_xt + sigma_t * noise).float()
    return x


def test_faithful_sampler_reproduces_the_original_ddim_updates(pipe):
    cond = pipe.encode_latents(torch.rand(1, 3, 64, 64) * 2 - 1).expand(3, -1, -1, -1)
    T = pipe.camera_embeddings([0.0, 30.0, -10.0], [90.0, 180.0, 0.0])
    ctx = pipe.project_camera(pipe.encode_clip(torch.zeros(1, 3, 64, 64)).expand(3, -1), T)
    ours = pipe.denoise(cond, ctx, [4, 5, 6], 5, 3.0, 1.0, ldm_timesteps=True)
    assert pipe.scheduler.timesteps.tolist() == [601, 401, 201, 1]  # 1, 201, ..., 801 without the top one
    ref = _ldm_ddim_reference(pipe, cond, ctx, [4, 5, 6], 5)
    scale = ref.abs().max().item()
    assert (ours - ref).abs().max().item() < 1e-4 * scale
    # Keeping the top step (801 first, as CompVis' sampler or diffusers' "leading" list) gives other images.
    kept = _ldm_ddim_reference(pipe, cond, ctx, [4, 5, 6], 5, drop_top=False)
    assert (ours - kept).abs().max().item() > 0.05 * scale


def test_cond_latents_are_unscaled_mode_and_cfg_uses_zeros(pipe):
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    lat = pipe.encode_latents(x)
    with torch.no_grad():
        np.testing.assert_array_equal(lat.numpy(), pipe.vae.encode(x).latent_dist.mode().numpy())
    # With guidance 1 the eps is the conditional branch only; with s it is e_u + s (e_c - e_u), e_u from zeros.
    noisy, ctx = torch.randn(2, 4, 8, 8), torch.randn(2, 1, 32)
    t = torch.tensor(501)
    cond = lat.expand(2, -1, -1, -1)
    with torch.inference_mode():
        e_c = pipe._guided_eps(noisy, t, *pipe._cfg_inputs(cond, ctx, False), 1.0, False)
        e_u = pipe.unet(
            torch.cat([noisy, torch.zeros_like(noisy)], 1), t, encoder_hidden_states=torch.zeros_like(ctx)
        ).sample
        e = pipe._guided_eps(noisy, t, *pipe._cfg_inputs(cond, ctx, True), 3.0, True)
    torch.testing.assert_close(e, e_u + 3.0 * (e_c - e_u), atol=1e-5, rtol=1e-5)


# ------------------------------------------------------------------ output quantisation


def test_views_are_truncated_to_uint8_in_the_decoder_dtype_as_the_original():
    # zero123_utils.py: x = clamp((decode(z) + 1) / 2, 0, 1); (255.0 * x.numpy()).astype(np.uint8).
    x32 = torch.tensor([0.0, 0.999, 0.5, 1.0]).view(1, 1, 1, 4).expand(1, 3, 1, 4)
    assert images_to_uint8(x32)[0, 0, :, 0].tolist() == [0, 254, 127, 255]  # 254.7 -> 254, 127.5 -> 127
    # Under autocast the decoder output is float16 and so is the product: fp16(0.2) = 0.19995...,
    # 255 * that = 50.9875 -> 51.0 in float16 -> 51, where float32 gives 50.
    x16 = torch.tensor([0.2, 0.6, 0.9], dtype=torch.float16).view(1, 1, 1, 3).expand(1, 3, 1, 3)
    expected16 = (255.0 * np.array([0.2, 0.6, 0.9], dtype=np.float16)).astype(np.uint8)
    assert images_to_uint8(x16)[0, 0, :, 0].tolist() == expected16.tolist() == [51, 153, 229]
    assert images_to_uint8(x16.float())[0, 0, :, 0].tolist() == [50, 153, 229]
    # bfloat16 has no numpy type: widened to float32 (fp32 arithmetic).
    expected = (255.0 * x16.bfloat16().float().numpy()[0, 0, 0]).astype(np.uint8).tolist()
    assert images_to_uint8(x16.bfloat16())[0, 0, :, 0].tolist() == expected


def test_decode_clamps_in_the_vae_dtype():
    comps = tiny_components()
    vae = comps["vae"].half()
    pipe = Zero123Pipeline(**{**comps, "vae": vae})
    z = torch.randn(2, 4, 8, 8)
    img = pipe.decode_latents(z)
    with torch.inference_mode():
        raw = vae.decode((z / 0.18215).half()).sample
    assert img.dtype == torch.float16
    assert torch.equal(img, torch.clamp((raw + 1.0) / 2.0, min=0.0, max=1.0))


# ------------------------------------------------------------------ generation


def test_generate_eight_views_in_two_steps(pipe):
    pipe.attention_backends = None
    gen = _generator(pipe, preset="faithful")
    targets = [(0.0, 90.0 * k, 0.0) for k in range(4)] + [(30.0, 30.0 + 90.0 * k, 0.0) for k in range(4)]
    progress = []
    views = gen.generate(_image(1), (0.0, 0.0), targets, None, list(range(8)), lambda d, t: progress.append((d, t)))
    assert views.shape == (8, 256, 256, 3) and views.dtype == np.uint8
    assert progress == [(1, 1)]  # 2 faithful steps run 1, as the original
    assert len({v.tobytes() for v in views}) == 8  # every view differs (own T and seed)
    again = gen.generate(_image(1), (0.0, 0.0), targets, None, list(range(8)))
    np.testing.assert_array_equal(views, again)  # seeded: reproducible
    # The SDPA kernel the UNet ran was recorded (on this CPU: PyTorch's flash kernel for CPU).
    assert gen.describe()["attention"] == {"processors": ["AttnProcessor2_0"], "sdpa_backends": ["flash_cpu"]}


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
    assert out.shape == (2, 64, 64, 3) and out.min() >= 0.0 and out.max() <= 1.0


# ------------------------------------------------------------------ GPU and real weights (skipped here)


def _on(pipe: Zero123Pipeline, device: str, dtype: torch.dtype) -> Zero123Pipeline:
    for name in ("unet", "vae", "image_encoder", "cc_projection"):
        torch.nn.Module.to(getattr(pipe, name), device=device, dtype=dtype)
    return pipe


@pytest.mark.gpu
@pytest.mark.parametrize("preset, steps", [("fast", 4), ("faithful", 3)])
def test_cuda_fp16_generator_agrees_with_fp32(preset, steps):
    """Tiny weights on CUDA: fp16 views within a few uint8 levels of fp32 (CPU calibration: mean 0.17, max 3)."""
    from one2345_ros.views.zero123.generator import apply_speed_options

    targets = [(0.0, 90.0 * k, 0.0) for k in range(4)] + [(30.0, 30.0 + 90.0 * k, 0.0) for k in range(4)]
    views = {}
    for dtype in (torch.float32, torch.float16):
        pipe = _on(tiny_pipeline(), "cuda", dtype)
        apply_speed_options(pipe)  # channels-last UNet, SDPA: the production CUDA path
        gen = Zero123Generator(pipe, preset, steps, steps, max_batch=32)
        views[dtype] = gen.generate(_image(1), (0.0, 0.0), targets, None, list(range(8)))
        info = gen.describe()
        assert info["device"].startswith("cuda") and info["channels_last"] is True
        assert info["dtype"] == {torch.float32: "fp32", torch.float16: "fp16"}[dtype]
        assert info["attention"]["sdpa_backends"] and "unknown" not in info["attention"]["sdpa_backends"]
        assert pipe.decode_latents(torch.randn(1, 4, 8, 8, device="cuda")).dtype == dtype  # quantised in this dtype
    a, b = (views[d].astype(int) for d in (torch.float32, torch.float16))
    assert a.shape == b.shape == (8, 256, 256, 3) and a.std() > 10
    diff = np.abs(a - b)
    assert diff.mean() < 1.0 and np.percentile(diff, 99) <= 4 and diff.max() <= 24


@pytest.mark.weights
@pytest.mark.skipif(
    not os.environ.get("ONE2345_ZERO123"), reason="weights: set ONE2345_ZERO123 to a Zero123 folder or .ckpt"
)
def test_real_weights_reproduce_the_input_at_its_own_pose():
    """Real Zero123 weights: the same-pose view resembles the input on a white background (random weights do not)."""
    from one2345_ros.config import Zero123Config

    cuda = torch.cuda.is_available()
    cfg = Zero123Config(preset="fast", steps_stage1=20 if cuda else 8, dtype="fp16" if cuda else "fp32", allow_cpu=True)
    gen = Zero123Generator.from_config(cfg)
    info = gen.describe()
    assert info["weights_kind"] in ("diffusers_folder", "ldm_checkpoint") and info["model"]
    assert info["variant"] in ("main", "fp16", "fp16_ema", "ema") and info["ema"] in (True, False, None)
    assert all(os.path.exists(p) for p in info["files"].values() if p and p != "None")
    image = _image(7)
    views = gen.generate(image, (0.0, 0.0), [(0.0, 0.0, 0.0), (0.0, 180.0, 0.0)], None, [0, 1])
    same = views[0].astype(int)
    border = np.concatenate([same[:16].reshape(-1, 3), same[-16:].reshape(-1, 3)])
    assert border.mean() > 200, "background is not white"
    assert np.abs(same - image.astype(int)).mean() < 40, "the same-pose view does not resemble the input"
    assert info["attention"]["sdpa_backends"] is None and gen.describe()["attention"]["sdpa_backends"]
