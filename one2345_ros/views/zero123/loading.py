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

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import CLIPVisionConfig

from ...config import ZERO123_ENV
from .pipeline import WEIGHTS_MARKER, Zero123Pipeline
from .weights import (
    HOW_TO_GET,
    MAIN_VARIANT,
    Zero123WeightsError,
    available_variants,
    build_cc_projection,
    build_image_encoder,
    build_unet,
    build_vae,
    find_weight_file,
    read_json,
    read_state_dict,
    weight_file_names,
    zero123_ddim_scheduler,
)

log = logging.getLogger(__name__)

LAYOUT_A = "cc_projection"
LAYOUT_B = "clip_camera_projection"
REQUIRED_SUBFOLDERS = ("vae", "image_encoder", "unet", "scheduler")
CHECKPOINT_SUFFIXES = (".ckpt", ".safetensors", ".pt", ".pth")

VARIANTS = ("auto", "ema", "fp16_ema", "fp16", "main")
"""``zero123.variant``: which weight files of a diffusers folder to load. Files follow
diffusers' variant naming, ``diffusion_pytorch_model.<variant>.safetensors`` (``model.<variant>.*``
for the image encoder); bennyguo/zero123*-diffusers ship ``main``, ``fp16`` and ``fp16_ema``
for every component. 'auto' takes EMA weights when the folder has them, else the default
files; 'ema' requires EMA weights. For a .ckpt: 'auto'/'ema' = the EMA copy, 'main' = raw."""
EMA_PREFERENCE = ("ema", MAIN_VARIANT, "fp16_ema", "fp16")
"""Order in which 'auto' / 'ema' take EMA weights: full precision before float16."""
COMPONENT_FALLBACK = {"fp16_ema": ("fp16_ema", "fp16", MAIN_VARIANT), "ema": ("ema", MAIN_VARIANT),
                      "fp16": ("fp16", MAIN_VARIANT)}  # fmt: skip
"""Files tried for the VAE, image encoder and projection when the UNet's variant is chosen:
EMA only concerns the UNet (LitEma covers ``model.diffusion_model`` alone)."""
LAYOUT_A_EMA_NOTE = (
    "layout A (kxic/zero123-*) folders were made with diffusers' convert_zero123_to_diffusers.py, which keeps "
    "the non-EMA weights unless it is given --extract_ema"
)

# --------------------------------------------------------------------- locating


def resolve_zero123_source(model: str | os.PathLike | None) -> Path:
    """The folder or checkpoint configured as ``zero123.model`` (config.resolve_environment already
    filled it from $ONE2345_ZERO123 when empty); Zero123WeightsError says how to get one."""
    if not model:
        raise Zero123WeightsError(f"no Zero123 weights configured (--zero123, zero123.model or ${ZERO123_ENV}). "
                                  f"{HOW_TO_GET}")  # fmt: skip
    path = Path(model).expanduser()
    if not path.exists():
        raise Zero123WeightsError(f"Zero123 weights not found: {path} does not exist. {HOW_TO_GET}")
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
            "Expected vae/, image_encoder/, unet/, scheduler/ and cc_projection/ or clip_camera_projection/. "
            f"{HOW_TO_GET}"
        )
    return LAYOUT_A if has_a else LAYOUT_B


def is_ema_variant(variant: str) -> bool:
    """True for variant names that say EMA ('ema', 'fp16_ema'); 'non_ema' is not."""
    tokens = variant.lower().split("_")
    return "ema" in tokens and "non" not in tokens


def read_weights_marker(folder: Path) -> dict:
    """The ``variants`` entry of :data:`WEIGHTS_MARKER` (written by our conversion), or {}."""
    path = Path(folder) / WEIGHTS_MARKER
    if not path.is_file():
        return {}
    try:
        return dict(json.loads(path.read_text()).get("variants", {}))
    except (json.JSONDecodeError, AttributeError) as exc:
        raise Zero123WeightsError(f"{path}: not a valid weights record ({exc})") from exc


@dataclass(frozen=True)
class VariantChoice:
    variant: str
    """The UNet's file variant ('main' = the default files)."""
    ema: bool | None
    """Whether those are the EMA weights (None: cannot tell)."""
    ema_basis: str
    """Why we think so."""


