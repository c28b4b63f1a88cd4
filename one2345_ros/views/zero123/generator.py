"""Zero123 behind the ViewGenerator protocol: presets, device policy, batched requests.

:meth:`Zero123Generator.generate_batch` runs the targets of several conditioning
images (each view with its own conditioning latents, CLIP embedding and T) in one
denoising loop; the view plan uses it to give the GPU few, large batches.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler
from PIL import Image

from ...config import Zero123Config, torch_device
from ...geometry.cameras import VIEW_SIZE
from ..base import ProgressFn, ViewRequest, check_generate_args
from .pipeline import Zero123Pipeline, image_to_tensor, steps_run, to_output

log = logging.getLogger(__name__)

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
DTYPE_NAMES = {v: k for k, v in DTYPES.items()}
DEFAULT_COND_POLAR_DEG = 90.0
"""Absolute input polar assumed for Stable Zero123 before the elevation is known (DESIGN.md)."""


@dataclass(frozen=True)
class Preset:
    scheduler: str
    """'ddim' (LDM timesteps) or 'dpmpp_2m'."""
    eta: float
    steps_stage1: int
    steps_stage2: int


PRESETS = {
    "faithful": Preset("ddim", 1.0, 75, 50),  # One-2-3-45: DDIM eta 1, 75 / 50 steps (runs 76 / 49)
    "fast": Preset("dpmpp_2m", 0.0, 20, 20),  # DPM-Solver++ 2M, ~20 steps
}


CPU_REFUSAL = (
    "Zero123 would run on the CPU: one reconstruction (40 views x 50-75 denoising steps of an 860M-parameter "
    "UNet) takes hours there. Use a CUDA GPU, or set zero123.allow_cpu: true (--allow-cpu) to run anyway."
)


def apply_speed_options(pipe: Zero123Pipeline, compile: bool = False, channels_last: bool | None = None) -> bool:
    """SDPA attention; on CUDA a channels-last UNet and, with ``compile``, ``torch.compile`` (fullgraph).

    The models stay where they are (resident between requests). ``channels_last``
    None = on for CUDA. Returns whether the UNet was compiled. benchmarks/gpu_suite.py
    measures exactly this.
    """
    pipe.use_sdpa()
    cuda = pipe.unet.device.type == "cuda"
    if channels_last if channels_last is not None else cuda:
        pipe.unet.to(memory_format=torch.channels_last)
    if compile and not cuda:
        log.warning("zero123.compile is only used on CUDA; ignored on %s", pipe.unet.device)
        return False
    if compile:
        compile_unet(pipe.unet)
    return compile


def compile_unet(unet) -> None:
    """``torch.compile`` the UNet in place as zero123.compile does (fullgraph; compiles on the first call)."""
    unet.compile(fullgraph=True)


def make_scheduler(preset: str, base_config):
    """The preset's scheduler, with the training schedule of ``base_config`` (a DDIM config)."""
    if preset not in PRESETS:
        raise ValueError(f"zero123.preset must be one of {sorted(PRESETS)}, got {preset!r}")
    if PRESETS[preset].scheduler == "ddim":
        return DDIMScheduler.from_config(base_config)
    return DPMSolverMultistepScheduler.from_config(
        base_config, algorithm_type="dpmsolver++", solver_order=2, timestep_spacing="trailing", steps_offset=0
    )


