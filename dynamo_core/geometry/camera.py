"""Pinhole camera: back-projection of depth and projection into sampling grids.

Sampling grids follow `grid_sample(..., align_corners=True)`: -1 and +1 are the
centres of the first and last pixels.
"""

from __future__ import annotations

import torch

_EPS = 1e-7


def pixel_grid(height: int, width: int, *, dtype=torch.float32, device=None) -> torch.Tensor:
    """Homogeneous pixel coordinates (3, H*W): rows are x (column), y (row) and 1, row-major."""
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=dtype, device=device),
        torch.arange(width, dtype=dtype, device=device),
        indexing="ij",
    )
    return torch.stack([xs.reshape(-1), ys.reshape(-1), torch.ones_like(xs).reshape(-1)])


def backproject(depth: torch.Tensor, inv_K: torch.Tensor) -> torch.Tensor:
    """Lift every pixel to a 3D point in its camera's coordinates.

    Args:
        depth: (B, 1, H, W) metric depth along the optical axis.
        inv_K: (B, 4, 4) inverse intrinsics at this resolution.
    Returns:
        (B, 4, H*W) homogeneous points.
    """
    batch, _, height, width = depth.shape
    rays = inv_K[:, :3, :3] @ pixel_grid(height, width, dtype=depth.dtype, device=depth.device)
    points = depth.reshape(batch, 1, -1) * rays
    return torch.cat([points, torch.ones_like(points[:, :1])], dim=1)


def transform_points(T: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Apply (B, 4, 4) transforms to (B, 4, N) homogeneous points."""
    return T @ points


def project(points: torch.Tensor, K: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Project camera-frame points into a normalised sampling grid.

    Args:
        points: (B, 4, H*W) homogeneous points in the camera's coordinates.
        K: (B, 4, 4) intrinsics at this resolution.
    Returns:
        (B, H, W, 2) grid in [-1, 1] for `grid_sample(..., align_corners=True)`.
    """
    pixels = K[:, :3, :] @ points
    xy = pixels[:, :2] / (pixels[:, 2:3] + _EPS)
    scale = torch.tensor([width - 1, height - 1], dtype=xy.dtype, device=xy.device)
    grid = xy.reshape(-1, 2, height, width).permute(0, 2, 3, 1) / scale
    return (grid - 0.5) * 2


def grid_camera(K: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The camera matrix that takes 3D points straight to sampling-grid coordinates.

    Composes the intrinsics with the pixel-to-grid normalisation (and the epsilon of `project`),
    so that one matrix product and one division give the grid: for M = grid_camera(K) @ T and
    homogeneous p, (M @ p)[:2] / (M @ p)[2] equals project(T @ p, K) to float rounding.

    Args:
        K: (B, 4, 4) intrinsics at this resolution.
    Returns:
        (B, 3, 4).
    """
    camera = K[:, :3, :].clone()
    camera[:, 2, 3] += _EPS  # the depth row gives z + eps for a point with w = 1
    to_grid = torch.tensor(
        [[2 / (width - 1), 0, -1], [0, 2 / (height - 1), -1], [0, 0, 1]], dtype=K.dtype, device=K.device
    )
    return to_grid @ camera


def project_to_grid(points: torch.Tensor, camera: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Project 3D points with a `grid_camera` matrix (possibly composed with a pose).

    Faster than `project`: no homogeneous row, one fused matrix product, and the grid is returned
    as a view (grid_sample reads it as fast as a contiguous one).

    Args:
        points: (B, 3, H*W) points, not homogeneous.
        camera: (B, 3, 4) from `grid_camera`, or its product with a (B, 4, 4) pose.
    Returns:
        (B, H, W, 2) grid for `grid_sample(..., align_corners=True)`.
    """
    pixels = torch.baddbmm(camera[:, :, 3:], camera[:, :, :3], points)
    grid = _PerspectiveDivide.apply(pixels)
    return grid.reshape(-1, 2, height, width).permute(0, 2, 3, 1)


class _PerspectiveDivide(torch.autograd.Function):
    """(B, 3, N) -> (B, 2, N): the first two rows over the third, with the gradient built in one buffer
    (autograd would zero-fill and copy it for each slice)."""

    @staticmethod
    def forward(ctx, pixels: torch.Tensor) -> torch.Tensor:
        inv_depth = pixels[:, 2:3].reciprocal()
        grid = pixels[:, :2] * inv_depth
        ctx.save_for_backward(grid, inv_depth)
        return grid

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grid, inv_depth = ctx.saved_tensors
        result = grad.new_empty(grad.shape[0], 3, grad.shape[2])
        scaled = torch.mul(grad, inv_depth, out=result[:, :2])  # d(x/z)/dx = 1/z
        torch.sum(scaled * grid, dim=1, out=result[:, 2]).neg_()  # d(x/z)/dz = -(x/z)/z
        return result
