"""Image similarity and edge-aware smoothness."""

from __future__ import annotations

import torch
import torch.nn.functional as F

_C1 = 0.01**2
_C2 = 0.03**2


def ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Structural dissimilarity (1 - SSIM) / 2 over 3x3 windows with reflection padding.

    Args:
        x, y: (B, C, H, W) images in [0, 1].
    Returns:
        (B, C, H, W) values in [0, 1]; 0 where the images agree.
    """
    x = F.pad(x, (1, 1, 1, 1), mode="reflect")
    y = F.pad(y, (1, 1, 1, 1), mode="reflect")
    mu_x = F.avg_pool2d(x, 3, 1)
    mu_y = F.avg_pool2d(y, 3, 1)
    sigma_x = F.avg_pool2d(x**2, 3, 1) - mu_x**2
    sigma_y = F.avg_pool2d(y**2, 3, 1) - mu_y**2
    sigma_xy = F.avg_pool2d(x * y, 3, 1) - mu_x * mu_y
    numerator = (2 * mu_x * mu_y + _C1) * (2 * sigma_xy + _C2)
    denominator = (mu_x**2 + mu_y**2 + _C1) * (sigma_x + sigma_y + _C2)
    return torch.clamp((1 - numerator / denominator) / 2, 0, 1)


def edge_aware_smoothness(field: torch.Tensor, image: torch.Tensor | None = None) -> torch.Tensor:
    """Mean absolute first difference of `field`, down-weighted across image edges.

    Args:
        field: (B, C, H, W) quantity to smooth (disparity, flow, mask).
        image: (B, 3, H, W) guide image, or None for plain smoothness.
    Returns:
        scalar: mean |dx| + mean |dy|.
    """
    dx = (field[:, :, :, :-1] - field[:, :, :, 1:]).abs()
    dy = (field[:, :, :-1, :] - field[:, :, 1:, :]).abs()
    if image is not None:
        dx = dx * torch.exp(-(image[:, :, :, :-1] - image[:, :, :, 1:]).abs().mean(1, keepdim=True))
        dy = dy * torch.exp(-(image[:, :, :-1, :] - image[:, :, 1:, :]).abs().mean(1, keepdim=True))
    return dx.mean() + dy.mean()
