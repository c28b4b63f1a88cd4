"""Finding and loading Zero123 weights: diffusers folders (both public layouts) and .ckpt files.

Each component is loaded explicitly (reference/zero123.md §3, workaround (c)):
the kxic ``model_index.json`` names a module (``pipeline_zero1to3``) that diffusers
0.42 no longer imports, and a custom pipeline class cannot go through
``DiffusionPipeline.from_pretrained`` anyway. Loading ourselves also lets us check
every weight file strictly: diffusers and transformers only warn about missing keys
and initialise them randomly, which must never happen silently here.

Layouts:

* A (kxic/zero123-*, our own saves): ``cc_projection/`` with ``projection.{weight,bias}``.
* B (bennyguo/ashawkey, threestudio): ``clip_camera_projection/`` with ``proj.{weight,bias}``.

Both hold ``vae/``, ``image_encoder/``, ``unet/`` and ``scheduler/``. Nothing here
touches the network.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from transformers import CLIPVisionConfig

from .pipeline import Zero123Pipeline
from .weights import (
    HOW_TO_GET,
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

ENV_VAR = "ONE2345_ZERO123"
LAYOUT_A = "cc_projection"
LAYOUT_B = "clip_camera_projection"
REQUIRED_SUBFOLDERS = ("vae", "image_encoder", "unet", "scheduler")
CHECKPOINT_SUFFIXES = (".ckpt", ".safetensors", ".pt", ".pth")

# --------------------------------------------------------------------- locating


def resolve_zero123_source(explicit: str | os.PathLike | None = None, environ=None) -> Path:
    """The folder or checkpoint to load: ``explicit`` (--zero123 / config) else $ONE2345_ZERO123."""
    environ = os.environ if environ is None else environ
    if explicit:
        path, where = Path(explicit).expanduser(), "--zero123 / zero123.model"
    elif environ.get(ENV_VAR):
        path, where = Path(environ[ENV_VAR]).expanduser(), f"${ENV_VAR}"
    else:
        raise Zero123WeightsError(f"no Zero123 weights configured (looked at --zero123, zero123.model and ${ENV_VAR}). {HOW_TO_GET}")
    if not path.exists():
        raise Zero123WeightsError(f"Zero123 weights not found: {path} (from {where}) does not exist. {HOW_TO_GET}")
    return path


def detect_layout(folder: Path) -> str:
    """LAYOUT_A or LAYOUT_B; error naming what is missing otherwise."""
    folder = Path(folder)
    if not folder.is_dir():
        raise Zero123WeightsError(f"{folder} is not a directory. {HOW_TO_GET}")
    missing = [f"{s}/" for s in REQUIRED_SUBFOLDERS if not (folder / s).is_dir()]
    has_a, has_b = (folder / LAYOUT_A).is_dir(), (folder / LAYOUT_B).is_dir()
    if not (has_a or has_b):
        missing.append(f"{LAYOUT_A}/ (or {LAYOUT_B}/)")
    if missing:
        raise Zero123WeightsError(
            f"{folder} is not a complete Zero123 diffusers folder: missing component(s) {', '.join(missing)}. "
            f"Expected vae/, image_encoder/, unet/, scheduler/ and cc_projection/ or clip_camera_projection/. {HOW_TO_GET}"
        )
    return LAYOUT_A if has_a else LAYOUT_B


def from_local_dir(
    folder: str | os.PathLike,
    dtype: torch.dtype = torch.float32,
    variant: str | None = None,
    allow_pickle: bool = False,
    camera_embedding: str = "auto",
) -> Zero123Pipeline:
    """Zero123Pipeline from a diffusers folder in layout A or B, every component checked strictly.

    ``camera_embedding``: 'delta_radius' (Zero123, Zero123-XL), 'cond_polar' (Stable
    Zero123) or 'auto' (the projection's saved config; layout-B folders named
    '*stable*zero123*' are taken as Stable Zero123).
    """
    folder = Path(folder)
    layout = detect_layout(folder)
    parts = {}
    for name, library in (("unet", "diffusers"), ("vae", "diffusers"), ("image_encoder", "transformers")):
        sub = folder / name
        file = find_weight_file(sub, library, variant)
        parts[name] = (sub, file, read_state_dict(file, allow_pickle))
    sub, file, state = parts["unet"]
    unet = build_unet(read_json(sub / "config.json"), state, str(file), dtype)
    sub, file, state = parts["vae"]
    vae = build_vae(read_json(sub / "config.json"), state, str(file), dtype)
    sub, file, state = parts["image_encoder"]
    clip_config = CLIPVisionConfig.from_dict(read_json(sub / "config.json"))
    image_encoder = build_image_encoder(clip_config, state, str(file), dtype)
    del parts

    proj_dir = folder / layout
    proj_file = find_weight_file(proj_dir, "diffusers", variant)
    proj_config = read_json(proj_dir / "config.json") if (proj_dir / "config.json").is_file() else {}
    if camera_embedding == "auto":
        camera_embedding = proj_config.get("camera_embedding", "delta_radius")
        lowered = folder.resolve().name.lower().replace("_", "-")
        if layout == LAYOUT_B and "stable-zero123" in lowered:
            camera_embedding = "cond_polar"
    cc_projection = build_cc_projection(read_state_dict(proj_file, allow_pickle), str(proj_file), camera_embedding, dtype)
    scheduler = zero123_ddim_scheduler(read_json(folder / "scheduler" / "scheduler_config.json"))
    log.info("loaded Zero123 (%s layout, %s) from %s", layout, camera_embedding, folder)
    return Zero123Pipeline(vae=vae, image_encoder=image_encoder, unet=unet, scheduler=scheduler, cc_projection=cc_projection)


def load_zero123(
    source: str | os.PathLike,
    dtype: torch.dtype = torch.float32,
    allow_pickle: bool = False,
    image_encoder_dir: str | os.PathLike | None = None,
    camera_embedding: str = "auto",
    variant: str | None = None,
) -> Zero123Pipeline:
    """A pipeline from a diffusers folder or an original LDM checkpoint (converted in memory)."""
    source = Path(source)
    if source.is_dir():
        return from_local_dir(source, dtype, variant, allow_pickle, camera_embedding)
    if source.is_file() and source.suffix in CHECKPOINT_SUFFIXES:
        from .convert import pipeline_from_ldm_checkpoint

        return pipeline_from_ldm_checkpoint(
            source, image_encoder_dir=image_encoder_dir, allow_pickle=allow_pickle, camera_embedding=camera_embedding,
            dtype=dtype,
        )
    raise Zero123WeightsError(
        f"{source}: expected a diffusers folder or a checkpoint file ({', '.join(CHECKPOINT_SUFFIXES)}). {HOW_TO_GET}"
    )
