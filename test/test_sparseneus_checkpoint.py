"""Strict loading of the One-2-3-45 SparseNeuS checkpoint layout."""

import json
import sys
import types
from pathlib import Path

import pytest
import torch
from sparseneus_fixtures import TINY_ARCH, make_checkpoint, official_shapes

from one2345_ros.config import SparseNeuSConfig
from one2345_ros.recon.sparseneus import (
    CheckpointMismatchError,
    SparseNeuS,
    WeightsNotFoundError,
    load_sparseneus,
    resolve_checkpoint,
)
from one2345_ros.recon.sparseneus.checkpoint import TOLERATED_MISSING, CorruptCheckpointError, load_state
from one2345_ros.recon.sparseneus.torchsparse_backend import BackendUnavailableError

KEYS = json.loads((Path(__file__).parent / "data" / "one2345_sparseneus_keys.json").read_text())


def test_fixture_layout_equals_the_reference():
    assert official_shapes() == KEYS["modules"]
    ckpt = make_checkpoint(TINY_ARCH)
    assert sorted(ckpt) == sorted(KEYS["top_level"])
    assert len(ckpt["optimizer"]["param_groups"][0]["params"]) == KEYS["optimizer"]["num_params"]


def test_saved_checkpoint_loads_with_weights_only(tmp_path):
    ckpt = make_checkpoint(TINY_ARCH, seed=3)
    path = tmp_path / "ckpt_215000.pth"
    torch.save(ckpt, path)
    net = load_sparseneus(path, SparseNeuSConfig(batchnorm="running"), arch=TINY_ARCH)
    sd = net.sdf_network_lod0.state_dict()
    for key in ("sparse_costreg_net.conv7.net.0.kernel", "sdf_layer.lin1.weight_v", "compress_layer.bn.running_var"):
        assert torch.equal(sd[key], ckpt["sdf_network_lod0"][key])
    assert net.variance_network_lod0.variance.item() == ckpt["variance_network_lod0"]["variance"].item()
    assert net.batchnorm == "running" and net.pyramid_feature_network.conv0[0].bn.bn_mode == "running"
    # Adam's state (float32 step tensors, betas tuples, None flags) passed weights_only=True
    assert torch.load(path, weights_only=True)["optimizer"]["state"][0]["step"].dtype == torch.float32


def test_full_size_checkpoint_loads(tmp_path):
    path = tmp_path / "ckpt.pth"
    torch.save(make_checkpoint(seed=1), path)
    net = load_sparseneus(path)
    assert sum(p.numel() for p in net.parameters()) == 430912


def test_inplace_abn_1_0_checkpoint_without_counters_loads():
    ckpt = make_checkpoint(TINY_ARCH, abn_counters=False)
    assert len(TOLERATED_MISSING) == 9
    for full in TOLERATED_MISSING:
        net, key = full.split(".", 1)
        assert key not in ckpt[net]
    load_state(SparseNeuS(TINY_ARCH), ckpt)


def test_missing_key_and_wrong_shape_are_both_reported():
    ckpt = make_checkpoint(TINY_ARCH)
    del ckpt["rendering_network_lod0"]["rgb_fc.4.bias"]
    ckpt["sdf_network_lod0"]["sparse_costreg_net.conv3.net.0.kernel"] = torch.zeros(27, 4, 9)
    ckpt["sdf_network_lod1"] = {}
    with pytest.raises(CheckpointMismatchError) as err:
        load_state(SparseNeuS(TINY_ARCH), ckpt, path="x.pth")
    diffs = err.value.differences
    assert diffs == [
        "unexpected top-level entry 'sdf_network_lod1'",
        "shape of sdf_network_lod0.sparse_costreg_net.conv3.net.0.kernel: checkpoint [27, 4, 9], network [27, 4, 8]",
        "missing key rendering_network_lod0.rgb_fc.4.bias [1]",
    ]
    assert "x.pth" in str(err.value) and "rgb_fc.4.bias" in str(err.value)


def test_tiny_checkpoint_does_not_load_into_full_network():
    with pytest.raises(CheckpointMismatchError) as err:
        load_state(SparseNeuS(), make_checkpoint(TINY_ARCH))
    assert len(err.value.differences) > 50


def test_missing_and_corrupt_checkpoints_name_the_file_and_the_download(tmp_path):
    with pytest.raises(WeightsNotFoundError, match=r"--sparseneus PATH.*\$ONE2345_SPARSENEUS.*One-2-3-45/code"):
        resolve_checkpoint(None)
    missing = tmp_path / "nope.pth"
    with pytest.raises(WeightsNotFoundError, match=r"not found: .*nope\.pth\. Download ckpt_215000\.pth"):
        load_sparseneus(missing)
    with pytest.raises(WeightsNotFoundError, match=r"nope\.pth"):
        load_sparseneus(None, SparseNeuSConfig(checkpoint=str(missing)))
    torch.save(make_checkpoint(TINY_ARCH), missing)
    assert resolve_checkpoint(str(missing)) == missing
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(missing.read_bytes()[:4000])
    with pytest.raises(CorruptCheckpointError, match=r"truncated\.pth: corrupt or truncated checkpoint"):
        load_sparseneus(truncated, SparseNeuSConfig())


def test_pickled_objects_are_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"pyramid_feature_network": {"x": Path("/")}}, path)
    with pytest.raises(CheckpointMismatchError, match="weights_only"):
        load_sparseneus(path, arch=TINY_ARCH)


def test_torchsparse_backend_is_a_clear_error_without_torchsparse(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchsparse", None)  # not importable, whether or not it is installed
    with pytest.raises(BackendUnavailableError, match="torchsparse.*build_torchsparse.sh.*backend 'dense'"):
        SparseNeuS(TINY_ARCH, backend="torchsparse")


def test_torchsparse_backend_refuses_other_versions(monkeypatch):
    fake = {name: types.ModuleType(name) for name in ("torchsparse", "torchsparse.backend", "torchsparse.nn",
                                                       "torchsparse.nn.functional")}  # fmt: skip
    fake["torchsparse"].__version__ = "2.1.0"  # [batch, x, y, z] coordinates, other kernel maps
    fake["torchsparse"].backend = fake["torchsparse.backend"]
    fake["torchsparse"].nn = fake["torchsparse.nn"]
    fake["torchsparse.nn"].functional = fake["torchsparse.nn.functional"]
    for name, module in fake.items():
        monkeypatch.setitem(sys.modules, name, module)
    with pytest.raises(BackendUnavailableError, match="needs torchsparse 1.4.*found 2.1.0"):
        SparseNeuS(TINY_ARCH, backend="torchsparse")
