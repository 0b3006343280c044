"""Lite-Mono-8M encoder: a CNN-transformer hybrid producing features at 1/4, 1/8 and 1/16 scale.

Parameter names match the released Dynamo-Depth and Lite-Mono checkpoints.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import float32_layer, match_layout
from .pointwise_mlp import residual_mlp

DIMS = (64, 128, 224)
BLOCKS_PER_STAGE = (4, 4, 10)
# Dilation of each dilated-convolution block; the last block of every stage is attention.
DILATIONS = ((1, 2, 3), (1, 2, 3), (1, 2, 3, 1, 2, 3, 2, 4, 6))
HEADS = 8
EXPANSION = 6
LAYER_SCALE = 1e-6


class _BatchNormGELU(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(x))


class _StemConv(nn.Module):
    """Bias-free 3x3 convolution, optionally followed by BatchNorm and GELU."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, normalise: bool):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        if normalise:
            self.bn_gelu = _BatchNormGELU(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        return self.bn_gelu(x) if hasattr(self, "bn_gelu") else x


class _DepthwiseDilated(nn.Module):
    def __init__(self, dim: int, dilation: int):
        super().__init__()
        self.conv = nn.Conv2d(dim, dim, 3, padding=dilation, dilation=dilation, groups=dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Always float32: under bfloat16 autocast oneDNN's depthwise kernels are slower, and their
        # weight gradient changes from run to run, which would break exact resume.
        return float32_layer(self.conv, x)


class DilatedConvBlock(nn.Module):
    """Depthwise dilated conv, BatchNorm, then an inverted-bottleneck MLP, as a residual branch.

    (B, C, H, W) -> (B, C, H, W).
    """

    def __init__(self, dim: int, dilation: int, drop_rate: float):
        super().__init__()
        self.ddwconv = _DepthwiseDilated(dim, dilation)
        self.bn1 = nn.BatchNorm2d(dim)
        # Present in released checkpoints but never applied; kept so they load unchanged.
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, EXPANSION * dim)
        self.pwconv2 = nn.Linear(EXPANSION * dim, dim)
        self.gamma = nn.Parameter(LAYER_SCALE * torch.ones(dim))
        self.drop_rate = drop_rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch = self.bn1(self.ddwconv(x)).permute(0, 2, 3, 1)
        return residual_mlp(x, branch, self.pwconv1, self.pwconv2, self.gamma, self.drop_rate, self.training)


class FourierPositionEncoding(nn.Module):
    """Sine/cosine encoding of normalised (row, column) projected to `dim` channels."""

    def __init__(self, dim: int, hidden: int = 32, temperature: float = 10000.0):
        super().__init__()
        self.token_projection = nn.Conv2d(2 * hidden, dim, 1)
        self.hidden = hidden
        self.temperature = temperature

    def forward(self, height: int, width: int) -> torch.Tensor:
        """Returns (1, dim, H, W)."""
        device = self.token_projection.weight.device
        eps = 1e-6
        rows = torch.arange(1, height + 1, dtype=torch.float32, device=device) / (height + eps) * 2 * math.pi
        cols = torch.arange(1, width + 1, dtype=torch.float32, device=device) / (width + eps) * 2 * math.pi
        freq = torch.arange(self.hidden, dtype=torch.float32, device=device)
        freq = self.temperature ** (2 * torch.div(freq, 2, rounding_mode="floor") / self.hidden)

        def encode(coord: torch.Tensor) -> torch.Tensor:  # (L,) -> (L, hidden), sin and cos interleaved
            angles = coord[:, None] / freq
            return torch.stack([angles[:, 0::2].sin(), angles[:, 1::2].cos()], dim=-1).flatten(1)

        enc_rows = encode(rows)[:, None, :].expand(height, width, self.hidden)
        enc_cols = encode(cols)[None, :, :].expand(height, width, self.hidden)
        grid = torch.cat([enc_rows, enc_cols], dim=-1).permute(2, 0, 1)[None]
        return self.token_projection(grid.to(self.token_projection.weight.dtype))


class CrossCovarianceAttention(nn.Module):
    """Attention across channels (XCA): each head mixes its channels by their L2-normalised covariance."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.num_heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.qkv = nn.Linear(dim, 3 * dim, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, N, C) -> (B, N, C)."""
        batch, count, channels = tokens.shape
        qkv = self.qkv(tokens).reshape(batch, count, 3, self.num_heads, channels // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 4, 1).unbind(0)  # each (B, heads, C/heads, N)
        q = F.normalize(q, dim=-1)
        k = F.normalize(k, dim=-1)
        attention = ((q @ k.transpose(-2, -1)) * self.temperature).softmax(dim=-1)
        mixed = (attention @ v).permute(0, 3, 1, 2).reshape(batch, count, channels)
        return self.proj(mixed)


class LocalGlobalBlock(nn.Module):
    """Local-global feature interaction: XCA over all positions, then an inverted-bottleneck MLP.

    (B, C, H, W) -> (B, C, H, W).
    """

    def __init__(self, dim: int, heads: int, drop_rate: float, position_encoding: bool):
        super().__init__()
        if position_encoding:
            self.pos_embd = FourierPositionEncoding(dim)
        self.norm_xca = nn.LayerNorm(dim, eps=1e-6)
        self.gamma_xca = nn.Parameter(LAYER_SCALE * torch.ones(dim))
        self.xca = CrossCovarianceAttention(dim, heads)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, EXPANSION * dim)
        self.pwconv2 = nn.Linear(EXPANSION * dim, dim)
        self.gamma = nn.Parameter(LAYER_SCALE * torch.ones(dim))
        self.drop_rate = drop_rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        tokens = x.reshape(batch, channels, height * width).transpose(1, 2)
        if hasattr(self, "pos_embd"):
            tokens = tokens + self.pos_embd(height, width).reshape(1, channels, -1).transpose(1, 2)
        tokens = tokens + self.gamma_xca * self.xca(self.norm_xca(tokens))
        branch = self.norm(tokens).reshape(batch, height, width, channels)
        return residual_mlp(x, branch, self.pwconv1, self.pwconv2, self.gamma, self.drop_rate, self.training)


def _avg_pool_half(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x, 3, stride=2, padding=1)


class LiteMonoEncoder(nn.Module):
    """Lite-Mono-8M.

    Input (B, 3, H, W) in [0, 1]; output features [(B, 64, H/4, W/4), (B, 128, H/8, W/8),
    (B, 224, H/16, W/16)].
    """

    num_ch_enc = DIMS

    def __init__(self, drop_path_rate: float = 0.4):
        super().__init__()
        d0, d1, d2 = DIMS
        self.downsample_layers = nn.ModuleList(
            [
                nn.Sequential(
                    _StemConv(3, d0, 2, True), _StemConv(d0, d0, 1, True), _StemConv(d0, d0, 1, True)
                ),
                # Each later stage sees the previous stage's input and output plus the downsampled image.
                nn.Sequential(_StemConv(2 * d0 + 3, d1, 2, False)),
                nn.Sequential(_StemConv(2 * d1 + 3, d2, 2, False)),
            ]
        )
        self.stem2 = nn.Sequential(_StemConv(d0 + 3, d0, 2, False))

        rates = torch.linspace(0, drop_path_rate, sum(BLOCKS_PER_STAGE)).tolist()
        stages = []
        for stage, (dim, count) in enumerate(zip(DIMS, BLOCKS_PER_STAGE)):
            first = sum(BLOCKS_PER_STAGE[:stage])
            blocks = [DilatedConvBlock(dim, DILATIONS[stage][j], rates[first + j]) for j in range(count - 1)]
            blocks.append(LocalGlobalBlock(dim, HEADS, rates[first + count - 1], position_encoding=stage == 0))
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.LayerNorm, nn.BatchNorm2d)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        x = (image - 0.45) / 0.225
        half = _avg_pool_half(x)
        pyramid = [half, _avg_pool_half(half)]
        pyramid.append(_avg_pool_half(pyramid[-1]))  # the image at 1/2, 1/4, 1/8

        stem = self.downsample_layers[0](x)
        x = self.stem2(torch.cat([stem, match_layout(pyramid[0], stem)], dim=1))
        features = []
        for stage in range(3):
            if stage > 0:
                x = self.downsample_layers[stage](torch.cat([stage_input, x, match_layout(pyramid[stage], x)], dim=1))
            stage_input = x
            x = self.stages[stage](x)
            features.append(x)
        return features
