"""Bad input through every command: the exit code, the message's key words, and the output folder's state.

Every case fails before any model loads (the cheap checks run first), so the matrix is fast. A case
writing a result folder must leave result.json with ``ok: false`` and no mesh; a case whose output
path itself is unusable must leave it untouched.
"""

import json
import struct
import zipfile

import numpy as np
import pytest
from PIL import Image

from one2345_ros.cli.main import main

C2W = np.eye(4)
C2W[2, 3] = -1.0


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("inputs")
    rgb = np.full((480, 640, 3), 200, np.uint8)
    mask = np.zeros((480, 640), np.uint8)
    mask[150:300, 250:400] = 255
    Image.fromarray(rgb).save(d / "rgb.png")
    Image.fromarray(mask).save(d / "mask.png")
    Image.fromarray(np.zeros_like(mask)).save(d / "empty.png")
    Image.fromarray(mask[:240, :320]).save(d / "small_mask.png")
    Image.fromarray(np.full((480, 640), 80, np.uint8)).save(d / "depth8.png")
    np.save(d / "nan_depth.npy", np.full((480, 640), np.nan, np.float32))
    np.save(d / "zero_depth.npy", np.zeros((480, 640), np.float32))
    (d / "notes.txt").write_text("not an image\n")
    K = [[600.0, 0, 319.5], [0, 600.0, 239.5], [0, 0, 1]]
    (d / "ci.json").write_text(json.dumps({"width": 640, "height": 480, "K": K, "D": []}))
    (d / "ci_small.json").write_text(json.dumps({"width": 320, "height": 240, "K": K, "D": []}))
    (d / "ci_bad_k.json").write_text(json.dumps({"width": 640, "height": 480, "K": [[0, 0, 1], [0, 1, 1], [0, 0, 1]]}))
    (d / "c2w.json").write_text(json.dumps(C2W.tolist()))
    (d / "c2w_bad.json").write_text(json.dumps([[1, 0, 0], [0, 1, 0]]))
    (d / "mesh.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    (d / "notes.pth").write_text("this is not a checkpoint\n")
    with zipfile.ZipFile(d / "good.pth", "w") as z:
        z.writestr("archive/data.pkl", b"\x80\x02}q\x00." * 200)
    (d / "truncated.pth").write_bytes((d / "good.pth").read_bytes()[:300])
    header = b'{"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}'
    (d / "cut.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 3)
    (d / "empty_dir").mkdir()
    (d / "foreign").mkdir()
    (d / "foreign" / "thesis.tex").write_text("keep me")
    (d / "a_file").write_text("x")
    return d


def reconstruct(d, out, *extra, image="rgb.png", mask="mask.png"):
    return ["reconstruct", str(d / image), "--mask", str(d / mask), "--out", str(out), "--quiet",
            "--views", f"oracle:{d / 'mesh.obj'}", "--oracle-c2w", str(d / "c2w.json"), *extra]  # fmt: skip


# (case, argv builder, keywords in the message). The out folder gets result.json with ok: false.
RESULT_CASES = [
    ("missing image", lambda d, o: reconstruct(d, o, image="nope.png"), ["image file not found", "nope.png"]),
    ("text as image", lambda d, o: reconstruct(d, o, image="notes.txt"), ["cannot read image", "notes.txt"]),
    ("missing mask", lambda d, o: reconstruct(d, o, mask="nope.png"), ["mask file not found"]),
    ("empty mask", lambda d, o: reconstruct(d, o, mask="empty.png"), ["mask is empty"]),
    ("mask size", lambda d, o: reconstruct(d, o, mask="small_mask.png"), ["mask is 320x240 but the image is 640x480"]),
    ("NaN depth", lambda d, o: reconstruct(d, o, "--depth", str(d / "nan_depth.npy")), ["depth", "valid reading"]),
    ("zero depth", lambda d, o: reconstruct(d, o, "--depth", str(d / "zero_depth.npy")), ["depth", "valid reading"]),
    ("8-bit depth", lambda d, o: reconstruct(d, o, "--depth", str(d / "depth8.png")), ["must be 16-bit"]),
    ("camera info size", lambda d, o: reconstruct(d, o, "--camera-info", str(d / "ci_small.json")),
     ["camera info is for 320x240 but the image is 640x480"]),
    ("camera info K", lambda d, o: reconstruct(d, o, "--camera-info", str(d / "ci_bad_k.json")),
     ["ci_bad_k.json", "not a pinhole matrix"]),
    ("camera info missing", lambda d, o: reconstruct(d, o, "--camera-info", str(d / "nope.yaml")),
     ["camera info file not found"]),
    ("negative size", lambda d, o: reconstruct(d, o, "--object-size", "-1"), ["metric.object_size_m: must be >= 0.0"]),
    ("bad choice", lambda d, o: reconstruct(d, o, "--set", "mesh.format=stl"), ["mesh.format: 'stl' is not one of"]),
    ("unknown key", lambda d, o: reconstruct(d, o, "--set", "zero123.stepz=3"),
     ["unknown configuration key(s) zero123.stepz"]),
    ("missing config", lambda d, o: reconstruct(d, o, "--config", str(d / "nope.yaml")), ["config file not found"]),
    ("text checkpoint", lambda d, o: reconstruct(d, o, "--sparseneus", str(d / "notes.pth")),
     ["sparseneus.checkpoint", "notes.pth", "not a PyTorch checkpoint"]),
    ("truncated checkpoint", lambda d, o: reconstruct(d, o, "--sparseneus", str(d / "truncated.pth")),
     ["truncated.pth", "truncated or corrupt"]),
    ("missing zero123", lambda d, o: ["reconstruct", str(d / "rgb.png"), "--mask", str(d / "mask.png"), "--out", str(o),
                                      "--zero123", str(d / "nowhere")], ["zero123.model", "nowhere", "does not exist"]),
    ("not a zero123 folder", lambda d, o: ["reconstruct", str(d / "rgb.png"), "--mask", str(d / "mask.png"), "--out",
                                           str(o), "--zero123", str(d / "empty_dir")], ["zero123.model", "empty_dir"]),
    ("truncated safetensors", lambda d, o: ["reconstruct", str(d / "rgb.png"), "--mask", str(d / "mask.png"), "--out",
                                            str(o), "--zero123", str(d / "cut.safetensors")],
     ["cut.safetensors", "truncated"]),
    ("no zero123 at all", lambda d, o: ["reconstruct", str(d / "rgb.png"), "--mask", str(d / "mask.png"), "--out",
                                        str(o)],
     ["zero123.model", "ONE2345_ZERO123", "none is downloaded"]),
    ("bad oracle pose", lambda d, o: ["reconstruct", str(d / "rgb.png"), "--mask", str(d / "mask.png"), "--out", str(o),
                                      "--views", f"oracle:{d / 'mesh.obj'}", "--oracle-c2w", str(d / "c2w_bad.json")],
     ["--oracle-c2w", "4x4"]),
    ("bad views", lambda d, o: reconstruct(d, o, "--views", "dreamfusion"),
     ["--views must be 'zero123' or 'oracle:MESH'"]),
    ("views folder missing", lambda d, o: ["reconstruct-views", str(d / "empty_dir"), "--out", str(o)],
     ["no views.json"]),
    ("views folder checkpoint", lambda d, o: ["reconstruct-views", str(d / "empty_dir"), "--out", str(o), "--backend",
                                              "sparseneus", "--sparseneus", str(d / "truncated.pth")],
     ["truncated or corrupt"]),
]  # fmt: skip

# The output path itself is unusable: nothing may be written there.
OUT_CASES = [
    ("out is a file", lambda d: d / "a_file", ["is a file, not a folder"]),
    ("out holds other files", lambda d: d / "foreign", ["holds other files", "refusing to replace it"]),
]

# Commands without a result folder.
OTHER_CASES = [
    ("elevation view size", lambda d, o: ["elevation", *[str(d / "rgb.png")] * 4], ["view 0", "640x480, need 256x256"]),
    ("bag input missing", lambda d, o: ["bag", str(d / "nope"), "--image-topic", "/i", "--mask-topic", "/m", "--out",
                                        str(o)], ["input bag", "not found"]),
    ("bag output exists", lambda d, o: ["bag", str(d / "empty_dir"), "--image-topic", "/i", "--mask-topic", "/m",
                                        "--out", str(d / "foreign")], ["already exists"]),
    ("convert text file", lambda d, o: ["convert-zero123", str(d / "notes.pth"), str(o)], ["not a PyTorch checkpoint"]),
    ("convert truncated", lambda d, o: ["convert-zero123", str(d / "truncated.pth"), str(o)], ["truncated or corrupt"]),
    ("convert into a full folder", lambda d, o: ["convert-zero123", str(d / "good.pth"), str(d / "foreign")],
     ["exists and is not an empty folder"]),
    ("demo unknown object", lambda d, o: ["demo", "--object", "teapot", "--out", str(o)],
     ["unknown bundled object 'teapot'"]),
]  # fmt: skip


def _check(capsys, code, keywords):
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    for word in keywords:
        assert word in err, (word, err)
    return err


@pytest.mark.parametrize("case, argv, keywords", RESULT_CASES, ids=[c[0] for c in RESULT_CASES])
def test_failures_write_a_failed_result_and_no_mesh(files, tmp_path, capsys, case, argv, keywords, monkeypatch):
    monkeypatch.delenv("ONE2345_ZERO123", raising=False)
    monkeypatch.delenv("ONE2345_SPARSENEUS", raising=False)
    out = tmp_path / "out"
    _check(capsys, main(argv(files, out)), keywords)
    assert sorted(p.name for p in out.iterdir()) == ["result.json"]
    doc = json.loads((out / "result.json").read_text())
    assert doc["ok"] is False and doc["mesh"] is None and all(word in doc["error"] for word in keywords)


@pytest.mark.parametrize("case, out, keywords", OUT_CASES, ids=[c[0] for c in OUT_CASES])
def test_an_unusable_output_path_is_left_alone(files, capsys, case, out, keywords):
    target = out(files)
    before = sorted(p.name for p in target.iterdir()) if target.is_dir() else target.read_text()
    _check(capsys, main(reconstruct(files, target)), keywords)
    after = sorted(p.name for p in target.iterdir()) if target.is_dir() else target.read_text()
    assert after == before


@pytest.mark.parametrize("case, argv, keywords", OTHER_CASES, ids=[c[0] for c in OTHER_CASES])
def test_other_commands_fail_with_the_reason(files, tmp_path, capsys, case, argv, keywords):
    out = tmp_path / "out"
    _check(capsys, main(argv(files, out)), keywords)
    assert not out.exists()


def test_a_failed_rerun_leaves_no_stale_mesh(files, tmp_path, capsys):
    """A good run, then a failing one into the same folder: only result.json (ok: false) remains."""
    from hull_scenes import ellipsoid_viewset

    from one2345_ros.geometry import cameras as cam
    from one2345_ros.types import ViewSet
    from one2345_ros.views.folder import write_views_folder

    views = ellipsoid_viewset(center=(0, 0, 0), radii=(0.3, 0.2, 0.25))
    write_views_folder(tmp_path / "views", ViewSet(images=views.images, K=views.K, c2w=views.c2w, names=views.names,
                                                   near_far=cam.ONE2345_NEAR_FAR))  # fmt: skip
    out = tmp_path / "out"
    assert main(["reconstruct-views", str(tmp_path / "views"), "--out", str(out), "--resolution", "32"]) == 0
    assert {"mesh.ply", "mesh.glb", "result.json", "views.png"} <= {p.name for p in out.iterdir()}
    capsys.readouterr()
    _check(capsys, main(["reconstruct-views", str(files / "empty_dir"), "--out", str(out)]), ["no views.json"])
    assert sorted(p.name for p in out.iterdir()) == ["result.json"]
    assert json.loads((out / "result.json").read_text())["ok"] is False
