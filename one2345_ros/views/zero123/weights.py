"""Zero123 weight files: reading (safetensors first, pickles only with weights_only=True), strict loading.

Shared by the folder loader (:mod:`loading`) and the LDM checkpoint converter (:mod:`convert`).
diffusers and transformers only warn about missing keys and initialise them randomly; here every
component is checked key by key and shape by shape, so random weights can never slip through.
"""

from __future__ import annotations

import json
import logging
import pickle
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

from .pipeline import CCProjection

log = logging.getLogger(__name__)

ZERO123_BETA_START = 0.00085
ZERO123_BETA_END = 0.012
"""linear_start / linear_end of sd-objaverse-finetune-c_concat-256.yaml (all three checkpoints)."""

TOLERATED_UNEXPECTED_SUFFIXES = ("embeddings.position_ids",)
"""Old transformers checkpoints saved CLIP's position_ids buffer; it is recomputed, not loaded."""

HOW_TO_GET = (
    "Get the weights on a machine with network access and copy them here: a diffusers folder "
    "(kxic/zero123-xl or bennyguo/zero123-xl-diffusers on the Hugging Face Hub, e.g. "
    "`huggingface-cli download kxic/zero123-xl --local-dir zero123-xl`), or an original checkpoint "
    "(zero123-xl.ckpt, cvlab/zero123-weights 105000.ckpt, stabilityai/stable-zero123) converted with "
    "`one2345 convert-zero123 CKPT OUT_DIR`. Then pass --zero123 DIR|CKPT or set ONE2345_ZERO123."
)


class Zero123WeightsError(ValueError):
    """Zero123 weights are missing or do not match; the message names the file and keys."""


MAIN_VARIANT = "main"
"""Name used here for a component's default weight files (no variant tag)."""

WEIGHT_NAMES = {
    "diffusers": ("diffusion_pytorch_model", "diffusion_pytorch_model"),
    "transformers": ("model", "pytorch_model"),
}
"""(safetensors stem, pickle stem) of each library's weight files."""


def weight_file_names(library: str = "diffusers", variant: str | None = None) -> list[str]:
    """File names of one component's weights, safetensors first (diffusers' variant naming).

    ``diffusion_pytorch_model.<variant>.safetensors`` / ``model.<variant>.safetensors``
    (transformers), then the ``.bin`` pickles; ``variant`` None or 'main' = no tag.
    """
    safe_stem, bin_stem = WEIGHT_NAMES[library]
    tag = f".{variant}" if variant and variant != MAIN_VARIANT else ""
    return [f"{safe_stem}{tag}.safetensors", f"{bin_stem}{tag}.bin"]


def find_weight_file(subdir: Path, library: str = "diffusers", variant: str | None = None) -> Path:
    """The safetensors weight file, else the ``.bin`` pickle; error listing what was looked for."""
    names = weight_file_names(library, variant)
    for name in names:
        if (subdir / name).is_file():
            return subdir / name
    if (subdir / f"{names[0]}.index.json").is_file():
        raise Zero123WeightsError(f"{subdir}: sharded weights are not supported; re-save with a larger max_shard_size")
    found = available_variants(subdir, library)
    have = f" (variants there: {', '.join(found)})" if found else ""
    raise Zero123WeightsError(f"no weight file in {subdir}: looked for {', '.join(names)}{have}. {HOW_TO_GET}")


def available_variants(subdir: Path, library: str = "diffusers") -> list[str]:
    """Variants of a component folder's weight files: 'main' (no tag) and each ``<stem>.<tag>.*``, sorted."""
    stems = set(WEIGHT_NAMES[library])
    found = set()
    if not Path(subdir).is_dir():
        return []
    for f in Path(subdir).iterdir():
        for suffix in (".safetensors", ".bin"):
            if not f.name.endswith(suffix) or not f.is_file():
                continue
            base = f.name[: -len(suffix)]
            for stem in stems:
                if base == stem:
                    found.add(MAIN_VARIANT)
                elif base.startswith(stem + "."):
                    found.add(base[len(stem) + 1 :])
    return sorted(found, key=lambda v: (v != MAIN_VARIANT, v))


# --------------------------------------------------------------------- reading


