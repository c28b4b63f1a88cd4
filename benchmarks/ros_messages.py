"""Time the ROS message builders for a 50k-face coloured mesh (acceptance: Marker + Mesh <= 0.5 s).

Built on rosbags message classes, the types the `bag` command and the tests use. rclpy's
generated classes validate every element in their setters (type and range checks), so the
same builders on rclpy are slower than these figures: treat them as a lower bound.

    python benchmarks/ros_messages.py [--faces 50000] [--repeat 5]

Prints a table and writes benchmarks/results/ros_messages.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import trimesh

from one2345_ros.mesh.clean import decimate
from one2345_ros.ros import messages as m
from one2345_ros.ros.factory import RosbagsFactory
from one2345_ros.ros.interfaces import make_typestore


def torus(faces: int):
    """A coloured torus with about ``faces`` triangles: (V,3) float64, (F,3) int64, (V,4) uint8."""
    rows = int(np.sqrt(faces / 2 / 1.6))
    cols = int(round(faces / 2 / rows))
    u, v = np.meshgrid(np.linspace(0, 2 * np.pi, rows, endpoint=False), np.linspace(0, 2 * np.pi, cols, endpoint=False),
                       indexing="ij")  # fmt: skip
    x = (0.1 + 0.03 * np.cos(v)) * np.cos(u)
    y = (0.1 + 0.03 * np.cos(v)) * np.sin(u)
    z = 0.03 * np.sin(v)
    vertices = np.column_stack([x.ravel(), y.ravel(), z.ravel()])
    i, j = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    a = (i * cols + j).ravel()
    b = (((i + 1) % rows) * cols + j).ravel()
    c = (((i + 1) % rows) * cols + (j + 1) % cols).ravel()
    d = (i * cols + (j + 1) % cols).ravel()
    faces_arr = np.concatenate([np.column_stack([a, b, c]), np.column_stack([a, c, d])])
    colors = np.column_stack([(vertices - vertices.min(0)) / np.ptp(vertices, axis=0) * 255,
                              np.full(len(vertices), 255)]).astype(np.uint8)  # fmt: skip
    return vertices, faces_arr, colors


def best_of(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces", type=int, default=50000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "ros_messages.json"))
    args = parser.parse_args(argv)
    ts = make_typestore("humble")
    f = RosbagsFactory(ts)
    vertices, faces, colors = torus(args.faces)
    header = m.make_header(f, 0, "camera_optical")
    rows = []

    def record(name, fn, msgtype=None):
        seconds, msg = best_of(fn, args.repeat)
        size = len(ts.serialize_cdr(msg, msgtype)) if msgtype else None
        ser = best_of(lambda: ts.serialize_cdr(msg, msgtype), args.repeat)[0] if msgtype else None
        rows.append({"step": name, "build_s": round(seconds, 4), "serialize_s": None if ser is None else round(ser, 4),
                     "bytes": size})  # fmt: skip
        return msg

    mesh_msg = record("shape_msgs/Mesh", lambda: m.build_mesh(f, vertices, faces), "shape_msgs/msg/Mesh")
    record("vertex colours (ColorRGBA[])", lambda: m.build_vertex_colors(f, colors))
    record("Marker TRIANGLE_LIST", lambda: m.build_triangle_marker(f, header, vertices, faces, colors),
           "visualization_msgs/msg/Marker")  # fmt: skip
    record("PointCloud2", lambda: m.build_point_cloud(f, header, vertices, colors), "sensor_msgs/msg/PointCloud2")
    combined, _ = best_of(lambda: (m.build_mesh(f, vertices, faces),
                                   m.build_triangle_marker(f, header, vertices, faces, colors)),
                          args.repeat)  # fmt: skip
    big_v, big_f, big_c = torus(4 * args.faces)
    big = trimesh.Trimesh(big_v, big_f, vertex_colors=big_c, process=False)
    decimate_s, decimated = best_of(lambda: decimate(big, args.faces), args.repeat)
    dec_f = decimated.faces
    del mesh_msg

    print(f"{len(faces)} faces, {len(vertices)} vertices; rosbags types; best of {args.repeat}; "
          f"{os.cpu_count()} CPUs visible (shared machine: figures include contention)")  # fmt: skip
    print(f"{'step':34s} {'build s':>9s} {'serialize s':>12s} {'bytes':>11s}")
    for r in rows:
        ser = "" if r["serialize_s"] is None else f"{r['serialize_s']:.4f}"
        size = "" if r["bytes"] is None else f"{r['bytes']:,}"
        print(f"{r['step']:34s} {r['build_s']:9.4f} {ser:>12s} {size:>11s}")
    print(f"{'Mesh + Marker (acceptance <= 0.5 s)':34s} {combined:9.4f}")
    print(f"{'decimate ' + str(len(big_f)) + ' -> ' + str(len(dec_f)) + ' faces':34s} {decimate_s:9.4f}")
    print("rclpy validates each element in its setters and is slower than these rosbags figures.")
    result = {"faces": int(len(faces)), "vertices": int(len(vertices)), "repeat": args.repeat, "rows": rows,
              "mesh_plus_marker_s": round(combined, 4), "acceptance_s": 0.5, "pass": combined <= 0.5,
              "decimate": {"faces_in": int(len(big_f)), "faces_out": int(len(dec_f)), "seconds": round(decimate_s, 4)},
              "types": "rosbags (rclpy validates each element and is slower)", "cpus": os.cpu_count(),
              "python": platform.python_version()}  # fmt: skip
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