class Zero123Generator:
    """ViewGenerator on a :class:`Zero123Pipeline`.

    Images come back as uint8 [N, 256, 256, 3]; tiny test models working at a
    smaller size are resized to 256 at both ends.
    """

    name = "zero123"

    def __init__(
        self,
        pipe: Zero123Pipeline,
        preset: str = "faithful",
        steps_stage1: int = 0,
        steps_stage2: int = 0,
        guidance_scale: float = 3.0,
        max_batch: int = 32,
    ):
        self.pipe = pipe
        if preset not in PRESETS:
            raise ValueError(f"zero123.preset must be one of {sorted(PRESETS)}, got {preset!r}")
        self.preset_name = preset
        self.preset = PRESETS[preset]
        pipe.scheduler = make_scheduler(preset, pipe.scheduler.config)
        self.steps = {1: steps_stage1 or self.preset.steps_stage1, 2: steps_stage2 or self.preset.steps_stage2}
        for n in self.steps.values():
            steps_run(n, self.ldm_timesteps)  # the original's DDIM needs >= 2: fail here, not mid-plan
        self.guidance_scale = guidance_scale
        self.max_batch = max_batch
        self.compiled = False
        """Whether from_config compiled the UNet (torch.compile, CUDA only)."""

    @property
    def ldm_timesteps(self) -> bool:
        """True when the sampler runs the original's DDIM timesteps (faithful preset)."""
        return self.preset.scheduler == "ddim"

    @classmethod
    def from_config(cls, cfg: Zero123Config) -> Zero123Generator:
        """Load weights (``cfg.model`` or $ONE2345_ZERO123), apply the device policy and speed options.

        On CUDA the UNet runs channels-last (and compiled with ``cfg.compile``); the
        models stay resident on the device between requests.
        """
        from .loading import load_zero123, resolve_zero123_source

        device = torch_device(cfg.device, cfg.allow_cpu, CPU_REFUSAL)
        if cfg.dtype not in DTYPES:
            raise ValueError(f"zero123.dtype must be one of {sorted(DTYPES)}, got {cfg.dtype!r}")
        source = resolve_zero123_source(cfg.model or None)
        pipe = load_zero123(
            source, DTYPES[cfg.dtype], cfg.allow_pickle, cfg.image_encoder or None, cfg.camera_embedding,
            variant=cfg.variant,
        )  # fmt: skip
        pipe.to(device)
        compiled = apply_speed_options(pipe, cfg.compile)
        gen = cls(pipe, cfg.preset, cfg.steps_stage1, cfg.steps_stage2, cfg.guidance_scale, cfg.max_batch)
        gen.compiled = compiled
        return gen

    def describe(self) -> dict:
        """What generates the views, JSON-ready (for result.json).

        Keys: ``model`` (folder or .ckpt path; None for in-memory weights), ``weights_kind``
        ('diffusers_folder' | 'ldm_checkpoint' | 'in_memory'), ``layout`` ('A' | 'B' | None),
        ``variant`` (UNet weight files loaded: 'main', 'fp16', 'fp16_ema', 'ema'; a .ckpt: 'ema'
        or 'main'), ``variant_requested``, ``ema`` (true | false | null = unknown),
        ``ema_basis`` (why), ``files`` (component -> path), ``camera_embedding``, ``dtype``
        ('fp32' | 'fp16' | 'bf16'), ``device``, ``preset``, ``scheduler`` ('ddim_ldm' |
        'dpmpp_2m'), ``eta``, ``steps`` and ``denoising_steps_run`` ({'stage1', 'stage2'}:
        configured, and UNet calls per view the sampler makes, e.g. 75 -> 76), ``guidance_scale``,
        ``max_batch``, ``compile``, ``channels_last``, ``attention`` ({'processors': [...],
        'sdpa_backends': [...] from the first generation, or null before it}), ``uint8``
        ('truncate', as the original).
        """
        pipe = self.pipe
        info = pipe.weights_info
        processors = sorted({type(p).__name__ for p in pipe.unet.attn_processors.values()})
        backends = pipe.attention_backends
        conv_in = pipe.unet.conv_in.weight
        return {
            "model": info.get("source"),
            "weights_kind": info.get("kind"),
            "layout": info.get("layout"),
            "variant": info.get("variant"),
            "variant_requested": info.get("variant_requested"),
            "ema": info.get("ema"),
            "ema_basis": info.get("ema_basis"),
            "files": dict(info.get("files") or {}),
            "camera_embedding": pipe.cc_projection.config.camera_embedding,
            "dtype": DTYPE_NAMES.get(pipe.unet.dtype, str(pipe.unet.dtype)),
            "device": str(pipe.unet.device),
            "preset": self.preset_name,
            "scheduler": "ddim_ldm" if self.ldm_timesteps else self.preset.scheduler,
            "eta": self.preset.eta,
            "steps": {"stage1": self.steps[1], "stage2": self.steps[2]},
            "denoising_steps_run": {f"stage{k}": steps_run(n, self.ldm_timesteps) for k, n in self.steps.items()},
            "guidance_scale": self.guidance_scale,
            "max_batch": self.max_batch,
            "compile": self.compiled,
            "channels_last": conv_in.dim() == 4 and conv_in.is_contiguous(memory_format=torch.channels_last)
            and not conv_in.is_contiguous(),
            "attention": {"processors": processors, "sdpa_backends": list(backends) if backends else None},
            "uint8": "truncate",
        }

    # ------------------------------------------------------------------ protocol

    def generate(
        self,
        cond_image: np.ndarray,
        cond_pose: tuple[float, float],
        targets: Sequence[tuple[float, float, float]],
        input_polar_deg: float | None,
        seeds: Sequence[int],
        progress: ProgressFn | None = None,
        stage: int = 1,
    ) -> np.ndarray:
        """uint8 [N, 256, 256, 3] views of ``cond_image`` at ``targets`` (ViewGenerator contract)."""
        request = ViewRequest(cond_image, tuple(cond_pose), tuple(tuple(t) for t in targets), tuple(seeds))
        return self.generate_batch([request], input_polar_deg, progress, stage=stage)[0]

    def generate_batch(
        self,
        requests: Sequence[ViewRequest],
        input_polar_deg: float | None = None,
        progress: ProgressFn | None = None,
        stage: int = 1,
    ) -> list[np.ndarray]:
        """All targets of all ``requests`` in one denoising loop; one uint8 [N_i, 256, 256, 3] array per request.

        ``stage`` (1 or 2) picks the preset's step count. Stable Zero123 conditions
        each view on ``input_polar_deg`` (else 90) + the request's cond polar.
        """
        if stage not in self.steps:
            raise ValueError(f"stage must be 1 or 2, got {stage!r}")
        for r in requests:
            check_generate_args(r.cond_image, r.targets, r.seeds)
        pipe = self.pipe
        counts = [len(r.targets) for r in requests]
        owner = torch.tensor([i for i, n in enumerate(counts) for _ in range(n)], dtype=torch.long)
        # 1. Encode every conditioning image once, in batches.
        images = torch.cat([image_to_tensor(r.cond_image, pipe.image_size) for r in requests]).to(pipe.unet.device)
        clip, cond = self._encode(images)
        # 2. One T per view, from its own request's pose.
        T = self.request_embeddings(requests, input_polar_deg)
        context = pipe.project_camera(clip[owner.to(clip.device)], T.to(clip.device))
        seeds = [s for r in requests for s in r.seeds]
        # 3. Denoise all views together, 4. decode.
        latents = pipe.denoise(
            cond[owner.to(cond.device)], context, seeds, self.steps[stage], self.guidance_scale, self.preset.eta,
            ldm_timesteps=self.ldm_timesteps, max_batch=self.max_batch, progress=progress,
        )  # fmt: skip
        out = to_output(pipe.decode_latents(latents, self.max_batch), "uint8")
        out = resize_views(out, VIEW_SIZE)
        return list(np.split(out, np.cumsum(counts)[:-1]))

    def request_embeddings(self, requests: Sequence[ViewRequest], input_polar_deg: float | None) -> torch.Tensor:
        """T (N, 4) of every target of every request, in order.

        Stable Zero123's conditioning polar is the input's absolute polar (or 90 when
        unknown) plus the request's cond polar offset.
        """
        def base(r: ViewRequest) -> float:
            polar = r.input_polar_deg if r.input_polar_deg is not None else input_polar_deg
            return DEFAULT_COND_POLAR_DEG if polar is None else float(polar)

        d_polar = [t[0] for r in requests for t in r.targets]
        d_az = [t[1] for r in requests for t in r.targets]
        d_r = [t[2] for r in requests for t in r.targets]
        cond_polar = [base(r) + r.cond_pose[0] for r in requests for _ in r.targets]
        return self.pipe.camera_embeddings(d_polar, d_az, d_r, cond_polar)

    def _encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        step = self.max_batch if self.max_batch > 0 else len(images)
        clip, cond = [], []
        for start in range(0, len(images), step):
            chunk = images[start : start + step]
            clip.append(self.pipe.encode_clip(chunk))
            cond.append(self.pipe.encode_latents(chunk))
        return torch.cat(clip), torch.cat(cond)


def resize_views(views: np.ndarray, size: int) -> np.ndarray:
    """uint8 [N, h, w, 3] -> [N, size, size, 3] (identity for the real 256-px model)."""
    if views.shape[1:3] == (size, size):
        return views
    return np.stack([np.asarray(Image.fromarray(v).resize((size, size), Image.BICUBIC)) for v in views])