def read_state_dict(path: Path, allow_pickle: bool = False) -> dict[str, torch.Tensor]:
    """Tensors of a safetensors file or a pickle (``weights_only=True`` unless ``allow_pickle``).

    LDM checkpoints wrap the weights in ``{"state_dict": ...}``; that level is removed.
    """
    path = Path(path)
    if not path.is_file():
        raise Zero123WeightsError(f"weight file not found: {path}. {HOW_TO_GET}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as exc:  # safetensors raises its own error types
            raise Zero123WeightsError(f"{path}: not a readable safetensors file ({exc})") from exc
    try:
        obj = _torch_load(path, weights_only=True)
    except pickle.UnpicklingError as exc:
        if not allow_pickle:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise Zero123WeightsError(
                f"{path}: torch.load(weights_only=True) refused this pickle ({first}). Convert it to safetensors, "
                "or, only if you trust the file, allow full unpickling with --allow-pickle (zero123.allow_pickle)."
            ) from exc
        log.warning("loading %s with full unpickling (allow_pickle): only do this for trusted files", path)
        obj = _torch_load(path, weights_only=False)
    except Exception as exc:  # torch raises RuntimeError, EOFError, ... for truncated or foreign files
        raise Zero123WeightsError(f"{path}: corrupt or truncated checkpoint, torch.load failed: {type(exc).__name__}: "
                                  f"{exc}. Copy or convert the weights again. {HOW_TO_GET}") from exc
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise Zero123WeightsError(f"{path}: expected a dict of tensors, got {type(obj).__name__}")
    return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def _torch_load(path: Path, weights_only: bool):
    try:  # mmap avoids a second copy of multi-GB checkpoints; legacy (non-zip) files cannot be mapped
        return torch.load(path, map_location="cpu", weights_only=weights_only, mmap=True)
    except RuntimeError as exc:
        if "mmap" not in str(exc) and "zip" not in str(exc):
            raise
        return torch.load(path, map_location="cpu", weights_only=weights_only)


# --------------------------------------------------------------------- strict loading


def check_state_dict(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Raise Zero123WeightsError naming ``source`` and every missing, unexpected or misshapen key."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in state.items()}
    missing = sorted(k for k in expected if k not in found and not k.endswith(TOLERATED_UNEXPECTED_SUFFIXES))
    unexpected = sorted(k for k in found if k not in expected and not k.endswith(TOLERATED_UNEXPECTED_SUFFIXES))
    shapes = sorted(f"{k} {found[k]} (model {expected[k]})" for k in expected if k in found and found[k] != expected[k])
    if missing or unexpected or shapes:
        parts = []
        for title, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes)):
            if items:
                more = f" ... and {len(items) - 8} more" if len(items) > 8 else ""
                parts.append(f"{title} ({len(items)}): {', '.join(items[:8])}{more}")
        raise Zero123WeightsError(f"{source} does not match {type(model).__name__}: " + "; ".join(parts))


def load_into(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str, dtype: torch.dtype):
    """Strictly load ``state`` into a model built on the meta device; returns the model in ``dtype``.

    Building on meta skips the random initialisation of 860 M parameters (14 s on a CPU).
    """
    check_state_dict(model, state, source)
    keep = {k: v for k, v in state.items() if not k.endswith(TOLERATED_UNEXPECTED_SUFFIXES)}
    model.load_state_dict(keep, strict=False, assign=True)
    for name, buf in list(model.named_buffers()):
        if buf.is_meta:  # only CLIP's non-persistent position_ids (checked above): recompute it
            if not name.endswith("position_ids"):
                raise Zero123WeightsError(f"{source}: buffer {name} was not initialised")
            module = model.get_submodule(name.rsplit(".", 1)[0])
            module.register_buffer("position_ids", torch.arange(buf.shape[-1]).expand(1, -1), persistent=False)
    # nn.Module.to: ModelMixin.to warns about fp32-kept modules even when there are none.
    return torch.nn.Module.to(model, dtype).eval()


def build_unet(config: dict, state, source: str, dtype=torch.float32) -> UNet2DConditionModel:
    with torch.device("meta"):
        model = UNet2DConditionModel.from_config(config)
    return load_into(model, state, source, dtype)


def build_vae(config: dict, state, source: str, dtype=torch.float32) -> AutoencoderKL:
    with torch.device("meta"):
        model = AutoencoderKL.from_config(config)
    return load_into(model, state, source, dtype)


def build_image_encoder(config: CLIPVisionConfig, state, source: str, dtype=torch.float32):
    with torch.device("meta"):
        model = CLIPVisionModelWithProjection(config)
    return load_into(model, state, source, dtype)


def build_cc_projection(state, source: str, camera_embedding: str = "delta_radius", dtype=torch.float32):
    """CCProjection from ``projection.*`` (layout A) or ``proj.*`` (layout B) keys; sizes from the weight."""
    renamed = {("projection." + k[len("proj.") :] if k.startswith("proj.") else k): v for k, v in state.items()}
    weight = renamed.get("projection.weight")
    if weight is None or weight.ndim != 2:
        raise Zero123WeightsError(
            f"{source}: no 2-D 'projection.weight' (or 'proj.weight'); found keys {sorted(state)[:8]}"
        )
    with torch.device("meta"):
        model = CCProjection(weight.shape[1], weight.shape[0], camera_embedding=camera_embedding)
    return load_into(model, renamed, source, dtype)


def zero123_ddim_scheduler(config: dict | None = None) -> DDIMScheduler:
    """DDIM with Zero123's training schedule and LDM's sampler settings (reference §1).

    Folder configs written by diffusers' convert_zero123_to_diffusers.py carry wrong
    betas (0.02/0.085); all Zero123 checkpoints were trained with 0.00085/0.012, so
    those are enforced and a differing folder config is reported.
    """
    config = dict(config or {})
    for key, value in (("beta_start", ZERO123_BETA_START), ("beta_end", ZERO123_BETA_END)):
        if key in config and abs(float(config[key]) - value) > 1e-9:
            log.warning("scheduler config has %s=%s; using Zero123's training value %s", key, config[key], value)
    return DDIMScheduler(
        num_train_timesteps=1000,
        beta_start=ZERO123_BETA_START,
        beta_end=ZERO123_BETA_END,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
        timestep_spacing="leading",
        prediction_type="epsilon",
    )


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise Zero123WeightsError(f"missing config file {path}. {HOW_TO_GET}") from exc
    except json.JSONDecodeError as exc:
        raise Zero123WeightsError(f"{path}: not valid JSON ({exc})") from exc
