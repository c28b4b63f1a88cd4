"""Write diffusers/transformers Zero123 components as an original LDM checkpoint.

The inverse of the conversion, written independently of it (from the LDM module
layout: openaimodel.UNetModel, ldm AutoencoderKL, OpenAI CLIP VisionTransformer,
LitEma), so that a test can build a tiny ``.ckpt`` with the real key names and
check that conversion gives back the exact models.
"""

from __future__ import annotations

import math

import torch

RESNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
          "norm2": "out_layers.0", "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}  # fmt: skip
VAE_RESNET = {"conv_shortcut": "nin_shortcut"}
VAE_ATTN = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def _sub(sd: dict, prefix: str) -> dict:
    return {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}


def _put(out: dict, dst: str, sd: dict, rename: dict | None = None) -> None:
    for k, v in sd.items():
        for old, new in (rename or {}).items():
            if k.startswith(old + "."):
                k = new + k[len(old) :]
                break
        out[dst + k] = v


def unet_to_ldm(unet) -> dict:
    """Diffusers UNet2DConditionModel -> ``model.diffusion_model.*`` keys."""
    sd, cfg = unet.state_dict(), unet.config
    n, L = len(cfg.block_out_channels), cfg.layers_per_block
    out: dict = {}
    _put(out, "time_embed.", _sub(sd, "time_embedding."), {"linear_1": "0", "linear_2": "2"})
    _put(out, "input_blocks.0.0.", _sub(sd, "conv_in."))
    for i in range(n):
        for j in range(L):
            idx = i * (L + 1) + j + 1
            _put(out, f"input_blocks.{idx}.0.", _sub(sd, f"down_blocks.{i}.resnets.{j}."), RESNET)
            _put(out, f"input_blocks.{idx}.1.", _sub(sd, f"down_blocks.{i}.attentions.{j}."))
        _put(out, f"input_blocks.{(i + 1) * (L + 1)}.0.op.", _sub(sd, f"down_blocks.{i}.downsamplers.0.conv."))
    _put(out, "middle_block.0.", _sub(sd, "mid_block.resnets.0."), RESNET)
    _put(out, "middle_block.1.", _sub(sd, "mid_block.attentions.0."))
    _put(out, "middle_block.2.", _sub(sd, "mid_block.resnets.1."), RESNET)
    for i in range(n):
        has_attn = any(k.startswith(f"up_blocks.{i}.attentions.") for k in sd)
        for j in range(L + 1):
            idx = i * (L + 1) + j
            _put(out, f"output_blocks.{idx}.0.", _sub(sd, f"up_blocks.{i}.resnets.{j}."), RESNET)
            _put(out, f"output_blocks.{idx}.1.", _sub(sd, f"up_blocks.{i}.attentions.{j}."))
        up = _sub(sd, f"up_blocks.{i}.upsamplers.0.conv.")
        _put(out, f"output_blocks.{i * (L + 1) + L}.{2 if has_attn else 1}.conv.", up)
    _put(out, "out.0.", _sub(sd, "conv_norm_out."))
    _put(out, "out.2.", _sub(sd, "conv_out."))
    return {"model.diffusion_model." + k: v for k, v in out.items()}


def vae_to_ldm(vae) -> dict:
    """Diffusers AutoencoderKL -> ``first_stage_model.*`` keys (attention as 1x1 convs)."""
    sd, n = vae.state_dict(), len(vae.config.block_out_channels)
    out: dict = {}
    for part in ("encoder", "decoder"):
        _put(out, f"{part}.conv_in.", _sub(sd, f"{part}.conv_in."))
        _put(out, f"{part}.conv_out.", _sub(sd, f"{part}.conv_out."))
        _put(out, f"{part}.norm_out.", _sub(sd, f"{part}.conv_norm_out."))
        _put(out, f"{part}.mid.block_1.", _sub(sd, f"{part}.mid_block.resnets.0."), VAE_RESNET)
        _put(out, f"{part}.mid.block_2.", _sub(sd, f"{part}.mid_block.resnets.1."), VAE_RESNET)
        attn = {}
        _put(attn, "", _sub(sd, f"{part}.mid_block.attentions.0."), VAE_ATTN)
        for k, v in attn.items():
            out[f"{part}.mid.attn_1.{k}"] = v[:, :, None, None] if v.ndim == 2 else v
    for i in range(n):
        _put(out, f"encoder.down.{i}.block.", _sub(sd, f"encoder.down_blocks.{i}.resnets."), VAE_RESNET)
        _put(out, f"encoder.down.{i}.downsample.conv.", _sub(sd, f"encoder.down_blocks.{i}.downsamplers.0.conv."))
        ldm_i = n - 1 - i  # diffusers decoder blocks run from the lowest resolution, LDM's are indexed by level
        _put(out, f"decoder.up.{ldm_i}.block.", _sub(sd, f"decoder.up_blocks.{i}.resnets."), VAE_RESNET)
        _put(out, f"decoder.up.{ldm_i}.upsample.conv.", _sub(sd, f"decoder.up_blocks.{i}.upsamplers.0.conv."))
    fixed = {}
    for k, v in out.items():  # resnet renames inside "block.j." need the prefix split first
        parts = k.split(".")
        fixed[".".join(parts[:-2] + [VAE_RESNET.get(parts[-2], parts[-2]), parts[-1]])] = v
    _put(fixed, "quant_conv.", _sub(sd, "quant_conv."))
    _put(fixed, "post_quant_conv.", _sub(sd, "post_quant_conv."))
    return {"first_stage_model." + k: v for k, v in fixed.items()}


