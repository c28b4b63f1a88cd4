"""Loading the One-2-3-45 SparseNeuS checkpoint (ckpt_215000.pth), strictly.

Layout: {'optimizer', 'iter_step', 'val_step', 'pyramid_feature_network',
'sdf_network_lod0', 'variance_network_lod0', 'rendering_network_lod0'}, each network
entry a plain state_dict (test/data/one2345_sparseneus_keys.json). Loaded with
``torch.load(weights_only=True)``: the file holds tensors, ints, floats, bools,
None, tuples and dicts only (Adam's state_dict included), which that loader accepts.

Tolerated, exactly: the three non-network entries and the nine InPlaceABN
``num_batches_tracked`` buffers that inplace_abn 1.0.x did not write. Anything
else missing, unexpected or misshapen raises CheckpointMismatchError listing every
difference (the original swallows such errors and keeps random weights).
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import torch

from ...config import SPARSENEUS_ENV, SparseNeuSConfig
from .network import ONE2345_ARCH, SparseNeuS, SparseNeuSArch

HF_LOCATION = "Hugging Face repo One-2-3-45/code, file SparseNeuS_demo_v1/exp/lod0/checkpoints/ckpt_215000.pth"
NON_NETWORK_ENTRIES = ("optimizer", "iter_step", "val_step")
TOLERATED_MISSING = frozenset(
    [
        f"pyramid_feature_network.conv{b}.{i}.bn.num_batches_tracked"
        for b, n in ((0, 2), (1, 3), (2, 3))
        for i in range(n)
    ]
    + ["sdf_network_lod0.compress_layer.bn.num_batches_tracked"]
)


class WeightsNotFoundError(FileNotFoundError):
    """The checkpoint is not configured or not at the given path; the message says how to get it."""


class CorruptCheckpointError(ValueError):
    """The checkpoint file cannot be read (truncated, not a PyTorch file)."""


class CheckpointMismatchError(ValueError):
    """The checkpoint's keys or shapes differ from the network's; ``differences`` lists them."""

    def __init__(self, path, differences: list[str]) -> None:
        self.differences = differences
        lines = "\n  ".join(differences)
        super().__init__(
            f"{path}: not a One-2-3-45 SparseNeuS lod0 checkpoint ({len(differences)} differences):\n  {lines}"
        )


def resolve_checkpoint(path: str | os.PathLike | None) -> Path:
    """The checkpoint file configured as ``sparseneus.checkpoint`` (config.resolve_environment already
    filled it from $ONE2345_SPARSENEUS when empty); WeightsNotFoundError says how to get it."""
    if not path:
        raise WeightsNotFoundError(
            f"no SparseNeuS checkpoint configured: pass --sparseneus PATH, set sparseneus.checkpoint or "
            f"${SPARSENEUS_ENV}. Download ckpt_215000.pth from the {HF_LOCATION}."
        )
    p = Path(path).expanduser()
    if not p.is_file():
        raise WeightsNotFoundError(
            f"SparseNeuS checkpoint not found: {p}. Download ckpt_215000.pth from the {HF_LOCATION}."
        )
    return p


def read_checkpoint(path: str | os.PathLike, allow_pickle: bool = False) -> dict:
    """The checkpoint dict, loaded on the CPU with weights_only=True unless ``allow_pickle``."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=not allow_pickle)
    except pickle.UnpicklingError as exc:
        raise CheckpointMismatchError(
            path,
            [f"refused by torch.load(weights_only=True): {str(exc).splitlines()[0]} "
             "(set sparseneus.allow_pickle only for a file you trust)"],
        ) from exc
    except Exception as exc:  # torch raises RuntimeError, EOFError, ... for truncated or foreign files
        raise CorruptCheckpointError(f"{path}: corrupt or truncated checkpoint, torch.load failed: "
                                     f"{type(exc).__name__}: {exc}. Download it again ({HF_LOCATION}).") from exc
    if not isinstance(ckpt, dict):
        raise CheckpointMismatchError(path, [f"top level is a {type(ckpt).__name__}, expected a dict"])
    return ckpt


def checkpoint_differences(model: SparseNeuS, ckpt: dict) -> list[str]:
    """Every difference between ``ckpt`` and the layout ``model`` expects (empty = loadable)."""
    diffs: list[str] = []
    modules = SparseNeuS.CHECKPOINT_MODULES
    for key in ckpt:
        if key not in modules and key not in NON_NETWORK_ENTRIES:
            diffs.append(f"unexpected top-level entry '{key}'")
    for name in modules:
        if name not in ckpt:
            diffs.append(f"missing top-level entry '{name}'")
            continue
        sd = ckpt[name]
        if not isinstance(sd, dict):
            diffs.append(f"'{name}' is a {type(sd).__name__}, expected a state_dict")
            continue
        expected = getattr(model, name).state_dict()
        for key, ref in expected.items():
            full = f"{name}.{key}"
            if key not in sd:
                if full not in TOLERATED_MISSING:
                    diffs.append(f"missing key {full} {list(ref.shape)}")
            elif not isinstance(sd[key], torch.Tensor):
                diffs.append(f"{full} is a {type(sd[key]).__name__}, expected a tensor {list(ref.shape)}")
            elif tuple(sd[key].shape) != tuple(ref.shape):
                diffs.append(f"shape of {full}: checkpoint {list(sd[key].shape)}, network {list(ref.shape)}")
        for key in sd:
            if key not in expected:
                diffs.append(f"unexpected key {name}.{key}")
    return diffs


def load_state(model: SparseNeuS, ckpt: dict, path="checkpoint") -> SparseNeuS:
    """Copy ``ckpt``'s weights into ``model`` after the strict check."""
    diffs = checkpoint_differences(model, ckpt)
    if diffs:
        raise CheckpointMismatchError(path, diffs)
    for name in SparseNeuS.CHECKPOINT_MODULES:
        module = getattr(model, name)
        state = module.state_dict()
        state.update({k: v.to(state[k].dtype) for k, v in ckpt[name].items()})
        module.load_state_dict(state, strict=True)
    return model


def load_sparseneus(
    path: str | os.PathLike | None = None,
    cfg: SparseNeuSConfig | None = None,
    arch: SparseNeuSArch = ONE2345_ARCH,
) -> SparseNeuS:
    """The network with the checkpoint's weights, configured from ``cfg`` (BN mode, backend).

    ``path`` defaults to cfg.checkpoint.
    """
    cfg = cfg or SparseNeuSConfig()
    p = resolve_checkpoint(path or cfg.checkpoint or None)
    model = SparseNeuS(arch, batchnorm=cfg.batchnorm, backend=cfg.backend)
    return load_state(model, read_checkpoint(p, allow_pickle=cfg.allow_pickle), path=p)
