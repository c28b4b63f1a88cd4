"""The one input policy (inputs/prepare.py): masks, depth, calibration, sanity warnings, and the
same ReconstructionInputs whether the request came as files (CLI), messages (node) or a bag."""

import argparse
import json

import cv2
import numpy as np
import pytest
from ros_helpers import TYPESTORE, camera_info_msg, image_msg

from one2345_ros import config as C
from one2345_ros.inputs.calibration import make_calibration
from one2345_ros.inputs.prepare import binarize_mask, depth_to_metres, prepare_inputs
from one2345_ros.types import InputError

K = [[500.0, 0.0, 319.5], [0.0, 500.0, 239.5], [0.0, 0.0, 1.0]]


def scene(h=480, w=640, box=(200, 150, 330, 230)):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    mask = np.zeros((h, w), np.uint8)
    x0, y0, x1, y1 = box
    mask[y0 : y1 + 1, x0 : x1 + 1] = 255
    return image, mask


# ----------------------------------------------------------------------- masks


def test_mask_forms_give_the_same_object():
    _, mask = scene()
    ref = mask > 0
    for form in (ref, mask, (mask > 0).astype(np.uint8), (mask / 255.0).astype(np.float32), mask[..., None],
                 (mask > 0).astype(np.uint16) * 7):  # fmt: skip
        obj, warnings = binarize_mask(form)
        np.testing.assert_array_equal(obj, ref)
        assert warnings == []


def test_soft_mask_is_thresholded_with_a_warning():
    _, mask = scene()
    soft = cv2.GaussianBlur(mask, (0, 0), 6)
    obj, warnings = binarize_mask(soft, threshold=127)
    np.testing.assert_array_equal(obj, soft > 127)
    assert len(warnings) == 1 and "soft mask" in warnings[0] and "> 127" in warnings[0]


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda im, m: (im, np.zeros_like(m)), "mask is empty"),
        (lambda im, m: (im, m[:-1]), "mask is 640x479 but the image is 640x480"),
        (lambda im, m: (im.astype(np.float32), m), "uint8"),
        (lambda im, m: (im[..., :2].copy(), m), r"\[H, W, 3\]"),
        (lambda im, m: (im, np.dstack([m, m])), "single-channel"),
        (lambda im, m: (im, np.where(m > 0, 2.0, 0.0)), r"\[0, 1\]"),
        (lambda im, m: (im, (m > 0).astype(np.int32) * np.arange(m.shape[1])[None] % 3), "label image"),
        (lambda im, m: (im, m.astype(np.complex64)), "dtype complex64"),
    ],
)
def test_bad_image_and_mask_are_named(make, match):
    image, mask = make(*scene())
    with pytest.raises(InputError, match=match):
        prepare_inputs(image, mask)


def test_tiny_mask_names_the_setting():
    image, mask = scene(box=(10, 10, 12, 12))
    with pytest.raises(InputError, match="only 9 object pixels, fewer than inputs.min_mask_pixels = 64"):
        prepare_inputs(image, mask)
    assert prepare_inputs(image, mask, C.InputConfig(min_mask_pixels=9)).mask.sum() == 9


# ----------------------------------------------------------------------- depth


def test_depth_encodings_and_invalid_readings():
    mm = np.array([[0, 800, 65535]], np.uint16)
    np.testing.assert_allclose(depth_to_metres(mm, "16UC1"), [[np.nan, 0.8, 65.535]])
    np.testing.assert_allclose(depth_to_metres(mm, "16UC1", depth_scale=10000.0), [[np.nan, 0.08, 6.5535]], rtol=1e-6)
    m = np.array([[np.nan, 1.5, -1.0, np.inf, 0.0]], np.float32)
    np.testing.assert_allclose(depth_to_metres(m, "32FC1"), [[np.nan, 1.5, np.nan, np.nan, np.nan]])
    assert depth_to_metres(m).dtype == np.float32  # float32 without an encoding is metres
    with pytest.raises(InputError, match="needs uint16"):
        depth_to_metres(m, "16UC1")
    with pytest.raises(InputError, match="not supported"):
        depth_to_metres(mm, "8UC1")


def test_depth_without_readings_on_the_object_is_refused_up_front():
    image, mask = scene()
    depth = np.zeros(mask.shape, np.uint16)
    depth[:10] = 900  # readings only off the object
    with pytest.raises(InputError, match="only 0 object pixels have a valid reading"):
        prepare_inputs(image, mask, depth=depth, depth_encoding="16UC1")


# ----------------------------------------------------------------------- calibration


def test_calibration_size_and_K_are_checked():
    image, mask = scene()
    with pytest.raises(InputError, match="camera info is for 320x240 but the image is 640x480"):
        prepare_inputs(image, mask, calibration=make_calibration(K, [], "plumb_bob", 320, 240, "ci"))
    with pytest.raises(InputError, match="not a pinhole matrix"):
        make_calibration([[0, 0, 1], [0, 1, 1], [0, 0, 1]], [], "plumb_bob", 640, 480, "ci")
    with pytest.raises(InputError, match="distortion model 'fisheye' not supported"):
        make_calibration(K, [0.1, 0, 0, 0], "fisheye", 640, 480, "ci")


