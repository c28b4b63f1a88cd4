"""Views folders and atomic files (permissions included)."""

import json

import numpy as np
import pytest

from one2345_ros.geometry import cameras as cam
from one2345_ros.results.atomic import atomic_path, safe_child, write_image_atomic, write_json_atomic
from one2345_ros.types import InputError, ViewSet
from one2345_ros.views.folder import read_views_folder, write_views_folder


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "result.json"
    write_json_atomic(target, {"a": 1})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_safe_child_refuses_escapes(tmp_path):
    assert safe_child(tmp_path, "a/b.glb") == (tmp_path / "a/b.glb").resolve()
    for bad in ("../x.glb", "/etc/passwd", "a/../../x", ""):
        with pytest.raises(InputError):
            safe_child(tmp_path, bad)


def make_views(n=4, masks=True):
    rng = np.random.default_rng(0)
    plan = cam.stage2_views(cam.one2345_plan(70.0))[:n]
    images = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
    return ViewSet(
        images=images,
        K=np.broadcast_to(cam.view_intrinsics(32), (n, 3, 3)).copy(),
        c2w=np.stack([v.c2w() for v in plan]),
        names=[v.name for v in plan],
        masks=rng.random((n, 32, 32)) > 0.5 if masks else None,
        reference=1,
        near_far=(0.5, 1.8),
    )


def test_views_folder_round_trip(tmp_path):
    views = make_views()
    write_views_folder(tmp_path / "v", views)
    back = read_views_folder(tmp_path / "v")
    np.testing.assert_array_equal(back.images, views.images)
    np.testing.assert_array_equal(back.masks, views.masks)
    np.testing.assert_allclose(back.c2w, views.c2w, atol=0)
    np.testing.assert_allclose(back.K, views.K, atol=0)
    assert back.reference == 1 and back.near_far == (0.5, 1.8)


def test_views_folder_errors(tmp_path):
    views = make_views(masks=False)
    folder = write_views_folder(tmp_path / "v", views)
    doc = json.loads((folder / "views.json").read_text())
    doc["images"][0]["c2w"] = [[1, 0, 0], [0, 1, 0]]
    (folder / "views.json").write_text(json.dumps(doc))
    with pytest.raises(InputError, match=r"images\[0\].c2w: expected a finite 4x4"):
        read_views_folder(folder)
    doc["images"][0]["file"] = "../outside.png"
    (folder / "views.json").write_text(json.dumps(doc))
    with pytest.raises(InputError, match="escapes"):
        read_views_folder(folder)
    with pytest.raises(InputError, match="no views.json"):
        read_views_folder(tmp_path)


def test_one2345_output_folder(tmp_path):
    plan = cam.one2345_plan(70.0, cam.ONE2345_INPUT_AZIMUTH_DEG)
    (tmp_path / "stage1_8").mkdir()
    (tmp_path / "stage2_8").mkdir()
    c2ws = {}
    for v in plan:
        sub = "stage2_8" if v.stage == 2 else "stage1_8"
        write_image_atomic(tmp_path / sub / f"{v.name}.png", np.full((8, 8, 3), 255, np.uint8))
        c2ws[f"{v.name}.png"] = cam.opencv_to_opengl(v.c2w()).tolist()
    write_json_atomic(
        tmp_path / "pose.json", {"intrinsics": cam.view_intrinsics().tolist(), "near_far": [0.5, 1.8], "c2ws": c2ws}
    )
    views = read_views_folder(tmp_path)
    assert len(views.names) == 32 and views.names[:5] == ["0_0", "0_1", "0_2", "0_3", "1_0"]
    np.testing.assert_allclose(views.c2w[0], plan[8].c2w(), atol=1e-12)
    np.testing.assert_allclose(views.frame_c2w(), plan[0].c2w(), atol=1e-12)


def test_atomic_files_get_the_umask_mode(tmp_path):
    import os

    from one2345_ros.results.atomic import FILE_MODE, UMASK

    write_json_atomic(tmp_path / "a.json", {"a": 1})
    assert FILE_MODE == 0o666 & ~UMASK
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == FILE_MODE
    assert os.access(tmp_path / "a.json", os.R_OK)
