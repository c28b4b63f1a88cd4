"""rosbag2 in, result messages out (``one2345 bag``, cli/bag.py), without a ROS install.

rosbags reads and writes rosbag2 (sqlite3 and mcap). Inputs go through the node's own
conversion and the one input policy (inputs.py -> inputs/prepare.py), results through the
one writer (results/files.py), and the output bag holds the messages the node publishes
(publications.py) on the node's topic names. A label topic (instance ids, 0 = background)
instead of a mask topic reconstructs every object of each chosen set, as the node does.
"""

from __future__ import annotations

import bisect
import json
import struct
import sys
from collections.abc import Callable
from pathlib import Path

from ..config import Config, require_models
from ..results.files import unique_stem, write_objects, write_result
from ..types import InputError, ReconstructionInputs
from .factory import RosbagsFactory
from .inputs import InputMessages, inputs_from_messages, objects_from_messages
from .interfaces import make_typestore
from .publications import PER_REQUEST, ObjectOutcome, build_request_publications

# Output topic of each publication key (the node's ~/ topics, resolved for its default name).
TOPIC_TYPES = {
    "object": ("object", "one2345_ros/msg/ReconstructedObject"),
    "marker": ("marker", "visualization_msgs/msg/Marker"),
    "elevation": ("elevation", "std_msgs/msg/Float32"),
    "points": ("points", "sensor_msgs/msg/PointCloud2"),
    "views": ("views", "sensor_msgs/msg/Image"),
    "surface_points": ("surface_points", "sensor_msgs/msg/PointCloud2"),
    "object_markers": ("object_markers", "visualization_msgs/msg/MarkerArray"),
    "object_boxes": ("object_boxes", "visualization_msgs/msg/MarkerArray"),
}
ReconstructFn = Callable[[ReconstructionInputs], object]
"""One object's reconstruction. With a label topic, the function's ``objects`` attribute (when it
has one) reconstructs a set's objects together (Pipeline.reconstruct_objects); else one by one."""


class BagError(InputError):
    """The bag or the arguments cannot be used; the text says why."""


def run_bag(args, cfg: Config, reconstruct_fn: ReconstructFn | None = None) -> int:
    """Reconstruct the selected image sets of ``args.bag_in`` and write ``args.out`` (a new bag,
    plus one result folder per success under OUT/meshes). Returns the exit code: 0 when at least
    one set was reconstructed; 1 with no output bag when none was."""
    from rosbags.highlevel import AnyReader
    from rosbags.rosbag2 import StoragePlugin, Writer

    slop_s = cfg.ros.sync_slop_s if args.slop is None else args.slop
    out = Path(args.out)
    if not Path(args.bag_in).exists():
        raise BagError(f"input bag {args.bag_in} not found")
    if out.exists():
        raise BagError(f"output {out} already exists: choose a new path for --out")
    if reconstruct_fn is None:
        require_models(cfg)
    typestore = make_typestore(args.distro)
    factory = RosbagsFactory(typestore)
    labels_topic = getattr(args, "labels_topic", None) or ""
    roles = {"image": args.image_topic, "mask": "" if labels_topic else args.mask_topic, "labels": labels_topic,
             "depth": args.depth_topic, "camera_info": args.camera_info_topic}  # fmt: skip
    roles = {role: topic for role, topic in roles.items() if topic}
    with AnyReader([Path(args.bag_in)], default_typestore=typestore) as reader:
        available = {c.topic for c in reader.connections}
        missing = [t for t in roles.values() if t not in available]
        if missing:
            raise BagError(f"topic(s) {', '.join(missing)} not in {args.bag_in}; "
                           f"it has: {', '.join(sorted(available))}")  # fmt: skip
        stamps = _header_stamps(reader, roles)
        sets = _select(stamps, slop_s, args.stamps)
        chosen = _fetch(reader, roles, stamps, sets)
    if reconstruct_fn is None:
        reconstruct_fn = _pipeline_reconstructor(cfg)

    out_topics = {key: (f"{args.namespace.rstrip('/')}/{name}", msgtype)
                  for key, (name, msgtype) in TOPIC_TYPES.items()}  # fmt: skip
    mesh_dir = out.resolve() / "meshes"
    written, reports = [], []
    for msgs in chosen:
        report = {"stamp": msgs.stamp_ns * 1e-9, "object_id": args.object_id}
        try:
            if msgs.labels is not None:
                items, results, refused = _reconstruct_labels(msgs, cfg, args, reconstruct_fn)
            else:
                inputs = inputs_from_messages(msgs, cfg.inputs, args.object_id)
                result = reconstruct_fn(inputs)
                items, results, refused = [ObjectOutcome(inputs.object_id, 0, result)], [result], {}
        except InputError as exc:
            reports.append({**report, "ok": False, "message": f"bad input: {exc}"})
            continue
        folder = mesh_dir / unique_stem(args.object_id, msgs.stamp_ns)
        for item in items:
            if item.ok:
                sub = folder / item.object_id if msgs.labels is not None else folder
                item.mesh_uri = (sub / f"mesh.{cfg.mesh.format}").as_uri()
            reports.append({**report, "object_id": item.object_id, **({"label": item.label} if item.label else {}),
                            **_report(item)})  # fmt: skip
        if not any(item.ok for item in items):
            continue
        pubs = build_request_publications(factory, items, cfg.ros, msgs.stamp_ns, msgs.image.header.frame_id)
        written.append((msgs.stamp_ns, pubs, folder, results, refused, msgs.labels is not None))
    for report in reports:
        print(json.dumps(report))
    if not written:
        print(f"one2345 bag: no image set could be reconstructed; {out} not written", file=sys.stderr)
        return 1
    plugin = StoragePlugin.MCAP if args.storage == "mcap" else StoragePlugin.SQLITE3
    with Writer(out, version=9, storage_plugin=plugin) as writer:
        connections = {}
        for stamp_ns, pubs, *_ in written:
            recorded = [item for per_object in pubs["per_object"] for item in per_object.items()]
            recorded += [(key, pubs[key]) for key in PER_REQUEST if key in pubs]
            for key, msg in recorded:
                if key not in out_topics:
                    continue  # transforms and collision objects are not recorded
                topic, msgtype = out_topics[key]
                if key not in connections:
                    connections[key] = writer.add_connection(topic, msgtype, typestore=typestore)
                writer.write(connections[key], stamp_ns, typestore.serialize_cdr(msg, msgtype))
    for _, _, folder, results, refused, several in written:
        if several:
            write_objects(folder, results, refused, cfg.mesh)
        else:
            write_result(folder, results[0], cfg.mesh)
    return 0


