"""`one2345 bag`: reads a rosbag2 the test writes (mcap and sqlite3), writes the node's messages back."""

import json
from pathlib import Path

import numpy as np
import pytest
from ros_helpers import TYPESTORE, camera_info_msg, image_msg, known_result
from rosbags.highlevel import AnyReader
from rosbags.rosbag2 import StoragePlugin, Writer

from one2345_ros.cli.main import main as cli_main
from one2345_ros.ros.interfaces import make_typestore

SEC = 1_000_000_000
K = [[50.0, 0, 32], [0, 50.0, 24], [0, 0, 1]]


def _rgb(stamp_ns):
    return np.full((48, 64, 3), stamp_ns // SEC * 40, np.uint8)


def _mask(empty=False):
    mask = np.zeros((48, 64), np.uint8)
    if not empty:
        mask[10:30, 20:44] = 255
    return mask


def write_input_bag(path: Path, storage: str):
    """Images at 0.5, 1, 2, 3 s; masks (10 ms later) at 1, 2, 3 s, the one at 3 s empty; depth and camera_info."""
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    with Writer(path, version=9, storage_plugin=plugin) as w:
        conns = {t: w.add_connection(t, mt, typestore=TYPESTORE) for t, mt in (
            ("/cam/image", "sensor_msgs/msg/Image"), ("/seg/mask", "sensor_msgs/msg/Image"),
            ("/cam/depth", "sensor_msgs/msg/Image"), ("/cam/info", "sensor_msgs/msg/CameraInfo"))}  # fmt: skip
        for stamp in (SEC // 2, SEC, 2 * SEC, 3 * SEC):
            msgs = [("/cam/image", image_msg(_rgb(stamp), "rgb8", stamp)),
                    ("/cam/depth", image_msg(np.full((48, 64), 700, np.uint16), "16UC1", stamp)),
                    ("/cam/info", camera_info_msg(K, 64, 48, stamp_ns=stamp))]  # fmt: skip
            if stamp >= SEC:
                msgs.append(("/seg/mask", image_msg(_mask(stamp == 3 * SEC), "mono8", stamp + 10_000_000)))
            for topic, msg in msgs:
                w.write(conns[topic], stamp, TYPESTORE.serialize_cdr(msg, msg.__msgtype__))


def _args(*argv):
    return list(argv)


class Recorder:
    def __init__(self):
        self.frames = []

    def __call__(self, inputs):
        self.frames.append(inputs)
        return known_result(inputs.frame_id, inputs.object_id, inputs.stamp_ns)


def bag_main(args, reconstruct_fn):
    """The command as the CLI runs it (its error handling included), with an injected reconstruction."""
    import one2345_ros.cli.bag as command

    original = command.run
    command.run = lambda a, fn=None: original(a, reconstruct_fn)
    try:
        return cli_main(["bag", *args])
    finally:
        command.run = original


def _read(path):
    with AnyReader([path], default_typestore=make_typestore("humble")) as reader:
        return [(c.topic, c.msgtype, t, reader.deserialize(raw, c.msgtype)) for c, t, raw in reader.messages()]


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_first_synchronised_pair_round_trip(tmp_path, storage, capsys):
    write_input_bag(tmp_path / "in", storage)
    out = tmp_path / "out"
    fake = Recorder()
    code = bag_main(_args(str(tmp_path / "in"), "--image-topic", "/cam/image", "--mask-topic", "/seg/mask",
                          "--depth-topic", "/cam/depth", "--camera-info-topic", "/cam/info", "--out", str(out),
                          "--object-id", "mug", "--storage", storage), reconstruct_fn=fake)  # fmt: skip
    assert code == 0
    (frames,) = fake.frames  # 0.5 s has no mask: the first pair is at 1 s
    assert frames.stamp_ns == SEC and frames.object_id == "mug"
    np.testing.assert_array_equal(frames.image, _rgb(SEC))
    np.testing.assert_allclose(frames.depth, 0.7)
    np.testing.assert_array_equal(frames.K, K)
    records = _read(out)
    topics = {topic: (msgtype, t, msg) for topic, msgtype, t, msg in records}
    assert {t: v[0] for t, v in topics.items()} == {
        "/one2345_reconstructor/object": "one2345_ros/msg/ReconstructedObject",
        "/one2345_reconstructor/marker": "visualization_msgs/msg/Marker",
        "/one2345_reconstructor/elevation": "std_msgs/msg/Float32",
        "/one2345_reconstructor/points": "sensor_msgs/msg/PointCloud2",
        "/one2345_reconstructor/views": "sensor_msgs/msg/Image",
        "/one2345_reconstructor/surface_points": "sensor_msgs/msg/PointCloud2",
        "/one2345_reconstructor/object_markers": "visualization_msgs/msg/MarkerArray",
        "/one2345_reconstructor/object_boxes": "visualization_msgs/msg/MarkerArray"}  # fmt: skip
    _, t, obj = topics["/one2345_reconstructor/object"]
    expected = known_result()
    assert t == SEC and obj.header.stamp.sec == 1 and obj.header.frame_id == "cam_optical"
    np.testing.assert_allclose([(p.x, p.y, p.z) for p in obj.mesh.vertices], expected.mesh.vertices)
    np.testing.assert_array_equal([tr.vertex_indices for tr in obj.mesh.triangles], expected.mesh.faces)
    assert topics["/one2345_reconstructor/elevation"][2].data == pytest.approx(23.5)
    assert len(topics["/one2345_reconstructor/marker"][2].points) == 3 * len(expected.mesh.faces)
    mesh_file = Path(obj.mesh_uri[len("file://") :])
    assert mesh_file.is_file() and mesh_file.parent.parent == out.resolve() / "meshes"
    assert (mesh_file.parent / "result.json").is_file() and mesh_file.name == "mesh.ply"
    report = json.loads(capsys.readouterr().out.strip())
    assert report["ok"] and report["faces"] == 320 and report["mesh_uri"] == obj.mesh_uri


def test_mcap_output_decodes_with_the_independent_mcap_reader(tmp_path):
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    write_input_bag(tmp_path / "in", "mcap")
    out = tmp_path / "out"
    assert bag_main(_args(str(tmp_path / "in"), "--image-topic", "/cam/image", "--mask-topic", "/seg/mask",
                          "--out", str(out)), reconstruct_fn=Recorder()) == 0  # fmt: skip
    (mcap_file,) = out.glob("*.mcap")
    with open(mcap_file, "rb") as fh:
        mcap_reader = make_reader(fh, decoder_factories=[DecoderFactory()])
        decoded = {ch.topic: msg for _, ch, _, msg in mcap_reader.iter_decoded_messages()}
    obj = decoded["/one2345_reconstructor/object"]
    assert obj.object_id == "object" and len(obj.mesh.triangles) == 320 and obj.units == "m"
    assert list(obj.stage_names) == ["preprocess", "views_stage1", "elevation", "reconstruct"]


def test_pairs_at_given_stamps_and_bad_pairs_reported(tmp_path, capsys):
    write_input_bag(tmp_path / "in", "mcap")
    fake = Recorder()
    code = bag_main(_args(str(tmp_path / "in"), "--image-topic", "/cam/image", "--mask-topic", "/seg/mask",
                          "--out", str(tmp_path / "out"), "--stamps", "2.0", "3.0", "1.004"),
                    reconstruct_fn=fake)  # fmt: skip
    assert code == 0
    assert [f.stamp_ns for f in fake.frames] == [2 * SEC, SEC]  # 3 s has an empty mask
    np.testing.assert_array_equal(fake.frames[0].image, _rgb(2 * SEC))
    reports = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["ok"] for r in reports] == [True, False, True]
    assert "mask is empty" in reports[1]["message"]
    stamps = sorted(t for topic, _, t, _ in _read(tmp_path / "out") if topic.endswith("/object"))
    assert stamps == [SEC, 2 * SEC]


def test_errors_are_one_line_with_exit_code(tmp_path, capsys):
    write_input_bag(tmp_path / "in", "sqlite3")
    code = bag_main(_args(str(tmp_path / "in"), "--image-topic", "/nope", "--mask-topic", "/seg/mask",
                          "--out", str(tmp_path / "out")), reconstruct_fn=Recorder())  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "topic(s) /nope not in" in err and "/cam/image" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "exists").mkdir()
    assert bag_main(_args(str(tmp_path / "in"), "--image-topic", "/cam/image", "--mask-topic", "/seg/mask",
                          "--out", str(tmp_path / "exists")), reconstruct_fn=Recorder()) == 2  # fmt: skip
    assert "already exists" in capsys.readouterr().err
    code = bag_main(_args(str(tmp_path / "in"), "--image-topic", "/cam/image", "--mask-topic", "/seg/mask",
                          "--out", str(tmp_path / "o2"), "--stamps", "7.5"), reconstruct_fn=Recorder())  # fmt: skip
    assert code == 2 and "within 0.05 s of stamp 7.5" in capsys.readouterr().err


