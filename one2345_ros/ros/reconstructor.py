"""The node's logic without ROS: inputs, requests, the worker, outcomes.

``node.py`` only wires ROS callbacks to this class and turns outcomes into messages, so
everything here (latest pair, busy/queue, cancel, timeouts, bad messages, model
load/unload on the worker thread) is tested without rclpy.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import Config
from ..results.files import unique_stem, write_objects, write_result
from ..types import Cancelled, InputError, ReconstructionInputs
from .images import BadMessage
from .inputs import (
    InputMessages,
    LatestPair,
    PreparedObjects,
    has_calibration,
    has_image,
    inputs_from_messages,
    objects_from_messages,
)
from .publications import ObjectOutcome
from .scheduler import Busy, Ticket, Worker, wait_for


class NotActive(RuntimeError):
    """A request arrived while the models are not loaded (node not active)."""


@dataclass
class Request:
    """A service request or action goal: explicit images, or empty image = the latest pair.

    ``labels`` (a label image, instance ids) instead of ``mask``: one object per id (``label_ids``:
    only these), each named ``<object_id>_<id>`` (``object_<id>`` without an object_id).
    """

    object_id: str = ""
    image: Any = None
    mask: Any = None
    depth: Any = None
    camera_info: Any = None
    labels: Any = None
    label_ids: tuple[int, ...] = ()

    @classmethod
    def from_msg(cls, msg) -> Request:
        return cls(msg.object_id, msg.image, msg.mask, msg.depth, msg.camera_info, getattr(msg, "labels", None),
                   tuple(int(i) for i in getattr(msg, "label_ids", ())))  # fmt: skip


@dataclass
class Outcome:
    """What a request produced. ``status``: done, failed, bad_input, busy, inactive, cancelled, timeout."""

    status: str
    message: str
    inputs: ReconstructionInputs | None = None
    result: Any = None
    mesh_uri: str = ""
    published: Any = None
    """The ReconstructedObject message the node published (set by the node)."""
    objects: list[ObjectOutcome] | None = None
    """Every object of the request (one for a mask), failed ones with their reason; ``result`` and
    ``mesh_uri`` are the first reconstructed one's."""
    published_objects: list | None = None
    """The ReconstructedObject of every object (set by the node)."""

    @property
    def success(self) -> bool:
        return self.status == "done"