def _reconstruct_labels(msgs: InputMessages, cfg: Config, args, reconstruct_fn: ReconstructFn):
    """Every object of a label image: (ObjectOutcomes in label order, results, {id: why refused})."""
    objects = objects_from_messages(msgs, cfg.inputs, args.object_id, None, getattr(args, "label_ids", None))
    if not objects.prepared:
        raise InputError("no object of the label image can be used: " + "; ".join(
            f"{oid}: {reason}" for oid, reason in objects.refused.items()))  # fmt: skip
    together = getattr(reconstruct_fn, "objects", None)
    results = together(objects.prepared) if together else [reconstruct_fn(i) for i in objects.prepared]
    done = {r.object_id: r for r in results}
    items = [ObjectOutcome(oid, label, done.get(oid), error=objects.refused.get(oid, ""))
             for oid, label in objects.labels.items()]  # fmt: skip
    return items, results, objects.refused


def _report(item: ObjectOutcome) -> dict:
    """The JSON line's fields for one object."""
    if not item.ok:
        prefix = "" if item.result is not None else "bad input: "
        return {"ok": False, "message": prefix + item.reason}
    result = item.result
    return {"ok": True, "faces": int(len(result.mesh.faces)), "elevation_deg": result.elevation_deg,
            "frame_id": result.frame_id, "mesh_uri": item.mesh_uri, "warnings": result.warnings}  # fmt: skip


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
        if 0 <= j < len(keys) and abs(keys[j] - stamp) <= slop_ns and (
            best is None or abs(keys[j] - stamp) < abs(keys[best] - stamp)
        ):
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
    def pick(role: str, s: dict):
        return got[role][s[role]] if role in s else None

    roles = ("image", "mask", "depth", "camera_info", "labels")
    return [InputMessages(*(pick(role, s) for role in roles)) for s in sets]


def _pipeline_reconstructor(cfg: Config) -> ReconstructFn:
    """The real pipeline, loaded once (imports torch; only when no function is injected)."""
    from ..pipeline import Pipeline

    pipeline = Pipeline(cfg)
    pipeline.load()

    def progress(stage: str, fraction: float) -> None:
        print(f"  {stage}: {fraction:.0%}", file=sys.stderr)

    def reconstruct(inputs: ReconstructionInputs):
        return pipeline.reconstruct(inputs, progress=progress)

    reconstruct.objects = lambda prepared: pipeline.reconstruct_objects(prepared, progress=progress)
    return reconstruct
