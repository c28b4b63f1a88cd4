"""Zero123 speed at full size with random weights: UNet steps, VAE, CLIP, projected plan time.

Full-size architecture: the 859.5 M-parameter UNet with 8 input channels, CLIP
ViT-L/14 (CLIPVisionModelWithProjection) and the SD kl-f8 VAE, random weights
(no checkpoint is needed to time them). A "step" is one UNet forward of the given
batch, CFG rows included (batch 16 = 8 views with guidance), plus the scheduler step.

    python benchmarks/zero123.py                          # CPU, batches 2 8 16 32 64
    python benchmarks/zero123.py --batches 2 8 16 --steps 1
    python benchmarks/zero123.py --device cuda --dtype fp16 --compile

Prints a table and writes JSON (default benchmarks/results/zero123_<device>.json).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

from one2345_ros.views.zero123.convert import (
    ZERO123_CLIP_CONFIG,
    ZERO123_LDM_CONFIG,
    unet_config_from_ldm,
    vae_config_from_ldm,
)
from one2345_ros.views.zero123.generator import DTYPES, PRESETS
from one2345_ros.views.zero123.pipeline import CCProjection, Zero123Pipeline, steps_run
from one2345_ros.views.zero123.weights import zero123_ddim_scheduler

PLAN_BATCHES = [(1, 4), (2, 16), (1, 4), (2, 16)]
"""(stage, views) of the plan's four denoising loops (views/plan.py); UNet batch = 2 x views."""


def full_size_pipeline(dtype: torch.dtype, device: str) -> Zero123Pipeline:
    with torch.device("meta"):  # random weights without the slow default initialisation
        unet = UNet2DConditionModel.from_config(unet_config_from_ldm(ZERO123_LDM_CONFIG))
        vae = AutoencoderKL.from_config(vae_config_from_ldm(ZERO123_LDM_CONFIG))
    unet, vae = (torch.nn.Module.to_empty(m, device=device) for m in (unet, vae))
    for m in (unet, vae):
        with torch.no_grad():
            for p in m.parameters():
                p.normal_(0.0, 0.02)
    clip = CLIPVisionModelWithProjection(CLIPVisionConfig(**ZERO123_CLIP_CONFIG))
    pipe = Zero123Pipeline(
        vae=vae, image_encoder=clip, unet=unet, scheduler=zero123_ddim_scheduler(), cc_projection=CCProjection()
    )
    for m in (pipe.unet, pipe.vae, pipe.image_encoder, pipe.cc_projection):
        torch.nn.Module.to(m, device=device, dtype=dtype).eval()
    pipe.use_sdpa()
    return pipe


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device: str, repeats: int) -> float:
    """Best of ``repeats`` wall-clock seconds."""
    best = float("inf")
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return best