class Reconstructor:
    """Owns the pipeline (on the worker thread), the latest input pair and the request flow.

    Args:
        settings: the validated Config (its ``ros`` group is the node's own settings).
        pipeline_factory: ``Config -> pipeline`` with ``load()``, ``unload()`` and
            ``reconstruct(inputs, progress=, cancel=)``.
        log: a logger with ``info``, ``warning`` and ``error`` (rclpy's or logging's).
        clock_ns: the node clock (sim time aware), nanoseconds.
        gravity_lookup: ``(camera frame_id, stamp_ns) -> (4, 4) c2w`` in the z-up
            ``ros.gravity_frame`` (TF in the node); raises when unavailable.
    """

    def __init__(self, settings: Config, pipeline_factory: Callable[[Any], Any], *, log=None,
                 clock_ns: Callable[[], int] = time.time_ns,
                 gravity_lookup: Callable[[str, int], Any] | None = None):  # fmt: skip
        self.settings = settings
        self._factory = pipeline_factory
        self.log = log or logging.getLogger("one2345_ros.reconstructor")
        self._clock_ns = clock_ns
        self._gravity_lookup = gravity_lookup
        self.latest = LatestPair(settings.inputs)
        self.worker = Worker(settings.ros.queue_requests)
        self._pipeline = None
        self._active = threading.Event()
        self.dropped_inputs = 0

    # ---------------------------------------------------------------- lifecycle
    @property
    def active(self) -> bool:
        return self._active.is_set()

    def activate(self) -> None:
        """Build and load the pipeline on the worker thread; raises what loading raised."""

        def load():
            pipeline = self._factory(self.settings)
            pipeline.load()
            self._pipeline = pipeline

        self.worker.run_exclusive(load, "load models").result()
        self._active.set()

    def deactivate(self) -> None:
        """Stop accepting requests and free the models (GPU memory) on the worker thread."""
        self._active.clear()

        def unload():
            if self._pipeline is not None:
                self._pipeline.unload()
            self._pipeline = None

        self.worker.run_exclusive(unload, "unload models").result()

    def shutdown(self) -> None:
        if self.active:
            self.deactivate()
        self.worker.stop()

    # ---------------------------------------------------------------- inputs
    def on_input(self, msgs: InputMessages) -> bool:
        """Sync callback: keep the pair or log why it was dropped. Never raises."""
        try:
            self.latest.offer(msgs)
            return True
        except BadMessage as exc:
            self.dropped_inputs += 1
            self.log.warning(f"dropped input pair: {exc}")
            return False
        except Exception as exc:  # a malformed message object must not stop the callbacks
            self.dropped_inputs += 1
            self.log.warning(f"dropped input pair: unreadable message ({type(exc).__name__}: {exc})")
            return False

    def _messages_for(self, request: Request) -> InputMessages:
        if has_image(request.image):
            labels = request.labels if has_image(request.labels) else None
            if labels is None and not has_image(request.mask):
                raise BadMessage("request has an image but no mask")
            depth = request.depth if has_image(request.depth) else None
            info = request.camera_info if has_calibration(request.camera_info) else None
            return InputMessages(request.image, None if labels is not None else request.mask, depth, info, labels)
        return self.latest.take(self._clock_ns(), self.settings.ros.max_input_age_s)

    # ---------------------------------------------------------------- requests
    def submit(self, request: Request, on_progress=None) -> tuple[Ticket, ReconstructionInputs | PreparedObjects]:
        """Convert the request's inputs (here, cheaply: no model runs) and queue the reconstruction.

        Returns the ticket and the prepared inputs (PreparedObjects for a label image).
        Raises NotActive, BadMessage, InputError or Busy.
        """
        if not self.active:
            raise NotActive("not active: the models are not loaded (activate the lifecycle node)")
        msgs = self._messages_for(request)
        gravity, note = self._gravity(msgs)
        if msgs.labels is not None:
            return self._submit_objects(request, msgs, gravity, note, on_progress)
        inputs = inputs_from_messages(msgs, self.settings.inputs, request.object_id, gravity)
        if note:
            inputs.warnings.append(note)
        ticket = self.worker.submit(lambda progress, cancel: self._job(inputs, progress, cancel),
                                    label=f"'{inputs.object_id}'", on_progress=on_progress)  # fmt: skip
        return ticket, inputs

    def _submit_objects(self, request: Request, msgs: InputMessages, gravity, note: str, on_progress):
        objects = objects_from_messages(msgs, self.settings.inputs, request.object_id, gravity, list(request.label_ids))
        if not objects.prepared:
            raise InputError("no object of the label image can be used: " + "; ".join(
                f"{oid}: {reason}" for oid, reason in objects.refused.items()))  # fmt: skip
        for inputs in objects.prepared:
            if note:
                inputs.warnings.append(note)
        ids = ", ".join(i.object_id for i in objects.prepared)
        def job(progress, cancel):
            return self._objects_job(objects, request.object_id, progress, cancel)

        ticket = self.worker.submit(job, label=f"{len(objects.prepared)} objects ({ids})", on_progress=on_progress)
        return ticket, objects

    def _gravity(self, msgs: InputMessages):
        """The camera's pose in ros.gravity_frame at the image stamp, and a note when it is not available.

        Without it (no TF, no camera_info) the elevation comes from the image, unless
        elevation.source is 'gravity', which then refuses the request.
        """
        gravity_frame = self.settings.ros.gravity_frame
        if not gravity_frame or self._gravity_lookup is None:
            return None, ""
        if msgs.camera_info is None:
            reason = "no camera_info in the request, which the gravity elevation needs"
        else:
            frame_id = msgs.image.header.frame_id
            try:
                return self._gravity_lookup(frame_id, msgs.stamp_ns), ""
            except Exception as exc:
                reason = f"no transform {gravity_frame} <- {frame_id} at the image stamp ({type(exc).__name__}: {exc})"
        if self.settings.elevation.source == "gravity":
            raise BadMessage(reason + " (elevation.source is 'gravity')")
        self.log.warning(f"{reason}; elevation from the image only")
        return None, f"{reason}; elevation from the image only"

    def _job(self, inputs: ReconstructionInputs, progress, cancel: threading.Event):
        if self._pipeline is None:
            raise NotActive("not active: the models were unloaded")
        result = self._pipeline.reconstruct(inputs, progress=progress, cancel=cancel)
        mesh_uri = ""
        if result.ok and self.settings.ros.write_mesh:
            folder = Path(self.settings.ros.output_dir).expanduser().resolve() / unique_stem(inputs.object_id,
                                                                                              inputs.stamp_ns)
            path = write_result(folder, result, self.settings.mesh)
            mesh_uri = (path.parent / f"mesh.{self.settings.mesh.format}").as_uri()
        return result, mesh_uri

    def _objects_job(self, objects: PreparedObjects, name: str, progress, cancel: threading.Event) -> list:
        """Every object of a label image, their views generated together; one result folder for the
        request (results/files.py write_objects: a folder per object, points.ply, objects.json)."""
        if self._pipeline is None:
            raise NotActive("not active: the models were unloaded")
        results = self._pipeline.reconstruct_objects(objects.prepared, progress=progress, cancel=cancel)
        uris = {}
        if self.settings.ros.write_mesh:
            stem = unique_stem(name or "objects", objects.prepared[0].stamp_ns)
            folder = Path(self.settings.ros.output_dir).expanduser().resolve() / stem
            write_objects(folder, results, objects.refused, self.settings.mesh)
            uris = {r.object_id: (folder / r.object_id / f"mesh.{self.settings.mesh.format}").as_uri()
                    for r in results if r.ok}  # fmt: skip
        done = {r.object_id: r for r in results}
        return [ObjectOutcome(oid, label, done.get(oid), uris.get(oid, ""), objects.refused.get(oid, ""))
                for oid, label in objects.labels.items()]  # fmt: skip

    def run(self, request: Request, on_progress=None, should_cancel: Callable[[], bool] | None = None) -> Outcome:
        """Serve one request to the end (service and action callbacks); never raises."""
        try:
            ticket, inputs = self.submit(request, on_progress)
        except NotActive as exc:
            return self._fail("inactive", str(exc))
        except Busy as exc:
            return self._fail("busy", str(exc))
        except InputError as exc:
            return self._fail("bad_input", f"bad input: {exc}")
        except Exception as exc:
            return self._fail("bad_input", f"bad input: unreadable message ({type(exc).__name__}: {exc})")
        status, value = wait_for(ticket, self.settings.ros.request_timeout_s, should_cancel)
        if isinstance(inputs, PreparedObjects):
            inputs = inputs.prepared[0]  # Outcome.inputs: the first object's (stamp, frame)
            if status == "done":
                return self._objects_outcome(value, inputs)
        if status == "done":
            result, mesh_uri = value
            if not result.ok:
                return self._fail("failed", f"reconstruction failed: {result.error}", inputs)
            item = ObjectOutcome(result.object_id, 0, result, mesh_uri)
            return Outcome("done", _summary(result), inputs, result, mesh_uri, objects=[item])
        if status == "cancelled" or (status == "error" and isinstance(value, Cancelled)):
            return self._fail("cancelled", f"cancelled during stage '{ticket.stage}'", inputs)
        if status == "timeout":
            timeout = self.settings.ros.request_timeout_s
            return self._fail("timeout", f"timed out after {timeout:g} s (ros.request_timeout_s) in stage "
                                         f"'{ticket.stage}'; cancelled", inputs)  # fmt: skip
        if isinstance(value, InputError):
            return self._fail("bad_input", f"bad input: {value}", inputs)
        self.log.error(f"reconstruction of '{inputs.object_id}' failed: {type(value).__name__}: {value}")
        return self._fail("failed", f"reconstruction failed: {type(value).__name__}: {value}", inputs)

    def _objects_outcome(self, items: list[ObjectOutcome], inputs: ReconstructionInputs) -> Outcome:
        ok = [item for item in items if item.ok]
        lines = [_summary(item.result) if item.ok else f"'{item.object_id}': {item.reason}" for item in items]
        message = f"{len(ok)} of {len(items)} objects: " + "; ".join(lines)
        if not ok:
            outcome = self._fail("failed", f"reconstruction failed: {message}", inputs)
            outcome.objects = items
            return outcome
        return Outcome("done", message, inputs, ok[0].result, ok[0].mesh_uri, objects=items)

    def _fail(self, status: str, message: str, inputs: ReconstructionInputs | None = None) -> Outcome:
        self.log.warning(f"request refused ({status}): {message}" if inputs is None else f"request {status}: {message}")
        return Outcome(status, message, inputs)


def _summary(result) -> str:
    n_faces = len(result.mesh.faces) if result.mesh is not None else 0
    elevation = "n/a" if result.elevation_deg is None else f"{result.elevation_deg:.1f} deg"
    total = sum(v for k, v in result.timings.items() if "." not in k)
    warnings = f"; warnings: {' | '.join(result.warnings)}" if result.warnings else ""
    return (f"'{result.object_id}': {n_faces} faces in {result.frame_id} ({result.units}), "
            f"elevation {elevation} ({result.elevation_source}), {total:.1f} s{warnings}")  # fmt: skip
