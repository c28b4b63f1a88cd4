"""Preprocess: One-2-3-45's crop rule, the virtual camera, and clear errors."""

import numpy as np
import pytest

from one2345_ros.geometry import cameras as cam
from one2345_ros.config import PreprocessConfig
from one2345_ros.types import InputError
from one2345_ros.preprocess import CropTransform, binarize_mask, preprocess


def scene(h=480, w=640, box=(200, 150, 330, 230), color=(200, 30, 40)):
    image = np.full((h, w, 3), 90, np.uint8)  # grey background: must become white
    mask = np.zeros((h, w), np.uint8)
    x0, y0, x1, y1 = box
    image[y0 : y1 + 1, x0 : x1 + 1] = color
    mask[y0 : y1 + 1, x0 : x1 + 1] = 255
    return image, mask


def test_object_fills_75_percent_centred_on_white():
    image, mask = scene()
    out = preprocess(image, mask)
    assert out.image.shape == (256, 256, 3) and out.image.dtype == np.uint8
    ys, xs = np.nonzero(out.mask)
    width = xs.max() - xs.min() + 1
    assert abs(width - 0.75 * 256) <= 1  # the longer side (131 px wide box) fills 75 %
    assert abs((xs.min() + xs.max()) / 2 - 127.5) <= 0.5
    assert abs((ys.min() + ys.max()) / 2 - 127.5) <= 0.5
    assert np.all(out.image[~out.mask] == 255)
    inner = out.image[ys.min() + 3 : ys.max() - 3, xs.min() + 3 : xs.max() - 3]
    assert np.all(np.abs(inner.astype(int) - [200, 30, 40]) <= 2)
    assert out.bbox == (200, 150, 330, 230) and not out.touches_border


def test_crop_is_a_virtual_camera():
    image, mask = scene()
    out = preprocess(image, mask)
    crop = out.crop
    uv = np.random.default_rng(1).uniform(0, 600, size=(20, 2))
    np.testing.assert_allclose(crop.to_image(crop.to_crop(uv)), uv, atol=1e-9)
    # A 3-D point projects through K_crop exactly where the crop maps its pixel.
    K = cam.intrinsics(600.0, 600.0, 319.5, 239.5)
    K_crop = crop.apply_to_K(K)
    pts = np.array([[0.05, -0.02, 0.8], [-0.1, 0.04, 1.1]])
    uv_img, _ = cam.project(pts, K, np.eye(4))
    uv_crop, _ = cam.project(pts, K_crop, np.eye(4))
    np.testing.assert_allclose(uv_crop, crop.to_crop(uv_img), atol=1e-9)
    # The bbox centre maps to the crop centre.
    np.testing.assert_allclose(crop.to_crop(out.pixel_center), [127.5, 127.5], atol=1e-9)


def test_crop_beyond_image_is_padded_white():
    image, mask = scene(box=(0, 100, 60, 400))  # tall object at the left border
    out = preprocess(image, mask)
    assert out.touches_border
    assert out.crop.x0 < 0
    assert np.all(out.image[:, :10] == 255)


def test_fill_ratio_is_configurable():
    image, mask = scene()
    out = preprocess(image, mask, PreprocessConfig(fill_ratio=0.5, size=128))
    ys, xs = np.nonzero(out.mask)
    assert abs((xs.max() - xs.min() + 1) - 64) <= 1


def test_mask_forms():
    _, mask = scene()
    ref = mask > 0
    np.testing.assert_array_equal(binarize_mask(ref), ref)
    np.testing.assert_array_equal(binarize_mask(mask), ref)
    np.testing.assert_array_equal(binarize_mask((mask > 0).astype(np.uint8)), ref)
    np.testing.assert_array_equal(binarize_mask((mask / 255.0).astype(np.float32)), ref)
    np.testing.assert_array_equal(binarize_mask(mask[..., None]), ref)


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda im, m: (im, np.zeros_like(m)), "empty"),
        (lambda im, m: (im, m[:-1]), "image is 640x480 but mask is 640x479"),
        (lambda im, m: (im, (np.arange(m.size).reshape(m.shape) % 256).astype(np.uint8)), "not binary"),
        (lambda im, m: (im.astype(np.float32), m), "uint8"),
        (lambda im, m: (im[..., :2].copy(), m), r"\[H, W, 3\]"),
        (lambda im, m: (np.dstack([im, im[..., :1]]), m), r"\[H, W, 3\]"),
        (lambda im, m: (im, m.astype(np.int64)), "dtype int64"),
        (lambda im, m: (im, np.dstack([m, m])), "single-channel"),
        (lambda im, m: (im, np.where(m > 0, 2.0, 0.0)), r"\[0, 1\]"),
    ],
)
def test_bad_input_errors(make, match):
    image, mask = scene()
    image, mask = make(image, mask)
    with pytest.raises(InputError, match=match):
        preprocess(image, mask)


def test_tiny_mask_is_rejected():
    image, mask = scene(box=(10, 10, 11, 11))
    with pytest.raises(InputError, match="only 4 object pixels"):
        preprocess(image, mask)


def test_crop_affine_matches_methods():
    crop = CropTransform(-12.3, 40.7, 333.3, 256)
    uv = np.array([[5.0, 9.0], [100.0, 300.0]])
    hom = np.c_[uv, np.ones(2)] @ crop.affine().T
    np.testing.assert_allclose(hom[:, :2], crop.to_crop(uv), atol=1e-12)
