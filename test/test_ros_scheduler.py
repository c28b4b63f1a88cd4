"""The node's scheduling without ROS: one worker owning the models, busy/queue, cancel, timeout, bad input."""

import json
import logging
import threading
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from ros_helpers import FakePipeline, camera_info_msg, image_msg, scene

from one2345_ros.config import Config, InputConfig, RosConfig
from one2345_ros.ros.inputs import InputMessages
from one2345_ros.ros.reconstructor import Reconstructor, Request
from one2345_ros.ros.scheduler import Busy, Worker, wait_for
from one2345_ros.types import Cancelled, InputError


def _job(result, started=None, gate=None):
    def fn(progress, cancel):
        if started:
            started.set()
        if gate:
            gate.wait(10)
        return result

    return fn


def test_worker_rejects_when_busy_and_queues_when_allowed():
    gate, started = threading.Event(), threading.Event()
    worker = Worker(max_queued=0)
    first = worker.submit(_job(1, started, gate), label="'a'")
    started.wait(5)
    with pytest.raises(Busy, match="busy: reconstructing 'a'"):
        worker.submit(_job(2))
    gate.set()
    assert first.wait(5) == 1
    worker.stop()

    gate, started = threading.Event(), threading.Event()
    worker = Worker(max_queued=1)
    first = worker.submit(_job(1, started, gate))
    started.wait(5)
    second = worker.submit(_job(2))
    with pytest.raises(Busy, match="1 waiting"):
        worker.submit(_job(3))
    gate.set()
    assert (first.wait(5), second.wait(5)) == (1, 2)
    assert not worker.busy
    worker.stop()


def test_cancel_queued_job_never_runs_and_errors_do_not_kill_the_worker():
    gate, started = threading.Event(), threading.Event()
    worker = Worker(max_queued=2)
    worker.submit(_job(1, started, gate))
    started.wait(5)
    ran = []
    queued = worker.submit(lambda p, c: ran.append(True))
    queued.cancel()
    gate.set()

    def boom(progress, cancel):
        raise ValueError("bad")

    assert wait_for(worker.submit(boom), 5)[0] == "error"
    assert wait_for(worker.submit(_job(7)), 5) == ("done", 7)
    assert wait_for(queued, 1) == ("cancelled", None) and ran == []
    worker.stop()


def test_wait_for_timeout_and_external_cancel_cancel_the_running_job():
    worker = Worker()
    seen = []

    def staged(progress, cancel):
        for stage in ("a", "b", "c"):
            progress(stage, 0.0)
            if cancel.wait(0.2):
                seen.append(stage)
                raise Cancelled(stage)
        return "finished"

    assert wait_for(worker.submit(staged), timeout_s=0.05) == ("timeout", None)
    assert seen == ["a"]
    calls = iter([False, True])
    assert wait_for(worker.submit(staged), should_cancel=lambda: next(calls, True)) == ("cancelled", None)
    assert len(seen) == 2
    worker.stop()


# ---------------------------------------------------------------- Reconstructor


@pytest.fixture
def make_core(tmp_path):
    cores = []

    def make(pipeline=None, **node_overrides):
        settings = Config(inputs=InputConfig(min_mask_pixels=10))
        settings.ros = replace(RosConfig(output_dir=str(tmp_path / "out")), **node_overrides)
        pipeline = pipeline or FakePipeline()
        core = Reconstructor(settings, lambda cfg: pipeline, clock_ns=lambda: 1_500_000_000)
        cores.append(core)
        return core, pipeline

    yield make
    for core in cores:
        core.shutdown()


def _request(stamp_ns=1_000_000_000, object_id="mug", camera_info=None):
    _, _, img, msk = scene(stamp_ns=stamp_ns)
    return Request(object_id, img, msk, image_msg(np.zeros((0, 0), np.uint8), "mono8"), camera_info)


