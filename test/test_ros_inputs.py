"""Messages -> ReconstructionInputs (bad messages are rejected with a reason) and the latest-pair store."""

import numpy as np
import pytest
from ros_helpers import camera_info_msg, image_msg, scene

from one2345_ros.config import InputConfig
from one2345_ros.ros.images import BadMessage
from one2345_ros.ros.inputs import InputMessages, LatestPair, inputs_from_messages
from one2345_ros.types import InputError

CFG = InputConfig(min_mask_pixels=10)


def frames_from_messages(msgs, object_id, cfg=CFG):
    return inputs_from_messages(msgs, cfg, object_id)

K = [[50.0, 0, 32], [0, 50.0, 24], [0, 0, 1]]


def test_frames_from_messages_converts_everything():
    rgb, mask, img, msk = scene()
    depth = image_msg(np.full(mask.shape, 800, np.uint16), "16UC1")
    frames = frames_from_messages(InputMessages(img, msk, depth, camera_info_msg(K, 64, 48)), "mug")
    np.testing.assert_array_equal(frames.image, rgb)
    np.testing.assert_array_equal(frames.mask, mask > 0)
    np.testing.assert_allclose(frames.depth, 0.8)
    np.testing.assert_array_equal(frames.K, K)
    assert (frames.frame_id, frames.stamp_ns, frames.object_id) == ("cam_optical", 1_000_000_000, "mug")


def test_zero_one_mask_is_the_same_object():
    _, mask, img, _ = scene()
    frames = frames_from_messages(InputMessages(img, image_msg((mask > 0).astype(np.uint8), "mono8")), "")
    np.testing.assert_array_equal(frames.mask, mask > 0)
    assert frames.object_id == "object"


@pytest.mark.parametrize(
    "build, reason",
    [(lambda img, msk: InputMessages(img, image_msg(np.zeros((48, 64), np.uint8), "mono8")), "mask is empty"),
     (lambda img, msk: InputMessages(img, image_msg(np.zeros((40, 64), np.uint8), "mono8")), "size 64x40 differs"),
     (lambda img, msk: InputMessages(img, image_msg(np.zeros((48, 64, 3), np.uint8), "rgb8")), "mask: encoding"),
     (lambda img, msk: InputMessages(image_msg(np.zeros((48, 64), np.uint16), "16UC1"), msk), "image: encoding"),
     (lambda img, msk: InputMessages(img, msk, image_msg(np.zeros((48, 64), np.uint16), "16UC1")), "valid reading"),
     (lambda img, msk: InputMessages(img, msk, image_msg(np.zeros((48, 64, 3), np.uint8), "rgb8")), "depth: encoding"),
     (lambda img, msk: InputMessages(img, msk, None, camera_info_msg(K, 640, 480)), "calibrated for 640x480"),
     (lambda img, msk: InputMessages(img, msk, None, camera_info_msg([[0, 0, 32], [0, 50, 24], [0, 0, 1]], 64, 48)),
      "not a pinhole matrix")],
)  # fmt: skip
def test_bad_inputs_are_rejected_with_reason(build, reason):
    _, _, img, msk = scene()
    with pytest.raises(InputError, match=reason):
        frames_from_messages(build(img, msk), "mug")


def test_object_id_must_be_a_frame_name():
    _, _, img, msk = scene()
    with pytest.raises(InputError, match="object_id"):
        frames_from_messages(InputMessages(img, msk), "mug/../x")


def test_latest_pair_keeps_newest_and_refuses_stale_or_old():
    store = LatestPair(CFG)
    with pytest.raises(BadMessage, match="no synchronised image/mask pair"):
        store.take(now_ns=0)
    _, _, img2, msk2 = scene(stamp_ns=2_000_000_000)
    store.offer(InputMessages(img2, msk2))
    _, _, img1, msk1 = scene(stamp_ns=1_000_000_000)
    with pytest.raises(BadMessage, match="stale pair"):
        store.offer(InputMessages(img1, msk1))
    assert store.take(now_ns=2_500_000_000, max_age_s=1.0).stamp_ns == 2_000_000_000
    with pytest.raises(BadMessage, match="3.0 s old"):
        store.take(now_ns=5_000_000_000, max_age_s=1.0)
    _, _, img_bad, _ = scene(stamp_ns=3_000_000_000)
    with pytest.raises(BadMessage):
        store.offer(InputMessages(img_bad, image_msg(np.zeros((4, 4), np.uint8), "mono8", 3_000_000_000)))
    assert store.take(now_ns=2_000_000_000).stamp_ns == 2_000_000_000  # the bad pair did not replace it
    store.reset()
    store.offer(InputMessages(img1, msk1))
    assert store.take(now_ns=0).stamp_ns == 1_000_000_000
