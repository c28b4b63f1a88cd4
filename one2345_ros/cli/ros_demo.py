"""``one2345 ros-demo``: the node doing real work over DDS, no weights needed.

The scene of ``one2345 demo`` (a bundled object seen by a 640x480 camera at a known elevation,
synthetic/scenes.py) is published as a camera would: ``image``, ``mask``, ``depth`` (32FC1),
``camera_info`` and the camera's pose on /tf_static (frame ``one2345_demo_camera`` in
``one2345_demo_world``, the object's z-up frame). The real ``one2345_reconstructor`` runs in
this process with synthetic views (``views: oracle`` of the bundled mesh, the input pose from
TF), the visual hull, depth and camera_info; ``reconstruct_object`` is called with the latest
synchronised set, and the answer is compared with the truth: elevation error and Chamfer-L1 of
the mesh in the answer against the true object in the camera frame (evaluation/). With
``--hold`` the node keeps its latched outputs up for RViz (``rviz/one2345.rviz``).

rclpy is imported when the command runs, never when the CLI starts.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

from .common import add_config_args, load_args_config
from .demo import add_scene_args

WORLD_FRAME = "one2345_demo_world"
CAMERA_FRAME = "one2345_demo_camera"


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("ros-demo", help="run the ROS node on a published synthetic scene (needs ROS 2)")
    p.add_argument("--out", default="one2345-ros-demo", help="the node's ros.output_dir (default one2345-ros-demo/)")
    add_scene_args(p, "bundled object name (house, mallet, mug)")
    p.add_argument("--gravity", action="store_true",
                   help="ros.gravity_frame = the demo world (elevation from TF); default: from images")  # fmt: skip
    p.add_argument("--hold", nargs="?", type=float, const=math.inf, default=0.0, metavar="SECONDS",
                   help="keep the node and its latched outputs up for RViz (no value: until Ctrl-C)")  # fmt: skip
    p.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for the answer (default 600)")
    add_config_args(p)
    p.set_defaults(func=run)
    return p


def node_parameters(base, mesh_path: Path, out: Path, gravity: bool) -> dict:
    """The node's parameters for the demo: the user's config (--config/--set) plus synthetic views of
    the bundled mesh posed by TF, the hull, depth and camera_info."""
    from .. import config as C

    params = C.flatten(base)
    params.update({
        "views": "oracle", "backend": "hull", "oracle.mesh": str(mesh_path), "oracle.input_c2w": [],
        "oracle.mesh_frame": WORLD_FRAME, "ros.output_dir": str(out), "ros.use_depth": True,
        "ros.use_camera_info": True, "ros.autostart": False, "ros.max_input_age_s": 0.0,
        "ros.gravity_frame": WORLD_FRAME if gravity else "",
        "ros.tf_timeout_s": max(1.0, float(params.get("ros.tf_timeout_s", 0.2))),
    })  # fmt: skip
    # ROS parameters cannot be empty lists of unknown type: leave empty lists out (the default is [])
    return {k: v for k, v in params.items() if not (isinstance(v, list) and not v)}


def run(args) -> int:
    from ..synthetic.assets import load_object, object_path
    from ..synthetic.scenes import demo_scene

    try:
        from ..ros.client import CameraFrame, NodeSession, mesh_from_message
    except ImportError as exc:
        raise ImportError(f"one2345 ros-demo needs ROS 2 with this package built and sourced ({exc}); on a machine "
                          "without apt ROS: tools/ros_jazzy_env.sh .cache/ros_jazzy && source "
                          ".cache/ros_jazzy/setup.bash (docs/ros.md)") from None  # fmt: skip

    _interrupt_on_signals()
    out = Path(args.out).expanduser().resolve()
    base = load_args_config(args)
    name = args.object
    scene = demo_scene(name, args.seed, args.elevation)
    print(f"[{name}] true elevation {scene.elevation_deg:.1f} deg, azimuth {scene.azimuth_deg:.1f} deg; publishing "
          f"image, mask, depth, camera_info and TF {WORLD_FRAME} -> {CAMERA_FRAME}")  # fmt: skip
    frame = CameraFrame(scene.image, scene.mask, scene.depth, scene.K, scene.c2w, CAMERA_FRAME, WORLD_FRAME)
    params = node_parameters(base, object_path(name), out, args.gravity)
    with NodeSession(params) as session:
        session.start()
        session.publish_camera(frame)
        if not session.wait_for_inputs(30.0):
            raise RuntimeError("the node received no synchronised image/mask/depth/camera_info set in 30 s")
        answer = session.call(name, timeout_s=args.timeout)
        response = answer.response
        print(f"[{name}] reconstruct_object answered in {answer.seconds:.1f} s: success={response.success}")
        print(f"[{name}] {response.message}")
        if not response.success:
            return 1
        summary = _compare(name, scene, response.object, load_object(name), mesh_from_message)
        print(f"[{name}] elevation {summary['elevation_deg']:.1f} deg ({response.object.elevation_source}), "
              f"error {summary['elevation_error_deg']:.2f} deg; Chamfer-L1 {100 * summary['chamfer_l1']:.2f} % of the "
              f"bbox diagonal, F-score@2% {summary['f_score']:.3f} ({summary['faces']} faces in "
              f"{response.object.header.frame_id}, {response.object.units})")  # fmt: skip
        print(f"[{name}] result folder: {response.object.mesh_uri.removeprefix('file://').rsplit('/', 1)[0]}/")
        print(f"[{name}] latched: /one2345_reconstructor/{{object,marker,elevation,points,views}}, /tf_static "
              f"one2345/{name}; RViz: rviz2 -d <share>/one2345_ros/rviz/one2345.rviz -f {CAMERA_FRAME}")  # fmt: skip
        _hold(args.hold)
    return 0


def _compare(name, scene, obj, true_mesh, mesh_from_message) -> dict:
    """The answer against the truth: elevation error, and the answer's mesh (camera frame, metres) against
    the true object moved into the camera frame."""
    import trimesh

    from ..evaluation.mesh_metrics import compare_meshes
    from ..geometry.cameras import invert_rigid

    vertices, faces = mesh_from_message(obj.mesh)
    truth = true_mesh.copy()
    truth.apply_transform(invert_rigid(scene.c2w))
    scores = compare_meshes(trimesh.Trimesh(vertices, faces, process=False), truth)
    return {"elevation_deg": float(obj.elevation_deg), "elevation_error_deg": abs(float(obj.elevation_deg)
                                                                                   - scene.elevation_deg),
            "chamfer_l1": scores.chamfer_l1, "f_score": scores.f_score, "faces": len(faces)}  # fmt: skip


def _interrupt_on_signals() -> None:
    """SIGINT and SIGTERM end the command cleanly (node destroyed, rclpy shut down): both raise
    KeyboardInterrupt. Installed explicitly: a process started in the background by a shell, or by
    ``ros2 launch demo:=true``, inherits SIGINT ignored, and launch stops it with SIGINT, then SIGTERM."""
    import signal

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, interrupt)


def _hold(seconds: float) -> None:
    if seconds <= 0:
        return
    what = "until Ctrl-C" if math.isinf(seconds) else f"for {seconds:g} s"
    print(f"holding the node and its latched outputs {what}", flush=True)
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
    except KeyboardInterrupt:
        pass
