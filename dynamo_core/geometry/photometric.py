"""The photometric error (SSIM and L1) of many predictions against one target, with a hand-written backward.

Written in window sums rather than means, with fused multiply-adds and the gradient derived by hand,
it makes far fewer passes over full-resolution maps than autograd through `image.ssim`: forward and
backward of a (2, 3, 192, 640) prediction take about a third less time (`benchmarks/loss_ops.py`).
The loss evaluates it once per source frame and scale, so it is a large share of a training step.

Notation for one 3x3 window (sums over its 9 pixels; x the prediction, y the target):
    s1 = sum x, s2 = sum x^2, s12 = sum x*y; mu_x = s1 / 9
    A = 2 mu_x mu_y + C1        B = 2 sigma_xy + C2
    C = mu_x^2 + mu_y^2 + C1    D = sigma_x + sigma_y + C2
    dissimilarity = clamp((1 - A B / (C D)) / 2, 0, 1)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .image import _C1, _C2, box_mean3, window_sums3

_PAD = (1, 1, 1, 1)


class _TargetStatistics:
    """Window statistics of the fixed target, in the forms the error needs."""

    def __init__(self, target: torch.Tensor):
        self.target = target
        padded = F.pad(target, _PAD, mode="reflect")
        mu = box_mean3(padded)
        sigma = box_mean3(padded**2) - mu**2
        self.padded_2_9 = padded * (2 / 9)  # so that the window sum of x * padded_2_9 is 2 mu_xy
        self.mu_2_9 = mu * (2 / 9)  # so that A = s1 mu_2_9 + C1
        self.mu_sq_c1 = mu**2 + _C1
        self.sigma_c2 = sigma + _C2


class _Photometric(torch.autograd.Function):
    @staticmethod
    def forward(ctx, pred: torch.Tensor, stats: _TargetStatistics, ssim_weight: float) -> torch.Tensor:
        batch, channels, height, width = pred.shape
        stacked = pred.new_empty((3, batch, channels, height + 2, width + 2))
        padded = torch.ops.aten.reflection_pad2d.out(pred, list(_PAD), out=stacked[0])
        torch.mul(padded, padded, out=stacked[1])
        torch.mul(padded, stats.padded_2_9, out=stacked[2])
        s1, s2, s12 = window_sums3(stacked)  # s12 holds 2/9 of the window sum of x*y

        a = torch.mul(s1, stats.mu_2_9).add_(_C1)
        b = torch.addcmul(s12, s1, stats.mu_2_9, value=-1).add_(_C2)
        c = torch.addcmul(stats.mu_sq_c1, s1, s1, value=1 / 81)
        d = torch.addcmul(stats.sigma_c2, s1, s1, value=-1 / 81).add_(s2, alpha=1 / 9)
        inv_cd = torch.mul(c, d).reciprocal_()
        ratio = torch.mul(a, b).mul_(inv_cd)
        # structure = clamp((1 - ratio) / 2, 0, 1); the clamp passes the gradient where |ratio| <= 1.
        inv_cd.mul_(ratio.abs() <= 1)
        diff = pred - stats.target
        per_channel = torch.rsub(ratio, 1).clamp_(0, 2).mul_(ssim_weight / 2).add_(diff.abs(), alpha=1 - ssim_weight)
        ctx.save_for_backward(padded, s1, a, b, c, d, ratio, inv_cd, torch.sgn(diff))
        ctx.stats, ctx.scale_ssim, ctx.scale_l1 = stats, ssim_weight / channels, (1 - ssim_weight) / channels
        return per_channel.mean(1, keepdim=True)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        padded, s1, a, b, c, d, ratio, inv_cd, sign = ctx.saved_tensors
        stats = ctx.stats
        # With S = (1 - AB / CD) / 2: dS/d(AB) = -1 / (2 CD) and dS/d(CD) = -ratio dS/d(AB).
        g_ab = torch.mul(grad * (-0.5 * ctx.scale_ssim), inv_cd)
        g_cd = torch.mul(g_ab, ratio).neg_()
        # Back to the window sums (s1, s2, 2/9 s12), written into a zero border for the transposed window pass:
        # each padded pixel feeds the 3x3 windows around it.
        height, width = sign.shape[-2:]
        g_sums = torch.zeros((3,) + sign.shape[:-2] + (height + 4, width + 4), dtype=sign.dtype, device=sign.device)
        g_s1, g_s2, g_s12 = g_sums[..., 2:-2, 2:-2]
        torch.sub(b, a, out=g_s1).mul_(stats.mu_2_9).mul_(g_ab)  # dA/ds1 = -dB/ds1 = mu_2_9
        g_s1.addcmul_(torch.sub(d, c).mul_(s1), g_cd, value=2 / 81)  # dC/ds1 = -dD/ds1 = 2 s1 / 81
        torch.mul(g_cd, c, out=g_s2).mul_(1 / 9)
        torch.mul(g_ab, a, out=g_s12)
        g_windows = window_sums3(g_sums)
        g_padded = torch.addcmul(g_windows[0], g_windows[1], padded, value=2).addcmul_(g_windows[2], stats.padded_2_9)
        g_pred = torch.ops.aten.reflection_pad2d_backward(g_padded, sign, list(_PAD))
        return g_pred.addcmul_(sign, grad * ctx.scale_l1), None, None


class PhotometricError:
    """Weighted SSIM + L1 against one target, whose window statistics are computed once.

    Equals `ssim_weight * ssim(pred, target).mean(1) + (1 - ssim_weight) * |target - pred|.mean(1)`
    to float rounding, value and gradient. The target takes no gradient.

    Args:
        target: (B, C, H, W) image in [0, 1].
    """

    def __init__(self, target: torch.Tensor, ssim_weight: float):
        self.stats = _TargetStatistics(target.detach())
        self.ssim_weight = float(ssim_weight)

    def __call__(self, pred: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, 1, H, W)."""
        return _Photometric.apply(pred, self.stats, self.ssim_weight)
