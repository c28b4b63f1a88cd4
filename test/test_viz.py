"""Contact sheet layout: tiles in place, labels drawn under them, bad input refused."""

import numpy as np
import pytest

from one2345_ros.inputs.files import read_rgb
from one2345_ros.results.atomic import write_image_atomic
from one2345_ros.results.contact_sheet import GAP, LABEL_HEIGHT
from one2345_ros.results.contact_sheet import tile_images as contact_sheet


def tiles(n, h=24, w=32):
    rng = np.random.default_rng(1)
    return rng.integers(0, 200, (n, h, w, 3), dtype=np.uint8)


def test_tiles_are_placed_in_rows_with_labels_below(tmp_path):
    images = tiles(5)
    sheet = contact_sheet(images, [f"view {i}" for i in range(5)], columns=3)
    cell_h, cell_w = 24 + LABEL_HEIGHT + GAP, 32 + GAP
    assert sheet.shape == (2 * cell_h - GAP, 3 * cell_w - GAP, 3) and sheet.dtype == np.uint8
    for i in range(5):
        y, x = (i // 3) * cell_h, (i % 3) * cell_w
        np.testing.assert_array_equal(sheet[y : y + 24, x : x + 32], images[i])
        label = sheet[y + 24 : y + 24 + LABEL_HEIGHT, x : x + 32]
        assert (label < 128).any(), f"label {i} not drawn"
    # The empty sixth cell and the gaps stay white.
    assert (sheet[cell_h:, 2 * cell_w :] == 255).all()
    assert (sheet[:, 32:34] == 255).all()
    write_image_atomic(tmp_path / "sheet.png", sheet)
    np.testing.assert_array_equal(read_rgb(tmp_path / "sheet.png"), sheet)


def test_labels_differ_in_the_image():
    images = np.full((2, 16, 64, 3), 255, np.uint8)
    sheet = contact_sheet(images, ["a", "wwww"], columns=2)
    first = sheet[16 : 16 + LABEL_HEIGHT, :64]
    second = sheet[16 : 16 + LABEL_HEIGHT, 66:130]
    assert (first < 128).sum() < (second < 128).sum()


def test_fewer_images_than_columns_gives_one_short_row():
    sheet = contact_sheet(tiles(2), ["a", "b"], columns=8)
    assert sheet.shape[1] == 2 * (32 + GAP) - GAP


@pytest.mark.parametrize(
    "images, labels, match",
    [
        (tiles(2), ["a"], "2 images but 1 labels"),
        (tiles(2).astype(np.float32), ["a", "b"], "uint8"),
        (np.zeros((0, 8, 8, 3), np.uint8), [], "no images"),
    ],
)
def test_bad_input_is_refused(images, labels, match):
    with pytest.raises(ValueError, match=match):
        contact_sheet(images, labels)
