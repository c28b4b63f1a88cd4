"""The one2345_reconstructor node (rclpy; Humble and Jazzy). Thin: ROS wiring only.

Threading: a MultiThreadedExecutor runs the input callbacks (their own mutually exclusive
group) and the service and action callbacks (a reentrant group). Requests block only their
executor thread while the single worker thread of :class:`Reconstructor` owns the models,
so image callbacks never wait. A request while busy is answered at once with a
"busy" message, or queued when ``ros.queue_requests`` > 0; :func:`executor_threads` sizes
the executor so that queued requests never starve the other callbacks.

Lifecycle (rclpy LifecycleNode): configure = read and validate parameters, create
publishers, subscriptions, service and action (a failed configure rolls all of it back);
activate = load the models (on the worker thread); deactivate = free them (GPU memory);
cleanup and shutdown = destroy everything configure created, worker thread included. With
``ros.autostart`` (default) the node configures and activates itself at start; the process
exits after the shutdown transition, on SIGINT and on SIGTERM.

Optional ROS packages are imported when configuring, never at import time: without
message_filters there are no topic inputs (explicit images in the service or action still
work), without tf2_msgs no object frames on /tf_static, without tf2_ros no gravity from TF,
without cv_bridge only the encodings ``images.py`` reads, without moveit_msgs no
CollisionObject. The node logs once what is disabled and why.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
import threading
import time
from dataclasses import replace

import rclpy
from geometry_msgs.msg import TransformStamped
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import Float32
from visualization_msgs.msg import Marker, MarkerArray

from ..action import ReconstructObject as ReconstructObjectAction
from ..config import NODE_NAME, Config, ConfigError
from ..msg import ReconstructedObject
from ..srv import ReconstructObject
from . import images
from .factory import RclpyFactory
from .inputs import InputMessages, has_image
from .oracle_views import OracleViewsPipeline
from .params import config_from_parameters, default_parameters
from .publications import PER_REQUEST, build_request_publications
from .reconstructor import Outcome, Reconstructor, Request
from .transforms import transform_to_matrix

LATCHED = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)  # fmt: skip
_OUTPUT_TYPES = {"object": ReconstructedObject, "marker": Marker, "elevation": Float32, "points": PointCloud2,
                 "views": Image, "surface_points": PointCloud2, "object_markers": MarkerArray,
                 "object_boxes": MarkerArray}  # fmt: skip

# What each optional package gives; logged once per node when it is missing.
OPTIONAL_PACKAGES = {
    "message_filters": "no topic inputs (image, mask, depth, camera_info are not subscribed); the service "
                       "and action still take explicit images",
    "tf2_msgs": "no object frames on /tf_static",
    "tf2_ros": "no gravity from TF (ros.gravity_frame is ignored)",
    "cv_bridge": "input images in encodings other than " + ", ".join(images.COLOR_ENCODINGS)
                 + " (yuv422, bayer_*...) are dropped",
    "moveit_msgs": "no CollisionObject output (ros.publish_collision_object is ignored)",
}  # fmt: skip

# Executor threads beside the request callbacks: the input group, the node's default group
# (lifecycle, parameter and TF-finishing services) and the TF listener.
SPARE_THREADS = 3
# Shutdown transition (the process ends next): how long to wait for the worker thread to
# unload the models. A job it cannot leave (loading the models takes 10+ s on a CPU) is not
# waited for: the thread is a daemon and ends with the process, GPU memory with it.
WORKER_EXIT_WAIT_S = 3.0
# SIGINT/SIGTERM or the shutdown transition -> process gone: the ROS cleanup gets this long
# before the process leaves anyway. Below launch's 5 s between SIGINT and SIGTERM.
EXIT_DEADLINE_S = 4.5


def executor_threads(queue_requests: int) -> int:
    """Threads the node's MultiThreadedExecutor needs.

    A service or action callback holds its executor thread while its request runs or waits
    in the queue (``Reconstructor.run`` blocks). With 1 running + ``ros.queue_requests``
    waiting requests, a fixed pool of 4 threads was exhausted at queue_requests >= 3 and
    the lifecycle services starved (get_state took seconds). Sizing the pool from the
    queue keeps SPARE_THREADS free for everything else whatever the queue holds. Answering
    requests asynchronously (coroutine callbacks) would free the threads too, but rclpy's
    task resumption differs between Humble and Jazzy, and the blocking request flow with
    its cancel and timeout handling lives in the ROS-free ``Reconstructor``; idle threads
    cost little.
    """
    return max(0, int(queue_requests)) + 1 + SPARE_THREADS


def default_pipeline_factory(config: Config):
    from ..pipeline import Pipeline

    return Pipeline(config)


def _import_optional(name: str):
    """``(module, None)`` or ``(None, reason)``: ImportError, or a broken install (e.g. a
    cv_bridge built against another numpy) that raises something else on import."""
    try:
        return importlib.import_module(name), None
    except Exception as exc:
        return None, f"{type(exc).__name__}: {exc}"


class ReconstructorNode(LifecycleNode):
    """Service ``reconstruct_object``, action ``reconstruct``, latched outputs under ``~/``.

    Args:
        pipeline_factory: ``Config -> pipeline`` (the real pipeline by default).
        on_finalized: called once the shutdown transition has completed and its service
            response has gone out (``main`` then ends the process).
    """

    def __init__(self, pipeline_factory=default_pipeline_factory, on_finalized=None,
                 **node_kwargs):  # fmt: skip
        # Overrides from the YAML are declared as given, so misspelt names reach validation
        # (and stop the node) instead of being silently ignored. Declared here rather than by
        # rclpy (automatically_declare_parameters_from_overrides): an empty list in a parameter
        # file (params.yaml's oracle.input_c2w: []) arrives untyped (NOT_SET), which rclpy refuses
        # to declare statically typed, and the node died at start. Dynamically typed, it reads as
        # unset and its default applies; config validation checks every value's type.
        super().__init__(NODE_NAME, **node_kwargs)
        for name, override in getattr(self, "_parameter_overrides", {}).items():
            if not self.has_parameter(name):
                self.declare_parameter(name, override.value, ParameterDescriptor(dynamic_typing=True))
        for name, default in default_parameters().items():
            if not self.has_parameter(name):
                self.declare_parameter(name, default, ParameterDescriptor(dynamic_typing=True))
        self._pipeline_factory = pipeline_factory
        self._on_finalized = on_finalized
        self._factory = RclpyFactory()
        self.settings: Config | None = None
        self.core: Reconstructor | None = None
        self._entities: list[tuple[str, object]] = []  # what configure created, destroyed in reverse
        self._pubs: dict = {}
        self._publish_config = None
        self._tf_pub = None
        self._tf_message_type = None
        self._tf_buffer = None
        self._bridge = None
        self._inputs_enabled = False
        self._static_transforms: dict[str, TransformStamped] = {}
        self._stopping = threading.Event()  # set by cleanup/shutdown: waiting requests cancel their jobs
        self._reported: set[str] = set()
        self.disabled: dict[str, str] = {}
        """Optional packages missing at the last configure: name -> why."""
        self.executor_threads: int | None = None
        """Threads of the executor ``main`` made (None: unknown, not checked)."""
        self.configured = False
        self.activated = False
        self.finalized = False

    # ------------------------------------------------------------ parameters
    def _read_settings(self) -> Config:
        params = {name: p.value for name, p in self.get_parameters_by_prefix("").items()
                  if p.type_ != Parameter.Type.NOT_SET}  # fmt: skip
        return config_from_parameters(params)

    # ------------------------------------------------------------ lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stopping.clear()
        try:
            self.settings = self._read_settings()
            self._configure(self.settings.ros)
        except ConfigError as exc:
            self.get_logger().error(f"cannot configure: {exc}")
            self._teardown()
            return TransitionCallbackReturn.FAILURE
        except Exception as exc:  # anything else: roll back what was created, stay unconfigured
            self.get_logger().error(f"cannot configure: {type(exc).__name__}: {exc}")
            self._teardown()
            return TransitionCallbackReturn.FAILURE
        self.configured = True
        self.get_logger().info("configured; " + ("models load on activate" if not self.settings.ros.autostart
                                                 else "activating"))  # fmt: skip
        return TransitionCallbackReturn.SUCCESS

    def _optional(self, name: str, missing: list):
        module, reason = _import_optional(name)
        if module is None:
            missing.append((name, reason))
        return module

    def _report_missing(self, missing: list) -> None:
        self.disabled = dict(missing)
        new = [(name, reason) for name, reason in missing if name not in self._reported]
        if new:
            self._reported.update(name for name, _ in new)
            self.get_logger().warning("optional ROS packages missing, running without them: " + "; ".join(
                f"{name} ({reason}): {OPTIONAL_PACKAGES[name]}" for name, reason in new))  # fmt: skip

    def _configure(self, cfg) -> None:
        """Create everything; raises on failure (on_configure then tears down what was made)."""
        needed = executor_threads(cfg.queue_requests)
        if self.executor_threads is not None and needed > self.executor_threads:
            raise ConfigError(f"ros.queue_requests = {cfg.queue_requests} needs {needed} executor threads, the "
                              f"node's executor has {self.executor_threads}: restart the node to apply it")  # fmt: skip
        missing: list[tuple[str, str]] = []
        message_filters = self._optional("message_filters", missing)
        bridge = self._optional("cv_bridge", missing)
        self._bridge = bridge.CvBridge() if bridge is not None else None
        tf2_msgs = self._optional("tf2_msgs.msg", missing) if cfg.publish_tf else None
        gravity = oracle_pose = None
        oracle = self.settings.oracle
        oracle_tf = self.settings.views == "oracle" and not oracle.input_c2w and bool(oracle.mesh_frame)
        if cfg.gravity_frame or oracle_tf:
            tf2_ros = self._optional("tf2_ros", missing)
            if tf2_ros is None and self.settings.elevation.source == "gravity" and cfg.gravity_frame:
                raise ConfigError("elevation.source: 'gravity' needs tf2_ros, which does not import "
                                  f"({missing[-1][1]})")  # fmt: skip
            if tf2_ros is None and oracle_tf:
                raise ConfigError("views: 'oracle' with oracle.mesh_frame needs tf2_ros, which does not import "
                                  f"({missing[-1][1]}); set oracle.input_c2w instead")  # fmt: skip
            if tf2_ros is not None:
                gravity = self._tf_lookup(tf2_ros, cfg.gravity_frame) if cfg.gravity_frame else None
                oracle_pose = self._tf_lookup(tf2_ros, oracle.mesh_frame) if oracle_tf else None
        collision_object = None
        if cfg.publish_collision_object:
            moveit = self._optional("moveit_msgs.msg", missing)
            collision_object = moveit.CollisionObject if moveit is not None else None
        self._report_missing([(name.split(".")[0], reason) for name, reason in missing])
        # What build_publications may build: nothing that needs a missing package.
        self._publish_config = replace(cfg, publish_tf=cfg.publish_tf and tf2_msgs is not None,
                                       publish_collision_object=collision_object is not None)  # fmt: skip

        factory = self._pipeline_factory
        if self.settings.views == "oracle":  # synthetic views of a known mesh, the input pose per request

            def factory(config, make=self._pipeline_factory):
                return OracleViewsPipeline(make(config), oracle_pose)

        self.core = Reconstructor(self.settings, factory,
                                  log=self.get_logger(), clock_ns=lambda: self.get_clock().now().nanoseconds,
                                  gravity_lookup=gravity)  # fmt: skip
        self._pubs = {}
        for key, msg_type in _OUTPUT_TYPES.items():
            self._pubs[key] = self._track("publisher", self.create_publisher(msg_type, f"~/{key}", LATCHED))
        if collision_object is not None:
            self._pubs["collision_object"] = self._track(
                "publisher", self.create_publisher(collision_object, cfg.collision_object_topic, LATCHED))
        if tf2_msgs is not None:
            # Our own /tf_static publisher, not tf2_ros' StaticTransformBroadcaster: Jazzy's keeps
            # the first transform of each child frame and ignores later ones, so an object
            # reconstructed again would keep its old frame.
            self._tf_message_type = tf2_msgs.TFMessage
            self._tf_pub = self._track("publisher", self.create_publisher(tf2_msgs.TFMessage, "/tf_static", LATCHED))
        self._inputs_enabled = message_filters is not None
        if message_filters is not None:
            self._create_inputs(message_filters)
        requests = ReentrantCallbackGroup()
        self._track("service", self.create_service(ReconstructObject, "reconstruct_object", self._on_service,
                                                   callback_group=requests))  # fmt: skip
        self._track("action", ActionServer(self, ReconstructObjectAction, "reconstruct", execute_callback=self._on_goal,
                                           goal_callback=lambda goal: GoalResponse.ACCEPT,
                                           cancel_callback=lambda goal: CancelResponse.ACCEPT,
                                           callback_group=requests))  # fmt: skip

    def destroy_node(self):
        """Everything configure made, the node, and its lifecycle state machine.

        rclpy's Node.destroy_node leaves waitables (our action server) and LifecycleNode's
        state machine alive until garbage collection, and both hold the node's rcl handle: a
        destroyed node stayed in the ROS graph, in-process with lifecycle services nobody
        answered, or for the 20 s DDS lease after its process had gone.
        """
        self._teardown(worker_wait_s=WORKER_EXIT_WAIT_S)
        super().destroy_node()
        state_machine = getattr(self, "_state_machine", None)
        if state_machine is not None and hasattr(state_machine, "destroy_when_not_in_use"):
            state_machine.destroy_when_not_in_use()

    def _track(self, kind: str, entity):
        self._entities.append((kind, entity))
        return entity

    def _tf_lookup(self, tf2_ros, target_frame: str):
        """TF lookup of the camera's pose in ``target_frame`` (ros.gravity_frame, oracle.mesh_frame) at
        the image stamp (blocks its thread for at most ros.tf_timeout_s; the listener runs on the
        executor). One buffer and listener per configure, shared by every lookup."""
        from rclpy.duration import Duration
        from rclpy.time import Time

        cfg = self.settings.ros
        if self._tf_buffer is None:
            self._tf_buffer = tf2_ros.Buffer()
            self._track("tf_listener", tf2_ros.TransformListener(self._tf_buffer, self))
        buffer = self._tf_buffer

        def lookup(frame_id: str, stamp_ns: int):
            stamped = buffer.lookup_transform(target_frame, frame_id, Time(nanoseconds=stamp_ns),
                                              timeout=Duration(seconds=cfg.tf_timeout_s))  # fmt: skip
            return transform_to_matrix(stamped.transform)

        return lookup

    def _create_inputs(self, message_filters) -> None:
        cfg = self.settings.ros
        reliable = cfg.input_reliability == "reliable"
        reliability = ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT
        qos = QoSProfile(depth=cfg.input_history_depth, history=HistoryPolicy.KEEP_LAST, reliability=reliability,
                         durability=DurabilityPolicy.VOLATILE)  # fmt: skip
        group = MutuallyExclusiveCallbackGroup()
        topics = [(Image, "image"), (Image, "labels" if cfg.use_labels else "mask")]
        if cfg.use_depth:
            topics.append((Image, "depth"))
        if cfg.use_camera_info:
            topics.append((CameraInfo, "camera_info"))
        self._roles = [topic for _, topic in topics]
        filters = []
        for msg_type, topic in topics:
            filters.append(message_filters.Subscriber(self, msg_type, topic, qos_profile=qos, callback_group=group))
            self._track("subscription", filters[-1].sub)
        sync = message_filters.ApproximateTimeSynchronizer(filters, cfg.sync_queue_size, cfg.sync_slop_s)
        sync.registerCallback(self._on_inputs)
        self._track("synchronizer", sync)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.core.activate()
        except Exception as exc:  # missing weights, CPU refusal, CUDA errors: say which and stay inactive
            self.get_logger().error(f"cannot activate, models not loaded: {type(exc).__name__}: {exc}")
            return TransitionCallbackReturn.FAILURE
        self.activated = True
        self.get_logger().info("active: models loaded; service 'reconstruct_object' and action 'reconstruct' ready")
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.core.deactivate()
        self.activated = False
        self.get_logger().info("inactive: models unloaded, GPU memory freed")
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._teardown()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._teardown(worker_wait_s=WORKER_EXIT_WAIT_S)
        self.finalized = True
        if self._on_finalized is not None:
            # A one-shot timer in the default group, which also serves the lifecycle services:
            # it fires after the change_state callback that got us here has sent its response.
            holder = []

            def finished():
                holder[0].cancel()
                self._on_finalized()

            holder.append(self.create_timer(0.01, finished, callback_group=self.default_callback_group))
        return TransitionCallbackReturn.SUCCESS

    def _teardown(self, worker_wait_s: float | None = None) -> None:
        """Destroy everything configure created; safe to call at any point, and twice.

        ``worker_wait_s``: None waits until the worker has unloaded the models and ended
        (cleanup); a number waits at most that long (shutdown, the process ends next).
        """
        self._stopping.set()  # requests waiting in Reconstructor.run cancel their jobs
        core, self.core = self.core, None
        if core is not None:
            self._stop_core(core, worker_wait_s)
        destroy = {"publisher": self.destroy_publisher, "subscription": self.destroy_subscription,
                   "service": self.destroy_service, "action": lambda action: action.destroy(),
                   "tf_listener": lambda listener: listener.unregister(),
                   "synchronizer": lambda sync: None}  # fmt: skip
        while self._entities:
            kind, entity = self._entities.pop()
            try:
                destroy[kind](entity)
            except Exception as exc:  # keep destroying the rest
                self.get_logger().error(f"destroying a {kind} failed: {type(exc).__name__}: {exc}")
        self._pubs, self._tf_pub, self._bridge, self._inputs_enabled = {}, None, None, False
        self._tf_buffer = None
        self._static_transforms.clear()
        self.configured = self.activated = False

    def _stop_core(self, core: Reconstructor, wait_s: float | None) -> None:
        def stop():
            try:
                core.shutdown()  # models unloaded, worker thread ended
            except Exception as exc:
                self.get_logger().error(f"stopping the worker failed: {type(exc).__name__}: {exc}")

        if wait_s is None:
            stop()
            return
        stopper = threading.Thread(target=stop, name="one2345-stop-worker", daemon=True)
        stopper.start()
        stopper.join(wait_s)
        if stopper.is_alive():
            self.get_logger().warning(f"the worker thread is still busy after {wait_s:g} s (loading the models or "
                                      "a reconstruction stage); not waiting for it")  # fmt: skip

    # ------------------------------------------------------------ inputs
    def _on_inputs(self, *msgs) -> None:
        """Synchroniser callback. Must never raise: message_filters holds its lock while calling
        it, and an exception here left that lock held and stopped the executor."""
        try:
            core = self.core
            if core is None:
                return
            by_role = dict(zip(self._roles, msgs))
            image = by_role["image"]
            if image.encoding not in images.COLOR_ENCODINGS:
                image = self._to_rgb8(image, core)
                if image is None:
                    return
            core.on_input(InputMessages(image, by_role.get("mask"), by_role.get("depth"), by_role.get("camera_info"),
                                        by_role.get("labels")))  # fmt: skip
        except Exception as exc:
            self.get_logger().error(f"dropped input pair: {type(exc).__name__}: {exc}")

    def _to_rgb8(self, image: Image, core: Reconstructor) -> Image | None:
        """Camera encodings images.py does not read (yuv422, bayer_*...) go through cv_bridge."""
        try:
            if self._bridge is None:
                raise RuntimeError("needs cv_bridge, which is not installed")
            rgb = self._bridge.imgmsg_to_cv2(image, desired_encoding="rgb8")
            return images.image_message(self._factory, image.header, rgb, "rgb8")
        except Exception as exc:  # CvBridgeError or anything else: a dropped message, not a dead node
            core.dropped_inputs += 1
            self.get_logger().warning(f"dropped input pair: image encoding '{image.encoding}': {exc}")
            return None

    # ------------------------------------------------------------ requests
    def _serve(self, request: Request, on_progress=None, should_cancel=None) -> Outcome:
        core = self.core
        if core is None:
            return Outcome("inactive", "not configured: the node has no parameters loaded yet")
        if not self._inputs_enabled and not has_image(request.image):
            return Outcome("bad_input", "bad input: no image in the request, and no topic inputs "
                                        "(message_filters is not installed)")  # fmt: skip

        def cancel():
            return self._stopping.is_set() or (should_cancel is not None and should_cancel())

        outcome = core.run(request, on_progress=on_progress, should_cancel=cancel)
        if outcome.success:
            try:
                outcome.published = self._publish(outcome)  # the ReconstructedObject sent
            except Exception as exc:  # a result that cannot be published must still be answered
                self.get_logger().error(f"publishing the result failed: {type(exc).__name__}: {exc}")
                return Outcome("failed", f"result built but not publishable: {exc}", outcome.inputs)
            self.get_logger().info(outcome.message)
        elif outcome.objects:  # no object reconstructed: the response still gives each one's reason
            outcome.published_objects = build_request_publications(
                self._factory, outcome.objects, self._publish_config, outcome.inputs.stamp_ns,
                outcome.inputs.frame_id)["objects"]  # fmt: skip
        elif self._stopping.is_set() and outcome.status == "cancelled":
            outcome = Outcome("cancelled", f"{outcome.message}: the node is shutting down", outcome.inputs)
        return outcome

    def _publish(self, outcome: Outcome):
        cfg = self._publish_config
        pubs = build_request_publications(self._factory, outcome.objects, cfg, outcome.inputs.stamp_ns,
                                          outcome.inputs.frame_id)  # fmt: skip
        frames = False
        for per_object in pubs["per_object"]:  # label order: a late joiner gets the last object
            for key, msg in per_object.items():
                if key == "transform":
                    self._static_transforms[msg.child_frame_id] = msg
                    frames = True
                elif key in self._pubs:
                    self._pubs[key].publish(msg)
        if frames and self._tf_pub is not None:
            # /tf_static is latched per publisher: send every object frame each time.
            self._tf_pub.publish(self._tf_message_type(transforms=list(self._static_transforms.values())))
        for key in PER_REQUEST:
            if key in pubs:
                self._pubs[key].publish(pubs[key])
        outcome.published_objects = pubs["objects"]
        return pubs["per_object"][0]["object"]

    def _on_service(self, request, response):
        outcome = self._serve(Request.from_msg(request))
        response.success = outcome.success
        response.message = outcome.message
        if outcome.success:
            response.object = outcome.published
        response.objects = outcome.published_objects or []
        return response

    def _on_goal(self, goal_handle):
        def feedback(stage: str, fraction: float) -> None:
            msg = ReconstructObjectAction.Feedback()
            msg.stage, msg.progress = stage, float(fraction)
            goal_handle.publish_feedback(msg)

        outcome = self._serve(Request.from_msg(goal_handle.request), on_progress=feedback,
                              should_cancel=lambda: goal_handle.is_cancel_requested)  # fmt: skip
        result = ReconstructObjectAction.Result()
        result.success, result.message = outcome.success, outcome.message
        result.objects = outcome.published_objects or []
        if outcome.success:
            result.object = outcome.published
            goal_handle.succeed()
        elif outcome.status == "cancelled" and goal_handle.is_cancel_requested:
            goal_handle.canceled()
        else:
            goal_handle.abort()
        return result


# ---------------------------------------------------------------- process
def _init_rclpy(args) -> None:
    """rclpy without its own signal handlers: main() handles SIGINT and SIGTERM itself."""
    try:
        from rclpy.signals import SignalHandlerOptions

        rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    except (ImportError, TypeError):  # an rclpy without the option
        rclpy.init(args=args)


def _spin(executor, stop: threading.Event, errors: list) -> None:
    try:
        executor.spin()
    except ExternalShutdownException:
        pass
    except Exception as exc:  # a callback raised: the process must end, not linger without an executor
        errors.append(exc)
    finally:
        stop.set()


def _autostart(node: ReconstructorNode, stop: threading.Event, errors: list) -> None:
    try:
        if node.get_parameter("ros.autostart").value:
            node.trigger_configure()
            if node.configured and not stop.is_set():
                node.trigger_activate()
    except Exception as exc:
        errors.append(exc)
        stop.set()


def _finish(node, executor, spinner) -> None:
    """Shutdown transition (unless done), executor stopped, node destroyed, rclpy shut down."""
    if node is not None and not node.finalized:
        try:
            node.trigger_shutdown()
        except Exception:  # a transition in progress (e.g. activating): tear down directly
            node._teardown(worker_wait_s=WORKER_EXIT_WAIT_S)
    if executor is not None:
        executor.shutdown(timeout_sec=1.0)
    if spinner is not None:
        spinner.join(1.0)
    # rclpy leaves the executor's thread pool running: end it (idle threads leave at once).
    pool = getattr(executor, "_executor", None)
    if pool is not None:
        pool.shutdown(wait=False, cancel_futures=True)
    if node is not None:
        node.destroy_node()
    rclpy.try_shutdown()


def _leftover_threads(timeout_s: float) -> list:
    """Threads that would delay the exit, after waiting up to ``timeout_s`` for them: non-daemon
    ones (the interpreter joins them; e.g. a request callback waiting for a reconstruction stage
    to end) and our own daemon threads still at work (the worker loading the models, which can
    hold the interpreter's lock for seconds while it finalises)."""
    deadline = time.monotonic() + timeout_s
    left = []
    for thread in threading.enumerate():
        if thread is threading.main_thread() or (thread.daemon and not thread.name.startswith("one2345-")):
            continue
        thread.join(max(0.0, deadline - time.monotonic()) if not thread.daemon else 0.0)
        if thread.is_alive():
            left.append(thread.name)
    return left


def main(args=None) -> int:
    """``ros2 run one2345_ros reconstruct_node``. Exits 0 on SIGINT, SIGTERM or the lifecycle
    shutdown transition, 1 when the node fails; a second signal exits at once."""
    stop = threading.Event()

    def on_signal(signum, frame):
        if stop.is_set():
            os._exit(128 + signum)
        stop.set()

    # Installed first and explicitly: a process started in the background by a shell inherits
    # SIGINT ignored, and rclpy's own handlers are left out (see _init_rclpy).
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    errors: list = []
    node = executor = spinner = None
    try:
        _init_rclpy(args)
        node = ReconstructorNode(on_finalized=stop.set)
        try:
            queue_requests = int(node.get_parameter("ros.queue_requests").value)
        except (TypeError, ValueError):  # configure reports the bad value
            queue_requests = 0
        node.executor_threads = executor_threads(queue_requests)
        executor = MultiThreadedExecutor(num_threads=node.executor_threads)
        executor.add_node(node)
        spinner = threading.Thread(target=_spin, args=(executor, stop, errors), name="one2345-executor", daemon=True)
        spinner.start()
        threading.Thread(target=_autostart, args=(node, stop, errors), name="one2345-autostart", daemon=True).start()
        while not stop.wait(0.1):  # the main thread only waits, so signal handlers run at once
            pass
    except Exception as exc:
        errors.append(exc)
    finally:
        for error in errors:
            message = f"{type(error).__name__}: {error}"
            if node is not None:
                node.get_logger().fatal(message)
            else:
                print(f"one2345_reconstructor: {message}", file=sys.stderr, flush=True)
        t0 = time.monotonic()
        closer = threading.Thread(target=_finish, args=(node, executor, spinner), name="one2345-exit", daemon=True)
        closer.start()
        closer.join(EXIT_DEADLINE_S)
        code = 1 if errors or closer.is_alive() else 0
        left = _leftover_threads(max(0.0, EXIT_DEADLINE_S - (time.monotonic() - t0)))
        if closer.is_alive():
            print(f"one2345_reconstructor: the ROS shutdown did not finish in {EXIT_DEADLINE_S:g} s "
                  f"(threads: {', '.join(left)}); exiting anyway", file=sys.stderr, flush=True)  # fmt: skip
        if left:  # leave without interpreter finalisation, which would wait for them
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    return code