def choose_variant(folder: Path, layout: str, requested: str = "auto") -> VariantChoice:
    """The UNet weight variant to load for ``zero123.variant`` = ``requested``, and whether it is EMA."""
    if requested not in VARIANTS:
        raise Zero123WeightsError(f"zero123.variant must be one of {', '.join(VARIANTS)}, got {requested!r}")
    unet_dir = Path(folder) / "unet"
    found = available_variants(unet_dir, "diffusers")
    if not found:
        find_weight_file(unet_dir, "diffusers")  # raises, naming what was looked for
    marker = read_weights_marker(folder)

    def ema_of(v: str) -> tuple[bool | None, str]:
        record = marker.get(v)
        if record is not None:  # saved by Zero123Pipeline.save_pretrained: it knows
            source, why = record.get("source"), record.get("ema_basis")
            ema = None if record.get("ema") is None else bool(record["ema"])
            return ema, f"{WEIGHTS_MARKER}: saved from {source or 'in-memory weights'} ({why})"
        if is_ema_variant(v):
            return True, f"variant name '{v}'"
        beside = [w for w in found if is_ema_variant(w)]
        if beside:
            return False, f"the folder also has the EMA variant(s) {', '.join(beside)}, so '{v}' holds non-EMA weights"
        if layout == LAYOUT_A:
            return False, LAYOUT_A_EMA_NOTE
        return None, "no EMA variant and no conversion record in the folder: cannot tell"

    ema_variants = [v for v in EMA_PREFERENCE if v in found and ema_of(v)[0]]
    ema_variants += [v for v in found if v not in ema_variants and ema_of(v)[0]]
    if requested == "auto":
        if ema_variants:
            variant = ema_variants[0]
        else:
            variant = MAIN_VARIANT if MAIN_VARIANT in found else "fp16" if "fp16" in found else found[0]
    elif requested == "ema":
        if not ema_variants:
            raise Zero123WeightsError(
                f"{unet_dir}: no EMA weights (variants there: {', '.join(found)}; {ema_of(found[0])[1]}). "
                "Convert the original .ckpt with `one2345 convert-zero123` (it takes the EMA weights), "
                "or set zero123.variant to auto or main."
            )
        variant = ema_variants[0]
    else:
        if requested not in found:
            raise Zero123WeightsError(
                f"{unet_dir}: no '{requested}' weights ({', '.join(weight_file_names('diffusers', requested))}); "
                f"variants there: {', '.join(found)}"
            )
        variant = requested
    ema, basis = ema_of(variant)
    return VariantChoice(variant, ema, basis)


def component_weight_file(subdir: Path, library: str, variant: str) -> Path:
    """Weights of a non-UNet component for the UNet's ``variant`` (see :data:`COMPONENT_FALLBACK`)."""
    chain = COMPONENT_FALLBACK.get(variant, (variant,))
    for v in chain:
        if any((subdir / n).is_file() for n in weight_file_names(library, v)):
            return find_weight_file(subdir, library, v)
    return find_weight_file(subdir, library, chain[0])  # raises, listing what is there


def warn_unless_ema(info: dict) -> None:
    """Log a warning when the UNet weights are not (known to be) the EMA weights the original samples with."""
    if info.get("ema") is True:
        return
    what = "are not the EMA weights" if info.get("ema") is False else "may not be the EMA weights"
    log.warning(
        "Zero123 UNet weights %s (%s) %s: %s. The original samples with the EMA weights (ema_scope); "
        "use a folder with an EMA variant (e.g. bennyguo/zero123-xl-diffusers fp16_ema) or convert the "
        "original .ckpt with `one2345 convert-zero123`, which takes them.",
        info.get("files", {}).get("unet") or info.get("source"), info.get("variant"), what, info.get("ema_basis"),
    )