def step_seconds(pipe: Zero123Pipeline, batch: int, device: str, repeats: int) -> float:
    """One CFG denoising step for batch // 2 views (UNet batch ``batch``)."""
    views = max(1, batch // 2)
    h = pipe.unet.config.sample_size
    latents = torch.randn(views, 4, h, h, device=device)
    cond = torch.randn(views, 4, h, h, device=device)
    ctx = torch.randn(views, 1, pipe.unet.config.cross_attention_dim, device=device)
    sched = pipe.scheduler
    sched.set_timesteps(50, device=device)
    t = sched.timesteps[10]

    @torch.inference_mode()
    def run():
        eps = pipe._guided_eps(latents, t, cond, ctx, 3.0, True)
        sched.step(eps, t, latents)

    return timed(run, device, repeats)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--batches", type=int, nargs="+", default=[2, 8, 16, 32, 64], help="UNet batch sizes (CFG included)"
    )
    ap.add_argument("--steps", type=int, default=1, help="timed repeats per measurement (best is kept)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="fp32")
    ap.add_argument("--compile", action="store_true", help="torch.compile the UNet (CUDA)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    dev, dtype = args.device, DTYPES[args.dtype]
    torch.manual_seed(0)

    t0 = time.perf_counter()
    pipe = full_size_pipeline(dtype, dev)
    init_s = time.perf_counter() - t0
    if args.compile:
        pipe.unet.to(memory_format=torch.channels_last)
        pipe.unet.compile(fullgraph=True)
    n_unet = sum(p.numel() for p in pipe.unet.parameters())
    img = torch.rand(1, 3, 256, 256, device=dev) * 2 - 1

    warm = timed(lambda: step_seconds(pipe, min(args.batches), dev, 1), dev, 1)  # warm-up / compile
    steps = {}
    for b in args.batches:
        steps[b] = step_seconds(pipe, b, dev, args.steps)
        print(f"  batch {b:3d}: {steps[b]:8.2f} s/step", flush=True)
    encode = timed(lambda: pipe.encode_latents(img), dev, args.steps)
    decode = timed(lambda: pipe.decode_latents(torch.randn(1, 4, 32, 32, device=dev)), dev, args.steps)
    clip = timed(lambda: pipe.encode_clip(img), dev, args.steps)

    projected = {name: project_plan(p, steps, encode, decode, clip) for name, p in PRESETS.items()}
    device_name = (
        torch.cuda.get_device_name(dev) if dev.startswith("cuda") else platform.processor() or platform.machine()
    )
    result = {
        "device": dev, "device_name": device_name, "torch_threads": torch.get_num_threads(), "dtype": args.dtype,
        "compile": args.compile, "unet_parameters": n_unet, "init_s": init_s, "first_step_s": warm,
        "step_s": {str(k): v for k, v in steps.items()}, "vae_encode_s": encode, "vae_decode_s": decode,
        "clip_s": clip, "projected_plan_s": projected,
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
        "versions": {"torch": torch.__version__, "python": platform.python_version()},
    }  # fmt: skip
    print_table(result)
    out = Path(args.out or Path(__file__).parent / "results" / f"zero123_{dev.split(':')[0]}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


def project_plan(preset, steps: dict, encode: float, decode: float, clip: float) -> dict:
    """Seconds of the 4-loop plan (40 views) from the measured step times.

    A batch that was not measured is interpolated/extrapolated linearly from the
    two nearest measured sizes (say so beside the figure).
    """
    sizes = sorted(steps)

    def per_step(batch):
        if batch in steps:
            return steps[batch], False
        lo = [s for s in sizes if s < batch][-2:] or sizes[:2]
        hi = [s for s in sizes if s > batch][:1]
        a, b = (lo[-1], hi[0]) if hi else (lo[0], lo[-1]) if len(lo) > 1 else (sizes[0], sizes[-1])
        if a == b:
            return steps[a] * batch / a, True
        return steps[a] + (steps[b] - steps[a]) * (batch - a) / (b - a), True

    ldm = preset.scheduler == "ddim"
    run = {1: steps_run(preset.steps_stage1, ldm), 2: steps_run(preset.steps_stage2, ldm)}  # faithful: 76 / 49
    total, estimated = 0.0, False
    for stage, views in PLAN_BATCHES:
        s, est = per_step(2 * views)
        estimated |= est
        total += s * run[stage]
    conds = 1 + 4 + 1 + 4  # input twice (A, C) and 8 stage-1 views for stage 2
    total += conds * (encode + clip) + 40 * decode
    return {"seconds": total, "extrapolated_batches": estimated, "steps": [preset.steps_stage1, preset.steps_stage2],
            "steps_run": [run[1], run[2]]}  # fmt: skip


def print_table(r: dict) -> None:
    print(f"\nZero123 full size ({r['unet_parameters']:,} UNet parameters), {r['device_name']}, {r['dtype']}, "
          f"compile={r['compile']}, {r['torch_threads']} threads")  # fmt: skip
    print(f"{'item':34s} {'seconds':>10s}")
    for b, s in r["step_s"].items():
        print(f"{'denoising step, UNet batch ' + b:34s} {s:10.2f}")
    for key in ("vae_encode_s", "vae_decode_s", "clip_s", "init_s"):
        print(f"{key:34s} {r[key]:10.2f}")
    for name, p in r["projected_plan_s"].items():
        note = " (some batches extrapolated)" if p["extrapolated_batches"] else ""
        print(f"{'plan, preset ' + name:34s} {p['seconds']:10.1f}{note}")
    print(f"peak RSS {r['peak_rss_gb']:.1f} GB")


if __name__ == "__main__":
    sys.exit(main())
