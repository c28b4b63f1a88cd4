"""node.py's wiring, run against recording stand-ins for rclpy, message_filters and tf2_ros.

The stand-ins give node.py the rclpy API it uses (parameters, publishers, service, action
server, lifecycle hooks) and rosbags-backed message classes with rclpy-like defaults. This
checks our code paths (parameters -> settings, inputs -> latest pair, service and action ->
worker -> publications) on every machine; `test_ros_node.py` repeats them on real rclpy.
"""

import sys
import threading
import types

import numpy as np
import pytest

from one2345_ros.ros.factory import RosbagsFactory

from ros_helpers import TYPESTORE, FakePipeline, scene

F = RosbagsFactory(TYPESTORE)


class MsgModule(types.ModuleType):
    """``pkg.msg``-like module whose classes build rosbags messages with defaults."""

    def __init__(self, package, kind):
        super().__init__(f"{package}.{kind}")
        self._package, self._kind = package, kind

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        full = f"{self._package}/{self._kind}/{name}"
        if self._kind == "msg":
            return _maker(full)
        parts = ("Request", "Response") if self._kind == "srv" else ("Goal", "Result", "Feedback")
        return types.SimpleNamespace(**{p: _maker(f"{full}_{p}") for p in parts})


def _maker(msgtype):
    def make(**fields):
        return F.make(msgtype, **fields)

    make.msgtype = msgtype
    return make


class Parameter:
    class Type:
        NOT_SET = 0

    def __init__(self, name, type_=None, value=None):
        self.name, self.value, self.type_ = name, value, 1


class StubNode:
    def __init__(self, name, automatically_declare_parameters_from_overrides=False, parameter_overrides=()):
        self.name = name
        self._parameters = {p.name: p for p in parameter_overrides}
        self.published = {}
        self.services = {}
        self.logs = []

    def has_parameter(self, name):
        return name in self._parameters

    def declare_parameter(self, name, value, descriptor=None):
        self._parameters[name] = Parameter(name, value=value)

    def get_parameters_by_prefix(self, prefix):
        return dict(self._parameters)

    def get_parameter(self, name):
        return self._parameters[name]

    def get_logger(self):
        node = self

        class Log:
            def __getattr__(self, level):
                return lambda msg: node.logs.append((level, msg))

        return Log()

    def get_clock(self):
        return types.SimpleNamespace(now=lambda: types.SimpleNamespace(nanoseconds=1_500_000_000))

    def create_publisher(self, msg_type, topic, qos):
        sent = self.published.setdefault(topic, [])
        return types.SimpleNamespace(publish=sent.append, topic=topic)

    def create_service(self, srv_type, name, callback, callback_group=None):
        self.services[name] = callback
        return name

    def destroy_subscription(self, sub):
        pass

    def destroy_service(self, service):
        self.services.pop(service)

    def destroy_publisher(self, pub):
        pass


class ActionServer:
    instances = []

    def __init__(self, node, action_type, name, execute_callback, goal_callback, cancel_callback, callback_group):
        self.name, self.execute = name, execute_callback
        ActionServer.instances.append(self)

    def destroy(self):
        pass


class Synchronizer:
    last = None

    def __init__(self, filters, queue_size, slop):
        self.filters, self.queue_size, self.slop = filters, queue_size, slop
        Synchronizer.last = self

    def registerCallback(self, callback):
        self.callback = callback


class TfBuffer:
    """Answers every lookup with a camera 0.5 m above base_link, looking down."""

    asked = []

    def lookup_transform(self, target, source, stamp, timeout):
        TfBuffer.asked.append((target, source, stamp, timeout))
        tf = F.make("geometry_msgs/msg/Transform", translation=F.make("geometry_msgs/msg/Vector3", z=0.5),
                    rotation=F.make("geometry_msgs/msg/Quaternion", x=1.0, w=0.0))  # fmt: skip
        return types.SimpleNamespace(transform=tf)


class Listener:
    def __init__(self, buffer, node):
        self.unregistered = False

    def unregister(self):
        self.unregistered = True


