"""ResNet encoders over one image or several stacked frames.

The torchvision ResNet is kept whole under `encoder` (its `fc` included) so that parameter
names match the released checkpoints.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision import models

from ..errors import ConfigError, PretrainedWeightsError

_RESNETS = {
    18: (models.resnet18, models.ResNet18_Weights.IMAGENET1K_V1),
    34: (models.resnet34, models.ResNet34_Weights.IMAGENET1K_V1),
    50: (models.resnet50, models.ResNet50_Weights.IMAGENET1K_V1),
}


def imagenet_resnet_state(num_layers: int) -> dict[str, torch.Tensor]:
    """ImageNet weights from the torch hub cache, without touching the network.

    Raises PretrainedWeightsError naming the cache file when it is absent.
    """
    weights = _RESNETS[num_layers][1]
    hub_dir = torch.hub.get_dir()
    filename = weights.url.rsplit("/", 1)[-1]
    path = f"{hub_dir}/checkpoints/{filename}"
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise PretrainedWeightsError(
            f"ImageNet ResNet-{num_layers} weights are not in the torch hub cache ({path}). "
            "Run `dynamo download pretrained` on a machine with internet access, "
            "or pass `--weights-init scratch`."
        ) from None


class ResnetEncoder(nn.Module):
    """ResNet feature pyramid.

    Input (B, 3 * num_input_images, H, W) in [0, 1]; output five features at 1/2 ... 1/32
    scale with channels `num_ch_enc` ([64, 64, 128, 256, 512] for 18/34 layers, x4 after the
    first for 50).
    """

    def __init__(self, num_layers: int = 18, pretrained: bool = False, num_input_images: int = 1):
        super().__init__()
        if num_layers not in _RESNETS:
            raise ConfigError(f"--num-layers must be one of {sorted(_RESNETS)}, got {num_layers}.")
        builder = _RESNETS[num_layers][0]
        self.encoder = builder(weights=None)
        if num_input_images > 1:
            self.encoder.conv1 = nn.Conv2d(3 * num_input_images, 64, kernel_size=7, stride=2, padding=3, bias=False)
            nn.init.kaiming_normal_(self.encoder.conv1.weight, mode="fan_out", nonlinearity="relu")
        expansion = 4 if num_layers > 34 else 1
        self.num_ch_enc = (64, 64 * expansion, 128 * expansion, 256 * expansion, 512 * expansion)
        if pretrained:
            self.load_imagenet(num_layers, num_input_images)

    def load_imagenet(self, num_layers: int, num_input_images: int) -> None:
        state = imagenet_resnet_state(num_layers)
        if num_input_images > 1:
            # Every stacked frame gets the RGB filters, scaled so the response matches one image.
            state["conv1.weight"] = state["conv1.weight"].repeat(1, num_input_images, 1, 1) / num_input_images
        self.encoder.load_state_dict(state)

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        net = self.encoder
        x = net.relu(net.bn1(net.conv1((image - 0.45) / 0.225)))
        features = [x]
        features.append(net.layer1(net.maxpool(x)))
        features.append(net.layer2(features[-1]))
        features.append(net.layer3(features[-1]))
        features.append(net.layer4(features[-1]))
        return features
