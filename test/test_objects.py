"""Several objects per request: a label image -> one result per object, views generated together, an
unusable object reported by id while the others come back; the planner forms (object frame, samples)."""

import json

import numpy as np
import pytest
import trimesh
from PIL import Image

from one2345_ros.cli.main import main
from one2345_ros.geometry import cameras as cam
from one2345_ros.mesh.files import export_mesh
from one2345_ros.results.planner import object_frame, surface_samples
from one2345_ros.synthetic.assets import load_object
from one2345_ros.synthetic.scenes import render_objects

K = cam.intrinsics(600.0, 600.0, 319.5, 239.5)


def placed(name, size, xy):
    """A bundled object scaled to ``size`` metres, standing on the plane z = 0 at ``xy``."""
    mesh = load_object(name)
    mesh.apply_scale(size / np.max(mesh.extents))
    lo = mesh.bounds[0]
    centre = mesh.bounding_box.centroid
    mesh.apply_translation([xy[0] - centre[0], xy[1] - centre[1], -lo[2]])
    return mesh


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """Two objects on a table seen from 45 deg above, plus a third label of a few pixels (too small)."""
    d = tmp_path_factory.mktemp("scene")
    meshes = [placed("mallet", 0.16, (-0.09, 0.0)), placed("house", 0.12, (0.09, 0.03))]
    c2w = cam.look_at(cam.camera_center(cam.polar_from_elevation(45.0), 20.0, 0.75) + [0, 0, 0.05], [0, 0, 0.05])
    s = render_objects(meshes, K, c2w, 640, 480)
    labels = s.labels.copy()
    labels[5:8, 5:8] = 3  # a 9-pixel object: refused by name, the others still come back
    Image.fromarray(s.image).save(d / "rgb.png")
    Image.fromarray(labels).save(d / "labels.png")
    Image.fromarray(np.round(s.depth * 1000).astype(np.uint16)).save(d / "depth.png")
    (d / "ci.json").write_text(json.dumps({"width": 640, "height": 480, "K": K.tolist(), "D": []}))
    (d / "c2w.json").write_text(json.dumps(c2w.tolist()))
    (d / "meshes").mkdir()
    for label, mesh in enumerate(meshes, start=1):
        export_mesh(mesh, d / "meshes" / f"object_{label}.glb")
    truths = []
    for mesh in meshes:
        truth = mesh.copy()
        truth.apply_transform(cam.invert_rigid(c2w))
        truths.append(truth)
    return d, truths


def test_labels_through_the_cli(scene, tmp_path, capsys):
    d, truths = scene
    out = tmp_path / "out"
    # vertex colours are not checked here: skip them; views rendered with one ray per pixel (4x fewer)
    code = main(["reconstruct", str(d / "rgb.png"), "--labels", str(d / "labels.png"), "--depth", str(d / "depth.png"),
                 "--camera-info", str(d / "ci.json"), "--views", f"oracle:{d / 'meshes'}", "--oracle-c2w",
                 str(d / "c2w.json"), "--out", str(out), "--quiet", "--set", "hull.resolution=64",
                 "--set", "mesh.colors=none", "--set", "oracle.supersample=1"])  # fmt: skip
    assert code == 0
    doc = json.loads((out / "objects.json").read_text())
    by_id = {o["object_id"]: o for o in doc["objects"]}
    assert set(by_id) == {"object_1", "object_2", "object_3"}
    assert by_id["object_3"]["ok"] is False and "inputs.min_mask_pixels" in by_id["object_3"]["error"]
    for k, truth in enumerate(truths, start=1):
        entry = by_id[f"object_{k}"]
        assert entry["ok"] and entry["units"] == "m"
        folder = out / entry["folder"]
        result = json.loads((folder / "result.json").read_text())
        assert result["frame"] == "camera_optical" and result["diagnostics"]["objects_in_batch"] == 2
        mesh = trimesh.load(folder / "mesh.ply", process=False)
        centre_error = np.linalg.norm(mesh.bounding_box.centroid - truth.bounding_box.centroid)
        assert centre_error < 0.015, centre_error  # metres, hull at 64^3 from oracle views
        # the object-frame mesh placed with its pose is the camera-frame mesh
        local = trimesh.load(folder / "mesh_object.ply", process=False)
        pose = np.asarray(entry["pose"])
        np.testing.assert_allclose(cam.transform_points(pose, local.vertices), mesh.vertices, atol=1e-5)
        # in its own frame the mesh's axis-aligned box is the oriented box: centred, sides = extents
        np.testing.assert_allclose(local.extents, entry["extents"], rtol=1e-6)
        np.testing.assert_allclose(local.bounding_box.centroid, 0.0, atol=1e-6)
    cloud = trimesh.load(out / "points.ply", process=False)
    labels = np.asarray(cloud.metadata["_ply_raw"]["vertex"]["data"]["label"])
    assert set(np.unique(labels)) == {1, 2} and len(labels) > 10000
    printed = capsys.readouterr().out
    assert "object_3: refused:" in printed and "2 of 3 objects" in printed


def test_object_frame_is_the_oriented_box_and_deterministic():
    box = trimesh.creation.box(extents=[0.3, 0.1, 0.05])
    R = trimesh.transformations.rotation_matrix(0.7, [1, 2, 3])[:3, :3]
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R, [0.1, -0.2, 0.9]
    box.apply_transform(T)
    pose, extents = object_frame(box)
    np.testing.assert_allclose(extents, [0.3, 0.1, 0.05], atol=1e-9)
    np.testing.assert_allclose(pose[:3, 3], [0.1, -0.2, 0.9], atol=1e-9)
    assert np.linalg.det(pose[:3, :3]) == pytest.approx(1.0) and pose[2, 2] <= 0 and pose[0, 0] >= 0
    np.testing.assert_allclose(np.abs(pose[:3, :3].T @ R), np.eye(3)[[0, 1, 2]], atol=1e-9)


def test_surface_samples_are_uniform_with_outward_normals():
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=0.1)
    points, normals, rgb = surface_samples(sphere, 5000, seed=1)
    np.testing.assert_allclose(np.linalg.norm(points, axis=1), 0.1, atol=2e-3)
    assert np.all(np.einsum("ij,ij->i", normals, points) > 0)  # outward
    assert abs(points[:, 2].mean()) < 0.005 and rgb.shape == (5000, 3)  # no hemisphere favoured
