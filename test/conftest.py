"""Markers: slow (--runslow), gpu (CUDA), ros (rclpy), apt_ros, weights (real checkpoints).

ONE2345_REQUIRE_ROS=1 (CI's ROS run): a `ros` test that skips, for whatever reason, fails
instead, so that a broken ROS environment cannot pass silently. Deselect what the
environment cannot provide (`-m "ros and not apt_ros"` on the pip route) rather than skip it.
ONE2345_REQUIRE_TORCHSPARSE=1 (CI, after tools/build_torchsparse.sh): likewise for a test that
skips because torchsparse is missing.
"""

import importlib.util
import os

import pytest

# OpenMP threads that spin while they wait burn the cores the other thread (or another job on a
# shared 2-core machine) needs: a tiny UNet's denoising measured 8.5 s spinning, 0.17 s passive.
# Set before torch loads its OpenMP runtime; subprocesses (CLI tests) inherit it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="run tests marked slow")


def _has_cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


def pytest_collection_modifyitems(config, items):
    skips = {
        "slow": None if config.getoption("--runslow") else "slow: pass --runslow",
        "gpu": None if _has_cuda() else "gpu: no CUDA device",
        "ros": None if importlib.util.find_spec("rclpy") else "ros: rclpy not importable (no ROS 2 install)",
        "weights": None
        if (os.environ.get("ONE2345_ZERO123") or os.environ.get("ONE2345_SPARSENEUS"))
        else "weights: set ONE2345_ZERO123 / ONE2345_SPARSENEUS to real checkpoints",
    }
    for item in items:
        for marker, reason in skips.items():
            # get_closest_marker, not `in item.keywords`: keywords also hold the names of parent
            # folders, so a checkout in a folder called "ros" or "slow" skipped everything.
            if reason and item.get_closest_marker(marker) is not None:
                item.add_marker(pytest.mark.skip(reason=reason))


def _required(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not report.skipped:
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    if _required("ONE2345_REQUIRE_ROS") and item.get_closest_marker("ros") is not None:
        report.outcome = "failed"
        report.longrepr = f"ONE2345_REQUIRE_ROS is set and this ros test skipped: {reason}"
    elif _required("ONE2345_REQUIRE_TORCHSPARSE") and "torchsparse" in reason:
        report.outcome = "failed"
        report.longrepr = f"ONE2345_REQUIRE_TORCHSPARSE is set and this test skipped: {reason}"


@pytest.fixture
def start_node(tmp_path):
    """``start(**NodeRig.start options) -> NodeRig`` (test/ros_helpers.py): rclpy initialised for the
    test, every node started stopped after it."""
    import rclpy
    from ros_helpers import NodeRig

    rclpy.init()
    rigs = []

    def start(**options):
        rigs.append(NodeRig.start(tmp_path, **options))
        return rigs[-1]

    yield start
    for rig in rigs:
        rig.stop()
    rclpy.try_shutdown()
