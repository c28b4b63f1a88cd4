"""Tiny random Zero123 components (diffusers-test style) for CPU tests.

Channel counts are multiples of 32 because LDM's GroupNorm uses 32 groups (the
tiny LDM checkpoint of the conversion test must be loadable with the same layout).
A 64-px image gives an 8x8 latent; CLIP sees 32 px.
"""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

from one2345_ros.views.zero123.pipeline import CCProjection, Zero123Pipeline
from one2345_ros.views.zero123.weights import zero123_ddim_scheduler

CROSS_DIM = 32

UNET_CONFIG = {
    "sample_size": 8, "in_channels": 8, "out_channels": 4, "block_out_channels": (32, 64), "layers_per_block": 1,
    "down_block_types": ("CrossAttnDownBlock2D", "DownBlock2D"), "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D"),
    "cross_attention_dim": CROSS_DIM, "attention_head_dim": 2,
}  # fmt: skip
VAE_CONFIG = {
    "sample_size": 64, "in_channels": 3, "out_channels": 3, "block_out_channels": (32, 32, 32, 32),
    "layers_per_block": 1,
    "down_block_types": ("DownEncoderBlock2D",) * 4, "up_block_types": ("UpDecoderBlock2D",) * 4, "latent_channels": 4,
    "scaling_factor": 0.18215,
}  # fmt: skip
CLIP_CONFIG = {
    "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 1, "image_size": 32,
    "patch_size": 8,
    "projection_dim": CROSS_DIM, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5,
}  # fmt: skip


def tiny_components(seed: int = 0, camera_embedding: str = "delta_radius", latent_size: int = 8) -> dict:
    """Tiny components; ``latent_size`` 8 gives 64-px images, 4 gives 32 px (benchmarks/gpu_suite.py --small)."""
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(**{**UNET_CONFIG, "sample_size": latent_size})
    # Random init leaves zero-initialised output layers: perturb every weight so
    # tests see every parameter (a zero conv_out would make all views equal).
    with torch.no_grad():
        for p in unet.parameters():
            p.add_(0.05 * torch.randn_like(p))
    vae = AutoencoderKL(**{**VAE_CONFIG, "sample_size": 8 * latent_size})
    clip = CLIPVisionModelWithProjection(CLIPVisionConfig(**CLIP_CONFIG))
    cc = CCProjection(CROSS_DIM + 4, CROSS_DIM, camera_embedding=camera_embedding)
    return {
        "vae": vae.eval(),
        "image_encoder": clip.eval(),
        "unet": unet.eval(),
        "scheduler": zero123_ddim_scheduler(),
        "cc_projection": cc.eval(),
    }


def tiny_pipeline(seed: int = 0, camera_embedding: str = "delta_radius") -> Zero123Pipeline:
    return Zero123Pipeline(**tiny_components(seed, camera_embedding))
