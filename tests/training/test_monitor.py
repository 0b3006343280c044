"""The held-out monitor: the disparity spread that makes a collapsed depth network visible in the curves,
and what it records for a diverged model."""

from __future__ import annotations

import json
import math

import pytest
import torch
from conftest import fixture_id, fixture_inputs, load_fixture, parity_files

from dynamo_core.geometry import disp_to_depth
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


class _Warps(torch.nn.Module):
    """Fixed outputs: one depth everywhere, a pose and a complete flow given as 3D translations (B, 3)."""

    def __init__(self, disp: float, pose: torch.Tensor, flow: torch.Tensor):
        super().__init__()
        self.disp, self.pose, self.flow = disp, pose, flow

    def forward(self, inputs):
        image = inputs["color_aug", 0, 0]
        batch, _, height, width = image.shape
        T = torch.eye(4).repeat(batch, 1, 1)
        T[:, :3, 3] = self.pose
        return {
            ("disp", 0, 0): torch.full((batch, 1, height, width), self.disp),
            ("cam_T_cam", 0, -1): T,
            ("complete_flow", -1, 0): self.flow[:, :, None, None].expand(batch, 3, height, width).clone(),
            ("motion_mask", -1, 0): torch.full((batch, 1, height, width), 0.5),
        }


@pytest.mark.parametrize("fixture_path", parity_files(), ids=fixture_id)
def test_warp_errors_name_the_warp_that_explains_each_region(fixture_path):
    """The source frame shows the target moved one pixel to the left on the "moving" half and unmoved on the
    other. With the pose at rest and a complete flow of one pixel, the flow warp explains the moving half and
    the ego warp the rest: each region's error is small for the warp that explains it and large for the other.
    Only the seam between the halves and the image border (about 3 of the columns) are not exact."""
    inputs = fixture_inputs(load_fixture(fixture_path))
    target = inputs["color_aug", 0, 0]
    batch, _, height, width = target.shape
    K = inputs["K", 0]
    moving = torch.zeros(batch, height, width, dtype=torch.bool)
    moving[..., : width // 2] = True
    shifted = torch.cat([target[..., :1], target[..., :-1]], dim=-1)  # shifted[x + 1] = target[x]
    source = torch.where(moving[:, None], shifted, target)
    depth = float(disp_to_depth(torch.tensor(0.5), 0.1, 100.0)[1])
    one_pixel = depth / K[:, 0, 0]
    flow = torch.stack([one_pixel, torch.zeros(batch), torch.zeros(batch)], dim=1)
    monitor_batch = {
        ("color_aug", 0, 0): target, ("color_aug", -1, 0): source, ("color_aug", 1, 0): target,
        ("K", 0): K, ("inv_K", 0): inputs["inv_K", 0], ("ts", -1): torch.ones(batch),
        "depth_gt": torch.tensor([[[height // 2, width // 4, depth]]] * batch), "depth_valid": torch.ones(batch, dtype=torch.long),
        "gt_dim": torch.tensor([[height, width]] * batch), "mot_mask": moving.to(torch.uint8),
    }
    monitor = HeldOutMonitor(monitor_batch, every=1)
    scalars = monitor.measure(_Warps(0.5, torch.zeros(batch, 3), flow), "mask_init", 0, torch.device("cpu"))
    assert scalars["monitor/photo_flow_moving"] < 0.1 * scalars["monitor/photo_ego_moving"]
    assert scalars["monitor/photo_ego_static"] < 0.1 * scalars["monitor/photo_flow_static"]

    # The same motion given to the pose instead (cam_T_cam carries target points into the source frame), with
    # a zero flow: the warps trade places.
    scalars = monitor.measure(_Warps(0.5, flow, torch.zeros(batch, 3)), "mask_init", 1, torch.device("cpu"))
    assert scalars["monitor/photo_ego_moving"] < 0.1 * scalars["monitor/photo_flow_moving"]
    assert scalars["monitor/photo_flow_static"] < 0.1 * scalars["monitor/photo_ego_static"]
