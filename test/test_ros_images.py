"""Image/CameraInfo messages -> arrays for every supported encoding, against rosbags-image (cv_bridge semantics)."""

import cv2
import numpy as np
import pytest
from ros_helpers import camera_info_msg, image_msg
from rosbags.image import message_to_cvimage

from one2345_ros.inputs.calibration import undistort
from one2345_ros.ros import images
from one2345_ros.ros.images import BadMessage
from one2345_ros.types import InputError

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (5, 7, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    "encoding, pixels",
    [("rgb8", RGB), ("bgr8", RGB[..., ::-1]), ("rgba8", np.dstack([RGB, np.full((5, 7), 9, np.uint8)])),
     ("bgra8", np.dstack([RGB[..., ::-1], np.full((5, 7), 9, np.uint8)]))],
)  # fmt: skip
def test_colour_encodings_to_rgb(encoding, pixels):
    msg = image_msg(pixels, encoding)
    np.testing.assert_array_equal(images.to_rgb(msg), RGB)
    # Independent reference: rosbags-image mirrors cv_bridge's conversions.
    np.testing.assert_array_equal(images.to_rgb(msg), message_to_cvimage(msg, "rgb8"))


def test_mono8_to_rgb_and_mask():
    gray = RGB[..., 0]
    msg = image_msg(gray, "mono8")
    np.testing.assert_array_equal(images.to_rgb(msg), np.dstack([gray] * 3))
    np.testing.assert_array_equal(images.to_mask(msg), gray)


def test_depth_pixels_and_encoding_as_stored():
    """Messages give the raw pixels; metres are the input policy's (inputs.prepare.depth_to_metres)."""
    mm = np.array([[0, 1000, 1500], [65535, 250, 1]], np.uint16)
    raw, encoding = images.to_depth(image_msg(mm, "16UC1"))
    np.testing.assert_array_equal(raw, mm)
    assert encoding == "16UC1"
    m = np.array([[1.25, np.nan, -1.0], [np.inf, 0.5, 0.0]], np.float32)
    raw, encoding = images.to_depth(image_msg(m, "32FC1"))
    np.testing.assert_array_equal(raw, m)
    assert encoding == "32FC1"
    np.testing.assert_array_equal(images.image_array(image_msg(m, "32FC1")), message_to_cvimage(image_msg(m, "32FC1")))


def test_row_padding_and_big_endian():
    mm = np.array([[1, 2, 3], [4, 5, 6]], np.uint16)
    big = mm.astype(">u2")
    padded = np.zeros((2, 8), np.uint8)  # step 8 > 3 * 2 bytes
    padded[:, :6] = big.view(np.uint8).reshape(2, 6)
    msg = image_msg(mm, "16UC1")
    msg.is_bigendian, msg.step, msg.data = True, 8, padded.reshape(-1)
    np.testing.assert_array_equal(images.image_array(msg), mm)


@pytest.mark.parametrize(
    "mutate, reason",
    [(lambda m: setattr(m, "encoding", "yuv422"), "not supported"),
     (lambda m: setattr(m, "data", m.data[:-1]), "data bytes"),
     (lambda m: setattr(m, "step", 2), "step 2 is smaller"),
     (lambda m: setattr(m, "width", 0), "empty image")],
)  # fmt: skip
def test_bad_images_rejected_with_reason(mutate, reason):
    msg = image_msg(RGB, "rgb8")
    mutate(msg)
    with pytest.raises(BadMessage, match=reason):
        images.to_rgb(msg)


def test_mask_and_depth_encodings_enforced():
    with pytest.raises(BadMessage, match="mask: encoding 'rgb8'"):
        images.to_mask(image_msg(RGB, "rgb8"))
    with pytest.raises(BadMessage, match="depth: encoding 'mono8'"):
        images.to_depth(image_msg(RGB[..., 0], "mono8"))


def test_calibration_and_undistortion_moves_points_to_the_pinhole_projection():
    K = np.array([[80.0, 0, 40], [0, 80.0, 30], [0, 0, 1]])
    assert images.calibration(camera_info_msg(np.zeros(9), 80, 60)) is None
    D = np.array([-0.3, 0.1, 0.0, 0.0, 0.0])
    calib = images.calibration(camera_info_msg(K, 80, 60, D))
    assert calib.distorted and calib.model == "plumb_bob"
    # A bright dot where the distorted camera sees point X; after undistortion it must sit
    # at the pinhole projection K X / Z.
    X = np.array([[0.25, -0.2, 1.0]])
    distorted, _ = cv2.projectPoints(X, np.zeros(3), np.zeros(3), K, D)
    u, v = np.rint(distorted.reshape(2)).astype(int)
    image = np.zeros((60, 80, 3), np.uint8)
    image[v - 1 : v + 2, u - 1 : u + 2] = 255
    mask = (image[..., 0] > 0).astype(np.uint8) * 255
    _out_image, out_mask, _ = undistort(calib, image, mask, None)
    ys, xs = np.nonzero(out_mask)
    ideal = (K @ X[0])[:2] / X[0, 2]
    assert abs(xs.mean() - ideal[0]) < 1.0 and abs(ys.mean() - ideal[1]) < 1.0
    assert set(np.unique(out_mask)) <= {0, 255}  # nearest neighbour keeps the mask binary


def test_bad_calibration_rejected():
    with pytest.raises(InputError, match="camera_info: K is not a pinhole"):
        images.calibration(camera_info_msg([[0, 0, 1], [0, 1, 1], [0, 0, 1]], 8, 8))
    info = camera_info_msg(np.eye(3), 8, 8, D=(0.1, 0, 0, 0))
    info.distortion_model = "equidistant"
    with pytest.raises(InputError, match="equidistant"):
        images.calibration(info)