@pytest.fixture
def node_module(monkeypatch):
    def module(name, **attrs):
        mod = types.ModuleType(name)
        mod.__dict__.update(attrs)
        monkeypatch.setitem(sys.modules, name, mod)

    result = types.SimpleNamespace(SUCCESS="success", FAILURE="failure")
    module("rclpy", init=lambda args=None: None)
    module("rclpy.action", ActionServer=ActionServer, CancelResponse=types.SimpleNamespace(ACCEPT=1),
           GoalResponse=types.SimpleNamespace(ACCEPT=1))  # fmt: skip
    module("rclpy.callback_groups", MutuallyExclusiveCallbackGroup=object, ReentrantCallbackGroup=object)
    module("rclpy.executors", ExternalShutdownException=RuntimeError, MultiThreadedExecutor=object)
    module("rclpy.lifecycle", LifecycleNode=StubNode, LifecycleState=object, TransitionCallbackReturn=result)
    module("rclpy.parameter", Parameter=Parameter)
    enum = types.SimpleNamespace(RELIABLE=1, BEST_EFFORT=2, TRANSIENT_LOCAL=3, VOLATILE=4, KEEP_LAST=5)
    module("rclpy.qos", DurabilityPolicy=enum, HistoryPolicy=enum, QoSProfile=lambda **kw: kw, ReliabilityPolicy=enum)
    module("rcl_interfaces.msg", ParameterDescriptor=lambda **kw: kw)
    module("message_filters", Subscriber=lambda node, t, topic, **kw: types.SimpleNamespace(topic=topic, sub=topic),
           ApproximateTimeSynchronizer=Synchronizer)  # fmt: skip
    module("tf2_ros", Buffer=TfBuffer, TransformListener=Listener)
    module("rclpy.time", Time=lambda nanoseconds: nanoseconds)
    module("rclpy.duration", Duration=lambda seconds: seconds)
    for package in ("std_msgs", "sensor_msgs", "geometry_msgs", "shape_msgs", "visualization_msgs",
                    "builtin_interfaces", "tf2_msgs", "one2345_ros"):  # fmt: skip
        for kind in ("msg", "srv", "action"):
            monkeypatch.setitem(sys.modules, f"{package}.{kind}", MsgModule(package, kind))
    sys.modules.pop("one2345_ros.ros.node", None)
    import one2345_ros.ros
    import one2345_ros.ros.node as node

    yield node
    # Never leave the stand-in-bound module behind for the real rclpy tests.
    sys.modules.pop("one2345_ros.ros.node", None)
    if hasattr(one2345_ros.ros, "node"):
        delattr(one2345_ros.ros, "node")


def _node(node_module, tmp_path, gate=None, **params):
    pipeline = FakePipeline(gate=gate)
    overrides = [Parameter("output_dir", value=str(tmp_path)), Parameter("ros.min_mask_pixels", value=10),
                 Parameter("use_sim_time", value=False)] + [Parameter(k, value=v) for k, v in params.items()]  # fmt: skip
    node = node_module.ReconstructorNode(pipeline_factory=lambda cfg: pipeline, make_inputs=dict,
                                         parameter_overrides=overrides)  # fmt: skip
    return node, pipeline


def test_configure_rejects_bad_parameters(node_module, tmp_path):
    node, _ = _node(node_module, tmp_path, **{"ros.marker_type": "cubes", "zero123.stepz": 3})
    assert node.on_configure(None) == "failure"
    (level, message), *_ = [log for log in node.logs if log[0] == "error"]
    assert "ros.marker_type: 'cubes'" in message or "zero123.stepz" in message


