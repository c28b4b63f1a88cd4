"""One worker thread that owns the models; requests are rejected or queued while it is busy.

ROS-free so the node's scheduling (busy, queue, cancel, timeout) is tested without ROS.
GPU models are only ever touched from this one thread (loading, inference, unloading):
PyTorch/CUDA state is not safe to share across the executor's threads (synchros2's
PyTorch guide), and the executor threads stay free for image callbacks.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import CancelledError, Future
from concurrent.futures import TimeoutError as FutureTimeout  # not the builtin before Python 3.11
from typing import Any

ProgressFn = Callable[[str, float], None]
JobFn = Callable[[ProgressFn, threading.Event], Any]


class Busy(RuntimeError):
    """A request arrived while the worker was busy and the queue was full."""


class Ticket:
    """A submitted job: its future, cancel event and last progress report."""

    def __init__(self, job_id: int, label: str, on_progress: ProgressFn | None):
        self.job_id = job_id
        self.label = label
        self.future: Future = Future()
        self.cancel_event = threading.Event()
        self.stage = "queued"
        self.fraction = 0.0
        self._on_progress = on_progress

    def report(self, stage: str, fraction: float) -> None:
        self.stage, self.fraction = stage, float(min(max(fraction, 0.0), 1.0))
        if self._on_progress is not None:
            self._on_progress(self.stage, self.fraction)

    def cancel(self) -> None:
        """Cancel: a queued job never starts; a running one sees its cancel event at the next stage."""
        self.cancel_event.set()
        self.future.cancel()  # succeeds only while still queued

    def wait(self, timeout: float | None = None) -> Any:
        """The job's result (raises its exception, CancelledError or concurrent.futures.TimeoutError)."""
        return self.future.result(timeout=timeout)


class Worker:
    """Runs jobs one at a time on a dedicated thread.

    Args:
        max_queued: jobs allowed to wait while one runs (0 = reject when busy).
    """

    def __init__(self, max_queued: int = 0, name: str = "one2345-worker"):
        self.max_queued = max_queued
        self._queue: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self._pending = 0
        self._running: Ticket | None = None
        self._next_id = 0
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    @property
    def busy(self) -> bool:
        with self._lock:
            return self._running is not None or self._pending > 0

    @property
    def queued(self) -> int:
        with self._lock:
            return self._pending

    def submit(self, fn: JobFn, label: str = "", on_progress: ProgressFn | None = None) -> Ticket:
        """Queue ``fn(progress, cancel_event)``; raises Busy when the queue is full."""
        with self._lock:
            if (self._running is not None or self._pending > 0) and self._pending >= self.max_queued:
                running = self._running.label if self._running is not None else "a queued job"
                raise Busy(f"busy: reconstructing {running} ({self._pending} waiting, ros.queue_requests = "
                           f"{self.max_queued}); try again later")  # fmt: skip
            self._next_id += 1
            ticket = Ticket(self._next_id, label or f"job {self._next_id}", on_progress)
            self._pending += 1
        self._queue.put((fn, ticket))
        return ticket

    def run_exclusive(self, fn: Callable[[], Any], label: str = "task") -> Future:
        """Run ``fn()`` on the worker thread in turn, ignoring the queue limit (model load/unload)."""
        with self._lock:
            self._next_id += 1
            ticket = Ticket(self._next_id, label, None)
            self._pending += 1
        self._queue.put((lambda progress, cancel: fn(), ticket))
        return ticket.future

    def stop(self, timeout: float = 10.0) -> None:
        """Cancel what is queued or running and end the thread."""
        with self._lock:
            running = self._running
        if running is not None:
            running.cancel()
        self._queue.put(None)
        self._thread.join(timeout)

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                self._drain()
                return
            fn, ticket = item
            with self._lock:
                self._pending -= 1
                if not ticket.future.set_running_or_notify_cancel():
                    continue  # cancelled while queued
                self._running = ticket
            try:
                ticket.report("started", 0.0)
                ticket.future.set_result(fn(ticket.report, ticket.cancel_event))
            except BaseException as exc:  # delivered to the waiter, never kills the worker
                ticket.future.set_exception(exc)
            finally:
                with self._lock:
                    self._running = None

    def _drain(self) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not None:
                item[1].future.cancel()


def wait_for(ticket: Ticket, timeout_s: float = 0.0, should_cancel: Callable[[], bool] | None = None,
             poll_s: float = 0.05, grace_s: float = 30.0) -> tuple[str, Any]:  # fmt: skip
    """Wait for a ticket, honouring an external cancel request and a timeout.

    Returns ``(status, value)``: ``("done", result)``, ``("error", exception)``,
    ``("cancelled", None)`` or ``("timeout", None)``. On cancel or timeout the job is
    cancelled and given ``grace_s`` to stop at its next stage boundary.
    """
    deadline = time.monotonic() + timeout_s if timeout_s > 0 else None
    status = None
    while status is None:
        try:
            return "done", ticket.wait(poll_s)
        except CancelledError:
            return "cancelled", None
        except FutureTimeout:
            pass
        except Exception as exc:  # the job's own failure
            return ("cancelled", None) if ticket.cancel_event.is_set() else ("error", exc)
        if should_cancel is not None and should_cancel():
            status = "cancelled"
        elif deadline is not None and time.monotonic() > deadline:
            status = "timeout"
    ticket.cancel()
    with contextlib.suppress(BaseException):  # the job's outcome no longer matters
        ticket.wait(grace_s)
    return status, None
