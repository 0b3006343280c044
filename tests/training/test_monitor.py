"""The held-out monitor's disparity spread: what makes a collapsed depth network visible in the curves."""

from __future__ import annotations

import torch

from dynamo_core.training.monitor import disparity_spread


def test_a_constant_map_has_no_spread_whatever_its_level():
    for level in (1e-3, 0.5, 1.0):
        assert disparity_spread(torch.full((3, 1, 8, 12), level)) == 0.0


def test_spread_is_each_images_std_over_mean_averaged_over_the_batch():
    generator = torch.Generator().manual_seed(0)
    disp = torch.rand(4, 1, 6, 10, generator=generator) + 0.05
    flat = disp.double().flatten(1)
    expected = (flat.std(1, unbiased=False) / flat.mean(1)).mean()
    assert abs(disparity_spread(disp) - float(expected)) <= 1e-6 * float(expected)


def test_spread_does_not_depend_on_the_scale_of_the_disparity():
    """Depth is known up to scale only: scaling a map must not change its spread."""
    disp = torch.linspace(0.1, 0.9, 2 * 5 * 7).reshape(2, 1, 5, 7)
    assert abs(disparity_spread(disp * 0.25) - disparity_spread(disp)) <= 1e-6 * disparity_spread(disp)
