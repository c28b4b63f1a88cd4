"""Markers: slow (--runslow), gpu (CUDA), ros (rclpy), apt_ros, weights (real checkpoints).

ONE2345_REQUIRE_ROS=1 (CI's ROS run): a `ros` test that skips, for whatever reason, fails
instead, so that a broken ROS environment cannot pass silently. Deselect what the
environment cannot provide (`-m "ros and not apt_ros"` on the pip route) rather than skip it.
"""

import importlib.util
import os

import pytest


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


def _ros_required() -> bool:
    return os.environ.get("ONE2345_REQUIRE_ROS", "") not in ("", "0")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and _ros_required() and item.get_closest_marker("ros") is not None:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"ONE2345_REQUIRE_ROS is set and this ros test skipped: {reason}"
