"""The result of predicting a sequence (no torch needed to read it)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .geometry import chain_poses


@dataclass
class SequencePrediction:
    """What `predict_sequence` returns; lists have one entry per frame (None where not predicted)."""

    depth: list[np.ndarray]
    """float32 (H, W) per frame, at its own size."""
    mask: list[np.ndarray | None] = field(default_factory=list)
    """float32 (H, W) motion probability; None for the first and last frame, or where sizes differ."""
    flow: list[np.ndarray | None] = field(default_factory=list)
    """float32 (H, W, 3) independent 3D flow towards the next frame."""
    relative_poses: list[np.ndarray | None] = field(default_factory=list)
    """(4, 4) T_i_(i+1) for each consecutive pair; None where the two sizes differ."""

    @property
    def trajectory(self) -> np.ndarray:
        """(N, 4, 4) camera-to-first-frame poses; NaN after a pair without a pose."""
        poses = [np.eye(4)]
        for T in self.relative_poses:
            poses.append(poses[-1] @ T if T is not None else np.full((4, 4), np.nan))
        return np.stack(poses) if self.relative_poses else chain_poses([])
