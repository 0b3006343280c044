"""Small building blocks shared by the decoders.

Attribute names are part of the checkpoint format and must not change.
"""

from __future__ import annotations

import torch
from torch import nn


def float32_layer(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Run `layer` in float32 even under bfloat16 autocast (a float64 input stays float64).

    Used for output layers, whose small values would otherwise be rounded to 8 significant bits
    (the motion field sums one such output per level), and for layers whose bfloat16 kernels
    are slow or not reproducible.
    """
    with torch.autocast(x.device.type, enabled=False):
        return layer(x if x.dtype == torch.float64 else x.float())


def match_layout(x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """`x` in the dtype and memory layout of `reference`, so that concatenating the two costs one copy.

    Small side inputs (a downsampled image, an upsampled motion field) are float32 in the default
    layout, while features may be bfloat16 (autocast) and channels-last (CPU); a concatenation of
    mixed inputs comes out float32 in the default layout and is converted again by the next layer.
    """
    channels_last = not reference.is_contiguous() and reference.is_contiguous(memory_format=torch.channels_last)
    return x.to(reference.dtype, memory_format=torch.channels_last if channels_last else torch.contiguous_format)


class Conv3x3(nn.Module):
    """3x3 convolution over a reflection-padded input: (B, C_in, H, W) -> (B, C_out, H, W)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(int(in_channels), int(out_channels), 3, padding=1, padding_mode="reflect")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class _ELU(torch.autograd.Function):
    """ELU (alpha 1) built on exp: the CPU kernels of torch's ELU use an unvectorised expm1 and
    run about five times slower. Agrees with F.elu to float rounding (absolute, near 0)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        out = x.clamp(min=0) + torch.exp(x.clamp(max=0)) - 1
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (out,) = ctx.saved_tensors
        return grad * (out.clamp(max=0) + 1)  # 1 where x > 0, exp(x) elsewhere


def elu(x: torch.Tensor) -> torch.Tensor:
    """ELU with alpha 1: x for x > 0, exp(x) - 1 otherwise; any shape."""
    return _ELU.apply(x)


def elu_in_place(x: torch.Tensor) -> torch.Tensor:
    """elu(x) written into `x`, by the same operations in the same order (so the same values), with one
    temporary instead of four: for inference, where `x` is a layer's fresh output."""
    negative = x.clamp(max=0).exp_()
    return x.clamp_(min=0).add_(negative).sub_(1)


def in_inference() -> bool:
    """No autograd and no tracing (ONNX export records the plain form)."""
    return not (torch.is_grad_enabled() or torch.jit.is_tracing() or torch.compiler.is_compiling()
                or torch.onnx.is_in_onnx_export())


class ConvBlock(nn.Module):
    """Conv3x3 followed by ELU."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = Conv3x3(in_channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return elu_in_place(out) if in_inference() else elu(out)


def drop_path(x: torch.Tensor, rate: float, training: bool) -> torch.Tensor:
    """Stochastic depth: zero whole samples of a residual branch with probability `rate`."""
    if rate == 0.0 or not training:
        return x
    keep = 1.0 - rate
    mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
    return x * mask / keep