def test_inputs_service_action_and_publications(node_module, tmp_path):
    node, pipeline = _node(node_module, tmp_path, **{"ros.use_depth": False, "ros.sync_slop_s": 0.1})
    assert node.on_configure(None) == "success"
    assert [f.topic for f in Synchronizer.last.filters] == ["image", "mask"] and Synchronizer.last.slop == 0.1
    service = node.services["reconstruct_object"]
    response = service(F.make("one2345_ros/srv/ReconstructObject_Request"), _response())
    assert not response.success and "not active" in response.message
    assert node.on_activate(None) == "success" and pipeline.loaded

    _, _, image, mask = scene(stamp_ns=1_000_000_000)
    bad = scene(h=10, w=10)[3]
    Synchronizer.last.callback(image, bad)  # size mismatch: dropped, logged, no exception
    assert any("dropped input pair" in msg and "differs" in msg for level, msg in node.logs if level == "warning")
    Synchronizer.last.callback(image, mask)
    response = service(F.make("one2345_ros/srv/ReconstructObject_Request", object_id="mug"), _response())
    assert response.success, response.message
    assert response.object.object_id == "mug" and len(response.object.mesh.triangles) == 320
    for topic in ("~/object", "~/marker", "~/elevation", "~/points", "~/views"):
        assert len(node.published[topic]) == 1, topic
    assert node.published["~/marker"][0].type == 11 and node.published["~/elevation"][0].data == 23.5
    (tf_message,) = node.published["/tf_static"]
    assert [t.child_frame_id for t in tf_message.transforms] == ["one2345/mug"]

    (action,) = ActionServer.instances[-1:]
    handle = GoalHandle(F.make("one2345_ros/action/ReconstructObject_Goal", object_id="cup"))
    result = action.execute(handle)
    assert result.success and handle.state == "succeeded" and result.object.object_id == "cup"
    assert [stage for stage, _ in handle.feedback][:2] == ["started", "preprocess"]
    assert len(node.published["/tf_static"][-1].transforms) == 2  # both object frames are re-sent on /tf_static

    assert node.on_deactivate(None) == "success" and not pipeline.loaded
    assert node.on_cleanup(None) == "success" and node.services == {}


def test_action_cancel_and_busy_service(node_module, tmp_path):
    gate = threading.Event()
    node, pipeline = _node(node_module, tmp_path, gate=gate)
    node.on_configure(None)
    node.on_activate(None)
    _, _, image, mask = scene()
    Synchronizer.last.callback(image, mask)
    handle = GoalHandle(F.make("one2345_ros/action/ReconstructObject_Goal", object_id="cup"))
    runner = threading.Thread(target=lambda: handle.__dict__.update(result=ActionServer.instances[-1].execute(handle)))
    runner.start()
    assert pipeline.started.wait(5)
    busy = node.services["reconstruct_object"](F.make("one2345_ros/srv/ReconstructObject_Request"), _response())
    assert not busy.success and busy.message.startswith("busy: reconstructing 'cup'")
    handle.is_cancel_requested = True
    runner.join(5)
    assert handle.state == "canceled" and "cancelled during stage" in handle.result.message
    gate.set()
    node.on_shutdown(None)


def _response():
    return types.SimpleNamespace(success=None, message=None, object=None)


class GoalHandle:
    def __init__(self, request):
        self.request, self.feedback, self.state, self.is_cancel_requested = request, [], "executing", False

    def publish_feedback(self, msg):
        self.feedback.append((msg.stage, msg.progress))

    def succeed(self):
        self.state = "succeeded"

    def abort(self):
        self.state = "aborted"

    def canceled(self):
        self.state = "canceled"


def test_gravity_frame_uses_tf(node_module, tmp_path):
    node, pipeline = _node(node_module, tmp_path, **{"ros.gravity_frame": "base_link", "ros.tf_timeout_s": 0.3})
    node.on_configure(None)
    node.on_activate(None)
    _, _, image, mask = scene(stamp_ns=2_000_000_000)
    Synchronizer.last.callback(image, mask)
    response = node.services["reconstruct_object"](F.make("one2345_ros/srv/ReconstructObject_Request"), _response())
    assert response.success, response.message
    assert TfBuffer.asked[-1] == ("base_link", "cam_optical", 2_000_000_000, 0.3)
    np.testing.assert_allclose(pipeline.inputs[0]["gravity_c2w"], [[1, 0, 0, 0], [0, -1, 0, 0], [0, 0, -1, 0.5],
                                                                  [0, 0, 0, 1]], atol=1e-12)  # fmt: skip
    node.on_shutdown(None)