def test_no_output_bag_when_every_set_fails(tmp_path, capsys):
    write_input_bag(tmp_path / "in", "mcap")
    code = bag_main(_args(str(tmp_path / "in"), "--image-topic", "/cam/image", "--mask-topic", "/seg/mask",
                          "--out", str(tmp_path / "out"), "--stamps", "3.0"), reconstruct_fn=Recorder())  # fmt: skip
    captured = capsys.readouterr()
    assert code == 1 and not (tmp_path / "out").exists()
    assert "mask is empty" in captured.out and "no image set could be reconstructed" in captured.err


def test_header_stamp_read_from_cdr_bytes_matches_deserialization():
    from one2345_ros.ros.bag import cdr_header_stamp_ns
    from one2345_ros.ros.inputs import header_stamp_ns

    for msg in (image_msg(_rgb(SEC), "rgb8", 1_234_567_891_011), camera_info_msg(K, 64, 48, stamp_ns=-5 * SEC + 7)):
        for little in (True, False):
            raw = TYPESTORE.serialize_cdr(msg, msg.__msgtype__, little_endian=little)
            assert cdr_header_stamp_ns(raw) == header_stamp_ns(msg)


def write_labels_bag(path: Path):
    """Images at 1 and 2 s with 16UC1 label images (ids 3, 7, 12) 5 ms later."""
    from ros_helpers import labels_scene

    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as w:
        conns = {t: w.add_connection(t, "sensor_msgs/msg/Image", typestore=TYPESTORE)
                 for t in ("/cam/image", "/seg/labels")}  # fmt: skip
        for stamp in (SEC, 2 * SEC):
            _, _, image, _ = labels_scene(stamp_ns=stamp)
            _, _, _, labels = labels_scene(stamp_ns=stamp + 5_000_000)
            for topic, msg in (("/cam/image", image), ("/seg/labels", labels)):
                w.write(conns[topic], stamp, TYPESTORE.serialize_cdr(msg, msg.__msgtype__))


