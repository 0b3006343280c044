"""Conversion between the depth network's sigmoid output and metric depth."""

from __future__ import annotations

import torch

MIN_DEPTH = 0.1
MAX_DEPTH = 100.0


def disp_to_depth(
    disp: torch.Tensor, min_depth: float = MIN_DEPTH, max_depth: float = MAX_DEPTH
) -> tuple[torch.Tensor, torch.Tensor]:
    """Map a sigmoid output in [0, 1] linearly onto disparity in [1/max_depth, 1/min_depth].

    Args:
        disp: (B, 1, H, W) network output.
    Returns:
        (scaled_disp, depth), both (B, 1, H, W), with depth = 1 / scaled_disp.
    """
    lo, hi = 1.0 / max_depth, 1.0 / min_depth
    scaled = lo + (hi - lo) * disp
    return scaled, 1.0 / scaled


def depth_to_disp(
    depth: torch.Tensor, min_depth: float = MIN_DEPTH, max_depth: float = MAX_DEPTH
) -> torch.Tensor:
    """Inverse of `disp_to_depth`: (B, 1, H, W) metric depth to the network's [0, 1] output."""
    lo, hi = 1.0 / max_depth, 1.0 / min_depth
    return (1.0 / depth - lo) / (hi - lo)
