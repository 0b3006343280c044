"""Decoders: disparity (Monodepth2 and Lite-Mono), ego-motion and the motion field / mask.

Parameter names match the released checkpoints.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import Conv3x3, ConvBlock, float32_layer, match_layout


class DepthDecoder(nn.Module):
    """Monodepth2 U-Net decoder with nearest upsampling.

    Input: five ResNet features. Output: {scale: (B, 1, H / 2**scale, W / 2**scale)} sigmoid disparity.
    """

    num_ch_dec = (16, 32, 64, 128, 256)

    def __init__(self, num_ch_enc: Sequence[int], scales: Sequence[int] = (0, 1, 2, 3)):
        super().__init__()
        self.scales = tuple(scales)
        dec = self.num_ch_dec
        for i in range(4, -1, -1):
            in_ch = num_ch_enc[-1] if i == 4 else dec[i + 1]
            setattr(self, f"upconv_{i}_0", ConvBlock(in_ch, dec[i]))
            skip = num_ch_enc[i - 1] if i > 0 else 0
            setattr(self, f"upconv_{i}_1", ConvBlock(dec[i] + skip, dec[i]))
        for s in self.scales:
            setattr(self, f"dispconv_{s}", Conv3x3(dec[s], 1))

    def forward(self, features: list[torch.Tensor]) -> dict[int, torch.Tensor]:
        disparities = {}
        x = features[-1]
        for i in range(4, -1, -1):
            x = F.interpolate(getattr(self, f"upconv_{i}_0")(x), scale_factor=2, mode="nearest")
            if i > 0:
                x = torch.cat([x, features[i - 1]], dim=1)
            x = getattr(self, f"upconv_{i}_1")(x)
            if i in self.scales:
                disparities[i] = torch.sigmoid(getattr(self, f"dispconv_{i}")(x))
        return disparities


class LiteDepthDecoder(nn.Module):
    """Lite-Mono decoder with bilinear upsampling; each disparity is upsampled once more.

    Input: three Lite-Mono features. Output: {scale: (B, 1, H / 2**scale, W / 2**scale)}.
    """

    def __init__(self, num_ch_enc: Sequence[int], scales: Sequence[int] = (0, 1, 2)):
        super().__init__()
        self.scales = tuple(scales)
        dec = [c // 2 for c in num_ch_enc]
        self._index = {}
        layers = []
        for i in range(2, -1, -1):
            in_ch = num_ch_enc[-1] if i == 2 else dec[i + 1]
            self._index[("up", i, 0)] = len(layers)
            layers.append(ConvBlock(in_ch, dec[i]))
            skip = num_ch_enc[i - 1] if i > 0 else 0
            self._index[("up", i, 1)] = len(layers)
            layers.append(ConvBlock(dec[i] + skip, dec[i]))
        for s in self.scales:
            self._index[("disp", s)] = len(layers)
            layers.append(Conv3x3(dec[s], 1))
        # One flat list: its order defines the checkpoint's `decoder.N` names.
        self.decoder = nn.ModuleList(layers)

    def _layer(self, *key) -> nn.Module:
        return self.decoder[self._index[key]]

    def forward(self, features: list[torch.Tensor]) -> dict[int, torch.Tensor]:
        disparities = {}
        x = features[-1]
        for i in range(2, -1, -1):
            x = F.interpolate(self._layer("up", i, 0)(x), scale_factor=2, mode="bilinear", align_corners=False)
            if i > 0:
                x = torch.cat([x, features[i - 1]], dim=1)
            x = self._layer("up", i, 1)(x)
            if i in self.scales:
                logits = F.interpolate(self._layer("disp", i)(x), scale_factor=2, mode="bilinear", align_corners=False)
                disparities[i] = torch.sigmoid(logits)
        return disparities


class PoseDecoder(nn.Module):
    """Ego-motion head: deepest feature -> axis-angle and translation for each predicted frame.

    Input: a list holding one feature list (only its last, (B, C, h, w), is used).
    Output: axis_angle, translation, each (B, frames, 1, 3).
    """

    def __init__(self, num_ch_enc: Sequence[int], num_input_features: int = 1, num_frames: int = 2):
        super().__init__()
        self.num_frames = num_frames
        self.squeeze = nn.Conv2d(num_ch_enc[-1], 256, 1)
        self.pose0 = nn.Conv2d(num_input_features * 256, 256, 3, 1, 1)
        self.pose1 = nn.Conv2d(256, 256, 3, 1, 1)
        self.pose2 = nn.Conv2d(256, 6 * num_frames, 1)
        # The released checkpoints also store the same four layers under `net.N`.
        self.net = nn.ModuleList([self.squeeze, self.pose0, self.pose1, self.pose2])

    def forward(self, feature_lists: list[list[torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([F.relu(self.squeeze(features[-1])) for features in feature_lists], dim=1)
        x = F.relu(self.pose0(x))
        x = F.relu(self.pose1(x))
        x = self.pose2(x).mean(dim=(2, 3))
        x = 0.01 * x.reshape(-1, self.num_frames, 1, 6)
        return x[..., :3], x[..., 3:]


class MotionDecoder(nn.Module):
    """Coarse-to-fine motion head conditioned on ego-motion.

    Starts from a 1x1 map computed from the ego-motion and refines it at every level of
    the motion encoder's pyramid, ending at the input resolution. With `out_dim=3` it
    predicts the complete 3D flow; with `out_dim=1`, the logit that a pixel moves independently.

    Input: features [(B, 9, H, W), (B, 64, H/2, W/2), ..., (B, 512, H/32, W/32)] and
    ego_motion (B, 6, 1, 1) = (translation, axis-angle).
    Output: {scale: (B, out_dim, H / 2**scale, W / 2**scale)}.
    """

    def __init__(self, num_ch_enc: Sequence[int], scales: Sequence[int], num_input_images: int = 3, out_dim: int = 3):
        super().__init__()
        self.scales = tuple(scales)
        self.out_dim = out_dim
        self.level_channels = list(num_ch_enc)[::-1] + [3 * num_input_images]
        self._residual_translation = nn.Conv2d(6, out_dim, 1)
        for level, channels in enumerate(self.level_channels):
            setattr(
                self,
                f"refine_motion_conv{level}",
                nn.Sequential(
                    nn.Conv2d(channels + out_dim, channels, 3, padding=1),
                    nn.Conv2d(channels, channels, 3, padding=1),
                ),
            )
            setattr(self, f"refine_motion_redu{level}", nn.Conv2d(2 * channels, out_dim, 1))

    @torch.no_grad()
    def start_from_ego_translation(self) -> None:
        """Make the head output the ego translation at every pixel (out_dim=3 only).

        The coarse field maps the input translation through unchanged (0.01 * 100 * t = t) and every
        refinement starts at zero, so that the refinements learn only what a rigid translation misses.
        """
        if self.out_dim != 3:
            raise ValueError("only the 3D flow head can start from the ego translation")
        start = self._residual_translation
        start.weight.zero_()
        start.weight[:, :3, 0, 0] = torch.eye(3)
        start.bias.zero_()
        for level in range(len(self.level_channels)):
            reduce = getattr(self, f"refine_motion_redu{level}")
            reduce.weight.zero_()
            reduce.bias.zero_()

    def forward(self, features: list[torch.Tensor], ego_motion: torch.Tensor) -> dict[int, torch.Tensor]:
        levels = len(self.level_channels)
        wanted = {levels - 1 - s: s for s in self.scales}
        field = float32_layer(self._residual_translation, 100 * ego_motion)
        fields = {}
        for level in range(levels):
            feature = features[-1 - level]
            upsampled = F.interpolate(field, size=feature.shape[-2:], mode="bilinear", align_corners=False)
            first, second = getattr(self, f"refine_motion_conv{level}")
            hidden1 = first(torch.cat([match_layout(upsampled, feature), feature], dim=1))
            hidden2 = second(hidden1)
            field = float32_layer(getattr(self, f"refine_motion_redu{level}"), torch.cat([hidden1, hidden2], dim=1)) + upsampled
            if level in wanted:
                fields[wanted[level]] = 0.01 * field
        return fields
