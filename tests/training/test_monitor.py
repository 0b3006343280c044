"""The held-out monitor: the disparity spread that makes a collapsed depth network visible in the curves,
and what it records for a diverged model."""

from __future__ import annotations

import json
import math

import torch

from dynamo_core.training.monitor import DEPTH_SCALARS, MASK_SCALARS, HeldOutMonitor, disparity_spread


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


class _Diverged(torch.nn.Module):
    """Outputs of a model whose weights or statistics hold NaN."""

    def __init__(self, with_mask: bool):
        super().__init__()
        self.with_mask = with_mask

    def forward(self, inputs):
        image = inputs["color_aug", 0, 0]
        outputs = {("disp", 0, 0): torch.full_like(image[:, :1], math.nan)}
        if self.with_mask:
            outputs["motion_mask", -1, 0] = torch.rand_like(image[:, :1])
        return outputs


def test_a_diverged_model_is_recorded_as_gaps_not_an_error(tmp_path):
    batch = {("color_aug", f, 0): torch.rand(2, 3, 8, 12) for f in (0, -1, 1)}
    record = tmp_path / "monitor.jsonl"
    monitor = HeldOutMonitor(batch, every=1, record=record)
    for step, with_mask in enumerate((False, True)):
        model = _Diverged(with_mask).train()
        scalars = monitor.measure(model, "mask_init", step, torch.device("cpu"))
        names = DEPTH_SCALARS + (MASK_SCALARS if with_mask else ())
        assert sorted(scalars) == sorted(f"monitor/{n}" for n in names)
        assert all(math.isnan(v) for v in scalars.values())
        assert model.training  # left in the mode it was in
    lines = [json.loads(line) for line in record.read_text().splitlines()]
    assert [entry["step"] for entry in lines] == [0, 1]
    assert math.isnan(lines[1]["mask_f1"])
