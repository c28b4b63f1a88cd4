"""``one2345 convert-zero123 CKPT OUT_DIR``: an original Zero123 .ckpt -> a diffusers folder."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers) -> argparse.ArgumentParser:
    """``one2345 convert-zero123 CKPT OUT_DIR``."""
    p = subparsers.add_parser(
        "convert-zero123",
        help="convert an original Zero123 / Zero123-XL / Stable Zero123 .ckpt into a diffusers folder",
        description="Convert an original LDM Zero123 checkpoint (EMA weights, correct betas) into a diffusers folder.",
    )
    p.add_argument("ckpt", help="original checkpoint (.ckpt, or LDM-format .safetensors)")
    p.add_argument("out_dir", help="output folder (diffusers layout, safetensors)")
    p.add_argument("--image-encoder", default=None, help="CLIP vision folder, when the checkpoint has no visual tower")
    p.add_argument("--original-config", default=None, help="LDM YAML config (default: Zero123's)")
    p.add_argument("--no-ema", action="store_true", help="convert the raw instead of the EMA UNet weights")
    p.add_argument("--camera-embedding", choices=("auto", "delta_radius", "cond_polar"), default="auto",
                   help="fourth slot of T: Zero123 delta radius, or Stable Zero123's conditioning polar "
                        "(auto: by file name)")  # fmt: skip
    p.add_argument("--half", action="store_true", help="save float16 weights")
    p.add_argument("--allow-pickle", action="store_true",
                   help="allow full unpickling when torch.load(weights_only=True) refuses the file "
                        "(trusted files only)")  # fmt: skip
    p.add_argument("--verify", action="store_true", help="reload the written folder and compare the weights")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    """Run the conversion; returns the process exit code (errors propagate as Zero123WeightsError)."""
    import torch  # heavy: only when this command runs (every command's parser is built at start)

    from ..config import check_weight_path
    from ..views.zero123.convert import pipeline_from_ldm_checkpoint
    from ..views.zero123.loading import from_local_dir
    from ..views.zero123.weights import Zero123WeightsError

    problem = check_weight_path(args.ckpt)
    if problem:
        raise Zero123WeightsError(problem)
    out = Path(args.out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise Zero123WeightsError(f"output {out} exists and is not an empty folder: choose a new path")
    dtype = torch.float16 if args.half else torch.float32
    pipe = pipeline_from_ldm_checkpoint(
        args.ckpt, args.original_config, args.image_encoder, args.allow_pickle, args.camera_embedding,
        not args.no_ema, dtype,
    )
    pipe.save_pretrained(out, safe_serialization=True)
    if args.verify:
        reloaded = from_local_dir(out, dtype=pipe.unet.dtype)
        for name in ("unet", "vae", "image_encoder", "cc_projection"):
            a, b = getattr(pipe, name).state_dict(), getattr(reloaded, name).state_dict()
            bad = [k for k in a if not torch.equal(a[k], b[k])]
            if bad:
                raise Zero123WeightsError(f"{out}/{name}: reloaded weights differ at {bad[:5]}")
    n_unet = sum(p.numel() for p in pipe.unet.parameters())
    print(f"wrote {out} (UNet {n_unet:,} parameters, {pipe.cc_projection.config.camera_embedding} camera embedding)")
    return 0
