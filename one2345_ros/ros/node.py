"""The one2345_reconstructor node (rclpy; Humble and Jazzy). Thin: ROS wiring only.

Threading: a MultiThreadedExecutor runs the input callbacks (their own mutually exclusive
group) and the service and action callbacks (a reentrant group). Requests block only their
executor thread while the single worker thread of :class:`Reconstructor` owns the models,
so image callbacks never wait. A request while busy is answered at once with a
"busy" message, or queued when ``ros.queue_requests`` > 0.

Lifecycle (rclpy LifecycleNode): configure = read and validate parameters, create
publishers, subscriptions, service and action; activate = load the models (on the worker
thread); deactivate = free them (GPU memory); cleanup = destroy everything. With
``ros.autostart`` (default) the node configures and activates itself at start.
"""

from __future__ import annotations

import rclpy
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rcl_interfaces.msg import ParameterDescriptor

import message_filters
from geometry_msgs.msg import TransformStamped
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import Float32
from tf2_ros import StaticTransformBroadcaster
from visualization_msgs.msg import Marker

from ..action import ReconstructObject as ReconstructObjectAction
from ..msg import ReconstructedObject
from ..srv import ReconstructObject

from ..config import NODE_NAME, Config, ConfigError
from . import images
from .factory import RclpyFactory
from .inputs import InputMessages
from .params import config_from_parameters, default_parameters
from .publications import build_publications
from .reconstructor import Outcome, Reconstructor, Request
from .transforms import transform_to_matrix

LATCHED = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)  # fmt: skip
_OUTPUT_TYPES = {"object": ReconstructedObject, "marker": Marker, "elevation": Float32, "points": PointCloud2,
                 "views": Image}  # fmt: skip


def default_pipeline_factory(config: Config):
    from ..pipeline import Pipeline

    return Pipeline(config)