def test_distortion_is_undone_for_image_mask_and_depth():
    image, mask = scene()
    depth = np.full(mask.shape, 750, np.uint16)
    calib = make_calibration(K, [0.25, 0.05, 0.0, 0.0, 0.0], "plumb_bob", 640, 480, "ci")
    inputs = prepare_inputs(image, mask, calibration=calib, depth=depth, depth_encoding="16UC1")
    map_x, map_y = cv2.initUndistortRectifyMap(calib.K, calib.D, None, calib.K, (640, 480), cv2.CV_32FC1)
    expected_mask = cv2.remap(mask, map_x, map_y, cv2.INTER_NEAREST) > 127
    np.testing.assert_array_equal(inputs.mask, expected_mask)
    assert not np.array_equal(inputs.mask, mask > 0)  # the distortion moved the box's edges
    assert np.nanmax(np.abs(inputs.depth - 0.75)) < 1e-6 and np.isnan(inputs.depth).any()  # uncovered corners


# ----------------------------------------------------------------------- sanity warnings


def test_several_parts_warn_or_keep_the_largest():
    image, mask = scene()
    mask[400:440, 500:560] = 255  # a second object
    mask[5, 5] = 255  # a speck: not worth a warning
    inputs = prepare_inputs(image, mask)
    assert any("2 separate parts" in w for w in inputs.warnings)
    kept = prepare_inputs(image, mask, C.InputConfig(keep_largest_component=True))
    assert kept.mask.sum() == 131 * 81 and any("kept the largest" in w for w in kept.warnings)


def test_border_and_whole_image_masks_warn():
    image, mask = scene(box=(0, 100, 60, 400))
    assert any("touches the image border" in w for w in prepare_inputs(image, mask).warnings)
    full = np.full_like(mask, 255)
    warnings = prepare_inputs(image, full).warnings
    assert any("covers 100 %" in w for w in warnings) and any("border" in w for w in warnings)
    assert prepare_inputs(*scene()).warnings == []


# ----------------------------------------------------------------------- one policy, three paths


def _same(a, b):
    for field in ("image", "mask", "depth", "K", "gravity_c2w"):
        x, y = getattr(a, field), getattr(b, field)
        assert (x is None) == (y is None), field
        if x is not None:
            np.testing.assert_array_equal(x, y, err_msg=field)
    assert (a.frame_id, a.object_id, a.warnings) == (b.frame_id, b.object_id, b.warnings)


def test_cli_node_and_bag_prepare_identical_inputs(tmp_path):
    """The same image, soft mask, depth and distorted camera info as files (the CLI), as messages (the
    node) and recorded in a bag (``bag``) give identical ReconstructionInputs."""
    from PIL import Image
    from rosbags.highlevel import AnyReader
    from rosbags.rosbag2 import StoragePlugin, Writer

    from one2345_ros.cli.reconstruct import prepare_from_files
    from one2345_ros.ros.bag import _fetch, _header_stamps, _select
    from one2345_ros.ros.inputs import InputMessages, inputs_from_messages

    image, mask = scene()
    mask = cv2.GaussianBlur(mask, (0, 0), 3)  # soft edges: thresholded the same way everywhere
    depth = np.full(mask.shape, 820, np.uint16)
    depth[::7, ::5] = 0
    D = [-0.1, 0.02, 0.001, -0.002, 0.0]
    cfg = C.Config()

    # CLI: files
    Image.fromarray(image).save(tmp_path / "rgb.png")
    Image.fromarray(mask).save(tmp_path / "mask.png")
    Image.fromarray(depth).save(tmp_path / "depth.png")
    (tmp_path / "ci.json").write_text(json.dumps({"width": 640, "height": 480, "K": K, "D": D}))
    args = argparse.Namespace(image=str(tmp_path / "rgb.png"), mask=str(tmp_path / "mask.png"),
                              depth=str(tmp_path / "depth.png"), camera_info=str(tmp_path / "ci.json"),
                              gravity_c2w=None, frame_id="cam_optical")  # fmt: skip
    from_files = prepare_from_files(args, cfg)

    # Node: messages
    msgs = InputMessages(image_msg(image, "rgb8"), image_msg(mask, "mono8"), image_msg(depth, "16UC1"),
                         camera_info_msg(K, 640, 480, D))  # fmt: skip
    from_node = inputs_from_messages(msgs, cfg.inputs, "object")

    # bag: the same messages recorded, read back by the bag command's reader
    bag = tmp_path / "in"
    topics = {"image": "/rgb", "mask": "/mask", "depth": "/depth", "camera_info": "/info"}
    types = {"image": "sensor_msgs/msg/Image", "mask": "sensor_msgs/msg/Image", "depth": "sensor_msgs/msg/Image",
             "camera_info": "sensor_msgs/msg/CameraInfo"}  # fmt: skip
    with Writer(bag, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        for role, msg in zip(topics, (msgs.image, msgs.mask, msgs.depth, msgs.camera_info)):
            conn = writer.add_connection(topics[role], types[role], typestore=TYPESTORE)
            writer.write(conn, 1_000_000_000, TYPESTORE.serialize_cdr(msg, types[role]))
    with AnyReader([bag], default_typestore=TYPESTORE) as reader:
        stamps = _header_stamps(reader, topics)
        (recorded,) = _fetch(reader, topics, stamps, _select(stamps, 0.05, None))
    from_bag = inputs_from_messages(recorded, cfg.inputs, "object")

    assert any("soft mask" in w for w in from_files.warnings)
    assert np.isnan(from_files.depth).any() and from_files.K is not None
    _same(from_files, from_node)
    _same(from_files, from_bag)
    assert from_node.stamp_ns == from_bag.stamp_ns == 1_000_000_000
