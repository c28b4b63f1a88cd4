"""``one2345 bag IN --image-topic T --mask-topic M --out OUT``: rosbag2 in, result messages out.

No ROS install needed: rosbags reads and writes rosbag2 (sqlite3 and mcap). Inputs go
through the node's own conversion and checks (inputs.py) and the output bag holds the
messages the node publishes (publications.py) on the node's topic names.
"""

from __future__ import annotations

import argparse
import bisect
import json
import struct
import sys
from pathlib import Path
from typing import Callable

from ..config import ConfigError
from ..types import InputError
from .factory import RosbagsFactory
from .images import BadMessage
from .inputs import FrameSet, InputMessages, frames_from_messages
from .interfaces import make_typestore
from .node_config import NODE_NAME, Settings, load_params_file
from .outputs import unique_stem, write_result_files
from .publications import build_publications

# Output topic of each publication key (the node's ~/ topics, resolved for its default name).
TOPIC_TYPES = {
    "object": ("object", "one2345_ros/msg/ReconstructedObject"),
    "marker": ("marker", "visualization_msgs/msg/Marker"),
    "elevation": ("elevation", "std_msgs/msg/Float32"),
    "points": ("points", "sensor_msgs/msg/PointCloud2"),
    "views": ("views", "sensor_msgs/msg/Image"),
}
ReconstructFn = Callable[[FrameSet], object]


class BagError(RuntimeError):
    """The bag or the arguments cannot be used; the text says why."""


