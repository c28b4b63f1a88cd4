"""GPU suite: Zero123 plan, UNet throughput, SparseNeuS and image -> mesh in one prepared run, JSON out.

One command, sized for a lent GPU (6 minutes on one H200, ``--budget-s`` guard):

    python benchmarks/gpu_suite.py                 # CUDA, full-size models, random weights
    python benchmarks/gpu_suite.py --small         # tiny configs, 1-2 steps: seconds on a CPU (CI)
    python benchmarks/gpu_suite.py --sections unet plan --budget-s 120 --out FILE

Nothing is downloaded: the models are built from the real configs (Zero123's UNet, kl-f8 VAE,
CLIP ViT-L/14; the One-2-3-45 SparseNeuS widths) with random weights. Sections, in order:

``unet``          UNet forward at batch 4, 16, 32 (CFG rows count) in fp16 and bf16: seconds,
                  images/s, peak memory; at batch 32 also without channels-last and with SDPA
                  forced to the math kernel; the SDPA kernel actually used (profiler op names).
``plan``          the One-2-3-45 plan (40 views, 4 denoising loops) with Zero123Generator, presets
                  faithful (DDIM, 75/50 -> 76/49 steps) and fast, in fp16 and bf16, eager.
``sparseneus``    96^3 cost volume, 3D CNN, SDF grid (256^3, near-surface), colours; dense backend,
                  plus torchsparse when it imports. SDF initialised to a sphere so a mesh exists.
``pipeline``      image -> mesh with the library's Pipeline: Zero123Generator (random full-size
                  weights, fp16, faithful) and a SparseNeuS reconstructor with that network.
``plan_compiled`` the plan with torch.compile (what zero123.compile does), one child process per
                  dtype with a hard timeout: compile time and warm plan time. A failure is recorded.

Each section starts only when the budget left covers its estimate, and loops inside sections
stop early with a note: the run never overruns by more than one item. Peak memory is
``torch.cuda.max_memory_allocated`` on CUDA, the sampled resident size on a CPU. Every
measured figure lands in an entry's ``figures`` (positive numbers); the rest in ``info``.
Writes benchmarks/results/gpu_suite_<gpu-name>.json (``--out`` to change) and prints a table.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import warnings
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "test"))

from one2345_ros.timing import StageTimer  # noqa: E402

SCHEMA_VERSION = 1
DEFAULT_BUDGET_S = 330.0
"""Full run: 5.5 minutes of sections, inside the 6 minutes a lent H200 gives (imports come first)."""
SMALL_BUDGET_S = 45.0
DTYPE_NAMES = ("fp16", "bf16")
"""Measured on CUDA. On a CPU fp32 replaces fp16, whose convolutions are a slow reference path there."""
CPU_DTYPE_NAMES = ("fp32", "bf16")
PRESET_NAMES = ("faithful", "fast")
UNET_BATCHES = (4, 16, 32)
SMALL_STEPS = {"faithful": (2, 2), "fast": (1, 1)}
"""--small step counts (faithful 2 runs 1 DDIM step, as the original)."""
SECTIONS = ("unet", "plan", "objects", "sparseneus", "pipeline", "plan_compiled")
ESTIMATE_S = {
    False: {"unet": 30, "plan": 60, "objects": 45, "sparseneus": 20, "pipeline": 40, "plan_compiled": 90},
    True: {"unet": 1, "plan": 1, "objects": 1, "sparseneus": 1, "pipeline": 1, "plan_compiled": 1},
}
"""Seconds a section needs at least (full size on an H200; --small on a CPU): it starts only then."""
COMPILE_TIMEOUT_S = 170.0
"""Most one compile child may take (compiling the UNet for the plan's two batch shapes, then runs)."""


# --------------------------------------------------------------------- bookkeeping


@dataclass
class Suite:
    """Clock, budget, device and the models shared by sections."""

    device: torch.device
    small: bool
    budget_s: float
    start: float = field(default_factory=time.perf_counter)
    pipes: dict = field(default_factory=dict)

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def left(self) -> float:
        return self.budget_s - self.elapsed()

    def allows(self, seconds: float) -> bool:
        return self.left() >= seconds

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    @property
    def dtypes(self) -> tuple[str, ...]:
        return DTYPE_NAMES if self.cuda else CPU_DTYPE_NAMES

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)