def test_models_live_on_one_worker_thread_and_are_freed(make_core):
    core, pipeline = make_core()
    assert core.run(_request()).status == "inactive"
    core.activate()
    outcome = core.run(_request())
    assert outcome.success, outcome.message
    core.deactivate()
    assert not pipeline.loaded
    threads = set(pipeline.threads.values())
    assert len(threads) == 1 and threading.get_ident() not in threads
    assert core.run(_request()).status == "inactive"


def test_success_writes_one_result_folder_each(make_core, tmp_path):
    core, pipeline = make_core()
    core.activate()
    first, second = core.run(_request()), core.run(_request())
    assert first.success and second.success and first.mesh_uri != second.mesh_uri
    mesh_path = Path(first.mesh_uri[len("file://") :])
    assert mesh_path.parent.parent == tmp_path / "out" and mesh_path.parent.name.startswith("mug_1000000000_")
    doc = json.loads((mesh_path.parent / "result.json").read_text())
    assert doc["ok"] and doc["mesh"] == mesh_path.name == "mesh.ply" and doc["faces"] == 320
    assert doc["files"]["mesh"]["axes"].startswith("OpenCV optical frame") and doc["object_id"] == "mug"
    assert pipeline.inputs[0].frame_id == "cam_optical" and pipeline.inputs[0].object_id == "mug"
    assert "320 faces" in first.message and "23.5 deg" in first.message


def test_busy_request_rejected_with_clear_message(make_core):
    gate = threading.Event()
    core, pipeline = make_core(FakePipeline(gate=gate))
    core.activate()
    results = []
    runner = threading.Thread(target=lambda: results.append(core.run(_request())))
    runner.start()
    pipeline.started.wait(5)
    busy = core.run(_request(object_id="other"))
    assert busy.status == "busy" and "busy: reconstructing 'mug'" in busy.message
    gate.set()
    runner.join(5)
    assert results[0].success


def test_queued_request_runs_after_the_first(make_core):
    gate = threading.Event()
    core, pipeline = make_core(FakePipeline(gate=gate), queue_requests=1)
    core.activate()
    results = {}
    runner = threading.Thread(target=lambda: results.update(a=core.run(_request(object_id="a"))))
    runner.start()
    pipeline.started.wait(5)
    second = threading.Thread(target=lambda: results.update(b=core.run(_request(object_id="b"))))
    second.start()
    gate.set()
    runner.join(5)
    second.join(5)
    assert results["a"].success and results["b"].success
    assert [i.object_id for i in pipeline.inputs] == ["a", "b"]


def test_cancel_between_stages_and_feedback(make_core):
    gate = threading.Event()
    core, _pipeline = make_core(FakePipeline(gate=gate))
    core.activate()
    stages = []
    cancel_now = threading.Event()

    def progress(stage, fraction):
        stages.append((stage, fraction))
        if stage == "preprocess":
            cancel_now.set()  # like a client's cancel request while the first stage runs

    outcome = core.run(_request(), on_progress=progress, should_cancel=cancel_now.is_set)
    assert outcome.status == "cancelled" and "cancelled during stage" in outcome.message
    assert stages[:2] == [("started", 0.0), ("preprocess", 0.0)]
    assert ("reconstruct", 0.75) not in stages
    gate.set()
    assert core.run(_request()).success  # the worker is free again


def test_timeout_cancels_and_reports(make_core):
    gate = threading.Event()
    core, _ = make_core(FakePipeline(gate=gate), request_timeout_s=0.1)
    core.activate()
    outcome = core.run(_request())
    gate.set()
    assert outcome.status == "timeout" and "timed out after 0.1 s" in outcome.message


@contextmanager
def _logs(core, caplog, level):
    """caplog for the core's own logger. caplog listens on the root logger, and loggers made
    after ROS 2 launch is imported (launch_testing's pytest plugin does) do not propagate."""
    propagate, core.log.propagate = core.log.propagate, False  # one copy of each record either way
    core.log.addHandler(caplog.handler)
    try:
        with caplog.at_level(level):
            yield
    finally:
        core.log.removeHandler(caplog.handler)
        core.log.propagate = propagate