def add_bag_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``bag`` sub-command to an argparse sub-parser set (``one2345 bag ...``)."""
    p = subparsers.add_parser("bag", help="reconstruct from a rosbag2 (sqlite3/mcap) and write result messages",
                              description=__doc__.split("\n\n")[0])  # fmt: skip
    p.add_argument("bag_in", metavar="IN", help="input rosbag2 folder (or .mcap/.db3 file's folder)")
    p.add_argument("--image-topic", required=True)
    p.add_argument("--mask-topic", required=True)
    p.add_argument("--depth-topic", default="")
    p.add_argument("--camera-info-topic", default="")
    p.add_argument("--out", required=True, help="output rosbag2 folder (must not exist); meshes go to OUT/meshes")
    p.add_argument("--stamps", type=float, nargs="+", default=None, metavar="SEC",
                   help="reconstruct the images at these header stamps (seconds); default: the first pair")
    p.add_argument("--slop", type=float, default=None, help="largest stamp difference in a pair, seconds "
                   "(default: ros.sync_slop_s of --config, 0.05)")  # fmt: skip
    p.add_argument("--object-id", default="object")
    p.add_argument("--config", default=None, help="parameter YAML (the node's params.yaml or a pipeline config)")
    p.add_argument("--storage", choices=("sqlite3", "mcap"), default="mcap")
    p.add_argument("--distro", choices=("humble", "jazzy"), default="humble", help="message definitions to use")
    p.add_argument("--namespace", default=f"/{NODE_NAME}", help="prefix of the output topics")
    p.set_defaults(func=bag_main)
    return p


def bag_main(args: argparse.Namespace, reconstruct_fn: ReconstructFn | None = None) -> int:
    """Run the ``bag`` command. Returns the exit code; errors print one line to stderr."""
    try:
        return _run(args, reconstruct_fn)
    except (BagError, ConfigError, FileNotFoundError) as exc:
        print(f"one2345 bag: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # CLI contract: one line, no traceback (missing weights, unreadable bag...)
        print(f"one2345 bag: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


def _run(args, reconstruct_fn) -> int:
    from rosbags.highlevel import AnyReader
    from rosbags.rosbag2 import StoragePlugin, Writer

    settings = load_params_file(args.config) if args.config else Settings()
    slop_s = settings.node.sync_slop_s if args.slop is None else args.slop
    out = Path(args.out)
    if out.exists():
        raise BagError(f"output {out} already exists")
    typestore = make_typestore(args.distro)
    factory = RosbagsFactory(typestore)
    roles = {"image": args.image_topic, "mask": args.mask_topic, "depth": args.depth_topic,
             "camera_info": args.camera_info_topic}  # fmt: skip
    roles = {role: topic for role, topic in roles.items() if topic}
    with AnyReader([Path(args.bag_in)], default_typestore=typestore) as reader:
        available = {c.topic for c in reader.connections}
        missing = [t for t in roles.values() if t not in available]
        if missing:
            raise BagError(f"topic(s) {', '.join(missing)} not in {args.bag_in}; it has: {', '.join(sorted(available))}")
        stamps = _header_stamps(reader, roles)
        sets = _select(stamps, slop_s, args.stamps)
        chosen = _fetch(reader, roles, stamps, sets)
    if reconstruct_fn is None:
        reconstruct_fn = _pipeline_reconstructor(settings)

    out_topics = {key: (f"{args.namespace.rstrip('/')}/{name}", msgtype) for key, (name, msgtype) in TOPIC_TYPES.items()}
    mesh_dir = out.resolve() / "meshes"
    pending_files, written, reports = [], [], []
    for msgs in chosen:
        report = {"stamp": msgs.stamp_ns * 1e-9, "object_id": args.object_id}
        try:
            frames = frames_from_messages(msgs, args.object_id, depth_scale=settings.pipeline.metric.depth_scale,
                                          min_mask_pixels=settings.node.min_mask_pixels,
                                          mask_threshold=settings.pipeline.preprocess.mask_threshold)  # fmt: skip
            result = reconstruct_fn(frames)
        except (BadMessage, InputError) as exc:
            reports.append({**report, "ok": False, "message": f"bad input: {exc}"})
            continue
        if not result.ok:
            reports.append({**report, "ok": False, "message": f"reconstruction failed: {result.error}"})
            continue
        stem = unique_stem(frames.object_id, frames.stamp_ns)
        mesh_uri = (mesh_dir / f"{stem}.{settings.pipeline.mesh.format}").as_uri()
        pending_files.append((result, stem))
        written.append((frames.stamp_ns, build_publications(factory, frames, result, mesh_uri, settings.node)))
        reports.append({**report, "ok": True, "faces": int(len(result.mesh.faces)), "elevation_deg": result.elevation_deg,
                        "frame_id": result.frame_id, "mesh_uri": mesh_uri})  # fmt: skip

    plugin = StoragePlugin.MCAP if args.storage == "mcap" else StoragePlugin.SQLITE3
    with Writer(out, version=9, storage_plugin=plugin) as writer:
        connections = {}
        for stamp_ns, pubs in written:
            for key, msg in pubs.items():
                if key not in out_topics:
                    continue  # transforms and collision objects are not recorded
                topic, msgtype = out_topics[key]
                if key not in connections:
                    connections[key] = writer.add_connection(topic, msgtype, typestore=typestore)
                writer.write(connections[key], stamp_ns, typestore.serialize_cdr(msg, msgtype))
    for result, stem in pending_files:
        write_result_files(result, mesh_dir, stem, settings.pipeline.mesh.format)
    for report in reports:
        print(json.dumps(report))
    return 0 if written else 1


def cdr_header_stamp_ns(raw: bytes) -> int:
    """Stamp of a CDR message that starts with std_msgs/Header (Image, CameraInfo), read from
    its first 12 bytes instead of deserializing megabytes of pixels.

    Layout: 4-byte encapsulation header (byte 1: 0 big-, 1 little-endian), then
    builtin_interfaces/Time as int32 sec, uint32 nanosec.
    """
    if len(raw) < 12 or raw[1] not in (0, 1):
        raise ValueError("not a CDR message with a header")
    sec, nanosec = struct.unpack_from("<iI" if raw[1] == 1 else ">iI", raw, 4)
    return sec * 1_000_000_000 + nanosec


def _header_stamps(reader, roles: dict[str, str]) -> dict[str, list[int]]:
    """Header stamps (ns) of every message per role, in bag order."""
    stamps: dict[str, list[int]] = {}
    for role, topic in roles.items():
        conns = [c for c in reader.connections if c.topic == topic]
        stamps[role] = [cdr_header_stamp_ns(bytes(raw[:12])) for _, _, raw in reader.messages(conns)]
    return stamps


def _nearest(sorted_pairs: list[tuple[int, int]], stamp: int, slop_ns: int) -> int | None:
    """Index (into the bag order) of the message nearest ``stamp`` within ``slop_ns``, else None."""
    keys = [s for s, _ in sorted_pairs]
    i = bisect.bisect_left(keys, stamp)
    best = None
    for j in (i - 1, i):
        if 0 <= j < len(keys) and abs(keys[j] - stamp) <= slop_ns:
            if best is None or abs(keys[j] - stamp) < abs(keys[best] - stamp):
                best = j
    return None if best is None else sorted_pairs[best][1]


def _select(stamps: dict[str, list[int]], slop_s: float, wanted: list[float] | None) -> list[dict[str, int]]:
    """Synchronised sets {role: message index}: the first complete one, or one per wanted stamp."""
    slop_ns = int(round(slop_s * 1e9))
    by_role = {role: sorted((s, i) for i, s in enumerate(v)) for role, v in stamps.items()}

    def complete(image_stamp: int, image_index: int) -> dict[str, int] | None:
        found = {"image": image_index}
        for role in by_role:
            if role != "image":
                index = _nearest(by_role[role], image_stamp, slop_ns)
                if index is None:
                    return None
                found[role] = index
        return found

    if wanted is None:
        for stamp, index in by_role["image"]:
            found = complete(stamp, index)
            if found:
                return [found]
        raise BagError(f"no image with a mask (and depth/camera_info) within {slop_s} s of its stamp")
    sets = []
    for seconds in wanted:
        index = _nearest(by_role["image"], int(round(seconds * 1e9)), slop_ns)
        found = None if index is None else complete(stamps["image"][index], index)
        if found is None:
            raise BagError(f"no synchronised image/mask set within {slop_s} s of stamp {seconds} s")
        sets.append(found)
    return sets


def _fetch(reader, roles: dict[str, str], stamps, sets: list[dict[str, int]]) -> list[InputMessages]:
    """Deserialize only the chosen messages."""
    needed = {role: {s[role] for s in sets} for role in roles}
    got: dict[str, dict[int, object]] = {role: {} for role in roles}
    for role, topic in roles.items():
        conns = [c for c in reader.connections if c.topic == topic]
        for index, (conn, _, raw) in enumerate(reader.messages(conns)):
            if index in needed[role]:
                got[role][index] = reader.deserialize(raw, conn.msgtype)
    return [InputMessages(got["image"][s["image"]], got["mask"][s["mask"]],
                          got["depth"][s["depth"]] if "depth" in s else None,
                          got["camera_info"][s["camera_info"]] if "camera_info" in s else None) for s in sets]  # fmt: skip


def _pipeline_reconstructor(settings: Settings) -> ReconstructFn:
    """The real pipeline, loaded once (imports torch; only when no function is injected)."""
    from ..pipeline import Pipeline, ReconstructionInputs

    pipeline = Pipeline(settings.pipeline)
    pipeline.load()

    def reconstruct(frames: FrameSet):
        def progress(stage: str, fraction: float) -> None:
            print(f"  {stage}: {fraction:.0%}", file=sys.stderr)

        return pipeline.reconstruct(ReconstructionInputs(**frames.pipeline_kwargs()), progress=progress)

    return reconstruct


def main(argv=None) -> int:
    """``python -m one2345_ros.ros.bag bag IN ...`` (the same as ``one2345 bag IN ...``)."""
    parser = argparse.ArgumentParser(prog="one2345")
    add_bag_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