class ReconstructorNode(LifecycleNode):
    """Service ``reconstruct_object``, action ``reconstruct``, latched outputs under ``~/``."""

    def __init__(self, pipeline_factory=default_pipeline_factory, **node_kwargs):
        # Overrides from the YAML are declared as given, so misspelt names reach validation
        # (and stop the node) instead of being silently ignored.
        super().__init__(NODE_NAME, automatically_declare_parameters_from_overrides=True, **node_kwargs)
        for name, default in default_parameters().items():
            if not self.has_parameter(name):
                self.declare_parameter(name, default, ParameterDescriptor(dynamic_typing=True))
        self._pipeline_factory = pipeline_factory
        self._factory = RclpyFactory()
        self.settings: Config | None = None
        self.core: Reconstructor | None = None
        self._entities: list = []
        self._static_transforms: dict[str, TransformStamped] = {}
        self.configured = False
        self.activated = False

    # ------------------------------------------------------------ parameters
    def _read_settings(self) -> Config:
        params = {name: p.value for name, p in self.get_parameters_by_prefix("").items()
                  if p.type_ != Parameter.Type.NOT_SET}  # fmt: skip
        return config_from_parameters(params)

    # ------------------------------------------------------------ lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.settings = self._read_settings()
        except ConfigError as exc:
            self.get_logger().error(f"cannot configure: {exc}")
            return TransitionCallbackReturn.FAILURE
        cfg = self.settings.ros
        self.core = Reconstructor(self.settings, self._pipeline_factory,
                                  log=self.get_logger(), clock_ns=lambda: self.get_clock().now().nanoseconds,
                                  gravity_lookup=self._gravity_lookup() if cfg.gravity_frame else None)  # fmt: skip
        self._pubs = {key: self.create_publisher(msg_type, f"~/{key}", LATCHED) for key, msg_type in _OUTPUT_TYPES.items()}
        if cfg.publish_collision_object:
            try:
                from moveit_msgs.msg import CollisionObject
            except ImportError:
                self.get_logger().error("ros.publish_collision_object is true but moveit_msgs is not installed "
                                        "(apt install ros-$ROS_DISTRO-moveit-msgs)")  # fmt: skip
                return TransitionCallbackReturn.FAILURE
            self._pubs["collision_object"] = self.create_publisher(CollisionObject, cfg.collision_object_topic, LATCHED)
        self._tf = StaticTransformBroadcaster(self)
        self._create_inputs()
        requests = ReentrantCallbackGroup()
        self._service = self.create_service(ReconstructObject, "reconstruct_object", self._on_service,
                                            callback_group=requests)  # fmt: skip
        self._action = ActionServer(self, ReconstructObjectAction, "reconstruct", execute_callback=self._on_goal,
                                    goal_callback=lambda goal: GoalResponse.ACCEPT,
                                    cancel_callback=lambda goal: CancelResponse.ACCEPT, callback_group=requests)  # fmt: skip
        self.configured = True
        self.get_logger().info("configured; " + ("models load on activate" if not cfg.autostart else "activating"))
        return TransitionCallbackReturn.SUCCESS

    def _gravity_lookup(self):
        """TF lookup of the camera's pose in ros.gravity_frame at the image stamp (blocks one
        request thread for at most ros.tf_timeout_s; the listener runs on the executor)."""
        from rclpy.duration import Duration
        from rclpy.time import Time
        from tf2_ros import Buffer, TransformListener

        cfg = self.settings.ros
        self._tf_buffer = Buffer()
        self._tf_listener = TransformListener(self._tf_buffer, self)

        def lookup(frame_id: str, stamp_ns: int):
            stamped = self._tf_buffer.lookup_transform(cfg.gravity_frame, frame_id, Time(nanoseconds=stamp_ns),
                                                       timeout=Duration(seconds=cfg.tf_timeout_s))  # fmt: skip
            return transform_to_matrix(stamped.transform)

        return lookup

    def _create_inputs(self) -> None:
        cfg = self.settings.ros
        reliability = ReliabilityPolicy.RELIABLE if cfg.input_reliability == "reliable" else ReliabilityPolicy.BEST_EFFORT
        qos = QoSProfile(depth=cfg.input_history_depth, history=HistoryPolicy.KEEP_LAST, reliability=reliability,
                         durability=DurabilityPolicy.VOLATILE)  # fmt: skip
        group = MutuallyExclusiveCallbackGroup()
        topics = [(Image, "image"), (Image, "mask")]
        if cfg.use_depth:
            topics.append((Image, "depth"))
        if cfg.use_camera_info:
            topics.append((CameraInfo, "camera_info"))
        self._roles = [topic for _, topic in topics]
        self._filters = [message_filters.Subscriber(self, msg_type, topic, qos_profile=qos, callback_group=group)
                         for msg_type, topic in topics]  # fmt: skip
        self._sync = message_filters.ApproximateTimeSynchronizer(self._filters, cfg.sync_queue_size, cfg.sync_slop_s)
        self._sync.registerCallback(self._on_inputs)

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
        self._destroy_entities()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._destroy_entities()
        return TransitionCallbackReturn.SUCCESS

    def _destroy_entities(self) -> None:
        if self.core is not None:
            self.core.shutdown()
            self.core = None
        if not self.configured:
            return
        for f in self._filters:
            self.destroy_subscription(f.sub)
        self.destroy_service(self._service)
        self._action.destroy()
        for pub in self._pubs.values():
            self.destroy_publisher(pub)
        self.configured = self.activated = False

    # ------------------------------------------------------------ inputs
    def _on_inputs(self, *msgs) -> None:
        by_role = dict(zip(self._roles, msgs))
        image = by_role["image"]
        if image.encoding not in images.COLOR_ENCODINGS:
            image = self._to_rgb8(image)
            if image is None:
                return
        self.core.on_input(InputMessages(image, by_role["mask"], by_role.get("depth"), by_role.get("camera_info")))

    def _to_rgb8(self, image: Image) -> Image | None:
        """Camera encodings images.py does not read (yuv422, bayer_*...) go through cv_bridge."""
        from cv_bridge import CvBridge

        try:
            rgb = CvBridge().imgmsg_to_cv2(image, desired_encoding="rgb8")
        except Exception as exc:  # CvBridgeError or anything else: is a dropped message, not a dead node
            self.core.dropped_inputs += 1
            self.get_logger().warning(f"dropped input pair: image encoding '{image.encoding}': {exc}")
            return None
        return images.image_message(self._factory, image.header, rgb, "rgb8")

    # ------------------------------------------------------------ requests
    def _serve(self, request: Request, on_progress=None, should_cancel=None) -> Outcome:
        if self.core is None:
            return Outcome("inactive", "not configured: the node has no parameters loaded yet")
        outcome = self.core.run(request, on_progress=on_progress, should_cancel=should_cancel)
        if outcome.success:
            try:
                outcome.published = self._publish(outcome)  # the ReconstructedObject sent
            except Exception as exc:  # a result that cannot be published must still be answered
                self.get_logger().error(f"publishing the result failed: {type(exc).__name__}: {exc}")
                return Outcome("failed", f"result built but not publishable: {exc}", outcome.inputs)
            self.get_logger().info(outcome.message)
        return outcome

    def _publish(self, outcome: Outcome):
        pubs = build_publications(self._factory, outcome.result, outcome.mesh_uri, self.settings.ros)
        for key, msg in pubs.items():
            if key == "transform":
                self._static_transforms[msg.child_frame_id] = msg
                # /tf_static keeps only the last message per publisher: resend all object frames.
                self._tf.sendTransform(list(self._static_transforms.values()))
            elif key in self._pubs:
                self._pubs[key].publish(msg)
        return pubs["object"]

    def _on_service(self, request, response):
        outcome = self._serve(Request.from_msg(request))
        response.success = outcome.success
        response.message = outcome.message
        if outcome.success:
            response.object = outcome.published
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
        if outcome.success:
            result.object = outcome.published
            goal_handle.succeed()
        elif outcome.status == "cancelled" and goal_handle.is_cancel_requested:
            goal_handle.canceled()
        else:
            goal_handle.abort()
        return result


def main(args=None) -> int:
    rclpy.init(args=args)
    node = ReconstructorNode()
    executor = MultiThreadedExecutor(num_threads=4)
    executor.add_node(node)
    try:
        if node.get_parameter("ros.autostart").value:
            node.trigger_configure()
            if node.configured:
                node.trigger_activate()
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node.core is not None:
            node.core.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0
