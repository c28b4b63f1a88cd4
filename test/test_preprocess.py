"""Preprocess: One-2-3-45's crop rule and the virtual camera (input checks: test_inputs.py)."""

import numpy as np

from one2345_ros.config import PreprocessConfig
from one2345_ros.geometry import cameras as cam
from one2345_ros.preprocess import CropTransform, preprocess


def scene(h=480, w=640, box=(200, 150, 330, 230), color=(200, 30, 40)):
    image = np.full((h, w, 3), 90, np.uint8)  # grey background: must become white
    mask = np.zeros((h, w), bool)
    x0, y0, x1, y1 = box
    image[y0 : y1 + 1, x0 : x1 + 1] = color
    mask[y0 : y1 + 1, x0 : x1 + 1] = True
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
    assert out.bbox == (200, 150, 330, 230)


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
    assert out.crop.x0 < 0
    assert np.all(out.image[:, :10] == 255)


def test_fill_ratio_is_configurable():
    image, mask = scene()
    out = preprocess(image, mask, PreprocessConfig(fill_ratio=0.5, size=128))
    _ys, xs = np.nonzero(out.mask)
    assert abs((xs.max() - xs.min() + 1) - 64) <= 1


def test_crop_affine_matches_methods():
    crop = CropTransform(-12.3, 40.7, 333.3, 256)
    uv = np.array([[5.0, 9.0], [100.0, 300.0]])
    hom = np.c_[uv, np.ones(2)] @ crop.affine().T
    np.testing.assert_allclose(hom[:, :2], crop.to_crop(uv), atol=1e-12)
