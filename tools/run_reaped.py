#!/usr/bin/env python3
"""Run a command, then stop whatever it left running (Linux).

    tools/run_reaped.py [--grace SECONDS] -- COMMAND [ARGS...]

This process makes itself a child subreaper (prctl PR_SET_CHILD_SUBREAPER): processes the
command leaves behind, also those in sessions of their own (the node processes the ROS tests
start) and double-forked daemons (a ros2 daemon), are re-parented to it instead of to init.
When the command has exited, every descendant still running is reported on stderr and gets
SIGINT, then SIGKILL after the grace period (default 3 s). SIGINT, SIGTERM and SIGHUP that
reach this process are passed on to the command, and the clean-up still runs. Only
/proc/PID/stat and /proc/PID/cmdline of its own descendants are read. Exit status: the
command's (128 + signal number when a signal ended it).
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time

PR_SET_CHILD_SUBREAPER = 36


def _children_map() -> dict[int, list[int]]:
    """ppid -> pids of live processes (zombies left out: they only wait to be reaped)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:  # gone meanwhile
            continue
        state, ppid = stat[stat.rindex(")") + 2 :].split()[:2]
        if state != "Z":
            children.setdefault(int(ppid), []).append(int(entry))
    return children


def descendants(root: int) -> list[int]:
    children, found, todo = _children_map(), [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()[:200]
    except OSError:
        return "?"


def _reap() -> None:
    """Collect exited re-parented orphans (they are our children now)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def main(argv: list[str]) -> int:
    grace = 3.0
    if argv[:1] == ["--grace"]:
        grace, argv = float(argv[1]), argv[2:]
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        print(f"run_reaped: prctl(PR_SET_CHILD_SUBREAPER) failed (errno {ctypes.get_errno()}); processes that "
              "leave their parent are not caught", file=sys.stderr)  # fmt: skip
    proc = subprocess.Popen(argv)

    def forward(signum, frame):  # a handler, not SIG_IGN: the command keeps default dispositions
        if proc.poll() is None:
            proc.send_signal(signum)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, forward)
    code = proc.wait()
    _reap()
    left = descendants(os.getpid())
    if left:
        print(f"run_reaped: {len(left)} process(es) left running by '{' '.join(argv)[:80]}':", file=sys.stderr)
        for pid in left:
            print(f"  {pid}: {_cmdline(pid)}", file=sys.stderr)
        _signal_all(left, signal.SIGINT)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            _reap()
            left = [pid for pid in left if pid in descendants(os.getpid())]
            if not left:
                break
            time.sleep(0.1)
        if left:
            print(f"run_reaped: SIGKILL to {left}", file=sys.stderr)
            _signal_all(left, signal.SIGKILL)
            time.sleep(0.2)
        _reap()
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
