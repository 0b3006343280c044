"""`flow_start="ego"`: the complete-flow head starts as the ego translation, and training can move it."""

from __future__ import annotations

import pytest
import torch

from dynamo_core.config import ModelConfig
from dynamo_core.errors import ConfigError
from dynamo_core.geometry import pose_vec_to_matrix
from dynamo_core.model import DynamoModel


def _model(flow_start: str) -> DynamoModel:
    config = ModelConfig(depth_model="monodepthv2", weights_init="scratch", height=64, width=96,
                         scales=[0, 1, 2, 3], flow_start=flow_start)
    return DynamoModel(config).eval()


def _outputs_with_poses(translation: torch.Tensor, axis_angle: torch.Tensor) -> dict:
    """Pose outputs for frames -1 and +1 that describe one motion with opposite signs."""
    outputs = {}
    for frame, sign in ((-1, 1.0), (1, -1.0)):
        outputs["translation", 0, frame] = sign * translation
        outputs["axisangle", 0, frame] = sign * axis_angle
        outputs["cam_T_cam", 0, frame] = pose_vec_to_matrix(sign * axis_angle, sign * translation, invert=True)
    return outputs


def test_ego_start_predicts_the_static_scene_flow_of_a_translating_camera():
    torch.manual_seed(0)
    model = _model("ego")
    inputs = {("color_aug", f, 0): torch.rand(2, 3, 64, 96) for f in (0, -1, 1)}
    translation = torch.randn(2, 1, 3)
    outputs = _outputs_with_poses(translation, torch.zeros(2, 1, 3))
    with torch.no_grad():
        model.predict_motion(inputs, outputs)
    for frame in (-1, 1):
        # Without rotation, every static point moves by the translation of T_src_tgt, whatever its depth.
        ego = outputs["cam_T_cam", 0, frame][:, :3, 3]
        for scale in model.config.scales:
            flow = outputs["complete_flow", frame, scale]
            assert torch.allclose(flow, ego[:, :, None, None].expand_as(flow), atol=1e-5), (frame, scale)


def test_ego_start_changes_only_the_flow_head_and_still_learns():
    torch.manual_seed(0)
    plain = _model("random")
    torch.manual_seed(0)
    started = _model("ego")
    for name in ("depth_enc", "depth_dec", "pose_enc", "pose_dec", "motion_enc", "motion_mask"):
        for a, b in zip(getattr(plain, name).state_dict().values(), getattr(started, name).state_dict().values()):
            assert torch.equal(a, b), name
    inputs = {("color_aug", f, 0): torch.rand(1, 3, 64, 96) for f in (0, -1, 1)}
    outputs = _outputs_with_poses(torch.randn(1, 1, 3), torch.zeros(1, 1, 3))
    started.predict_motion(inputs, outputs)
    outputs["complete_flow", 1, 0].square().mean().backward()
    # The zeroed refinements receive a gradient, so motion_init can learn what the translation misses.
    assert started.motion_dec.refine_motion_redu5.weight.grad.abs().sum() > 0


def test_unknown_flow_start_is_a_config_error():
    with pytest.raises(ConfigError, match="--flow-start"):
        ModelConfig(flow_start="zeros").validate()
