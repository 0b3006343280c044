"""DynamoModel: the seven modules of Dynamo-Depth and one forward pass.

| network | modules                     | predicts                                   |
| ------- | --------------------------- | ------------------------------------------ |
| Depth   | depth_enc, depth_dec        | disparity of the target frame per scale    |
| Pose    | pose_enc, pose_dec          | ego-motion for each (source, target) pair  |
| CmpFlow | motion_enc, motion_dec      | complete 3D motion field                   |
| MotMask | motion_enc, motion_mask     | probability of independent motion          |

Outputs are a dict keyed by (name, frame, scale) for per-scale maps and (name, 0, frame)
for poses:

- ("disp", f, s): (B, 1, H/2**s, W/2**s), for each frame in `depth_frames` (the target by default);
- ("axisangle", 0, f), ("translation", 0, f): (B, 1, 3); ("cam_T_cam", 0, f): (B, 4, 4);
- ("complete_flow", f, s): (B, 3, h, w), pointing from the target towards frame f;
- ("motion_prob", f, s): (B, 1, h, w) logits and ("motion_mask", f, s) their sigmoid.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .config import ModelConfig
from .errors import PretrainedWeightsError
from .geometry import pose_vec_to_matrix
from .networks import DepthDecoder, LiteDepthDecoder, LiteMonoEncoder, MotionDecoder, PoseDecoder, ResnetEncoder

MODULE_NAMES = ("depth_enc", "depth_dec", "pose_enc", "pose_dec", "motion_enc", "motion_dec", "motion_mask")

NETWORK_MODULES = {
    "Depth": ("depth_enc", "depth_dec"),
    "Pose": ("pose_enc", "pose_dec"),
    "CmpFlow": ("motion_enc", "motion_dec"),
    "MotMask": ("motion_enc", "motion_mask"),
}

LITEMONO_PRETRAINED = "lite-mono-8m-pretrain.pth"


def load_litemono_imagenet(encoder: LiteMonoEncoder, folder: str | Path) -> None:
    """Initialise a Lite-Mono encoder from the ImageNet file (weights under `model`)."""
    path = Path(folder) / LITEMONO_PRETRAINED
    if not path.is_file():
        raise PretrainedWeightsError(
            f"Lite-Mono ImageNet weights not found at {path}. Run `dynamo download pretrained` "
            "or pass `--weights-init scratch`."
        )
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)["model"]
    except Exception as err:  # any unreadable or foreign file
        raise PretrainedWeightsError(
            f"{path} is not a Lite-Mono ImageNet checkpoint ({err}). Delete it and run `dynamo download pretrained`."
        ) from None
    own = encoder.state_dict()
    # The classification head's norm is not part of the encoder.
    own.update({k: v for k, v in loaded.items() if k in own and not k.startswith("norm")})
    encoder.load_state_dict(own)


class DynamoModel(nn.Module):
    """Depth, pose, complete-flow and motion-mask networks with switchable heads.

    Inputs: {("color_aug", f, 0): (B, 3, H, W)} for every f in `config.frame_ids`.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        config.validate()
        self.config = config
        pretrained = config.weights_init == "pretrained"
        if config.depth_model == "litemono":
            self.depth_enc = LiteMonoEncoder(drop_path_rate=config.drop_path_rate)
            if pretrained:
                load_litemono_imagenet(self.depth_enc, config.pretrained_dir)
            self.depth_dec = LiteDepthDecoder(self.depth_enc.num_ch_enc, config.scales)
        else:
            self.depth_enc = ResnetEncoder(config.num_layers, pretrained)
            self.depth_dec = DepthDecoder(self.depth_enc.num_ch_enc, config.scales)
        self.pose_enc = ResnetEncoder(config.num_layers, pretrained, num_input_images=2)
        self.pose_dec = PoseDecoder(self.pose_enc.num_ch_enc, num_input_features=1, num_frames=2)
        self.motion_enc = ResnetEncoder(config.num_layers, pretrained, num_input_images=3)
        self.motion_dec = MotionDecoder(self.motion_enc.num_ch_enc, config.scales, num_input_images=3, out_dim=3)
        self.motion_mask = MotionDecoder(self.motion_enc.num_ch_enc, config.scales, num_input_images=3, out_dim=1)
        if config.flow_start == "ego":
            self.motion_dec.start_from_ego_translation()

        self.use_complete_flow = True
        self.use_motion_mask = True

    def set_heads(self, complete_flow: bool, motion_mask: bool) -> None:
        """Switch the complete-flow and motion-mask heads on or off."""
        self.use_complete_flow = complete_flow
        self.use_motion_mask = motion_mask

    def parameters_of(self, networks: list[str]) -> list[nn.Parameter]:
        """Parameters of the named networks (Depth, Pose, CmpFlow, MotMask), each module once."""
        modules = dict.fromkeys(m for n in networks for m in NETWORK_MODULES[n])
        return [p for m in modules for p in getattr(self, m).parameters()]

    def forward(self, inputs: dict, depth_frames: tuple[int, ...] = (0,), trainable=None) -> dict:
        """Run the active heads.

        Args:
            depth_frames: frames whose depth to predict; only the target's is used in training.
            trainable: names of the networks being trained (see NETWORK_MODULES); the others run
                without building a graph, since nothing will back-propagate into them. None: all.
        """
        outputs: dict = {}
        with torch.set_grad_enabled(torch.is_grad_enabled() and (trainable is None or "Depth" in trainable)):
            self.predict_depth(inputs, outputs, depth_frames)
        with torch.set_grad_enabled(torch.is_grad_enabled() and (trainable is None or "Pose" in trainable)):
            self.predict_poses(inputs, outputs)
        if self.use_complete_flow or self.use_motion_mask:
            self.predict_motion(inputs, outputs)
        return outputs

    def predict_depth(self, inputs: dict, outputs: dict, frames: tuple[int, ...] = (0,)) -> None:
        for frame in frames:
            for scale, disp in self.depth_dec(self.depth_enc(inputs["color_aug", frame, 0])).items():
                outputs["disp", frame, scale] = disp

    def predict_poses(self, inputs: dict, outputs: dict) -> None:
        target = inputs["color_aug", 0, 0]
        for frame in self.config.frame_ids[1:]:
            # The source frame always comes first, whichever side of the target it lies on.
            features = self.pose_enc(torch.cat([inputs["color_aug", frame, 0], target], dim=1))
            axis_angle, translation = self.pose_dec([features])
            axis_angle, translation = axis_angle[:, 0].float(), translation[:, 0].float()
            outputs["axisangle", 0, frame] = axis_angle
            outputs["translation", 0, frame] = translation
            # Rotations are built in float32 even when the networks run in bfloat16.
            with torch.autocast(axis_angle.device.type, enabled=False):
                outputs["cam_T_cam", 0, frame] = pose_vec_to_matrix(axis_angle, translation, invert=True)

    def predict_motion(self, inputs: dict, outputs: dict) -> None:
        gaps = sorted({abs(f) for f in self.config.frame_ids[1:]})
        for gap in gaps:
            before, after = -gap, gap
            stacked = torch.cat(
                [inputs["color_aug", before, 0], inputs["color_aug", 0, 0], inputs["color_aug", after, 0]], dim=1
            )
            features = [stacked] + self.motion_enc(stacked)
            # Both pose predictions describe the same motion with opposite signs; average them.
            translation = (outputs["translation", 0, before].detach() - outputs["translation", 0, after].detach()) / 2
            axis_angle = (outputs["axisangle", 0, before].detach() - outputs["axisangle", 0, after].detach()) / 2
            ego_motion = torch.cat([translation, axis_angle], dim=-1).permute(0, 2, 1).unsqueeze(3)  # (B, 6, 1, 1)

            if self.use_complete_flow:
                for scale, flow in self.motion_dec(features, ego_motion).items():
                    outputs["complete_flow", before, scale] = -flow
                    outputs["complete_flow", after, scale] = flow
            if self.use_motion_mask:
                for scale, logits in self.motion_mask(features, ego_motion).items():
                    mask = torch.sigmoid(logits)
                    for frame in (before, after):
                        outputs["motion_prob", frame, scale] = logits
                        outputs["motion_mask", frame, scale] = mask