def entry(name: str, figures: dict, info: dict | None = None) -> dict:
    return {"name": name, "figures": {k: float(v) for k, v in figures.items()}, "info": info or {}}


def _rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


@contextmanager
def peak_memory(suite: Suite):
    """Yields a dict that gets ``peak_mem_mb``: CUDA max allocated, or the sampled peak RSS on a CPU."""
    out: dict = {}
    if suite.cuda:
        suite.sync()
        torch.cuda.reset_peak_memory_stats(suite.device)
        try:
            yield out
        finally:
            suite.sync()
            out["peak_mem_mb"] = torch.cuda.max_memory_allocated(suite.device) / 2**20
        return
    peak = [_rss_mb()]
    stop = threading.Event()

    def sample():
        while not stop.wait(0.002):
            peak[0] = max(peak[0], _rss_mb())

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield out
    finally:
        stop.set()
        thread.join()
        out["peak_mem_mb"] = max(peak[0], _rss_mb())


def timed(suite: Suite, fn: Callable[[], object], repeats: int = 1, warmup: int = 0) -> float:
    """Mean wall seconds of ``fn`` over ``repeats`` after ``warmup`` calls (device synchronised)."""
    for _ in range(warmup):
        fn()
    suite.sync()
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    suite.sync()
    return (time.perf_counter() - t0) / repeats


def free_memory(suite: Suite) -> None:
    gc.collect()
    if suite.cuda:
        torch.cuda.empty_cache()


# --------------------------------------------------------------------- environment


def gpu_driver() -> str | None:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=20, check=True,
        )  # fmt: skip
        return out.stdout.strip().splitlines()[0] or None
    except (OSError, subprocess.SubprocessError, IndexError):
        pass
    try:
        text = Path("/proc/driver/nvidia/version").read_text()
        match = re.search(r"Kernel Module\s+([\d.]+)", text)
        return match.group(1) if match else None
    except OSError:
        return None


def environment(suite: Suite) -> dict:
    import diffusers
    import transformers

    env = {
        "device": str(suite.device), "small": suite.small, "python": platform.python_version(),
        "torch": torch.__version__, "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version()
        if torch.backends.cudnn.is_available() else None, "diffusers": diffusers.__version__,
        "transformers": transformers.__version__, "numpy": np.__version__, "platform": platform.platform(),
        "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "memory_kind": "cuda_max_allocated" if suite.cuda else "process_rss_sampled",
    }  # fmt: skip
    if suite.cuda:
        props = torch.cuda.get_device_properties(suite.device)
        env.update({
            "gpu_name": props.name, "gpu_capability": f"{props.major}.{props.minor}",
            "gpu_memory_gb": round(props.total_memory / 2**30, 1), "gpu_count": torch.cuda.device_count(),
            "driver": gpu_driver(),
        })  # fmt: skip
    else:
        env.update({"gpu_name": None, "driver": None})
    return env


def device_slug(env: dict) -> str:
    name = env.get("gpu_name") or "cpu"
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug + ("-small" if env.get("small") else "")


# --------------------------------------------------------------------- models


