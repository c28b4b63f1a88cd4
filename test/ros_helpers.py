"""Shared helpers for the ROS-layer tests: rosbags messages, a fake pipeline, the rosidl parser."""

from __future__ import annotations

import importlib
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import trimesh

from one2345_ros.results.planner import object_frame
from one2345_ros.results.result import ReconstructionResult, failed_result
from one2345_ros.ros.factory import RosbagsFactory
from one2345_ros.ros.images import image_message
from one2345_ros.ros.interfaces import make_typestore
from one2345_ros.ros.messages import make_header
from one2345_ros.types import Cancelled

# moveit_msgs is not in rosbags' stores: its real definitions (moveit_msgs 2.2, Humble/Jazzy).
COLLISION_OBJECT = """std_msgs/Header header
geometry_msgs/Pose pose
string id
object_recognition_msgs/ObjectType type
shape_msgs/SolidPrimitive[] primitives
geometry_msgs/Pose[] primitive_poses
shape_msgs/Mesh[] meshes
geometry_msgs/Pose[] mesh_poses
shape_msgs/Plane[] planes
geometry_msgs/Pose[] plane_poses
string[] subframe_names
geometry_msgs/Pose[] subframe_poses
byte ADD=0
byte REMOVE=1
byte APPEND=2
byte MOVE=3
byte operation
"""
OBJECT_TYPE = "string key\nstring db\n"


def typestore_with_moveit(distro: str):
    """rosbags typestore of ``distro`` with this package's interfaces and moveit's CollisionObject."""
    from rosbags.typesys import get_types_from_msg

    store = make_typestore(distro)
    types = get_types_from_msg(OBJECT_TYPE, "object_recognition_msgs/msg/ObjectType")
    types.update(get_types_from_msg(COLLISION_OBJECT, "moveit_msgs/msg/CollisionObject"))
    store.register(types)
    return store


