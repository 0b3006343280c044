"""ImageNet initialisation: offline errors that say what to do, and the multi-frame conv1 rule."""

import pytest
import torch
from torchvision import models

from dynamo_core.config import ModelConfig
from dynamo_core.errors import PretrainedWeightsError
from dynamo_core.model import DynamoModel, LITEMONO_PRETRAINED
from dynamo_core.networks import LiteMonoEncoder, ResnetEncoder


@pytest.fixture
def hub(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    return tmp_path / "hub"


def test_missing_resnet_weights_name_the_cache(hub):
    with pytest.raises(PretrainedWeightsError) as err:
        ResnetEncoder(18, pretrained=True)
    message = str(err.value)
    assert str(hub / "checkpoints" / "resnet18-f37072fd.pth") in message
    assert "dynamo download" in message and "--weights-init scratch" in message


def test_multi_image_encoder_repeats_and_rescales_conv1(hub):
    imagenet = models.resnet18(weights=None).state_dict()
    (hub / "checkpoints").mkdir(parents=True)
    torch.save(imagenet, hub / "checkpoints" / "resnet18-f37072fd.pth")
    single = ResnetEncoder(18, pretrained=True)
    assert torch.equal(single.encoder.conv1.weight, imagenet["conv1.weight"])
    triple = ResnetEncoder(18, pretrained=True, num_input_images=3)
    expected = torch.cat([imagenet["conv1.weight"]] * 3, dim=1) / 3
    torch.testing.assert_close(triple.encoder.conv1.weight.detach(), expected)
    assert torch.equal(triple.encoder.layer4[1].conv2.weight, imagenet["layer4.1.conv2.weight"])


def test_missing_litemono_weights_name_the_file(tmp_path, hub):
    config = ModelConfig(depth_model="litemono", weights_init="pretrained", pretrained_dir=str(tmp_path / "ckpt"))
    with pytest.raises(PretrainedWeightsError) as err:
        DynamoModel(config)
    assert str(tmp_path / "ckpt" / LITEMONO_PRETRAINED) in str(err.value)


def test_litemono_weights_load_from_local_file(tmp_path, hub):
    (hub / "checkpoints").mkdir(parents=True)
    torch.save(models.resnet18(weights=None).state_dict(), hub / "checkpoints" / "resnet18-f37072fd.pth")
    source = LiteMonoEncoder()
    state = {k: v + 1 if v.is_floating_point() else v for k, v in source.state_dict().items()}
    state["norm.weight"] = torch.ones(3)  # the classifier's norm, which the encoder lacks
    (tmp_path / "ckpt").mkdir()
    torch.save({"model": state}, tmp_path / "ckpt" / LITEMONO_PRETRAINED)
    model = DynamoModel(ModelConfig(depth_model="litemono", pretrained_dir=str(tmp_path / "ckpt")))
    assert torch.equal(model.depth_enc.stages[2][9].xca.qkv.weight, state["stages.2.9.xca.qkv.weight"])
