"""SparseNeuS reconstruction compatible with the One-2-3-45 checkpoint (ckpt_215000.pth).

Plain PyTorch by default (``backend='dense'``); torchsparse 1.4 optionally. See
docs/sparseneus.md for the torchsparse kernel mapping and the BatchNorm modes.
"""

from .checkpoint import CheckpointMismatchError, WeightsNotFoundError, load_sparseneus, resolve_checkpoint
from .network import ONE2345_ARCH, SparseNeuS, SparseNeuSArch
from .reconstruct import reconstruct_sparseneus

__all__ = [
    "ONE2345_ARCH",
    "CheckpointMismatchError",
    "SparseNeuS",
    "SparseNeuSArch",
    "WeightsNotFoundError",
    "load_sparseneus",
    "reconstruct_sparseneus",
    "resolve_checkpoint",
]