def from_local_dir(
    folder: str | os.PathLike,
    dtype: torch.dtype = torch.float32,
    variant: str | None = "auto",
    allow_pickle: bool = False,
    camera_embedding: str = "auto",
) -> Zero123Pipeline:
    """Zero123Pipeline from a diffusers folder in layout A or B, every component checked strictly.

    ``variant``: one of :data:`VARIANTS` (None = 'auto'). ``camera_embedding``:
    'delta_radius' (Zero123, Zero123-XL), 'cond_polar' (Stable Zero123) or 'auto'
    (the projection's saved config; layout-B folders named '*stable*zero123*' are taken
    as Stable Zero123). The result's ``weights_info`` says which files were loaded and
    whether the UNet holds EMA weights; a warning is logged when it does not (or may not).
    """
    folder = Path(folder)
    layout = detect_layout(folder)
    choice = choose_variant(folder, layout, variant or "auto")
    parts = {}
    for name, library in (("unet", "diffusers"), ("vae", "diffusers"), ("image_encoder", "transformers")):
        sub = folder / name
        if name == "unet":
            file = find_weight_file(sub, library, choice.variant)
        else:
            file = component_weight_file(sub, library, choice.variant)
        parts[name] = (sub, file, read_state_dict(file, allow_pickle))
    files = {name: str(file) for name, (_, file, _) in parts.items()}
    sub, file, state = parts["unet"]
    unet = build_unet(read_json(sub / "config.json"), state, str(file), dtype)
    sub, file, state = parts["vae"]
    vae = build_vae(read_json(sub / "config.json"), state, str(file), dtype)
    sub, file, state = parts["image_encoder"]
    clip_config = CLIPVisionConfig.from_dict(read_json(sub / "config.json"))
    image_encoder = build_image_encoder(clip_config, state, str(file), dtype)
    del parts

    proj_dir = folder / layout
    proj_file = component_weight_file(proj_dir, "diffusers", choice.variant)
    files["cc_projection"] = str(proj_file)
    proj_config = read_json(proj_dir / "config.json") if (proj_dir / "config.json").is_file() else {}
    if camera_embedding == "auto":
        camera_embedding = proj_config.get("camera_embedding", "delta_radius")
        lowered = folder.resolve().name.lower().replace("_", "-")
        if layout == LAYOUT_B and "stable-zero123" in lowered:
            camera_embedding = "cond_polar"
    cc_projection = build_cc_projection(
        read_state_dict(proj_file, allow_pickle), str(proj_file), camera_embedding, dtype
    )
    scheduler = zero123_ddim_scheduler(read_json(folder / "scheduler" / "scheduler_config.json"))
    log.info("loaded Zero123 (%s layout, %s, variant %s) from %s", layout, camera_embedding, choice.variant, folder)
    pipe = Zero123Pipeline(
        vae=vae, image_encoder=image_encoder, unet=unet, scheduler=scheduler, cc_projection=cc_projection
    )
    pipe.weights_info = {
        "source": str(folder), "kind": "diffusers_folder", "layout": "A" if layout == LAYOUT_A else "B",
        "variant": choice.variant, "variant_requested": variant or "auto", "ema": choice.ema,
        "ema_basis": choice.ema_basis, "files": files,
    }  # fmt: skip
    warn_unless_ema(pipe.weights_info)
    return pipe


def load_zero123(
    source: str | os.PathLike,
    dtype: torch.dtype = torch.float32,
    allow_pickle: bool = False,
    image_encoder_dir: str | os.PathLike | None = None,
    camera_embedding: str = "auto",
    variant: str | None = "auto",
) -> Zero123Pipeline:
    """A pipeline from a diffusers folder or an original LDM checkpoint (converted in memory).

    ``variant`` (:data:`VARIANTS`): for a folder, which weight files; for a checkpoint,
    'auto'/'ema' take the EMA UNet weights and 'main' the raw ones.
    """
    source = Path(source)
    variant = variant or "auto"
    if variant not in VARIANTS:
        raise Zero123WeightsError(f"zero123.variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
    if source.is_dir():
        return from_local_dir(source, dtype, variant, allow_pickle, camera_embedding)
    if source.is_file() and source.suffix in CHECKPOINT_SUFFIXES:
        from .convert import pipeline_from_ldm_checkpoint

        if variant not in ("auto", "ema", MAIN_VARIANT):
            raise Zero123WeightsError(
                f"zero123.variant {variant!r} names diffusers weight files; for a checkpoint ({source.name}) use "
                "auto or ema (the EMA copy) or main (the raw weights)"
            )
        pipe = pipeline_from_ldm_checkpoint(
            source, image_encoder_dir=image_encoder_dir, allow_pickle=allow_pickle, camera_embedding=camera_embedding,
            use_ema=variant != MAIN_VARIANT, dtype=dtype,
        )
        if variant == "ema" and not pipe.weights_info["ema"]:
            raise Zero123WeightsError(f"{source}: zero123.variant is 'ema' but {pipe.weights_info['ema_basis']}")
        pipe.weights_info["variant_requested"] = variant
        warn_unless_ema(pipe.weights_info)
        return pipe
    raise Zero123WeightsError(
        f"{source}: expected a diffusers folder or a checkpoint file ({', '.join(CHECKPOINT_SUFFIXES)}). {HOW_TO_GET}"
    )