def test_label_topic_reconstructs_every_object(tmp_path, capsys):
    """--labels-topic: one object per instance id, named <object-id>_<id>; each object's messages, one
    labelled surface cloud and the boxes in the output bag; one result folder per object."""
    from ros_helpers import placed_result

    write_labels_bag(tmp_path / "in")
    out = tmp_path / "out"
    calls = []

    def one(inputs):  # never called: the objects go through .objects, together
        raise AssertionError("objects must be reconstructed together")

    def together(prepared):
        calls.append([i.object_id for i in prepared])
        return [placed_result(i, k) for k, i in enumerate(prepared)]

    one.objects = together
    code = bag_main(_args(str(tmp_path / "in"), "--image-topic", "/cam/image", "--labels-topic", "/seg/labels",
                          "--object-id", "part", "--out", str(out)), reconstruct_fn=one)  # fmt: skip
    assert code == 0 and calls == [["part_3", "part_7", "part_12"]]
    records = _read(out)
    objects = [msg for topic, _, _, msg in records if topic.endswith("/object")]
    assert [(o.object_id, o.label, o.success) for o in objects] == [("part_3", 3, True), ("part_7", 7, True),
                                                                    ("part_12", 12, True)]  # fmt: skip
    markers = [msg for topic, _, _, msg in records if topic.endswith("/marker")]
    assert [m.id for m in markers] == [3, 7, 12]
    (cloud,) = [msg for topic, _, _, msg in records if topic.endswith("/surface_points")]
    names = [fl.name for fl in cloud.fields]
    assert names == ["x", "y", "z", "normal_x", "normal_y", "normal_z", "rgb", "label"]
    rows = np.frombuffer(cloud.data.tobytes(), dtype=[(n, "<u4" if n == "label" else "<f4") for n in names])
    assert set(np.unique(rows["label"]).tolist()) == {3, 7, 12}
    (meshes,) = [msg for topic, _, _, msg in records if topic.endswith("/object_markers")]
    assert [mk.action for mk in meshes.markers] == [3, 0, 0, 0] and [mk.id for mk in meshes.markers[1:]] == [3, 7, 12]
    (boxes,) = [msg for topic, _, _, msg in records if topic.endswith("/object_boxes")]
    assert sorted(m.id for m in boxes.markers if m.ns == "one2345/boxes") == [3, 7, 12]
    for obj in objects:
        mesh_file = Path(obj.mesh_uri[len("file://") :])
        assert mesh_file.is_file() and mesh_file.parent.name == obj.object_id
        folder = mesh_file.parent.parent
        assert (folder / "objects.json").is_file() and (folder / "points.ply").is_file()
    reports = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["object_id"], r["label"], r["ok"]) for r in reports] == [("part_3", 3, True), ("part_7", 7, True),
                                                                        ("part_12", 12, True)]  # fmt: skip


def test_label_topic_with_label_ids_and_a_plain_function(tmp_path, capsys):
    """--label-ids picks objects; an absent id is refused by name; a function without .objects runs per object."""
    from ros_helpers import placed_result

    write_labels_bag(tmp_path / "in")
    seen = []

    def one(inputs):
        seen.append(inputs.object_id)
        return placed_result(inputs, len(seen))

    code = bag_main(_args(str(tmp_path / "in"), "--image-topic", "/cam/image", "--labels-topic", "/seg/labels",
                          "--label-ids", "7", "9", "--out", str(tmp_path / "out")), reconstruct_fn=one)  # fmt: skip
    assert code == 0 and seen == ["object_7"]
    reports = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["object_id"], r["ok"]) for r in reports] == [("object_7", True), ("object_9", False)]
    assert "mask is empty" in reports[1]["message"]
    failed = [msg for topic, _, _, msg in _read(tmp_path / "out") if topic.endswith("/object")]
    assert [o.object_id for o in failed] == ["object_7"]  # only reconstructed objects are published
