"""ImageNet weights land exactly where the model code reads them, after hash, safety and shape checks."""

import hashlib

import pytest
import torch
from torchvision import models

from dynamo_core.download import DownloadError, download_litemono, download_pretrained, download_resnet, resnet_destination
from dynamo_core.download import pretrained as pretrained_module
from dynamo_core.errors import ConfigError, PretrainedWeightsError
from dynamo_core.model import LITEMONO_PRETRAINED, load_litemono_imagenet
from dynamo_core.networks import LiteMonoEncoder
from dynamo_core.networks.resnet import imagenet_resnet_state
from dynamo_core.download.catalog import LITEMONO_DRIVE_ID
from download_support import Route, code_running_pth, drive, saved, server, snapshot  # noqa: F401 (fixtures)


@pytest.fixture
def hub(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    return tmp_path / "hub"


@pytest.fixture(scope="module")
def resnet18_bytes() -> bytes:
    return saved(models.resnet18(weights=None).state_dict())


def serve_resnet(server, monkeypatch, data: bytes, digest_of: bytes | None = None) -> str:
    """Serve `data` under a torch-hub style name carrying the SHA-256 prefix of `digest_of` (default: of `data`)."""
    prefix = hashlib.sha256(data if digest_of is None else digest_of).hexdigest()[:8]
    path = f"/models/resnet18-{prefix}.pth"
    server.routes[path] = Route(data)
    monkeypatch.setattr(pretrained_module, "resnet_url", lambda n: server.url(path))
    return path.rsplit("/", 1)[-1]


def test_resnet_destination_is_where_the_encoder_looks(hub):
    for depth in (18, 34, 50):
        with pytest.raises(PretrainedWeightsError) as err:
            imagenet_resnet_state(depth)
        assert str(resnet_destination(depth)) in str(err.value)
    assert resnet_destination(18) == hub / "checkpoints" / "resnet18-f37072fd.pth"


def test_litemono_file_name_is_the_one_the_model_reads():
    assert pretrained_module.LITEMONO_FILE == LITEMONO_PRETRAINED


def test_resnet_download_lands_in_the_hub_cache(server, monkeypatch, hub, resnet18_bytes):
    file_name = serve_resnet(server, monkeypatch, resnet18_bytes)
    result = download_resnet(18)
    assert result.status == "downloaded" and result.path == str(hub / "checkpoints" / file_name)
    assert (hub / "checkpoints" / file_name).read_bytes() == resnet18_bytes
    assert snapshot(hub) == ["checkpoints", f"checkpoints/{file_name}"]
    again = download_resnet(18)
    assert again.status == "skipped" and len(server.requests) == 1


def test_resnet_whose_hash_does_not_match_its_name_is_refused(server, monkeypatch, hub, resnet18_bytes):
    serve_resnet(server, monkeypatch, resnet18_bytes, digest_of=b"something else")
    with pytest.raises(DownloadError, match="SHA-256"):
        download_resnet(18)
    assert snapshot(hub) == []


def test_resnet_of_another_architecture_is_refused(server, monkeypatch, hub):
    serve_resnet(server, monkeypatch, saved({"fc.weight": torch.zeros(3)}))
    with pytest.raises(DownloadError, match="does not fit"):
        download_resnet(18)
    assert snapshot(hub) == []


def test_resnet_that_would_run_code_is_refused(server, monkeypatch, hub, tmp_path):
    marker = tmp_path / "code_ran"
    serve_resnet(server, monkeypatch, code_running_pth(marker))
    with pytest.raises(DownloadError, match="refused for safety"):
        download_resnet(18)
    assert not marker.exists() and snapshot(hub) == []


def test_bad_resnet_depth_is_a_config_error(hub):
    with pytest.raises(ConfigError, match="--resnet"):
        download_pretrained([18, 101], litemono=False)


@pytest.fixture(scope="module")
def litemono_bytes() -> tuple[bytes, torch.Tensor]:
    state = LiteMonoEncoder().state_dict()
    state["stages.0.0.pwconv1.weight"] = torch.full_like(state["stages.0.0.pwconv1.weight"], 0.25)
    state["norm.weight"] = torch.ones(3)  # the classifier's norm, which the encoder ignores
    return saved({"model": state, "epoch": 300}), state


def test_litemono_download_is_read_by_the_model_code(drive, tmp_path, litemono_bytes):
    data, state = litemono_bytes
    drive.routes[f"/drive/{LITEMONO_DRIVE_ID}"] = Route(data)
    result = download_litemono(tmp_path / "ckpt")
    assert result.status == "downloaded" and result.path == str(tmp_path / "ckpt" / LITEMONO_PRETRAINED)
    encoder = LiteMonoEncoder()
    load_litemono_imagenet(encoder, tmp_path / "ckpt")
    loaded = encoder.state_dict()
    assert all(torch.equal(loaded[k], state[k]) for k in loaded)
    assert snapshot(tmp_path / "ckpt") == [LITEMONO_PRETRAINED]


@pytest.mark.parametrize(
    "payload, reason",
    [
        ({"state_dict": {"w": torch.zeros(1)}}, "no 'model' entry"),
        ({"model": {"unrelated.weight": torch.zeros(1)}}, "shares no parameter name"),
        ({"model": {"downsample_layers.0.0.conv.weight": torch.zeros(1)}}, "has shape"),
    ],
)
def test_litemono_file_of_the_wrong_shape_is_refused(drive, tmp_path, payload, reason):
    drive.routes[f"/drive/{LITEMONO_DRIVE_ID}"] = Route(saved(payload))
    with pytest.raises(DownloadError, match=reason):
        download_litemono(tmp_path / "ckpt")
    assert snapshot(tmp_path) == []


def test_interrupted_litemono_transfer_leaves_nothing(drive, tmp_path, litemono_bytes):
    (tmp_path / "ckpt").mkdir()
    drive.routes[f"/drive/{LITEMONO_DRIVE_ID}"] = Route(litemono_bytes[0], mode="short")
    with pytest.raises(DownloadError) as err:
        download_litemono(tmp_path / "ckpt")
    assert LITEMONO_PRETRAINED in str(err.value) and "save it as" in str(err.value)
    assert snapshot(tmp_path / "ckpt") == []


def test_force_replaces_and_a_failure_keeps_the_old_file(drive, tmp_path, litemono_bytes):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / LITEMONO_PRETRAINED).write_bytes(b"old")
    drive.routes[f"/drive/{LITEMONO_DRIVE_ID}"] = Route(b"garbage")
    assert download_litemono(ckpt).status == "skipped"
    with pytest.raises(DownloadError, match="existing file was kept"):
        download_litemono(ckpt, force=True)
    assert snapshot(ckpt) == [LITEMONO_PRETRAINED] and (ckpt / LITEMONO_PRETRAINED).read_bytes() == b"old"
    drive.routes[f"/drive/{LITEMONO_DRIVE_ID}"] = Route(litemono_bytes[0])
    assert download_litemono(ckpt, force=True).status == "downloaded"
    assert (ckpt / LITEMONO_PRETRAINED).read_bytes() == litemono_bytes[0]