def clip_to_openai(clip) -> dict:
    """CLIPVisionModelWithProjection -> ``cond_stage_model.model.visual.*`` (OpenAI CLIP layout)."""
    sd = clip.state_dict()
    v = "vision_model."
    out = {
        "class_embedding": sd[v + "embeddings.class_embedding"],
        "conv1.weight": sd[v + "embeddings.patch_embedding.weight"],
        "positional_embedding": sd[v + "embeddings.position_embedding.weight"],
        "ln_pre.weight": sd[v + "pre_layrnorm.weight"], "ln_pre.bias": sd[v + "pre_layrnorm.bias"],
        "ln_post.weight": sd[v + "post_layernorm.weight"], "ln_post.bias": sd[v + "post_layernorm.bias"],
        "proj": sd["visual_projection.weight"].t().contiguous(),
    }  # fmt: skip
    for i in range(clip.config.num_hidden_layers):
        s, d = f"{v}encoder.layers.{i}.", f"transformer.resblocks.{i}."
        for p, name in (("weight", "in_proj_weight"), ("bias", "in_proj_bias")):
            out[d + "attn." + name] = torch.cat([sd[f"{s}self_attn.{q}_proj.{p}"] for q in ("q", "k", "v")])
        for new, old in (("attn.out_proj", "self_attn.out_proj"), ("ln_1", "layer_norm1"), ("ln_2", "layer_norm2"),
                         ("mlp.c_fc", "mlp.fc1"), ("mlp.c_proj", "mlp.fc2")):  # fmt: skip
            for p in ("weight", "bias"):
                out[f"{d}{new}.{p}"] = sd[f"{s}{old}.{p}"]
    return {"cond_stage_model.model.visual." + k: t for k, t in out.items()}


def ldm_checkpoint(components: dict, include_clip: bool = True, raw_offset: float = 0.5) -> dict:
    """A Zero123 LDM checkpoint dict: EMA = the given UNet, raw UNet weights offset by ``raw_offset``."""
    state: dict = {}
    unet = unet_to_ldm(components["unet"])
    for k, w in unet.items():
        state[k] = w + raw_offset  # the raw (non-EMA) weights differ: conversion must pick the EMA copy
        state["model_ema." + k[len("model.") :].replace(".", "")] = w.clone()
    state["model_ema.decay"] = torch.tensor(0.9999)
    state["model_ema.num_updates"] = torch.tensor(105000, dtype=torch.int64)
    state.update(vae_to_ldm(components["vae"]))
    cc = components["cc_projection"].projection
    state["cc_projection.weight"], state["cc_projection.bias"] = cc.weight.detach().clone(), cc.bias.detach().clone()
    if include_clip:
        state.update(clip_to_openai(components["image_encoder"]))
        state["cond_stage_model.model.logit_scale"] = torch.tensor(math.log(100.0))
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    state["betas"] = betas.float()
    state["alphas_cumprod"] = torch.cumprod(1 - betas, 0).float()
    return {"state_dict": state, "global_step": 105000, "epoch": 7}


def tiny_ldm_yaml() -> str:
    """LDM config in the layout of sd-objaverse-finetune-c_concat-256.yaml, with the tiny sizes."""
    return """model:
  target: ldm.models.diffusion.ddpm.LatentDiffusion
  params:
    linear_start: 0.00085
    linear_end: 0.0120
    timesteps: 1000
    conditioning_key: hybrid
    scale_factor: 0.18215
    unet_config:
      target: ldm.modules.diffusionmodules.openaimodel.UNetModel
      params:
        image_size: 8
        in_channels: 8
        out_channels: 4
        model_channels: 32
        attention_resolutions: [1]
        num_res_blocks: 1
        channel_mult: [1, 2]
        num_heads: 2
        use_spatial_transformer: True
        transformer_depth: 1
        context_dim: 32
        legacy: False
    first_stage_config:
      target: ldm.models.autoencoder.AutoencoderKL
      params:
        embed_dim: 4
        ddconfig:
          double_z: true
          z_channels: 4
          resolution: 64
          in_channels: 3
          out_ch: 3
          ch: 32
          ch_mult: [1, 1, 1, 1]
          num_res_blocks: 1
          attn_resolutions: []
          dropout: 0.0
"""