def build_zero123(suite: Suite, dtype_name: str):
    """A Zero123Pipeline on the suite's device: tiny (--small) or full size, random weights."""
    from one2345_ros.views.zero123.generator import DTYPES
    from one2345_ros.views.zero123.pipeline import CCProjection, Zero123Pipeline
    from one2345_ros.views.zero123.weights import zero123_ddim_scheduler

    torch.manual_seed(0)
    if suite.small:
        from zero123_tiny import tiny_components

        comps = tiny_components(latent_size=4)  # 32-px images: the suite's plans stay cheap on a CPU
    else:
        from diffusers import AutoencoderKL, UNet2DConditionModel
        from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

        from one2345_ros.views.zero123.convert import (
            ZERO123_CLIP_CONFIG,
            ZERO123_LDM_CONFIG,
            unet_config_from_ldm,
            vae_config_from_ldm,
        )

        with torch.device(suite.device):  # random init where the model runs: seconds on a GPU
            comps = {
                "unet": UNet2DConditionModel.from_config(unet_config_from_ldm(ZERO123_LDM_CONFIG)),
                "vae": AutoencoderKL.from_config(vae_config_from_ldm(ZERO123_LDM_CONFIG)),
                "image_encoder": CLIPVisionModelWithProjection(CLIPVisionConfig(**ZERO123_CLIP_CONFIG)),
                "cc_projection": CCProjection(),
                "scheduler": zero123_ddim_scheduler(),
            }
    pipe = Zero123Pipeline(**comps)
    for name in ("unet", "vae", "image_encoder", "cc_projection"):
        torch.nn.Module.to(getattr(pipe, name), device=suite.device, dtype=DTYPES[dtype_name]).eval()
    return pipe


def zero123_pipe(suite: Suite, dtype_name: str):
    """The suite's resident pipeline for ``dtype_name`` (built once, shared by sections)."""
    if dtype_name not in suite.pipes:
        suite.pipes[dtype_name] = build_zero123(suite, dtype_name)
    return suite.pipes[dtype_name]


def input_image(size: int = 256) -> np.ndarray:
    """An object-like input: coloured shapes on white."""
    img = np.full((size, size, 3), 255, np.uint8)
    yy, xx = np.mgrid[:size, :size]
    img[(yy - size * 0.55) ** 2 + (xx - size * 0.5) ** 2 < (size * 0.28) ** 2] = (200, 60, 40)
    img[int(size * 0.2) : int(size * 0.45), int(size * 0.42) : int(size * 0.58)] = (40, 90, 190)
    return img


def sparseneus_network(suite: Suite):
    """SparseNeuS with random weights, its SDF MLP re-initialised to a sphere of radius 0.3 (a mesh exists)."""
    from one2345_ros.recon.sparseneus import ONE2345_ARCH, SparseNeuS

    arch = ONE2345_ARCH
    if suite.small:
        from sparseneus_fixtures import TINY_ARCH

        arch = TINY_ARCH
    torch.manual_seed(0)
    net = SparseNeuS(arch)
    net.sdf_network_lod0.sdf_layer._geometric_init(3 + 6 * arch.pe_freqs, arch.sdf_hidden, arch.latent_channels, 0.3)
    return net


def sparseneus_config(suite: Suite, backend: str = "dense"):
    from one2345_ros.config import SparseNeuSConfig

    cfg = SparseNeuSConfig(device=str(suite.device), backend=backend)
    if suite.small:
        cfg.volume_resolution, cfg.mesh_resolution = 24, 48
    return cfg


def make_generator(pipe, preset: str, small: bool, compiled: bool = False):
    from one2345_ros.views.zero123.generator import Zero123Generator

    steps = SMALL_STEPS[preset] if small else (0, 0)
    gen = Zero123Generator(pipe, preset=preset, steps_stage1=steps[0], steps_stage2=steps[1], max_batch=32)
    gen.compiled = compiled
    return gen


@contextmanager
def count_syncs(suite: Suite):
    """Yields a dict that gets ``sync_warnings``: synchronising CUDA calls seen (torch sync debug mode)."""
    out: dict = {}
    if not suite.cuda:
        yield out
        return
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            yield out
        finally:
            torch.cuda.set_sync_debug_mode("default")
    out["sync_warnings"] = sum("synchroniz" in str(w.message) for w in seen)