def wait_until(predicate, timeout: float = 20.0) -> bool:
    """Poll ``predicate`` every 20 ms until it is true (True) or ``timeout`` s pass (False): the
    bounded wait of the DDS tests (discovery and executor threads answer asynchronously)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False

REPO = Path(__file__).resolve().parents[1]
TYPESTORE = make_typestore("humble")
F = RosbagsFactory(TYPESTORE)


def image_msg(pixels: np.ndarray, encoding: str, stamp_ns: int = 1_000_000_000, frame_id: str = "cam_optical"):
    return image_message(F, make_header(F, stamp_ns, frame_id), pixels, encoding)


def camera_info_msg(K, width: int, height: int, D=(0.0, 0.0, 0.0, 0.0, 0.0), stamp_ns: int = 1_000_000_000):
    return F.make("sensor_msgs/msg/CameraInfo", header=make_header(F, stamp_ns, "cam_optical"), width=width,
                  height=height, distortion_model="plumb_bob", d=np.asarray(D, dtype=np.float64),
                  k=np.asarray(K, dtype=np.float64).reshape(9))  # fmt: skip


def scene(h: int = 48, w: int = 64, stamp_ns: int = 1_000_000_000):
    """An rgb8 image with a square object and its mono8 mask."""
    rng = np.random.default_rng(stamp_ns % 1000)
    rgb = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    mask = np.zeros((h, w), np.uint8)
    mask[10:30, 20:44] = 255
    return rgb, mask, image_msg(rgb, "rgb8", stamp_ns), image_msg(mask, "mono8", stamp_ns)


def colored_sphere(subdivisions: int = 2) -> trimesh.Trimesh:
    mesh = trimesh.creation.icosphere(subdivisions=subdivisions, radius=0.1)
    v = mesh.vertices
    colors = np.column_stack([(v - v.min(0)) / np.ptp(v, axis=0) * 255, np.full(len(v), 255)]).astype(np.uint8)
    mesh.visual = trimesh.visual.ColorVisuals(mesh, vertex_colors=colors)
    return mesh


def known_result(frame_id: str = "cam_optical", object_id: str = "object", stamp_ns: int = 0) -> ReconstructionResult:
    return ReconstructionResult(
        ok=True, object_id=object_id, stamp_ns=stamp_ns, mesh=colored_sphere(), frame="camera_optical",
        frame_id=frame_id, units="m", scale_source="depth", elevation_deg=23.5, polar_deg=66.5,
        elevation_source="image", confidence=0.9,
        timings={"preprocess": 0.01, "views_stage1": 1.5, "elevation": 0.25, "reconstruct": 2.0},
        input_image=np.full((48, 64, 3), 200, np.uint8),
        input_mask=np.pad(np.ones((20, 24), bool), ((10, 18), (20, 20))),
    )  # fmt: skip


def labels_scene(h: int = 48, w: int = 64, stamp_ns: int = 1_000_000_000, encoding: str = "16UC1"):
    """An rgb8 image with three objects and their label image (ids 3, 7, 12; 0 = background)."""
    rng = np.random.default_rng(stamp_ns % 1000)
    rgb = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    dtype = {"16UC1": np.uint16, "mono16": np.uint16, "32SC1": np.int32}.get(encoding, np.uint8)
    labels = np.zeros((h, w), dtype)
    labels[4:20, 4:20], labels[4:20, 40:60], labels[26:44, 14:50] = 3, 7, 12
    return rgb, labels, image_msg(rgb, "rgb8", stamp_ns), image_msg(labels, encoding, stamp_ns)


def placed_result(inputs, index: int) -> ReconstructionResult:
    """known_result for ``inputs``, its sphere moved to a place of its own (``index``), with the
    object frame the pipeline computes (results/planner.object_frame)."""
    result = known_result(inputs.frame_id, inputs.object_id, inputs.stamp_ns)
    result.mesh.apply_translation([0.3 * index - 0.3, 0.1 * index, 0.8])
    result.mesh.apply_scale([1.0, 0.8, 0.6])  # an ellipsoid: distinct box sides
    result.object_pose, result.object_extents = object_frame(result.mesh)
    return result


class FakePipeline:
    """Stands in for one2345_ros.pipeline.Pipeline; records threads and calls.

    ``gate``: when set, reconstruct waits for it (to hold the worker busy); it reports
    stages and honours the cancel event between them like the real pipeline.
    """

    STAGES = ("preprocess", "views_stage1", "elevation", "reconstruct")

    def __init__(self, cfg=None, gate: threading.Event | None = None, error: Exception | None = None):
        self.cfg = cfg
        self.gate = gate
        self.error = error
        self.loaded = False
        self.threads = {}
        self.inputs = []
        self.started = threading.Event()

    def load(self):
        self.threads["load"] = threading.get_ident()
        self.loaded = True

    def unload(self):
        self.threads["unload"] = threading.get_ident()
        self.loaded = False

    def reconstruct(self, inputs, progress=None, cancel=None):
        self.threads["reconstruct"] = threading.get_ident()
        self.inputs.append(inputs)
        self.started.set()
        for i, stage in enumerate(self.STAGES):
            if cancel is not None and cancel.is_set():
                raise Cancelled(f"cancelled before {stage}")
            if progress:
                progress(stage, i / len(self.STAGES))
            if i == 0 and self.gate is not None:  # hold the worker until released or cancelled
                deadline = time.monotonic() + 10
                while not self.gate.is_set() and not (cancel is not None and cancel.is_set()):
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.002)
        if self.error is not None:
            raise self.error
        return known_result(inputs.frame_id, inputs.object_id, inputs.stamp_ns)

    fail_ids: tuple[str, ...] = ()
    """reconstruct_objects: these object ids fail (ok false with a reason); the others come back."""

    def reconstruct_objects(self, objects, progress=None, cancel=None):
        """Several objects (the real pipeline's contract): one result per object, in order."""
        self.threads["reconstruct"] = threading.get_ident()
        self.objects = list(objects)
        self.started.set()
        for i, stage in enumerate(self.STAGES):
            if cancel is not None and cancel.is_set():
                raise Cancelled(f"cancelled before {stage}")
            if progress:
                progress(stage, i / len(self.STAGES))
        return [failed_result(f"fake failure of {inputs.object_id}", inputs.object_id, inputs.stamp_ns)
                if inputs.object_id in self.fail_ids else placed_result(inputs, k)
                for k, inputs in enumerate(objects)]  # fmt: skip


def get_rosidl():
    """The official ROS 2 interface parser (rosidl_adapter), from the test extras' PyPI wheels.

    Fails (never skips): CI must not silently drop the interface checks.
    """
    try:
        return importlib.import_module("rosidl_adapter.parser")
    except ImportError as exc:
        pytest.fail(f"rosidl_adapter is not installed ({exc}): pip install -c constraints.txt -e '.[test]'")


@dataclass
class NodeRig:
    """The real ReconstructorNode (a FakePipeline unless a factory is given) and a client node,
    spinning on one MultiThreadedExecutor: what every DDS test of the node starts from."""

    node: object
    client: object
    pipeline: FakePipeline
    gate: threading.Event
    executor: object
    spinner: threading.Thread

    @classmethod
    def start(cls, tmp_path, params=None, pipeline_factory=None, threads: int = 4, activate: bool = True):
        """rclpy must be initialised. ``params`` override the test defaults (results under ``tmp_path``,
        10-pixel masks accepted, no queue); ``activate=False`` leaves the node unconfigured."""
        import rclpy
        from rclpy.executors import MultiThreadedExecutor
        from rclpy.parameter import Parameter

        from one2345_ros.ros.node import ReconstructorNode

        gate = threading.Event()
        gate.set()
        pipeline = FakePipeline(gate=gate)
        overrides = {"ros.output_dir": str(tmp_path), "inputs.min_mask_pixels": 10, "ros.queue_requests": 0,
                     **(params or {})}  # fmt: skip
        node = ReconstructorNode(pipeline_factory=pipeline_factory or (lambda cfg: pipeline),
                                 parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()])  # fmt: skip
        node.executor_threads = threads
        client = rclpy.create_node("one2345_test_client")
        executor = MultiThreadedExecutor(num_threads=threads)
        executor.add_node(node)
        executor.add_node(client)
        spinner = threading.Thread(target=executor.spin, daemon=True)
        spinner.start()
        rig = cls(node, client, pipeline, gate, executor, spinner)
        if activate:
            node.trigger_configure()
            assert node.configured
            node.trigger_activate()
            assert node.activated
        return rig

    def stop(self) -> None:
        self.gate.set()
        self.node._teardown()
        self.executor.shutdown()
        self.node.destroy_node()
        self.client.destroy_node()

