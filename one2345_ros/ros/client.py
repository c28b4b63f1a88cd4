"""The other side of the node, over DDS: a camera that publishes a scene and a client that calls it.

Used by ``one2345 ros-demo`` and ``benchmarks/ros_node.py`` (the tests drive the node on their
own). Takes arrays, never the synthetic scenes themselves (production code does not import
``synthetic/``). :class:`NodeSession` runs the real ``one2345_reconstructor`` in this process,
on a MultiThreadedExecutor, beside a client node that publishes ``image``, ``mask``, ``depth``,
``camera_info`` and a static TF frame of the camera, and calls ``reconstruct_object``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import rclpy
from rclpy.executors import MultiThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image

from ..srv import ReconstructObject
from . import images, messages
from .factory import RclpyFactory
from .node import LATCHED, ReconstructorNode, executor_threads

CAMERA_QOS = QoSProfile(depth=2, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE,
                        durability=DurabilityPolicy.VOLATILE)  # fmt: skip


@dataclass
class CameraFrame:
    """What a camera publishes: colour image, mask, depth (metres, 0 = none), K and the camera's pose
    (OpenCV c2w) in ``world_frame``."""

    rgb: np.ndarray
    mask: np.ndarray
    depth: np.ndarray | None
    K: np.ndarray
    c2w: np.ndarray
    frame_id: str = "one2345_demo_camera"
    world_frame: str = "one2345_demo_world"


def matrix_to_transform(f: RclpyFactory, header, child_frame_id: str, matrix: np.ndarray):
    """geometry_msgs/TransformStamped of a rigid 4x4 (child's pose in header.frame_id)."""
    from scipy.spatial.transform import Rotation

    x, y, z, w = Rotation.from_matrix(np.asarray(matrix, dtype=np.float64)[:3, :3]).as_quat()
    t = np.asarray(matrix, dtype=np.float64)[:3, 3]
    return f.make("geometry_msgs/msg/TransformStamped", header=header, child_frame_id=child_frame_id,
                  transform=f.make("geometry_msgs/msg/Transform",
                                   translation=f.make("geometry_msgs/msg/Vector3", x=t[0], y=t[1], z=t[2]),
                                   rotation=f.make("geometry_msgs/msg/Quaternion", x=x, y=y, z=z, w=w)))  # fmt: skip


def mesh_from_message(mesh_msg) -> tuple[np.ndarray, np.ndarray]:
    """(vertices [V, 3] float64, faces [F, 3] int64) of a shape_msgs/Mesh."""
    vertices = np.array([(p.x, p.y, p.z) for p in mesh_msg.vertices], dtype=np.float64).reshape(-1, 3)
    faces = np.array([tuple(t.vertex_indices) for t in mesh_msg.triangles], dtype=np.int64).reshape(-1, 3)
    return vertices, faces


@dataclass
class Answer:
    response: Any
    seconds: float
    """From the call to the answer."""
    logs: list = field(default_factory=list)


class NodeSession:
    """The node (in this process) and a client node on one executor. Use as a context manager.

    Args:
        parameters: node parameters (dotted names), on top of the defaults.
        pipeline_factory: ``Config -> pipeline`` for the node (None: the real pipeline).
    """

    def __init__(self, parameters: dict[str, Any], pipeline_factory=None):
        self.parameters = dict(parameters)
        self.pipeline_factory = pipeline_factory
        self.node: ReconstructorNode | None = None
        self.client = None
        self._executor = None
        self._spinner = None
        self._own_context = False
        self._camera_timer = None
        self._published = 0
        self._service_client = None

    def __enter__(self) -> NodeSession:
        if not rclpy.ok():
            from rclpy.signals import SignalHandlerOptions

            rclpy.init(signal_handler_options=SignalHandlerOptions.NO)  # Ctrl-C stays a KeyboardInterrupt
            self._own_context = True
        kwargs = {} if self.pipeline_factory is None else {"pipeline_factory": self.pipeline_factory}
        self.node = ReconstructorNode(parameter_overrides=[Parameter(k, value=v) for k, v in self.parameters.items()],
                                      **kwargs)  # fmt: skip
        threads = executor_threads(int(self.parameters.get("ros.queue_requests", 0)))
        self.node.executor_threads = threads
        self.client = rclpy.create_node("one2345_ros_demo_client")
        self._executor = MultiThreadedExecutor(num_threads=threads + 1)
        self._executor.add_node(self.node)
        self._executor.add_node(self.client)
        self._spinner = threading.Thread(target=self._executor.spin, name="one2345-demo-executor", daemon=True)
        self._spinner.start()
        return self

    def start(self) -> None:
        """Configure and activate the node; RuntimeError with the reason when it cannot."""
        self.node.trigger_configure()
        if not self.node.configured:
            raise RuntimeError("the node did not configure (see its log above)")
        self.node.trigger_activate()
        if not self.node.activated:
            raise RuntimeError("the node did not activate (see its log above)")

    def __exit__(self, *exc) -> None:
        # The executor first: a camera tick it had already taken failed on a cancelled timer.
        if self._executor is not None:
            self._executor.shutdown(timeout_sec=2.0)
        if self._camera_timer is not None:
            self._camera_timer.cancel()
        if self.node is not None:
            self.node.destroy_node()
        if self.client is not None:
            self.client.destroy_node()
        if self._own_context:
            rclpy.try_shutdown()

    # ------------------------------------------------------------ the camera
    def publish_camera(self, frame: CameraFrame, rate_hz: float = 5.0, topics: dict[str, str] | None = None) -> None:
        """Publish ``frame`` on image, mask, depth, camera_info at ``rate_hz`` (fresh stamps, as a camera
        does) and the camera's pose on /tf_static (latched)."""
        topics = {"image": "image", "mask": "mask", "depth": "depth", "camera_info": "camera_info", **(topics or {})}
        f = RclpyFactory()
        client = self.client
        pubs = {role: client.create_publisher(Image, topic, CAMERA_QOS) for role, topic in topics.items()
                if role != "camera_info"}  # fmt: skip
        info_pub = client.create_publisher(CameraInfo, topics["camera_info"], CAMERA_QOS)
        from tf2_msgs.msg import TFMessage

        tf_pub = client.create_publisher(TFMessage, "/tf_static", LATCHED)
        now = client.get_clock().now().nanoseconds
        tf_pub.publish(TFMessage(transforms=[matrix_to_transform(f, messages.make_header(f, now, frame.world_frame),
                                                                 frame.frame_id, frame.c2w)]))  # fmt: skip
        height, width = frame.mask.shape
        rgb = np.ascontiguousarray(frame.rgb)
        mask = np.ascontiguousarray(frame.mask.astype(np.uint8) * 255 if frame.mask.dtype == bool else frame.mask)
        depth = None if frame.depth is None else np.nan_to_num(frame.depth, nan=0.0).astype(np.float32)
        K = np.asarray(frame.K, dtype=np.float64)
        P = np.zeros((3, 4))
        P[:, :3] = K

        def tick():
            stamp = client.get_clock().now().nanoseconds
            header = messages.make_header(f, stamp, frame.frame_id)
            pubs["image"].publish(images.image_message(f, header, rgb, "rgb8"))
            pubs["mask"].publish(images.image_message(f, header, mask, "mono8"))
            if depth is not None:
                pubs["depth"].publish(images.image_message(f, header, depth, "32FC1"))
            info = CameraInfo(header=header, width=width, height=height, distortion_model="plumb_bob")
            info.d = [0.0] * 5
            info.k, info.p = K.reshape(-1).tolist(), P.reshape(-1).tolist()
            info.r = np.eye(3).reshape(-1).tolist()
            info_pub.publish(info)
            self._published += 1

        tick()
        self._camera_timer = client.create_timer(1.0 / rate_hz, tick)

    def wait_for_inputs(self, timeout_s: float = 30.0) -> bool:
        """Until the node holds a synchronised input set from the camera."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            core = self.node.core
            if core is not None:
                try:
                    core.latest.take(0)
                    return True
                except ValueError:
                    pass
            time.sleep(0.05)
        return False

    # ------------------------------------------------------------ requests
    def call(self, object_id: str = "", timeout_s: float = 600.0, request=None) -> Answer:
        """Call reconstruct_object (empty images: the latest synchronised set) and wait for the answer."""
        if self._service_client is None:  # one client for every call
            self._service_client = self.client.create_client(ReconstructObject, "reconstruct_object")
        cli = self._service_client
        if not cli.wait_for_service(timeout_sec=10.0):
            raise RuntimeError("service reconstruct_object is not advertised")
        if request is None:
            request = ReconstructObject.Request()
            request.object_id = object_id
        t0 = time.perf_counter()
        future = cli.call_async(request)
        done = threading.Event()
        future.add_done_callback(lambda _: done.set())
        if not done.wait(timeout_s):
            cli.remove_pending_request(future)
            raise TimeoutError(f"reconstruct_object did not answer in {timeout_s:g} s")
        return Answer(future.result(), time.perf_counter() - t0)
