"""Bilinear sampling: exact on linear ramps (to remap's 1/32 pixel), pixel-centre convention, image bounds."""

import numpy as np
import pytest

from one2345_ros.geometry.sampling import inside_image, sample_bilinear


def test_bilinear_sampling_reproduces_a_linear_ramp():
    h, w = 40, 50
    v_grid, u_grid = np.mgrid[0:h, 0:w].astype(np.float64)
    image = np.stack([3.0 * u_grid + 0.5 * v_grid, -2.0 * v_grid, np.full((h, w), 7.0)], axis=-1)
    rng = np.random.default_rng(0)
    u = rng.uniform(0, w - 1, (3000, 2))  # a 2-D query shape on purpose
    v = rng.uniform(0, h - 1, (3000, 2))
    out = sample_bilinear(image, u, v)
    assert out.shape == (3000, 2, 3) and out.dtype == np.float32
    expected = np.stack([3.0 * u + 0.5 * v, -2.0 * v, np.full_like(u, 7.0)], axis=-1)
    # remap's weights are multiples of 1/32 pixel: error <= slope * 1/64.
    np.testing.assert_allclose(out, expected, atol=3.0 / 64 + 0.5 / 64 + 1e-3)


def test_pixel_centres_are_integers():
    image = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_array_equal(sample_bilinear(image, [0.0, 3.0, 1.0], [0.0, 2.0, 1.0]), [0.0, 11.0, 5.0])
    assert sample_bilinear(image, [0.5], [0.0])[0] == pytest.approx(0.5)


def test_off_image_positions_take_the_border_and_are_flagged():
    image = np.arange(12, dtype=np.float32).reshape(3, 4)
    u = np.array([-0.5, -0.51, 3.5, 3.51, 1e9, np.nan])
    v = np.zeros_like(u)
    np.testing.assert_array_equal(inside_image(u, v, 4, 3), [True, False, True, False, False, False])
    out = sample_bilinear(image, u, v)
    assert np.all(np.isfinite(out))
    assert out[0] == 0.0 and out[2] == 3.0 and out[4] == 3.0
