"""Original LDM Zero123 checkpoints (.ckpt) -> Zero123Pipeline / diffusers folder.

Covers Zero123 (105000/165000...), Zero123-XL and Stable Zero123, which share
``sd-objaverse-finetune-c_concat-256.yaml`` (:data:`ZERO123_LDM_CONFIG`). What the
diffusers script gets wrong and this does right (reference/zero123.md §2):

* betas come from the config's ``linear_start`` / ``linear_end`` (0.00085 / 0.012),
  and are cross-checked against the ``betas`` buffer LDM saves in the checkpoint;
* the UNet weights are the EMA shadow weights (``model_ema.<name without dots>``),
  which the original inference uses (``ema_scope``); every one must be present;
* the CLIP image tower is converted from ``cond_stage_model.model.visual.*``
  (OpenAI CLIP layout) instead of being downloaded; without it a local
  ``--image-encoder DIR`` is required.

The LDM -> diffusers key renaming of the UNet and VAE is diffusers' own
(``single_file_utils``); every converted component is then checked strictly.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import torch
import yaml
from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint
from transformers import CLIPVisionConfig

from .pipeline import Zero123Pipeline
from .weights import (
    Zero123WeightsError,
    build_cc_projection,
    build_image_encoder,
    build_unet,
    build_vae,
    find_weight_file,
    read_json,
    read_state_dict,
    zero123_ddim_scheduler,
)

log = logging.getLogger(__name__)

UNET_PREFIX = "model.diffusion_model."
EMA_PREFIX = "model_ema."
CLIP_VISUAL_PREFIX = "cond_stage_model.model.visual."
CC_PREFIX = "cc_projection."

ZERO123_LDM_CONFIG = {
    "model": {
        "params": {
            "linear_start": 0.00085, "linear_end": 0.012, "timesteps": 1000, "scale_factor": 0.18215,
            "conditioning_key": "hybrid",
            "unet_config": {"params": {
                "image_size": 32, "in_channels": 8, "out_channels": 4, "model_channels": 320,
                "attention_resolutions": [4, 2, 1], "num_res_blocks": 2, "channel_mult": [1, 2, 4, 4],
                "num_heads": 8, "use_spatial_transformer": True, "transformer_depth": 1, "context_dim": 768,
                "legacy": False,
            }},
            "first_stage_config": {"params": {"embed_dim": 4, "ddconfig": {
                "double_z": True, "z_channels": 4, "resolution": 256, "in_channels": 3, "out_ch": 3, "ch": 128,
                "ch_mult": [1, 2, 4, 4], "num_res_blocks": 2, "attn_resolutions": [], "dropout": 0.0,
            }}},
        }
    }
}  # fmt: skip
"""The parts of zero123/configs/sd-objaverse-finetune-c_concat-256.yaml the conversion needs."""

ZERO123_CLIP_CONFIG = {
    "hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24, "num_attention_heads": 16,
    "image_size": 224, "patch_size": 14, "projection_dim": 768, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5,
}  # fmt: skip
"""CLIPVisionConfig of Zero123's image encoder (OpenAI CLIP ViT-L/14, as FrozenCLIPImageEmbedder)."""


# --------------------------------------------------------------------- configs


def load_ldm_config(path: str | Path | None) -> dict:
    """An LDM YAML config (``model.params...``), or the built-in Zero123 one."""
    if path is None:
        return ZERO123_LDM_CONFIG
    try:
        cfg = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise Zero123WeightsError(f"cannot read LDM config {path}: {exc}") from exc
    if not isinstance(cfg, dict) or "unet_config" not in cfg.get("model", {}).get("params", {}):
        raise Zero123WeightsError(f"{path}: not an LDM config (no model.params.unet_config)")
    return cfg


