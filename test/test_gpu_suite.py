"""benchmarks/gpu_suite.py --small on the CPU: every section runs, the JSON has its keys, figures are positive.

The suite is meant for a lent GPU; this keeps it from rotting between loans. Split by
sections so that no test runs long; together they cover the whole --small run.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def suite_module():
    spec = importlib.util.spec_from_file_location("gpu_suite", ROOT / "benchmarks" / "gpu_suite.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_suite"] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    import diffusers.models  # noqa: F401 - the suite imports these lazily: load them once for the file
    import transformers.models.clip  # noqa: F401

    return module


def _run(suite_module, tmp_path, *args) -> dict:
    out = tmp_path / "suite.json"
    threads = torch.get_num_threads()
    assert suite_module.main(["--small", "--device", "cpu", "--out", str(out), *args]) == 0
    assert torch.get_num_threads() == threads  # restored
    return json.loads(out.read_text())


def _check_report(report: dict, sections: list[str]) -> dict:
    assert {"schema_version", "suite", "budget_s", "environment", "sections", "elapsed_s"} <= set(report)
    env = report["environment"]
    assert {"gpu_name", "driver", "torch", "cuda", "cudnn", "python", "device", "small", "memory_kind"} <= set(env)
    assert env["torch"] == torch.__version__ and env["device"] == "cpu" and env["small"] is True
    assert list(report["sections"]) == sections
    entries = {}
    for name, sec in report["sections"].items():
        assert sec["status"] in ("ok", "skipped"), (name, sec.get("error"), sec.get("errors"))
        assert isinstance(sec["notes"], list)
        for e in sec["results"]:
            assert set(e) == {"name", "figures", "info"} and e["figures"], e["name"]
            for key, value in e["figures"].items():
                assert isinstance(value, float) and math.isfinite(value) and value > 0, (e["name"], key, value)
            entries[e["name"]] = e
    return entries


def test_small_suite_zero123_sections(suite_module, tmp_path):
    sections = ["unet", "plan", "plan_compiled"]
    report = _run(suite_module, tmp_path, "--sections", *sections)
    entries = _check_report(report, sections)
    expected = {f"unet/{d}/b{b}" for d in ("fp32", "bf16") for b in (4, 16, 32)}
    expected |= {f"unet/{d}/b32/{v}" for d in ("fp32", "bf16") for v in ("channels_last=True", "sdpa=math")}
    expected |= {f"plan/{p}/{d}/eager" for p in ("faithful", "fast") for d in ("fp32", "bf16")}
    assert set(entries) == expected
    for d in ("fp32", "bf16"):
        for b in (4, 16, 32):
            assert set(entries[f"unet/{d}/b{b}"]["figures"]) == {"forward_s", "images_per_s", "peak_mem_mb"}
        assert entries[f"unet/{d}/b32"]["info"]["sdpa_backends"] == ["flash_cpu"]
        faithful = entries[f"plan/faithful/{d}/eager"]
        assert set(faithful["figures"]) == {"plan_s", "views_per_s", "peak_mem_mb"}
        assert faithful["info"]["views"] == 40 and faithful["info"]["dtype"] == d
        assert faithful["info"]["denoising_steps_run"] == {"stage1": 1, "stage2": 1}  # 2 faithful steps run 1
        assert faithful["info"]["unet_calls"] == 4 and faithful["info"]["sdpa_backends"] == ["flash_cpu"]
    compiled = report["sections"]["plan_compiled"]
    assert compiled["status"] == "skipped" and "CUDA only" in compiled["notes"][0]


def _torchsparse_imports() -> bool:
    from one2345_ros.recon.sparseneus.torchsparse_backend import BackendUnavailableError, import_torchsparse

    try:
        import_torchsparse()
    except BackendUnavailableError:
        return False
    return True


def test_small_suite_reconstruction_sections(suite_module, tmp_path):
    sections = ["sparseneus", "pipeline"]
    report = _run(suite_module, tmp_path, "--sections", *sections)
    entries = _check_report(report, sections)
    # the suite measures torchsparse too where it imports (CI builds it), else says why not
    backends = ["dense", "torchsparse"] if _torchsparse_imports() else ["dense"]
    assert set(entries) == {f"sparseneus/{b}" for b in backends} | {"pipeline/image_to_mesh/fp32/faithful"}
    if backends == ["dense"]:
        assert any("torchsparse not measured" in n for n in report["sections"]["sparseneus"]["notes"])
    sn = entries["sparseneus/dense"]["figures"]
    stages = {f"{s}_s" for s in ("features", "cost_volume", "cnn_3d", "sdf_grid", "marching_cubes", "clean", "colors")}
    for b in backends:
        sn = entries[f"sparseneus/{b}"]["figures"]
        assert stages | {"total_s", "peak_mem_mb", "vertices", "faces", "active_voxels"} == set(sn), b
    pipe = entries["pipeline/image_to_mesh/fp32/faithful"]
    want = {"total_s", "views_stage1_s", "views_stage2_s", "reconstruct_s", "vertices", "peak_mem_mb"}
    assert want <= set(pipe["figures"])
    assert pipe["info"]["backend"] == "sparseneus"
    assert pipe["info"]["zero123"]["scheduler"] == "ddim_ldm" and pipe["info"]["zero123"]["uint8"] == "truncate"


def test_budget_guard_skips_sections_with_a_note(suite_module, tmp_path):
    report = _run(suite_module, tmp_path, "--budget-s", "0", "--sections", "unet", "pipeline")
    for name in ("unet", "pipeline"):
        sec = report["sections"][name]
        assert sec["status"] == "skipped" and sec["results"] == [] and sec["notes"][0].startswith("budget:")


def test_compile_failure_is_recorded_not_fatal(suite_module, monkeypatch):
    def no_compiler(*args, **kwargs):
        raise RuntimeError("no C++ compiler for inductor")

    monkeypatch.setattr(torch, "compile", no_compiler)
    suite = suite_module.Suite(device=torch.device("cpu"), small=True, budget_s=60)
    out = suite_module.section_plan_compiled(suite, in_process=True)
    assert out["results"] == []
    assert [e["item"] for e in out["errors"]] == ["plan_compiled/fp32", "plan_compiled/bf16"]
    assert all("no C++ compiler" in e["error"] for e in out["errors"])


def test_child_process_failures_and_timeouts_are_errors(suite_module):
    suite = suite_module.Suite(device=torch.device("cpu"), small=True, budget_s=60)
    with pytest.raises(RuntimeError, match="unknown child task 'bogus'"):
        suite_module.run_child(suite, "bogus", timeout_s=60)
    with pytest.raises(TimeoutError, match="did not finish within 0 s"):
        suite_module.run_child(suite, "plan_compiled:fp32", timeout_s=0.2)


def test_small_suite_objects_section(suite_module, tmp_path):
    """Three objects planned in shared batches against three single plans (the ratio is what sharing buys)."""
    entries = _check_report(_run(suite_module, tmp_path, "--sections", "objects"), ["objects"])
    (entry,) = entries.values()
    figures = entry["figures"]
    assert {"shared_s", "single_s", "ratio_shared_over_single", "peak_mem_mb"} <= set(figures)
    assert figures["ratio_shared_over_single"] == pytest.approx(figures["shared_s"] / figures["single_s"])
    assert entry["info"]["objects"] == 3