def run_plan(suite: Suite, gen, image: np.ndarray, name: str, syncs: bool = True) -> dict:
    """One One-2-3-45 plan (constant polar estimate, no elevation work) -> an entry."""
    from one2345_ros.views.plan import ViewPlan
    from one2345_ros.views.zero123.pipeline import steps_run

    with peak_memory(suite) as mem, (count_syncs(suite) if syncs else _null()) as sync:
        suite.sync()
        t0 = time.perf_counter()
        plan = ViewPlan(gen, [image], seed=0)
        plan.first_views()
        (result,) = plan.complete([60.0])
        suite.sync()
        seconds = time.perf_counter() - t0
    d = gen.describe()
    ddim = gen.ldm_timesteps
    rows = {1: 2 * 4, 2: 2 * 16}  # the plan's loops: 4 stage-1 views, 16 stage-2 views, twice; CFG doubles
    calls = sum(steps_run(gen.steps[stage], ddim) * -(-rows[stage] // gen.max_batch) for stage in (1, 2, 1, 2))
    info = {
        "preset": d["preset"], "dtype": d["dtype"], "steps": d["steps"], "denoising_steps_run": d["denoising_steps_run"],
        "unet_calls": calls, "loop_seconds": {k: round(v, 4) for k, v in plan.timer.timings.items()},
        "sdpa_backends": d["attention"]["sdpa_backends"], "channels_last": d["channels_last"],
        "compile": d["compile"], "views": len(result.views.images),
    }  # fmt: skip
    if "sync_warnings" in sync:
        info["sync_warnings"] = sync["sync_warnings"]
    return entry(name, {"plan_s": seconds, "views_per_s": len(result.views.images) / seconds, **mem}, info)


@contextmanager
def _null():
    yield {}


# --------------------------------------------------------------------- sections


def section_unet(suite: Suite) -> dict:
    """UNet forward per batch and dtype; channels-last and SDPA-math comparisons at the largest batch."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from one2345_ros.views.zero123.generator import apply_speed_options
    from one2345_ros.views.zero123.pipeline import run_recording_attention

    results, notes = [], []
    repeats, warmup = (1, 0) if suite.small else (5, 2)
    for dtype_name in suite.dtypes:
        if not suite.allows(ESTIMATE_S[suite.small]["unet"] / 2):
            notes.append(f"budget: {dtype_name} skipped")
            break
        pipe = zero123_pipe(suite, dtype_name)
        apply_speed_options(pipe)
        unet = pipe.unet
        h, cross = unet.config.sample_size, unet.config.cross_attention_dim
        cl_default = suite.cuda

        def forward(b, unet=unet, h=h, cross=cross):
            g = torch.Generator("cpu").manual_seed(b)
            x = torch.randn(b, unet.config.in_channels, h, h, generator=g).to(suite.device, unet.dtype)
            ctx = torch.randn(b, 1, cross, generator=g).to(suite.device, unet.dtype)
            t = torch.tensor(501, device=suite.device)

            @torch.inference_mode()
            def call():
                return unet(x, t, encoder_hidden_states=ctx).sample

            return call

        for b in UNET_BATCHES:
            if not suite.allows(2.0):
                notes.append(f"budget: unet/{dtype_name}/b{b} and later skipped")
                break
            run = forward(b)
            with peak_memory(suite) as mem:
                s = timed(suite, run, repeats=repeats, warmup=warmup)
            info = {"dtype": dtype_name, "batch": b, "channels_last": cl_default, "sdpa": "default"}
            if b == max(UNET_BATCHES):
                _, backends = run_recording_attention(run)
                info["sdpa_backends"] = list(backends)
            results.append(entry(f"unet/{dtype_name}/b{b}", {"forward_s": s, "images_per_s": b / s, **mem}, info))
        b = max(UNET_BATCHES)
        run = forward(b)
        unet.to(memory_format=torch.contiguous_format if cl_default else torch.channels_last)
        s = timed(suite, run, repeats=repeats, warmup=warmup)
        unet.to(memory_format=torch.channels_last if cl_default else torch.contiguous_format)
        info = {"dtype": dtype_name, "batch": b, "channels_last": not cl_default, "sdpa": "default"}
        results.append(entry(f"unet/{dtype_name}/b{b}/channels_last={not cl_default}", {"forward_s": s, "images_per_s": b / s}, info))
        with sdpa_kernel([SDPBackend.MATH]):
            s = timed(suite, run, repeats=repeats, warmup=warmup)
        info = {"dtype": dtype_name, "batch": b, "channels_last": cl_default, "sdpa": "math"}
        results.append(entry(f"unet/{dtype_name}/b{b}/sdpa=math", {"forward_s": s, "images_per_s": b / s}, info))
    return {"results": results, "notes": notes}


def section_plan(suite: Suite) -> dict:
    """The plan, eager, per dtype and preset."""
    from one2345_ros.views.zero123.generator import apply_speed_options

    results, notes = [], []
    image = input_image()
    for dtype_name in suite.dtypes:
        pipe = zero123_pipe(suite, dtype_name)
        apply_speed_options(pipe)
        for preset in PRESET_NAMES:
            if not suite.allows(ESTIMATE_S[suite.small]["plan"] / 4):
                notes.append(f"budget: plan/{preset}/{dtype_name} skipped")
                continue
            gen = make_generator(pipe, preset, suite.small)
            results.append(run_plan(suite, gen, image, f"plan/{preset}/{dtype_name}/eager"))
    return {"results": results, "notes": notes}


OBJECT_COUNTS = (1, 3)
"""The objects section plans 3 objects in shared batches, against 3 single plans."""


def section_objects(suite: Suite) -> dict:
    """Several objects of one request: their views in shared denoising calls (views/plan.py) against
    one plan per object, faithful preset, the first dtype. Ratio < 1 is what sharing buys."""
    from one2345_ros.views.plan import ViewPlan
    from one2345_ros.views.zero123.generator import apply_speed_options

    dtype_name = suite.dtypes[0]
    pipe = zero123_pipe(suite, dtype_name)
    apply_speed_options(pipe)
    gen = make_generator(pipe, "faithful", suite.small)
    n = OBJECT_COUNTS[-1]
    images = [np.roll(input_image(), 9 * k, axis=1) for k in range(n)]  # different objects, same size
    run_plan(suite, gen, images[0], "warmup", syncs=False)  # kernels and allocator warm before either is timed

    def plan(objects):
        suite.sync()
        t0 = time.perf_counter()
        planner = ViewPlan(gen, objects, seed=0)
        planner.first_views()
        planner.complete([60.0] * len(objects))
        suite.sync()
        return time.perf_counter() - t0

    with peak_memory(suite) as shared_mem:
        shared = plan(images)
    with peak_memory(suite) as single_mem:
        single = sum(plan([image]) for image in images)
    figures = {"shared_s": shared, "single_s": single, "total_s": shared, "ratio_shared_over_single": shared / single,
               "peak_mem_mb": shared_mem["peak_mem_mb"], "single_peak_mem_mb": single_mem["peak_mem_mb"]}  # fmt: skip
    info = {"objects": n, "dtype": dtype_name, "preset": "faithful", "views_per_object": 40,
            "note": f"{n} objects' views in shared batches vs {n} plans one after another"}  # fmt: skip
    return {"results": [entry(f"objects/{n}_shared_vs_single/{dtype_name}", figures, info)], "notes": []}


def section_sparseneus(suite: Suite) -> dict:
    """Full-size SparseNeuS reconstruction of 32 sphere views per available backend."""
    from sparseneus_fixtures import render_sphere_views

    from one2345_ros.config import MeshConfig
    from one2345_ros.mesh import make_mesh
    from one2345_ros.recon.sparseneus import reconstruct_sparseneus
    from one2345_ros.recon.sparseneus.reconstruct import SparseNeuSStats

    backends, notes = ["dense"], []
    try:
        from one2345_ros.recon.sparseneus.torchsparse_backend import import_torchsparse

        import_torchsparse()
        backends.append("torchsparse")
    except Exception as exc:  # noqa: BLE001 - optional backend: record why it is absent
        notes.append(f"torchsparse not measured: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    views = render_sphere_views(size=32 if suite.small else 256)
    results = []
    for backend in backends:
        if not suite.allows(ESTIMATE_S[suite.small]["sparseneus"] / 2):
            notes.append(f"budget: {backend} skipped")
            continue
        net = sparseneus_network(suite)
        cfg = sparseneus_config(suite, backend)
        timer = SyncTimer(suite)
        stats = SparseNeuSStats()
        with peak_memory(suite) as mem:
            t0 = time.perf_counter()
            surface = reconstruct_sparseneus(views, cfg, net, timer=timer, stats=stats)
            mesh = make_mesh(surface, views, MeshConfig(), timer)  # the one mesh stage, colours included
            verts, faces = mesh.vertices, mesh.faces
            suite.sync()
            total = time.perf_counter() - t0
        figures = {"total_s": total, **{f"{k}_s": v for k, v in timer.timings.items()}, **mem,
                   "vertices": len(verts), "faces": len(faces), "active_voxels": stats.active_voxels}  # fmt: skip
        info = {"backend": backend, "volume_resolution": cfg.volume_resolution, "mesh_resolution": cfg.mesh_resolution,
                "near_surface": cfg.mesh_near_surface, "views": len(views.images), "image_size": views.images.shape[1],
                "sdf_evaluations": stats.sdf_evaluations}  # fmt: skip
        results.append(entry(f"sparseneus/{backend}", figures, info))
        del net
        free_memory(suite)
    return {"results": results, "notes": notes}


def section_pipeline(suite: Suite) -> dict:
    """Image + mask -> mesh with the library's Pipeline, Zero123 fp16 faithful and SparseNeuS injected."""
    from one2345_ros import config as C
    from one2345_ros.inputs.prepare import prepare_inputs
    from one2345_ros.pipeline import Pipeline
    from one2345_ros.recon.sparseneus.backend import SparseNeuSReconstructor
    from one2345_ros.views.zero123.generator import apply_speed_options

    dtype_name = suite.dtypes[0]
    pipe = zero123_pipe(suite, dtype_name)
    apply_speed_options(pipe)
    gen = make_generator(pipe, "faithful", suite.small)
    cfg = C.Config()
    cfg.backend = "sparseneus"
    cfg.sparseneus = sparseneus_config(suite)
    cfg.zero123.dtype, cfg.zero123.preset = dtype_name, "faithful"
    # No checkpoint: a random network (the Pipeline builds one from the config only when none is given).
    reconstructor = SparseNeuSReconstructor(cfg.sparseneus, network=sparseneus_network(suite))
    pipeline = Pipeline(cfg, generator=gen, reconstructor=reconstructor)
    image = np.full((480, 640, 3), 255, np.uint8)
    image[120:380, 200:460] = input_image(260)
    mask = np.zeros(image.shape[:2], np.uint8)
    mask[120:380, 200:460] = (input_image(260) < 250).any(-1) * 255
    with peak_memory(suite) as mem:
        t0 = time.perf_counter()
        result = pipeline.reconstruct(prepare_inputs(image, mask, cfg.inputs))
        suite.sync()
        total = time.perf_counter() - t0
    figures = {"total_s": total, **{f"{k}_s": v for k, v in result.timings.items()}, **mem,
               "vertices": len(result.mesh.vertices), "faces": len(result.mesh.faces)}  # fmt: skip
    info = {"zero123": gen.describe(), "backend": result.backend, "polar_deg": result.polar_deg,
            "stages_s": {k: v for k, v in result.timings.items() if "." in k},
            "note": "Zero123 and SparseNeuS with random weights: timings only; views are noise, the mesh a sphere"}  # fmt: skip
    return {"results": [entry(f"pipeline/image_to_mesh/{dtype_name}/faithful", figures, info)], "notes": []}


def compiled_plan_entries(suite: Suite, dtype_name: str) -> list[dict]:
    """Compile the UNet as zero123.compile does, then time the plan: first run (compiles), warm runs."""
    from one2345_ros.views.zero123.generator import apply_speed_options, compile_unet

    pipe = build_zero123(suite, dtype_name)
    apply_speed_options(pipe, compile=suite.cuda)
    if not suite.cuda:  # production compiles on CUDA only; reached in-process (tests): the same call
        compile_unet(pipe.unet)
    image = input_image()
    gen = make_generator(pipe, "faithful", suite.small, compiled=True)
    t0 = time.perf_counter()
    run_plan(suite, gen, image, "warmup", syncs=False)
    first = time.perf_counter() - t0
    out = []
    for preset in PRESET_NAMES:
        gen = make_generator(pipe, preset, suite.small, compiled=True)
        e = run_plan(suite, gen, image, f"plan/{preset}/{dtype_name}/compiled")
        if preset == "faithful":
            e["figures"]["first_plan_s"] = first
            e["figures"]["compile_overhead_s"] = max(first - e["figures"]["plan_s"], 1e-6)
        out.append(e)
    return out


def section_plan_compiled(suite: Suite, in_process: bool = False) -> dict:
    """Per dtype, a child process (hard timeout) compiles and times the plan; failures are recorded."""
    results, notes, errors = [], [], []
    if not suite.cuda and not in_process:
        note = ("skipped: torch.compile is measured on CUDA only (on a CPU it needs a C++ toolchain and minutes; "
                "the production path compiles only on CUDA)")  # fmt: skip
        return {"results": [], "notes": [note], "status": "skipped"}
    for dtype_name in suite.dtypes:
        need = ESTIMATE_S[suite.small]["plan_compiled"] / 2
        if not suite.allows(need):
            notes.append(f"budget: {suite.left():.0f} s left, compiled {dtype_name} needs ~{need:.0f} s: skipped")
            continue
        try:
            if in_process:
                results.extend(compiled_plan_entries(suite, dtype_name))
            else:
                results.extend(run_child(suite, f"plan_compiled:{dtype_name}", min(COMPILE_TIMEOUT_S, suite.left() - 5)))
        except Exception as exc:  # noqa: BLE001 - a failed compile is a result, not the end of the suite
            errors.append({"item": f"plan_compiled/{dtype_name}", "error": f"{type(exc).__name__}: {exc}"[:2000]})
        free_memory(suite)
    out = {"results": results, "notes": notes}
    if errors:
        out["errors"] = errors
    return out


def run_child(suite: Suite, task: str, timeout_s: float) -> list[dict]:
    """Run ``task`` in a child process of this script; its entries, or an exception saying why not."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "child.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", task, "--child-out", str(out),
               "--device", str(suite.device)] + (["--small"] if suite.small else [])  # fmt: skip
        # Own session: on timeout the child and its compile workers go together.
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        try:
            log, _ = proc.communicate(timeout=max(timeout_s, 1.0))
        except subprocess.TimeoutExpired as exc:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise TimeoutError(f"{task} did not finish within {timeout_s:.0f} s (killed)") from exc
        if proc.returncode != 0 or not out.is_file():
            tail = (log or "").strip().splitlines()[-12:]
            raise RuntimeError(f"{task} exited {proc.returncode}: " + " | ".join(tail))
        data = json.loads(out.read_text())
    if data.get("error"):
        raise RuntimeError(data["error"])
    return data["results"]


class SyncTimer(StageTimer):
    """A StageTimer that synchronises CUDA before each stage ends, so GPU work is counted where it runs."""

    def __init__(self, suite: Suite):
        super().__init__()
        self.suite = suite

    @contextmanager
    def stage(self, name: str):
        with super().stage(name):
            try:
                yield
            finally:
                self.suite.sync()


SECTION_FUNCTIONS = {
    "unet": section_unet,
    "plan": section_plan,
    "objects": section_objects,
    "sparseneus": section_sparseneus,
    "pipeline": section_pipeline,
    "plan_compiled": section_plan_compiled,
}


# --------------------------------------------------------------------- driver


def run_suite(suite: Suite, sections=SECTIONS) -> dict:
    """Run ``sections`` in order within the budget; every section's outcome is recorded."""
    report = {"schema_version": SCHEMA_VERSION, "suite": "gpu_suite", "budget_s": suite.budget_s,
              "environment": environment(suite), "sections": {}}  # fmt: skip
    for name in sections:
        need = ESTIMATE_S[suite.small][name]
        if not suite.allows(need):
            report["sections"][name] = {"status": "skipped", "results": [],
                                        "notes": [f"budget: {suite.left():.0f} s left, needs ~{need} s"]}  # fmt: skip
            continue
        t0 = time.perf_counter()
        try:
            out = SECTION_FUNCTIONS[name](suite)
            out.setdefault("status", "partial" if out.get("errors") or any("budget" in n for n in out["notes"]) else "ok")
        except Exception as exc:  # noqa: BLE001 - degrade: record and go on
            out = {"status": "error", "results": [], "notes": [],
                   "error": f"{type(exc).__name__}: {exc}"[:2000], "traceback": traceback.format_exc()[-4000:]}  # fmt: skip
        out["seconds"] = time.perf_counter() - t0
        report["sections"][name] = out
        print(f"[{suite.elapsed():6.1f} s] {name}: {out['status']} ({out['seconds']:.1f} s)", flush=True)
        if name == "plan":  # the pipeline section keeps the first dtype's models
            for dtype_name in suite.dtypes[1:]:
                suite.pipes.pop(dtype_name, None)
        if name == "pipeline":  # the compile children get the device to themselves
            suite.pipes.clear()
        free_memory(suite)
    suite.pipes.clear()
    free_memory(suite)
    report["elapsed_s"] = suite.elapsed()
    return report


def print_table(report: dict) -> None:
    env = report["environment"]
    print(f"\nGPU suite on {env.get('gpu_name') or env['cpu']} (driver {env.get('driver')}), torch {env['torch']}, "
          f"CUDA {env['cuda']}, small={env['small']}, {report['elapsed_s']:.0f} s of {report['budget_s']:.0f} s")  # fmt: skip
    keys = ("plan_s", "views_per_s", "forward_s", "images_per_s", "total_s", "compile_overhead_s", "peak_mem_mb")
    print(f"{'item':44s} " + " ".join(f"{k:>13s}" for k in keys))
    for name, sec in report["sections"].items():
        for e in sec["results"]:
            cells = " ".join(f"{e['figures'][k]:13.4g}" if k in e["figures"] else f"{'':13s}" for k in keys)
            print(f"{e['name']:44s} {cells}")
        for note in sec.get("notes", []):
            print(f"  {name}: {note}")
        if sec.get("error"):
            print(f"  {name}: ERROR {sec['error'].splitlines()[0]}")
        for err in sec.get("errors", []):
            print(f"  {err['item']}: ERROR {err['error'].splitlines()[0]}")


def child_main(args) -> int:
    """``--child plan_compiled:<dtype>``: one compiled-plan measurement, written to --child-out."""
    suite = Suite(device=torch.device(args.device), small=args.small, budget_s=COMPILE_TIMEOUT_S)
    task, _, dtype_name = args.child.partition(":")
    try:
        if task != "plan_compiled" or dtype_name not in suite.dtypes:
            raise ValueError(f"unknown child task {args.child!r}")
        data = {"results": compiled_plan_entries(suite, dtype_name)}
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        data = {"error": f"{type(exc).__name__}: {exc}"[:2000] + "\n" + traceback.format_exc()[-3000:]}
    Path(args.child_out).write_text(json.dumps(data))
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="tiny configs and 1-2 steps (CPU, CI): seconds")
    ap.add_argument("--device", default="auto", help="auto (CUDA when available), cuda, cuda:N or cpu")
    ap.add_argument("--budget-s", type=float, default=None,
                    help=f"wall-clock budget for all sections (default {DEFAULT_BUDGET_S:.0f}, --small {SMALL_BUDGET_S:.0f})")
    ap.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    ap.add_argument("--out", default=None, help="JSON path (default benchmarks/results/gpu_suite_<gpu-name>.json)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--child-out", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.child:
        return child_main(args)
    budget = args.budget_s if args.budget_s is not None else SMALL_BUDGET_S if args.small else DEFAULT_BUDGET_S
    suite = Suite(device=torch.device(args.device), small=args.small, budget_s=budget)
    threads = torch.get_num_threads()
    if args.small and suite.device.type == "cpu":
        torch.set_num_threads(1)  # tiny models: a second thread only adds contention on a shared CPU
    try:
        report = run_suite(suite, [s for s in SECTIONS if s in args.sections])
    finally:
        torch.set_num_threads(threads)
    out = Path(args.out) if args.out else ROOT / "benchmarks" / "results" / f"gpu_suite_{device_slug(report['environment'])}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    print_table(report)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
