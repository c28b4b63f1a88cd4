"""Zero123 / Zero123-XL / Stable Zero123 novel-view pipeline on diffusers components.

The UNet, VAE, CLIP image encoder and scheduler are stock diffusers/transformers
classes; this module only adds the camera projection (:class:`CCProjection`, the
kxic-compatible ``Linear(772, 768)``) and the denoising loop with Zero123's
conditioning (reference/zero123.md §1):

====================  ==========================================================
name here              meaning (original code)
====================  ==========================================================
``T``                  camera embedding [d_polar rad, sin d_az, cos d_az, d_r]
                       (Stable Zero123: cond polar rad in the last slot)
``clip_embeds``        CLIP ``image_embeds`` (projected 768-d) of the input
``context``            ``cc_projection(cat(clip_embeds, T))`` -> cross-attention
``cond_latents``       ``vae.encode(x).latent_dist.mode()``, NOT scaled (c_concat)
``eps``                ``e_u + s (e_c - e_u)``, unconditional = zero context and
                       zero c_concat (inference-time null, as gradio/One-2-3-45)
====================  ==========================================================

One call denoises any number of views in lockstep: each view has its own
conditioning latents, CLIP embedding, T and seeded generator, so views of different
input images can share one loop (:meth:`Zero123Pipeline.denoise`). The UNet forward
of each step is split into chunks of at most ``max_batch`` rows (CFG included); the
scheduler step runs on all views at once with per-view noise, so an image does not
depend on how the batch was chunked.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DDIMScheduler, DiffusionPipeline, UNet2DConditionModel
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.attention_processor import AttnProcessor2_0
from diffusers.models.modeling_utils import ModelMixin
from diffusers.pipelines.pipeline_utils import ImagePipelineOutput
from PIL import Image
from transformers import CLIPVisionModelWithProjection

from ...geometry.cameras import zero123_embedding

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
"""OpenAI CLIP normalisation (what FrozenCLIPImageEmbedder uses)."""

StepProgress = Callable[[int, int], None]
CAMERA_EMBEDDINGS = ("delta_radius", "cond_polar")

WEIGHTS_MARKER = "zero123_weights.json"
"""Written beside model_index.json by :meth:`Zero123Pipeline.save_pretrained`:
``{"variants": {"main": {"ema": true, "source": "105000.ckpt", ...}}}``."""

IN_MEMORY_WEIGHTS = {
    "source": None, "kind": "in_memory", "layout": None, "variant": None, "ema": None,
    "ema_basis": "components built in memory (tests, benchmarks)", "files": {},
}  # fmt: skip
"""``weights_info`` of a pipeline that no loader made. Loaders fill in: ``source`` (path),
``kind`` ('diffusers_folder' | 'ldm_checkpoint'), ``layout`` ('A' | 'B' | None),
``variant`` (the UNet's file variant, 'main' for the default files; None for a .ckpt),
``ema`` (True / False / None = unknown), ``ema_basis`` (why), ``files`` (component -> path)."""

SDPA_OPS = {
    "aten::_scaled_dot_product_flash_attention": "flash",
    "aten::_scaled_dot_product_flash_attention_for_cpu": "flash_cpu",
    "aten::_scaled_dot_product_efficient_attention": "mem_efficient",
    "aten::_scaled_dot_product_cudnn_attention": "cudnn",
    "aten::_scaled_dot_product_attention_math": "math",
    "aten::_scaled_dot_product_fused_attention_overrideable": "overrideable",
}
"""aten ops behind F.scaled_dot_product_attention -> backend name (what the dispatcher chose)."""


def run_recording_attention(fn):
    """``(fn(), backends)``: backends = sorted SDPA kernels the call dispatched to.

    Uses the CPU-side profiler (the aten op names say which kernel SDPA picked, on
    CPU and CUDA alike). ('unknown',) when the profiler cannot start (e.g. another
    one is running) or no SDPA op was recorded (a compiled graph may inline them).
    """
    from torch.profiler import ProfilerActivity, profile

    try:
        prof = profile(activities=[ProfilerActivity.CPU])
        prof.__enter__()
    except Exception:
        return fn(), ("unknown",)
    try:
        out = fn()
    finally:
        try:
            prof.__exit__(None, None, None)
            names = {e.name for e in prof.events()}
        except Exception:
            names = set()
    found = tuple(sorted({SDPA_OPS[n] for n in names if n in SDPA_OPS}))
    if not found and "aten::scaled_dot_product_attention" in names:
        found = ("math",)
    return out, found or ("unknown",)


class CCProjection(ModelMixin, ConfigMixin):
    """Zero123's camera projection: ``Linear(in_channel, out_channel)`` on cat(CLIP, T).

    Attribute name ``projection`` matches the kxic folders; unlike the community
    class, the sizes are registered so tiny test models survive a save/load.
    ``camera_embedding`` records what the fourth slot of T means for these weights:
    'delta_radius' (Zero123, Zero123-XL) or 'cond_polar' (Stable Zero123).
    """

    @register_to_config
    def __init__(self, in_channel: int = 772, out_channel: int = 768, camera_embedding: str = "delta_radius"):
        super().__init__()
        if camera_embedding not in CAMERA_EMBEDDINGS:
            raise ValueError(f"camera_embedding must be one of {CAMERA_EMBEDDINGS}, got {camera_embedding!r}")
        self.projection = torch.nn.Linear(in_channel, out_channel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection(x)


def ldm_ddim_timesteps(num_steps: int, num_train_timesteps: int = 1000) -> np.ndarray:
    """Timesteps the original Zero123 / One-2-3-45 DDIM sampler runs for ``num_steps``, descending.

    Two rules of the original code (zero123/ldm, vendored unchanged by One-2-3-45):

    * ``make_ddim_timesteps('uniform')`` (ldm/modules/diffusionmodules/util.py): stride
      ``c = T // n``, timesteps ``range(0, T, c) + 1``;
    * ``DDIMSampler.ddim_sampling(..., t_start=-1)`` (ldm/models/diffusion/ddim.py) then
      runs ``ddim_timesteps[:t_start]``, dropping the highest timestep.

    So 50 steps run 49 (961, 941, ..., 1) and 75 steps run 76 (976, 963, ..., 1; the
    uniform rule gives 77 with stride 13, one is dropped). CompVis' stable-diffusion
    DDIMSampler has no ``t_start`` and runs all of them; Zero123's does not.
    Each step goes from t to t - c (the alphas of the full list), and the last to
    alphas_cumprod[0]: diffusers' DDIMScheduler with ``num_inference_steps = n``,
    ``set_alpha_to_one=False`` does the same updates, so only the list is replaced.
    (Step counts for which the uniform rule reaches T, e.g. 3, make the original fail
    with an IndexError; here that top timestep is the one dropped.)
    """
    if num_steps < 2:
        raise ValueError(f"the original DDIM sampler runs {num_steps} - 1 steps for {num_steps}: use at least 2")
    stride = num_train_timesteps // num_steps
    ts = np.arange(0, num_train_timesteps, stride) + 1
    return ts[:-1][::-1].astype(np.int64).copy()


def set_scheduler_timesteps(scheduler, num_steps: int, device, ldm_ddim: bool) -> torch.Tensor:
    """Prepare ``scheduler`` for ``num_steps`` and return the timesteps it will run.

    With ``ldm_ddim`` and a DDIMScheduler the timesteps are the original's
    (:func:`ldm_ddim_timesteps`); DDIM's step derives the previous timestep as
    ``t - T // num_inference_steps``, which is exactly LDM's stride, so
    ``num_inference_steps`` stays ``num_steps`` and only the list is replaced.
    """
    scheduler.set_timesteps(num_steps, device=device)
    if ldm_ddim and isinstance(scheduler, DDIMScheduler):
        ts = ldm_ddim_timesteps(num_steps, scheduler.config.num_train_timesteps)
        scheduler.timesteps = torch.from_numpy(ts).to(device)
    return scheduler.timesteps


def steps_run(num_steps: int, ldm_ddim: bool) -> int:
    """Denoising steps (UNet calls per view) that ``num_steps`` means for the sampler."""
    return len(ldm_ddim_timesteps(num_steps)) if ldm_ddim else num_steps


def image_to_tensor(image, size: int) -> torch.Tensor:
    """uint8 [H, W, 3] / PIL / float tensor [3, H, W] in [0, 1] -> (1, 3, size, size) in [-1, 1]."""
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB"))
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"image must be uint8 [H, W, 3] RGB, got {image.dtype} {image.shape}")
        x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255.0
    elif isinstance(image, torch.Tensor):
        x = image.float()
        if x.ndim == 4 and x.shape[0] == 1:
            x = x[0]
        if x.ndim != 3 or x.shape[0] != 3:
            raise ValueError(f"image tensor must be [3, H, W] in [0, 1], got {tuple(image.shape)}")
    else:
        raise TypeError(f"unsupported image type {type(image).__name__}")
    x = x[None]
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x * 2.0 - 1.0


class Zero123Pipeline(DiffusionPipeline):
    """Zero123 novel views: vae, image_encoder, unet, scheduler, cc_projection (+ optional feature_extractor).

    The feature extractor is only carried for folder compatibility: CLIP
    preprocessing is done in torch as the original does (see :meth:`encode_clip`).
    """

    model_cpu_offload_seq = "image_encoder->cc_projection->unet->vae"
    _optional_components = ["feature_extractor"]  # noqa: RUF012 - diffusers reads this class attribute

    def __init__(
        self,
        vae: AutoencoderKL,
        image_encoder: CLIPVisionModelWithProjection,
        unet: UNet2DConditionModel,
        scheduler,
        cc_projection: CCProjection,
        feature_extractor=None,
    ):
        super().__init__()
        self.register_modules(
            vae=vae,
            image_encoder=image_encoder,
            unet=unet,
            scheduler=scheduler,
            cc_projection=cc_projection,
            feature_extractor=feature_extractor,
        )
        check_component_sizes(vae, image_encoder, unet, cc_projection)
        self.weights_info: dict = dict(IN_MEMORY_WEIGHTS)
        """Where the weights came from (set by the loaders): see :data:`IN_MEMORY_WEIGHTS`."""
        self.probe_attention = True
        """Record which SDPA kernel the UNet runs, once, on the second step of the first loop."""
        self.attention_backends: tuple[str, ...] | None = None
        """SDPA backends seen in that UNet call ('flash', 'mem_efficient', 'cudnn', 'math', ...)."""

    def save_pretrained(self, save_directory, safe_serialization: bool = True, variant: str | None = None, **kwargs):
        """diffusers' save, plus :data:`WEIGHTS_MARKER` saying whether the UNet holds EMA weights.

        The marker is keyed by variant ('main' for the default files) and merged with
        an existing one, so a folder saved twice (fp32 and fp16) keeps both entries.
        """
        super().save_pretrained(save_directory, safe_serialization=safe_serialization, variant=variant, **kwargs)
        variant = variant or "main"
        path = Path(save_directory) / WEIGHTS_MARKER
        marker = {"variants": {}}
        if path.is_file():
            with contextlib.suppress(json.JSONDecodeError):
                marker = json.loads(path.read_text())
        marker.setdefault("variants", {})[variant] = {
            "ema": self.weights_info.get("ema"),
            "source": self.weights_info.get("source"),
            "ema_basis": self.weights_info.get("ema_basis"),
        }
        path.write_text(json.dumps(marker, indent=1) + "\n")

    # ------------------------------------------------------------------ properties

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def image_size(self) -> int:
        """Side of the images the model works at (256 for the real checkpoints)."""
        return self.unet.config.sample_size * self.vae_scale_factor

    def use_sdpa(self) -> None:
        """PyTorch scaled-dot-product attention in the UNet and VAE (diffusers' default, made explicit)."""
        self.unet.set_attn_processor(AttnProcessor2_0())
        self.vae.set_attn_processor(AttnProcessor2_0())

    # ------------------------------------------------------------------ encoders

    @torch.inference_mode()
    def encode_clip(self, images: torch.Tensor) -> torch.Tensor:
        """CLIP ``image_embeds`` (B, D) of images (B, 3, H, W) in [-1, 1].

        As FrozenCLIPImageEmbedder: bicubic resize with ``align_corners=True`` and
        no antialiasing, then [-1, 1] -> [0, 1], then CLIP mean/std.
        """
        enc = self.image_encoder
        size = enc.config.image_size
        x = F.interpolate(images.float(), size=(size, size), mode="bicubic", align_corners=True, antialias=False)
        x = (x + 1.0) / 2.0
        mean = torch.tensor(CLIP_MEAN, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(CLIP_STD, device=x.device).view(1, 3, 1, 1)
        x = ((x - mean) / std).to(device=enc.device, dtype=enc.dtype)
        return enc(pixel_values=x).image_embeds.float()

    @torch.inference_mode()
    def encode_latents(self, images: torch.Tensor) -> torch.Tensor:
        """Unscaled VAE latents ``mode()`` (B, 4, h, w) of images (B, 3, H, W) in [-1, 1]."""
        x = images.to(device=self.vae.device, dtype=self.vae.dtype)
        return self.vae.encode(x).latent_dist.mode().float()

    @torch.inference_mode()
    def decode_latents(self, latents: torch.Tensor, max_batch: int = 0) -> torch.Tensor:
        """Images (B, 3, H, W) in [0, 1] from denoised latents (B, 4, h, w), in the VAE's dtype.

        ``clamp((x + 1) / 2, 0, 1)`` on the decoder output in its own dtype, as the
        original does (float16 under One-2-3-45's autocast); :func:`images_to_uint8`
        then quantises like the original. ``max_batch`` = 0 decodes all at once.
        """
        out = []
        step = max_batch if max_batch > 0 else len(latents)
        for start in range(0, len(latents), step):
            z = latents[start : start + step] / self.vae.config.scaling_factor
            img = self.vae.decode(z.to(device=self.vae.device, dtype=self.vae.dtype)).sample
            out.append(torch.clamp((img + 1.0) / 2.0, min=0.0, max=1.0))
        return torch.cat(out)

    @property
    def uses_cond_polar(self) -> bool:
        """True for Stable Zero123 weights (absolute conditioning polar in T's fourth slot)."""
        return self.cc_projection.config.camera_embedding == "cond_polar"

    def camera_embeddings(self, d_polar_deg, d_azimuth_deg, d_radius=0.0, cond_polar_deg=None) -> torch.Tensor:
        """T (N, 4) float32 for these weights, via cameras.zero123_embedding.

        ``cond_polar_deg`` (absolute polar of the conditioning image) is required
        for Stable Zero123 and ignored otherwise.
        """
        if self.uses_cond_polar:
            if cond_polar_deg is None:
                raise ValueError("Stable Zero123 needs the conditioning view's absolute polar (cond_polar_deg)")
            T = zero123_embedding(d_polar_deg, d_azimuth_deg, cond_polar_deg=cond_polar_deg)
        else:
            T = zero123_embedding(d_polar_deg, d_azimuth_deg, d_radius)
        return torch.from_numpy(np.asarray(T, dtype=np.float32).reshape(-1, 4))

    def project_camera(self, clip_embeds: torch.Tensor, T: torch.Tensor) -> torch.Tensor:
        """Cross-attention context (N, 1, D) from CLIP embeds (N, D) and camera embeddings (N, 4)."""
        x = torch.cat([clip_embeds, T.to(clip_embeds)], dim=-1)[:, None, :]
        proj = self.cc_projection
        return proj(x.to(device=proj.device, dtype=proj.dtype)).float()

    # ------------------------------------------------------------------ denoising

    def initial_latents(self, seeds: Sequence[int]) -> torch.Tensor:
        """Per-view starting noise (N, 4, h, w), each from its own CPU generator (device independent)."""
        h = self.unet.config.sample_size
        c = self.unet.config.out_channels
        noise = [torch.randn((c, h, h), generator=torch.Generator("cpu").manual_seed(int(s))) for s in seeds]
        return torch.stack(noise) * self.scheduler.init_noise_sigma

    @torch.inference_mode()
    def denoise(
        self,
        cond_latents: torch.Tensor,
        context: torch.Tensor,
        seeds: Sequence[int],
        num_inference_steps: int,
        guidance_scale: float = 3.0,
        eta: float = 1.0,
        ldm_timesteps: bool = True,
        max_batch: int = 0,
        progress: StepProgress | None = None,
    ) -> torch.Tensor:
        """Denoise N views in lockstep; returns latents (N, 4, h, w) in float32.

        Args:
            cond_latents: (N, 4, h, w) unscaled latents of each view's conditioning image.
            context: (N, 1, D) projected CLIP + camera context of each view.
            seeds: one per view (starting noise and DDIM eta noise).
            max_batch: largest UNet batch per forward (CFG rows included); 0 = no limit.

        Every input of the loop is prepared on the device before it starts (timesteps,
        the CFG halves of the conditioning, the per-step DDIM noise of every view), and
        the scheduler gets Python-int timesteps: a step launches the UNet and the
        scheduler arithmetic without waiting for the device.
        """
        device = self.unet.device
        dtype = self.unet.dtype
        n = len(seeds)
        if cond_latents.shape[0] != n or context.shape[0] != n:
            raise ValueError(
                f"need one cond latent and context per seed: {cond_latents.shape[0]}, {context.shape[0]}, {n}"
            )
        do_cfg = guidance_scale > 1.0
        rows_per_view = 2 if do_cfg else 1
        views_per_chunk = n if max_batch <= 0 else max(1, max_batch // rows_per_view)
        chunks = [slice(start, start + views_per_chunk) for start in range(0, n, views_per_chunk)]

        timesteps = set_scheduler_timesteps(self.scheduler, num_inference_steps, device, ldm_timesteps)
        t_host = [int(t) for t in timesteps.cpu()]
        t_device = timesteps.to(device)
        latents = self.initial_latents(seeds).to(device)
        cond_latents = cond_latents.to(device=device, dtype=dtype)
        context = context.to(device=device, dtype=dtype)
        unet_cond = [self._cfg_inputs(cond_latents[sl], context[sl], do_cfg) for sl in chunks]
        noise = None
        if isinstance(self.scheduler, DDIMScheduler) and eta > 0:
            # Per-view noise from per-view generators, drawn step by step in the order the loop
            # uses it: independent of chunking and batch order.
            generators = [torch.Generator("cpu").manual_seed(int(s) + 1) for s in seeds]
            shape = latents.shape[1:]
            noise = torch.stack(
                [torch.stack([torch.randn(shape, generator=g) for g in generators]) for _ in t_host]
            ).to(device)
        probe_step = min(1, len(t_host) - 1) if self.attention_backends is None and self.probe_attention else -1

        for i, t in enumerate(t_host):
            scaled = self.scheduler.scale_model_input(latents, t)
            eps = torch.empty_like(latents)
            for k, (sl, (cond_in, ctx_in)) in enumerate(zip(chunks, unet_cond)):
                if i == probe_step and k == 0:
                    call = partial(self._guided_eps, scaled[sl], t_device[i], cond_in, ctx_in, guidance_scale, do_cfg)
                    eps[sl], self.attention_backends = run_recording_attention(call)
                else:
                    eps[sl] = self._guided_eps(scaled[sl], t_device[i], cond_in, ctx_in, guidance_scale, do_cfg)
            if noise is not None:
                latents = self.scheduler.step(eps, t, latents, eta=eta, variance_noise=noise[i]).prev_sample
            else:
                latents = self.scheduler.step(eps, t, latents).prev_sample
            if progress is not None:
                progress(i + 1, len(t_host))
        return latents.float()

    @staticmethod
    def _cfg_inputs(cond_latents, context, do_cfg):
        """UNet c_concat and context of a chunk: [zeros; cond] when guiding (inference-time null)."""
        if not do_cfg:
            return cond_latents, context
        return (
            torch.cat([torch.zeros_like(cond_latents), cond_latents]),
            torch.cat([torch.zeros_like(context), context]),
        )

    def _guided_eps(self, latents, t, cond_latents, context, guidance_scale, do_cfg):
        """eps for a chunk of views: batch [uncond; cond] when guiding, combined as e_u + s (e_c - e_u).

        ``cond_latents`` and ``context`` are the chunk's UNet inputs from :meth:`_cfg_inputs`
        (already doubled when guiding).
        """
        x = latents.to(self.unet.dtype)
        if do_cfg:
            x = torch.cat([x, x])
        unet_in = torch.cat([x, cond_latents], dim=1)  # noisy latents first, then c_concat
        out = self.unet(unet_in, t, encoder_hidden_states=context).sample.float()
        if not do_cfg:
            return out
        e_u, e_c = out.chunk(2)
        return e_u + guidance_scale * (e_c - e_u)

    # ------------------------------------------------------------------ __call__

    @torch.inference_mode()
    def __call__(
        self,
        image,
        polar_deg: Sequence[float],
        azimuth_deg: Sequence[float],
        radius: Sequence[float] | float = 0.0,
        cond_polar_deg: float | None = None,
        num_inference_steps: int = 50,
        guidance_scale: float = 3.0,
        eta: float = 1.0,
        seeds: Sequence[int] | None = None,
        ldm_timesteps: bool = True,
        max_batch: int = 0,
        output_type: str = "np",
        progress: StepProgress | None = None,
    ) -> ImagePipelineOutput:
        """N views of one image at relative poses (degrees), in one denoising loop.

        Args:
            image: uint8 [H, W, 3] RGB on white, PIL image, or float tensor [3, H, W] in [0, 1].
            polar_deg, azimuth_deg: (N,) relative polar (+ = camera down) and azimuth (+ = right).
            radius: relative radius change(s) (ignored by Stable Zero123).
            cond_polar_deg: absolute polar of ``image``; set it for Stable Zero123 only.
            seeds: one per view (default 0..N-1).
            output_type: "np" (N, H, W, 3) float in [0, 1], "pt" (N, 3, H, W), "pil" or "uint8".
        """
        # 1. Inputs
        n = len(polar_deg)
        if len(azimuth_deg) != n:
            raise ValueError(f"{n} polar angles but {len(azimuth_deg)} azimuths")
        seeds = list(range(n)) if seeds is None else list(seeds)
        if len(seeds) != n:
            raise ValueError(f"need one seed per view: {len(seeds)} seeds for {n} views")
        # 2. Encode the input once
        x = image_to_tensor(image, self.image_size).to(self.unet.device)
        clip = self.encode_clip(x)
        cond = self.encode_latents(x)
        # 3. Camera embeddings and context
        T = self.camera_embeddings(polar_deg, azimuth_deg, radius, cond_polar_deg)
        context = self.project_camera(clip.expand(n, -1), T.to(clip.device))
        # 4. Denoise all views together
        latents = self.denoise(
            cond.expand(n, -1, -1, -1), context, seeds, num_inference_steps, guidance_scale, eta,
            ldm_timesteps, max_batch, progress,
        )  # fmt: skip
        # 5. Decode
        images = self.decode_latents(latents, max_batch)
        return ImagePipelineOutput(images=to_output(images, output_type))


def images_to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) in [0, 1] -> uint8 (N, H, W, 3), quantised exactly as the original.

    One-2-3-45 (utils/zero123_utils.py) and zero123's gradio_new.py write views with
    ``(255.0 * x.numpy()).astype(np.uint8)`` on the clamped decoder output: the product
    in the tensor's own dtype (float16 under autocast), then truncation, not rounding.
    bfloat16 (no numpy type; the original never ran it) is widened to float32 first.
    """
    x = images.detach().permute(0, 2, 3, 1).cpu()
    if x.dtype not in (torch.float16, torch.float32, torch.float64):
        x = x.float()
    return (255.0 * x.numpy()).astype(np.uint8)


def to_output(images: torch.Tensor, output_type: str):
    """Convert (N, 3, H, W) in [0, 1] to the requested output type ("uint8"/"pil": :func:`images_to_uint8`)."""
    if output_type == "pt":
        return images
    if output_type == "np":
        return images.float().permute(0, 2, 3, 1).cpu().numpy()
    u8 = images_to_uint8(images)
    if output_type == "uint8":
        return u8
    if output_type == "pil":
        return [Image.fromarray(a) for a in u8]
    raise ValueError(f"output_type must be 'np', 'pt', 'pil' or 'uint8', got {output_type!r}")


def check_component_sizes(vae, image_encoder, unet, cc_projection) -> None:
    """Fail early, naming the sizes, when components do not fit together."""
    problems = []
    if unet.config.in_channels != 2 * vae.config.latent_channels:
        problems.append(
            f"unet.in_channels {unet.config.in_channels} != 2 x vae.latent_channels {vae.config.latent_channels}"
        )
    proj_in = cc_projection.config.in_channel
    clip_dim = image_encoder.config.projection_dim
    if proj_in != clip_dim + 4:
        problems.append(f"cc_projection in_channel {proj_in} != image_encoder.projection_dim {clip_dim} + 4")
    if cc_projection.config.out_channel != unet.config.cross_attention_dim:
        problems.append(
            f"cc_projection out_channel {cc_projection.config.out_channel} != unet.cross_attention_dim "
            f"{unet.config.cross_attention_dim}"
        )
    if problems:
        raise ValueError("Zero123 components do not fit together: " + "; ".join(problems))