def unet_config_from_ldm(ldm: dict) -> dict:
    """UNet2DConditionModel config of an LDM UNetModel.

    Hand-written because diffusers' create_unet_diffusers_config_from_ldm infers the
    image size from a table of known model types, which does not include Zero123.
    """
    p = ldm["model"]["params"]["unet_config"]["params"]
    block_out = [p["model_channels"] * m for m in p["channel_mult"]]
    attn = [2**i in p["attention_resolutions"] for i in range(len(block_out))]
    if p.get("num_heads", -1) and p.get("num_heads", -1) > 0:
        heads = p["num_heads"]  # diffusers' legacy "attention_head_dim" of SD-1 means the number of heads
    else:
        heads = [c // p["num_head_channels"] for c in block_out]
    return {
        "sample_size": p["image_size"],
        "in_channels": p["in_channels"],
        "out_channels": p["out_channels"],
        "block_out_channels": block_out,
        "layers_per_block": p["num_res_blocks"],
        "down_block_types": ["CrossAttnDownBlock2D" if a else "DownBlock2D" for a in attn],
        "up_block_types": ["CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attn)],
        "cross_attention_dim": p["context_dim"],
        "attention_head_dim": heads,
        "use_linear_projection": bool(p.get("use_linear_in_transformer", False)),
        "transformer_layers_per_block": p.get("transformer_depth", 1),
    }


def vae_config_from_ldm(ldm: dict) -> dict:
    """AutoencoderKL config of an LDM AutoencoderKL (kl-f8 for Zero123)."""
    params = ldm["model"]["params"]
    dd = params["first_stage_config"]["params"]["ddconfig"]
    n = len(dd["ch_mult"])
    return {
        "sample_size": dd["resolution"],
        "in_channels": dd["in_channels"],
        "out_channels": dd["out_ch"],
        "block_out_channels": [dd["ch"] * m for m in dd["ch_mult"]],
        "down_block_types": ["DownEncoderBlock2D"] * n,
        "up_block_types": ["UpDecoderBlock2D"] * n,
        "latent_channels": dd["z_channels"],
        "layers_per_block": dd["num_res_blocks"],
        "scaling_factor": params.get("scale_factor", 0.18215),
    }


def check_betas(state: dict, ldm: dict, source: str) -> None:
    """The checkpoint's ``betas`` buffer (if saved) must be LDM's 'linear' schedule of the config."""
    p = ldm["model"]["params"]
    start, end, steps = p.get("linear_start", 0.00085), p.get("linear_end", 0.012), p.get("timesteps", 1000)
    if abs(start - 0.00085) > 1e-12 or abs(end - 0.012) > 1e-12:
        raise Zero123WeightsError(f"LDM config betas {start}/{end} are not Zero123's 0.00085/0.012")
    if "betas" not in state:
        return
    expected = np.linspace(math.sqrt(start), math.sqrt(end), steps, dtype=np.float64) ** 2
    found = state["betas"].double().numpy()
    if found.shape != expected.shape or not np.allclose(found, expected, rtol=1e-5, atol=1e-9):
        raise Zero123WeightsError(f"{source}: the saved 'betas' buffer is not the linear {start}..{end} schedule")


# --------------------------------------------------------------------- weights


def ema_unet_state(state: dict, source: str, use_ema: bool = True) -> dict:
    """``model.diffusion_model.*`` tensors, taken from the EMA shadow copy when there is one.

    LitEma names its buffers after the parameter names with the dots removed:
    ``model.diffusion_model.input_blocks.0.0.weight`` ->
    ``model_ema.diffusion_modelinput_blocks00weight``.
    """
    unet = {k: v for k, v in state.items() if k.startswith(UNET_PREFIX)}
    if not unet:
        raise Zero123WeightsError(f"{source}: no '{UNET_PREFIX}*' keys; not an LDM Zero123 checkpoint")
    if not use_ema:
        return unet
    if not has_ema_weights(state):
        log.warning("%s has no EMA weights (model_ema.*); converting the raw UNet weights", source)
        return unet
    out, missing = {}, []
    for key in unet:
        flat = EMA_PREFIX + key[len("model.") :].replace(".", "")
        if flat in state:
            out[key] = state[flat]
        else:
            missing.append(flat)
    if missing:
        more = f" ... and {len(missing) - 8} more" if len(missing) > 8 else ""
        raise Zero123WeightsError(f"{source}: EMA weights incomplete, missing {', '.join(missing[:8])}{more}")
    return out


def has_ema_weights(state: dict) -> bool:
    """Whether an LDM checkpoint holds LitEma shadow weights (``model_ema.*`` besides decay/num_updates)."""
    return any(k.startswith(EMA_PREFIX) and k not in ("model_ema.decay", "model_ema.num_updates") for k in state)


def convert_clip_visual(state: dict) -> tuple[CLIPVisionConfig, dict] | None:
    """OpenAI CLIP ``visual.*`` -> (CLIPVisionConfig, CLIPVisionModelWithProjection state); None if absent.

    OpenAI's VisionTransformer has heads = width // 64 and QuickGELU; its fused
    ``in_proj`` is split into q, k, v and ``proj`` (width, dim) is transposed.
    """
    vis = {k[len(CLIP_VISUAL_PREFIX) :]: v for k, v in state.items() if k.startswith(CLIP_VISUAL_PREFIX)}
    if not vis:
        return None
    width = vis["class_embedding"].shape[0]
    layers = 1 + max(int(k.split(".")[2]) for k in vis if k.startswith("transformer.resblocks."))
    patch = vis["conv1.weight"].shape[-1]
    grid = round(math.sqrt(vis["positional_embedding"].shape[0] - 1))
    config = CLIPVisionConfig(
        hidden_size=width,
        intermediate_size=vis["transformer.resblocks.0.mlp.c_fc.weight"].shape[0],
        num_hidden_layers=layers,
        num_attention_heads=max(1, width // 64),
        image_size=grid * patch,
        patch_size=patch,
        projection_dim=vis["proj"].shape[1],
        hidden_act="quick_gelu",
        layer_norm_eps=1e-5,
    )
    pre = "vision_model."
    out = {
        pre + "embeddings.class_embedding": vis["class_embedding"],
        pre + "embeddings.patch_embedding.weight": vis["conv1.weight"],
        pre + "embeddings.position_embedding.weight": vis["positional_embedding"],
        pre + "pre_layrnorm.weight": vis["ln_pre.weight"],
        pre + "pre_layrnorm.bias": vis["ln_pre.bias"],
        pre + "post_layernorm.weight": vis["ln_post.weight"],
        pre + "post_layernorm.bias": vis["ln_post.bias"],
        "visual_projection.weight": vis["proj"].t().contiguous(),
    }
    for i in range(layers):
        src, dst = f"transformer.resblocks.{i}.", f"{pre}encoder.layers.{i}."
        q, k, v = vis[src + "attn.in_proj_weight"].chunk(3)
        qb, kb, vb = vis[src + "attn.in_proj_bias"].chunk(3)
        for name, w, b in (("q_proj", q, qb), ("k_proj", k, kb), ("v_proj", v, vb)):
            out[f"{dst}self_attn.{name}.weight"], out[f"{dst}self_attn.{name}.bias"] = w.contiguous(), b.contiguous()
        renames = {"attn.out_proj": "self_attn.out_proj", "ln_1": "layer_norm1", "ln_2": "layer_norm2",
                   "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2"}  # fmt: skip
        for old, new in renames.items():
            for p in ("weight", "bias"):
                out[f"{dst}{new}.{p}"] = vis[f"{src}{old}.{p}"]
    return config, out


def infer_camera_embedding(path: Path, requested: str = "auto") -> str:
    """'cond_polar' for Stable Zero123 checkpoints (file name), else 'delta_radius', unless given."""
    if requested != "auto":
        return requested
    name = path.name.lower().replace("-", "_")
    return "cond_polar" if "stable_zero123" in name else "delta_radius"


def pipeline_from_ldm_checkpoint(
    path: str | Path,
    original_config: str | Path | None = None,
    image_encoder_dir: str | Path | None = None,
    allow_pickle: bool = False,
    camera_embedding: str = "auto",
    use_ema: bool = True,
    dtype: torch.dtype = torch.float32,
) -> Zero123Pipeline:
    """Build a Zero123Pipeline from an original LDM checkpoint, every part checked strictly."""
    path = Path(path)
    state = read_state_dict(path, allow_pickle)
    ldm = load_ldm_config(original_config)
    check_betas(state, ldm, str(path))

    unet_cfg = unet_config_from_ldm(ldm)
    ema = use_ema and has_ema_weights(state)
    unet_state = convert_ldm_unet_checkpoint(ema_unet_state(state, str(path), use_ema), unet_cfg)
    unet = build_unet(unet_cfg, unet_state, f"{path} (UNet, {'EMA' if ema else 'raw'} weights)", dtype)

    vae_cfg = vae_config_from_ldm(ldm)
    vae_ldm_state = {k: v for k, v in state.items() if k.startswith("first_stage_model.")}
    vae_state = convert_ldm_vae_checkpoint(vae_ldm_state, vae_cfg)
    vae = build_vae(vae_cfg, vae_state, f"{path} (first_stage_model)", dtype)

    cc_state = {"projection." + k[len(CC_PREFIX) :]: v for k, v in state.items() if k.startswith(CC_PREFIX)}
    cc = build_cc_projection(cc_state, f"{path} (cc_projection)", infer_camera_embedding(path, camera_embedding), dtype)

    clip = convert_clip_visual(state)
    if clip is not None:
        image_encoder = build_image_encoder(clip[0], clip[1], f"{path} ({CLIP_VISUAL_PREFIX}*)", dtype)
    elif image_encoder_dir is not None:
        image_encoder = _image_encoder_from_dir(Path(image_encoder_dir), allow_pickle, dtype)
    else:
        raise Zero123WeightsError(
            f"{path} holds no CLIP image encoder ({CLIP_VISUAL_PREFIX}*): pass --image-encoder DIR, a local "
            "CLIPVisionModelWithProjection folder (e.g. the image_encoder/ of lambdalabs/sd-image-variations-diffusers "
            "or of a kxic/zero123-xl download)"
        )
    del state
    pipe = Zero123Pipeline(
        vae=vae, image_encoder=image_encoder, unet=unet, scheduler=zero123_ddim_scheduler(), cc_projection=cc
    )
    if ema:
        basis = "the checkpoint's model_ema.* shadow weights (as the original's ema_scope)"
    elif use_ema:
        basis = "the checkpoint has no model_ema.* weights: raw weights"
    else:
        basis = "raw model.diffusion_model.* weights requested"
    pipe.weights_info = {
        "source": str(path), "kind": "ldm_checkpoint", "layout": None, "variant": "ema" if ema else "main",
        "variant_requested": "ema" if use_ema else "main", "ema": ema, "ema_basis": basis,
        "files": {name: str(path) for name in ("unet", "vae", "cc_projection")}
        | {"image_encoder": str(path) if clip is not None else str(image_encoder_dir)},
    }  # fmt: skip
    return pipe


def _image_encoder_from_dir(folder: Path, allow_pickle: bool, dtype: torch.dtype):
    """A CLIPVisionModelWithProjection folder, or a Zero123 folder holding one in image_encoder/."""
    if (folder / "image_encoder").is_dir():
        folder = folder / "image_encoder"
    file = find_weight_file(folder, "transformers")
    config = CLIPVisionConfig.from_dict(read_json(folder / "config.json"))
    return build_image_encoder(config, read_state_dict(file, allow_pickle), str(file), dtype)
