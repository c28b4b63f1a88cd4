"""The package's structure: no import cycles (imports inside functions included), rclpy only in the node,
the synthetic test scenes never imported by production stages, and a tree that reads as the pipeline."""

import ast
import functools
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "one2345_ros"
PRODUCTION = ("pipeline", "preprocess", "scale", "types", "config", "timing", "inputs", "views", "elevation",
              "recon", "mesh", "results", "geometry", "ros")  # fmt: skip
"""Modules the pipeline, the node and the CLI run on real data (not cli/, synthetic/, evaluation/)."""


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@functools.cache
def import_graph() -> dict[str, set[str]]:
    """module -> the package modules it imports, anywhere in the file (functions included)."""
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in files}
    for module, path in files.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = module.split(".") if is_package else module.split(".")[:-1]
                    base = base[: len(base) - node.level + 1]
                    stem = ".".join(base + ([node.module] if node.module else []))
                else:
                    stem = node.module or ""
                names = [stem] + [f"{stem}.{a.name}" for a in node.names]
            for name in names:
                parts = name.split(".")
                while parts and ".".join(parts) not in files:
                    parts.pop()
                target = ".".join(parts)
                # a module's own package __init__ runs first anyway: not an edge
                if target and target != module and not module.startswith(target + "."):
                    graph[module].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_cycles():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_rclpy_is_imported_by_the_node_and_its_client_only():
    """ros/node.py (the node) and ros/client.py (the node in-process plus a camera and a service client,
    for ``one2345 ros-demo`` and the benchmarks). The CLI imports the client inside its command only."""
    importers = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])  # fmt: skip
            if any(m == "rclpy" or m.startswith("rclpy.") for m in mods):
                importers.add(_module_name(path))
    assert importers == {"one2345_ros.ros.node", "one2345_ros.ros.client"}


@pytest.mark.parametrize("package", PRODUCTION)
def test_production_code_never_imports_the_synthetic_scenes(package):
    graph = import_graph()
    offenders = {m: sorted(t for t in targets if t.startswith("one2345_ros.synthetic"))
                 for m, targets in graph.items() if m.split(".")[1:2] == [package]}  # fmt: skip
    assert {m: t for m, t in offenders.items() if t} == {}


def test_top_level_is_small_and_folders_follow_the_pipeline():
    top = sorted(p.stem for p in PACKAGE.glob("*.py") if p.name != "__init__.py")
    assert top == ["config", "pipeline", "preprocess", "scale", "timing", "types"]
    folders = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file())
    assert folders == ["cli", "elevation", "evaluation", "geometry", "inputs", "mesh", "recon", "results", "ros",
                       "synthetic", "views"]  # fmt: skip


def test_the_command_line_starts_without_torch():
    """Every command's parser is built at start: building them must not import torch, diffusers or rclpy (seconds),
    so that a bad flag or value is answered at once."""
    import subprocess
    import sys

    code = "import sys, one2345_ros.cli.main as m; m.build_parser(); print(sorted(k for k in ('torch', 'diffusers', 'trimesh', 'cv2', 'rclpy') if k in sys.modules))"  # noqa: E501
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60).stdout
    assert out.strip() == "[]"