def test_pipeline_errors_become_answers(make_core, caplog):
    core, pipeline = make_core(FakePipeline(error=InputError("mask touches the image border")))
    core.activate()
    outcome = core.run(_request())
    assert outcome.status == "bad_input" and "mask touches the image border" in outcome.message
    pipeline.error = RuntimeError("CUDA out of memory")
    with _logs(core, caplog, logging.ERROR):
        outcome = core.run(_request())
    assert outcome.status == "failed" and "RuntimeError: CUDA out of memory" in outcome.message
    assert "CUDA out of memory" in caplog.text
    pipeline.error = None
    assert core.run(_request()).success


def test_bad_and_latest_inputs(make_core, caplog):
    core, _ = make_core(max_input_age_s=1.0)
    core.activate()
    none = core.run(Request("x"))
    assert none.status == "bad_input" and "no synchronised image/mask pair" in none.message
    _, _, img, msk = scene(stamp_ns=1_000_000_000)
    with _logs(core, caplog, logging.WARNING):
        assert not core.on_input(InputMessages(img, image_msg(np.zeros((48, 64), np.uint8), "mono8", 2)))
        assert not core.on_input(InputMessages(object(), msk))  # not even a message: logged, not raised
        yuv = image_msg(np.zeros((48, 64, 3), np.uint8), "rgb8")
        yuv.encoding = "yuv422"
        assert not core.on_input(InputMessages(yuv, msk))
    assert core.on_input(InputMessages(img, msk))
    assert core.dropped_inputs == 3
    assert "unreadable message" in caplog.text and "yuv422" in caplog.text
    assert core.run(Request("x")).success  # the latest pair (empty request image)
    empty = core.run(Request("x", *scene()[2:3], image_msg(np.zeros((48, 64), np.uint8), "mono8")))
    assert empty.status == "bad_input" and "mask is empty" in empty.message
    assert core.run(Request("x", scene()[2], None)).message == "bad input: request has an image but no mask"


def test_gravity_from_tf_reaches_the_pipeline_or_is_reported(tmp_path):
    c2w = np.eye(4)
    c2w[2, 3] = 0.7

    def make(source, lookup):
        settings = Config(inputs=InputConfig(min_mask_pixels=10))
        settings.elevation.source = source
        settings.ros = RosConfig(output_dir=str(tmp_path), gravity_frame="base_link")
        pipeline = FakePipeline()
        core = Reconstructor(settings, lambda cfg: pipeline, gravity_lookup=lookup)
        core.activate()
        return core, pipeline

    info = camera_info_msg([[50.0, 0, 32], [0, 50.0, 24], [0, 0, 1]], 64, 48)
    asked = []
    core, pipeline = make("auto", lambda frame, stamp: asked.append((frame, stamp)) or c2w)
    assert core.run(_request(camera_info=info)).success
    assert asked == [("cam_optical", 1_000_000_000)]
    np.testing.assert_array_equal(pipeline.inputs[0].gravity_c2w, c2w)
    # No camera_info: no gravity elevation, but the request is served from the image (and says so).
    assert core.run(_request()).success and pipeline.inputs[1].gravity_c2w is None
    assert any("no camera_info" in w for w in pipeline.inputs[1].warnings) and len(asked) == 1
    core.shutdown()

    def missing(frame, stamp):
        raise LookupError("frame base_link does not exist")

    core, pipeline = make("auto", missing)
    assert core.run(_request(camera_info=info)).success and pipeline.inputs[0].gravity_c2w is None
    core.shutdown()
    core, _ = make("gravity", missing)
    outcome = core.run(_request(camera_info=info))
    assert outcome.status == "bad_input" and "no transform base_link <- cam_optical" in outcome.message
    core.shutdown()
