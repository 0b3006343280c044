"""Rigid transforms from the pose network's axis-angle and translation outputs.

Poses are named by their frames: `T_src_tgt` maps points in target-camera
coordinates into source-camera coordinates.
"""

from __future__ import annotations

import torch

_EPS = 1e-7


def axis_angle_to_matrix(axis_angle: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula.

    Args:
        axis_angle: (B, 1, 3) rotation vectors; the norm is the angle in radians.
    Returns:
        (B, 4, 4) homogeneous rotation matrices.
    """
    vec = axis_angle.reshape(-1, 3)
    angle = vec.norm(dim=1, keepdim=True)  # (B, 1)
    axis = vec / (angle + _EPS)
    cos, sin = torch.cos(angle), torch.sin(angle)
    x, y, z = axis.unbind(dim=1)
    x, y, z = x[:, None], y[:, None], z[:, None]
    one_minus_cos = 1 - cos
    zero = torch.zeros_like(x)
    rows = [
        [x * x * one_minus_cos + cos, x * y * one_minus_cos - z * sin, z * x * one_minus_cos + y * sin, zero],
        [x * y * one_minus_cos + z * sin, y * y * one_minus_cos + cos, y * z * one_minus_cos - x * sin, zero],
        [z * x * one_minus_cos - y * sin, y * z * one_minus_cos + x * sin, z * z * one_minus_cos + cos, zero],
        [zero, zero, zero, torch.ones_like(x)],
    ]
    return torch.stack([torch.cat(row, dim=1) for row in rows], dim=1)


def translation_matrix(translation: torch.Tensor) -> torch.Tensor:
    """(B, 1, 3) or (B, 3) translation to (B, 4, 4) homogeneous matrix."""
    t = translation.reshape(-1, 3)
    eye = torch.eye(4, dtype=t.dtype, device=t.device).expand(t.shape[0], 4, 4)
    column = torch.cat([t, torch.zeros_like(t[:, :1])], dim=1)[:, :, None]  # (B, 4, 1)
    last = torch.zeros(4, 1, dtype=t.dtype, device=t.device)
    last[3] = 1
    return torch.cat([eye[:, :, :3], column + last], dim=2)


def pose_vec_to_matrix(
    axis_angle: torch.Tensor, translation: torch.Tensor, invert: bool = False
) -> torch.Tensor:
    """Build a 4x4 transform from the pose network's outputs.

    Without `invert` the result is T(t) @ R. With `invert` it is the exact inverse,
    R^T @ T(-t); the pose network's output is used in this inverted form.

    Args:
        axis_angle: (B, 1, 3).
        translation: (B, 1, 3).
    Returns:
        (B, 4, 4).
    """
    rotation = axis_angle_to_matrix(axis_angle)
    if invert:
        return rotation.transpose(1, 2) @ translation_matrix(-translation)
    return translation_matrix(translation) @ rotation
