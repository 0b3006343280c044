"""Image similarity and edge-aware smoothness."""

from __future__ import annotations

import torch
import torch.nn.functional as F

_C1 = 0.01**2
_C2 = 0.03**2


def window_sums3(x: torch.Tensor) -> torch.Tensor:
    """Sum over every 3x3 window of the last two dimensions: (..., H + 2, W + 2) -> (..., H, W).

    Two separable sums of shifted views. They run on a 3-D view: shifted views of a 5-D tensor are
    about 3x slower, because the dimensions do not coalesce.
    """
    flat = x.reshape(-1, *x.shape[-2:])
    rows = torch.add(flat[..., :-2], flat[..., 1:-1]).add_(flat[..., 2:])
    sums = torch.add(rows[..., :-2, :], rows[..., 1:-1, :]).add_(rows[..., 2:, :])
    return sums.reshape(*x.shape[:-2], *sums.shape[-2:])


class _BoxMean3(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return window_sums3(x) / 9

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        # Each input pixel feeds the 3x3 outputs around it: the same window sum over the zero-padded gradient.
        return window_sums3(F.pad(grad, (2, 2, 2, 2))) / 9


def box_mean3(x: torch.Tensor) -> torch.Tensor:
    """Mean over every 3x3 window: (B, C, H + 2, W + 2) -> (B, C, H, W).

    Equals `avg_pool2d(x, 3, 1)` to float rounding. Separable sums of shifted views, with a backward
    of the same form, run several times faster on the CPU than average pooling.
    """
    return _BoxMean3.apply(x)


def _bilinear_taps(factor: int) -> list[tuple[int, float]]:
    """For each output phase k of an upsampling by `factor` (align_corners=False): the offset of its lower
    source pixel (-1 or 0, relative to the input pixel it lies in) and the weight of the upper one."""
    taps = []
    for phase in range(factor):
        offset = (phase + 0.5) / factor - 0.5
        taps.append((-1, offset + 1) if offset < 0 else (0, offset))
    return taps


def _bilinear_adjoint(grad: torch.Tensor, factor: int, dim: int) -> torch.Tensor:
    """Transpose of bilinear upsampling by `factor` along `dim` (-1 or -2): (..., factor * n, ...) -> (..., n, ...).

    Upsampling reads a border-replicated input, so the gradient is gathered into a buffer one pixel
    wider on each side whose ends are then folded back onto the first and last pixels.
    """
    size = grad.shape[dim] // factor
    shape = list(grad.shape)
    shape[dim] = size + 2
    padded = grad.new_zeros(shape)
    for phase, (offset, upper) in enumerate(_bilinear_taps(factor)):
        every = slice(phase, None, factor)
        part = grad[..., every] if dim == -1 else grad[..., every, :]
        padded.narrow(dim, 1 + offset, size).add_(part, alpha=1 - upper)
        padded.narrow(dim, 2 + offset, size).add_(part, alpha=upper)
    result = padded.narrow(dim, 1, size).clone()
    result.narrow(dim, 0, 1).add_(padded.narrow(dim, 0, 1))
    result.narrow(dim, size - 1, 1).add_(padded.narrow(dim, size + 1, 1))
    return result


class _UpsampleBilinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, factor: int) -> torch.Tensor:
        ctx.factor = factor
        return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        rows = _bilinear_adjoint(grad, ctx.factor, -2)
        return _bilinear_adjoint(rows, ctx.factor, -1), None


def upsample_bilinear(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Bilinear upsampling by an integer factor: (B, C, h, w) -> (B, C, factor h, factor w).

    The same as `F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)`, with a
    backward written as strided sums; torch's CPU backward runs on one plane per thread and is
    several times slower. For float32 and float64.
    """
    if factor == 1:
        return x
    return _UpsampleBilinear.apply(x, factor)


def ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Structural dissimilarity (1 - SSIM) / 2 over 3x3 windows with reflection padding.

    The plain formula; `photometric.PhotometricError` computes the same faster for training.

    Args:
        x, y: (B, C, H, W) images in [0, 1].
    Returns:
        (B, C, H, W) values in [0, 1]; 0 where the images agree.
    """
    x = F.pad(x, (1, 1, 1, 1), mode="reflect")
    y = F.pad(y, (1, 1, 1, 1), mode="reflect")
    mu_x, mu_y = box_mean3(x), box_mean3(y)
    sigma_x = box_mean3(x**2) - mu_x**2
    sigma_y = box_mean3(y**2) - mu_y**2
    sigma_xy = box_mean3(x * y) - mu_x * mu_y
    numerator = (2 * mu_x * mu_y + _C1) * (2 * sigma_xy + _C2)
    denominator = (mu_x**2 + mu_y**2 + _C1) * (sigma_x + sigma_y + _C2)
    return torch.clamp((1 - numerator / denominator) / 2, 0, 1)


def edge_weights(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """How much smoothness counts between neighbours: exp(-mean colour difference).

    Args:
        image: (B, 3, H, W) guide image.
    Returns:
        across columns (B, 1, H, W - 1), across rows (B, 1, H - 1, W).
    """
    across_x = torch.exp(-(image[:, :, :, :-1] - image[:, :, :, 1:]).abs().mean(1, keepdim=True))
    across_y = torch.exp(-(image[:, :, :-1, :] - image[:, :, 1:, :]).abs().mean(1, keepdim=True))
    return across_x, across_y


def edge_aware_smoothness(
    field: torch.Tensor,
    image: torch.Tensor | None = None,
    weights: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Mean absolute first difference of `field`, down-weighted across image edges.

    Args:
        field: (B, C, H, W) quantity to smooth (disparity, flow, mask).
        image: (B, 3, H, W) guide image, or None for plain smoothness.
        weights: `edge_weights(image)`, when one image guides several fields.
    Returns:
        scalar: mean |dx| + mean |dy|.
    """
    dx = (field[:, :, :, :-1] - field[:, :, :, 1:]).abs()
    dy = (field[:, :, :-1, :] - field[:, :, 1:, :]).abs()
    if weights is None and image is not None:
        weights = edge_weights(image)
    if weights is not None:
        dx = dx * weights[0]
        dy = dy * weights[1]
    return dx.mean() + dy.mean()
