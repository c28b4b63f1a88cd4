"""The matches of one view pair: what every matcher returns and the estimator consumes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class PairMatches:
    """Matches between views ``i`` and ``j`` (i < j).

    pts_i, pts_j: float64 [M, 2] pixel coordinates (u, v) in the views (pixel
    centres at integers). weight: float64 [M] in (0, 1], the match quality
    (SIFT: 1 - Lowe ratio; LoFTR: its confidence).
    """

    i: int
    j: int
    pts_i: np.ndarray
    pts_j: np.ndarray
    weight: np.ndarray

    def __len__(self) -> int:
        return len(self.weight)

    def oriented(self, a: int) -> tuple[np.ndarray, np.ndarray]:
        """(points in view ``a``, points in the other view)."""
        return (self.pts_i, self.pts_j) if a == self.i else (self.pts_j, self.pts_i)
