"""The node's cost over the library, its message building on rclpy types, and a node soak.

1. Latency: the demo scene (a bundled object, 640x480, depth + camera_info, synthetic views of
   the true mesh, the visual hull) reconstructed by the library (Pipeline.reconstruct +
   write_result, what the node does per request) and by the real node in this process over
   DDS (camera topics published, ``reconstruct_object`` called on the latest set, the oracle
   posed by TF), alternately, ``--runs`` times each after one warm-up of each. Goal: node
   overhead <= 10 % of the library call (medians).
2. Messages: shape_msgs/Mesh + visualization_msgs/Marker (TRIANGLE_LIST, vertex colours) for a
   50k-face mesh with rclpy's own message classes (which validate every element). Goal <= 0.5 s.
3. Soak (``--soak N``, issue 13): N requests through the node; the process RSS after each and
   the slope of a least-squares line through requests 11..N. Goal < 0.2 MB per request.
   ``--soak-pipeline replay`` (default) answers every request with one real result computed
   up front, so the N requests exercise everything the node adds (input conversion, TF, the
   worker, result folders, message building, publishing, DDS) in minutes;
   ``--soak-pipeline real`` runs the whole pipeline each time (about 20-30 s per request here).
   Its median answer time is also the node's own cost per request (the pipeline takes no
   time; write_result, which the library call pays too, is included): a second, less noisy
   measure of the overhead than the difference of two 20 s medians on a shared machine.

    source .cache/ros_jazzy/setup.bash
    python benchmarks/ros_node.py [--runs 3] [--resolution 128] [--soak 100]

Prints a table and writes benchmarks/results/ros_node.json.
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from one2345_ros.cli.ros_demo import CAMERA_FRAME, WORLD_FRAME, node_parameters  # noqa: E402
from one2345_ros.config import Config  # noqa: E402
from one2345_ros.inputs.calibration import make_calibration  # noqa: E402
from one2345_ros.inputs.prepare import prepare_inputs  # noqa: E402
from one2345_ros.pipeline import Pipeline  # noqa: E402
from one2345_ros.results.files import write_result  # noqa: E402
from one2345_ros.synthetic.assets import object_path  # noqa: E402
from one2345_ros.synthetic.scenes import DEMO_HEIGHT, DEMO_WIDTH, demo_scene  # noqa: E402

OVERHEAD_GOAL = 0.10
MESSAGES_GOAL_S = 0.5
SOAK_GOAL_MB = 0.2
SOAK_WARMUP = 10


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def library_config(scene, name: str, resolution: int) -> Config:
    cfg = Config(views="oracle", backend="hull")
    cfg.hull.resolution = resolution
    cfg.oracle.mesh, cfg.oracle.input_c2w = str(object_path(name)), scene.c2w.reshape(-1).tolist()
    return cfg


class LibraryRun:
    """What the node does per request, without ROS: prepare the inputs, reconstruct, write the folder."""

    def __init__(self, scene, name: str, resolution: int, out: Path):
        self.scene, self.out = scene, out
        self.cfg = library_config(scene, name, resolution)
        self.pipeline = Pipeline(self.cfg)
        self.camera = make_calibration(scene.K, [], "plumb_bob", DEMO_WIDTH, DEMO_HEIGHT, "bench camera")
        self.k = 0
        self.last = None

    def __call__(self) -> tuple[float, float]:
        """(seconds with the result folder written, seconds of Pipeline.reconstruct alone)."""
        s = self.scene
        t0 = time.perf_counter()
        inputs = prepare_inputs(s.image, s.mask, self.cfg.inputs, depth=s.depth, depth_encoding="32FC1",
                                calibration=self.camera, frame_id=CAMERA_FRAME, stamp_ns=self.k,
                                object_id="bench")  # fmt: skip
        t1 = time.perf_counter()
        result = self.pipeline.reconstruct(inputs)
        t2 = time.perf_counter()
        write_result(self.out / f"lib_{self.k:03d}", result, self.cfg.mesh)
        self.k += 1
        self.last = result
        return time.perf_counter() - t0, t2 - t1


class Replay:
    """A pipeline answering every request with one real result (the soak's default)."""

    def __init__(self, cfg, result):
        self.cfg, self.result = cfg, result

    def load(self):
        pass

    def unload(self):
        pass

    def reconstruct_objects(self, objects, progress=None, cancel=None, generators=None, raise_errors=False):
        """What the node's views: oracle wrapper calls (it built the oracle of the request's TF pose)."""
        return [self.reconstruct(objects[0], progress, cancel)]

    def reconstruct(self, inputs, progress=None, cancel=None):
        out = copy.copy(self.result)
        out.stamp_ns, out.object_id, out.frame_id = inputs.stamp_ns, inputs.object_id, inputs.frame_id
        out.warnings = list(self.result.warnings)
        return out


def latency(args, scene, out: Path) -> tuple[dict, LibraryRun]:
    from one2345_ros.ros.client import CameraFrame, NodeSession

    lib = LibraryRun(scene, args.object, args.resolution, out)
    params = node_parameters(Config(), object_path(args.object), out / "node", gravity=False)
    params["hull.resolution"] = args.resolution
    frame = CameraFrame(scene.image, scene.mask, scene.depth, scene.K, scene.c2w, CAMERA_FRAME, WORLD_FRAME)
    rows = {"library": [], "library_reconstruct_only": [], "node": []}
    with NodeSession(params) as session:
        session.start()
        session.publish_camera(frame)
        assert session.wait_for_inputs(30.0), "the node received no input set"
        print("warm-up: one library call, one node request", flush=True)
        lib()
        answer = session.call("bench")
        assert answer.response.success, answer.response.message
        for k in range(args.runs):
            total, recon = lib()
            rows["library"].append(total)
            rows["library_reconstruct_only"].append(recon)
            answer = session.call("bench")
            assert answer.response.success, answer.response.message
            rows["node"].append(answer.seconds)
            print(f"run {k + 1}/{args.runs}: library {total:6.2f} s (reconstruct {recon:6.2f} s), node "
                  f"{answer.seconds:6.2f} s", flush=True)  # fmt: skip
        faces = len(answer.response.object.mesh.triangles)
    med = {k: statistics.median(v) for k, v in rows.items()}
    overhead = (med["node"] - med["library"]) / med["library"]
    vs_reconstruct = (med["node"] - med["library_reconstruct_only"]) / med["library_reconstruct_only"]
    return {"runs": args.runs, "seconds": rows, "median_s": med, "faces": faces, "node_overhead": overhead,
            "node_overhead_vs_reconstruct_only": vs_reconstruct, "goal": OVERHEAD_GOAL,
            "pass": overhead <= OVERHEAD_GOAL}, lib  # fmt: skip


def message_building(faces: int, repeat: int) -> dict:
    from rclpy.serialization import serialize_message
    from ros_messages import torus

    from one2345_ros.ros import messages as m
    from one2345_ros.ros.factory import RclpyFactory

    f = RclpyFactory()
    vertices, tris, colors = torus(faces)
    header = m.make_header(f, 0, "camera_optical")
    timings = {"mesh": [], "marker": [], "mesh_plus_marker": [], "serialize_both": []}
    for _ in range(repeat):
        t0 = time.perf_counter()
        mesh = m.build_mesh(f, vertices, tris)
        t1 = time.perf_counter()
        marker = m.build_triangle_marker(f, header, vertices, tris, colors)
        t2 = time.perf_counter()
        serialize_message(mesh)
        serialize_message(marker)
        t3 = time.perf_counter()
        timings["mesh"].append(t1 - t0)
        timings["marker"].append(t2 - t1)
        timings["mesh_plus_marker"].append(t2 - t0)
        timings["serialize_both"].append(t3 - t2)
    best = {k: min(v) for k, v in timings.items()}
    return {"faces": len(tris), "vertices": len(vertices), "repeat": repeat, "best_s": best,
            "types": "rclpy (sensor/shape/visualization_msgs classes, element checks included)",
            "goal_s": MESSAGES_GOAL_S, "pass": best["mesh_plus_marker"] <= MESSAGES_GOAL_S}  # fmt: skip


def soak(args, scene, out: Path, result) -> dict:
    from one2345_ros.ros.client import CameraFrame, NodeSession

    params = node_parameters(Config(), object_path(args.object), out / "soak", gravity=False)
    params["hull.resolution"] = args.resolution
    factory = None
    if args.soak_pipeline == "replay":

        def factory(cfg):
            return Replay(cfg, result)

    frame = CameraFrame(scene.image, scene.mask, scene.depth, scene.K, scene.c2w, CAMERA_FRAME, WORLD_FRAME)
    rss, seconds = [], []
    with NodeSession(params, pipeline_factory=factory) as session:
        session.start()
        session.publish_camera(frame)
        assert session.wait_for_inputs(30.0), "the node received no input set"
        for k in range(args.soak):
            answer = session.call("soak")
            assert answer.response.success, answer.response.message
            shutil.rmtree(Path(answer.response.object.mesh_uri.removeprefix("file://")).parent, ignore_errors=True)
            seconds.append(answer.seconds)
            del answer
            gc.collect()
            rss.append(rss_mb())
            if (k + 1) % 10 == 0 or k == 0:
                print(f"soak request {k + 1:3d}/{args.soak}: RSS {rss[-1]:8.1f} MB", flush=True)
    if not seconds:
        return None
    x = np.arange(len(rss))[SOAK_WARMUP:]
    slope = float(np.polyfit(x, np.asarray(rss)[SOAK_WARMUP:], 1)[0]) if len(x) >= 2 else float("nan")
    return {"requests": args.soak, "pipeline": args.soak_pipeline, "faces": len(result.mesh.faces), "rss_mb": rss,
            "seconds": seconds, "slope_mb_per_request": slope, "warmup_requests": SOAK_WARMUP,
            "goal_mb_per_request": SOAK_GOAL_MB, "pass": slope < SOAK_GOAL_MB}  # fmt: skip


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--object", default="mallet")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", type=int, default=3, help="timed library calls and node requests (each)")
    parser.add_argument("--resolution", type=int, default=128, help="hull grid resolution")
    parser.add_argument("--faces", type=int, default=50000, help="faces of the message-building mesh")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--soak", type=int, default=100, help="requests of the node soak (0: none)")
    parser.add_argument("--soak-pipeline", choices=("replay", "real"), default="replay")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "ros_node.json"))
    args = parser.parse_args(argv)
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    scene = demo_scene(args.object, args.seed)
    work = Path(tempfile.mkdtemp(prefix="one2345-ros-node-bench-"))
    try:
        messages = message_building(args.faces, args.repeat)
        lat, lib = latency(args, scene, work)
        soaked = soak(args, scene, work, lib.last) if args.soak > 0 else None
    finally:
        shutil.rmtree(work, ignore_errors=True)

    med = lat["median_s"]
    print(f"\n{args.object}, hull {args.resolution}^3, {lat['faces']} faces; medians of {args.runs}; "
          f"{os.cpu_count()} CPUs visible (shared machine: figures include contention)")  # fmt: skip
    print(f"{'what':52s} {'seconds':>9s}")
    print(f"{'library: Pipeline.reconstruct':52s} {med['library_reconstruct_only']:9.3f}")
    print(f"{'library: prepare + reconstruct + write_result':52s} {med['library']:9.3f}")
    print(f"{'node: reconstruct_object over DDS (latest set, TF)':52s} {med['node']:9.3f}")
    print(f"{'node overhead (goal <= 10 %)':52s} {100 * lat['node_overhead']:8.1f}% "
          f"{'PASS' if lat['pass'] else 'MISS'}")  # fmt: skip
    b = messages["best_s"]
    print(f"{'rclpy Mesh, ' + str(messages['faces']) + ' faces':52s} {b['mesh']:9.3f}")
    print(f"{'rclpy Marker TRIANGLE_LIST + colours':52s} {b['marker']:9.3f}")
    verdict = "PASS" if messages["pass"] else "MISS"
    print(f"{'Mesh + Marker (goal <= 0.5 s)':52s} {b['mesh_plus_marker']:9.3f} {verdict}")
    print(f"{'serialize Mesh + Marker (rclpy)':52s} {b['serialize_both']:9.3f}")
    if soaked:
        if soaked["pipeline"] == "replay":  # the node's own cost: a request whose pipeline takes no time
            node_only = statistics.median(soaked["seconds"][SOAK_WARMUP:] or soaked["seconds"])
            lat["node_only_s"] = node_only
            lat["node_only_fraction_of_library"] = node_only / med["library"]
            print(f"{'node-only request (replayed result; incl. write_result)':52s} {node_only:9.3f} "
                  f"= {100 * node_only / med['library']:.1f}% of the library call")  # fmt: skip
        rss = soaked["rss_mb"]
        print(f"{'soak: ' + str(soaked['requests']) + ' requests (' + soaked['pipeline'] + '), RSS first/last MB':52s} "
              f"{rss[0]:.1f} / {rss[-1]:.1f}")  # fmt: skip
        print(f"{'soak slope MB per request (goal < 0.2)':52s} {soaked['slope_mb_per_request']:9.4f} "
              f"{'PASS' if soaked['pass'] else 'MISS'}")  # fmt: skip
    report = {"latency": lat, "messages": messages, "soak": soaked, "object": args.object,
              "resolution": args.resolution,
              "command": "python benchmarks/ros_node.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "cpus": os.cpu_count(), "python": platform.python_version(), "machine": platform.machine()}  # fmt: skip
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
