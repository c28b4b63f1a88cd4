"""pytest plugin: CPU seconds per test (setup + call + teardown, child processes included).

Wall-clock durations on a shared machine mostly measure the other jobs; CPU time is the steadier
measure of what a test costs. Use from the repository root:

    PYTHONPATH=tools python -m pytest -p pytest_cpu_durations
"""

import os

import pytest

_ROWS: list[tuple[float, str]] = []
SHOWN = 30


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    start = _cpu_seconds()
    yield
    _ROWS.append((_cpu_seconds() - start, item.nodeid))


def pytest_terminal_summary(terminalreporter):
    terminalreporter.write_line(f"== CPU seconds per test, the {SHOWN} most (children included)")
    for seconds, nodeid in sorted(_ROWS, reverse=True)[:SHOWN]:
        terminalreporter.write_line(f"{seconds:7.2f}  {nodeid}")
