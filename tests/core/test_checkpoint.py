"""Checkpoint folders in the original per-module layout, and what bad ones get."""

import logging
import os
import pickle

import pytest
import torch

from conftest import MODULE_ORDER, fill_model, fixture_inputs, model_config_for
from dynamo_core.errors import CheckpointError
from dynamo_core.model import DynamoModel
from dynamo_core.checkpoints import inspect_checkpoint, load_weights, save_weights


@pytest.fixture(scope="module")
def saved(tmp_path_factory, parity_fixture, filled_model):
    folder = tmp_path_factory.mktemp("ckpt") / "model"
    save_weights(filled_model, folder, int(parity_fixture["height"]), int(parity_fixture["width"]))
    return folder


def fresh_model(fixture):
    return DynamoModel(model_config_for(fixture)).eval()


def test_save_load_forward_is_bit_identical(parity_fixture, filled_model, saved):
    model = fresh_model(parity_fixture)
    assert load_weights(model, saved) == MODULE_ORDER
    inputs = fixture_inputs(parity_fixture)
    with torch.no_grad():
        before, after = filled_model(inputs), model(inputs)
    assert before.keys() == after.keys()
    for key in before:
        assert torch.equal(before[key], after[key]), key


def test_saved_files_have_the_original_layout(parity_fixture, saved):
    """What the original's loader reads: a plain dict per module, sizes in the encoders."""
    assert sorted(p.name for p in saved.iterdir()) == sorted(f"{m}.pth" for m in MODULE_ORDER)
    for name in MODULE_ORDER:
        state = torch.load(saved / f"{name}.pth", weights_only=True)
        sizes = {k: state.pop(k) for k in ("height", "width") if k in state}
        if name.endswith("_enc"):
            assert sizes == {"height": parity_fixture["height"], "width": parity_fixture["width"]}
        else:
            assert sizes == {}
        assert {k: list(v.shape) for k, v in state.items()} == {k: list(v) for k, v in parity_fixture["state_dict_keys"][name].items()}


def test_original_style_folder_loads(tmp_path, parity_fixture):
    """A folder as the original writes it (every key of the fixture list, sizes in encoders) loads."""
    reference = fresh_model(parity_fixture)
    fill_model(reference, int(parity_fixture["seed"]) + 1)
    for name in MODULE_ORDER:
        state = {k: reference.get_submodule(name).state_dict()[k].clone() for k in parity_fixture["state_dict_keys"][name]}
        if name.endswith("_enc"):
            state.update(height=int(parity_fixture["height"]), width=int(parity_fixture["width"]))
        torch.save(state, tmp_path / f"{name}.pth")
    model = fresh_model(parity_fixture)
    load_weights(model, tmp_path)
    for name in MODULE_ORDER:
        for key, value in reference.get_submodule(name).state_dict().items():
            assert torch.equal(model.get_submodule(name).state_dict()[key], value), f"{name}.{key}"


def test_inspect_reports_model_size_and_scales(parity_fixture, saved):
    info = inspect_checkpoint(saved)
    assert info.depth_model == parity_fixture["model"]
    assert (info.height, info.width) == (parity_fixture["height"], parity_fixture["width"])
    assert list(info.scales) == list(parity_fixture["scales"])
    assert info.num_layers == 18
    assert info.modules == MODULE_ORDER


def test_resolution_mismatch_warns_with_both_sizes(parity_fixture, saved, caplog, monkeypatch):
    monkeypatch.setattr(logging.getLogger("dynamo_core"), "propagate", True)  # the CLI may have detached it
    model = fresh_model(parity_fixture)
    with caplog.at_level(logging.WARNING, logger="dynamo_core"):
        load_weights(model, saved, ("depth_enc", "depth_dec"), height=32 * 7, width=32 * 9)
    text = caplog.text
    assert f"{parity_fixture['height']}x{parity_fixture['width']}" in text and "224x288" in text


def test_missing_folder(tmp_path, parity_fixture):
    with pytest.raises(CheckpointError, match="does not exist") as err:
        load_weights(fresh_model(parity_fixture), tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(err.value)


def test_missing_modules_named_with_lost_heads(tmp_path, parity_fixture, saved):
    folder = tmp_path / "partial"
    folder.mkdir()
    for name in ("depth_enc", "depth_dec", "pose_enc", "pose_dec"):
        (folder / f"{name}.pth").write_bytes((saved / f"{name}.pth").read_bytes())
    model = fresh_model(parity_fixture)
    # Depth alone loads.
    assert load_weights(model, folder, ("depth_enc", "depth_dec")) == ("depth_enc", "depth_dec")
    with pytest.raises(CheckpointError) as err:
        load_weights(model, folder, MODULE_ORDER)
    message = str(err.value)
    for name in ("motion_enc.pth", "motion_dec.pth", "motion_mask.pth", "complete flow", "motion mask"):
        assert name in message


def test_wrong_key_and_wrong_shape(tmp_path, parity_fixture, saved):
    folder = tmp_path / "bad"
    folder.mkdir()
    state = torch.load(saved / "pose_dec.pth", weights_only=True)
    state["surprise.weight"] = torch.zeros(1)
    torch.save(state, folder / "pose_dec.pth")
    with pytest.raises(CheckpointError, match=r"pose_dec.*surprise\.weight"):
        load_weights(fresh_model(parity_fixture), folder, ("pose_dec",))
    state = torch.load(saved / "pose_dec.pth", weights_only=True)
    state["pose2.bias"] = torch.zeros(7)
    torch.save(state, folder / "pose_dec.pth")
    with pytest.raises(CheckpointError, match=r"pose2\.bias has shape \(7,\).*\(12,\)"):
        load_weights(fresh_model(parity_fixture), folder, ("pose_dec",))


def test_not_a_checkpoint(tmp_path, parity_fixture):
    (tmp_path / "depth_enc.pth").write_bytes(b"this is a text file, not weights\n")
    with pytest.raises(CheckpointError, match="depth_enc.pth is not a usable PyTorch checkpoint"):
        load_weights(fresh_model(parity_fixture), tmp_path, ("depth_enc",))
    other = tmp_path / "other"
    other.mkdir()
    torch.save([1, 2, 3], other / "depth_dec.pth")
    with pytest.raises(CheckpointError, match="depth_dec.pth does not hold a state dict"):
        load_weights(fresh_model(parity_fixture), other, ("depth_dec",))


class _RunsCode:
    def __reduce__(self):
        return (os.system, (f"touch {_RunsCode.marker}",))


def test_pickle_that_runs_code_is_refused(tmp_path, parity_fixture):
    _RunsCode.marker = tmp_path / "pwned"
    with open(tmp_path / "depth_enc.pth", "wb") as handle:
        pickle.dump({"x": _RunsCode()}, handle)
    with pytest.raises(CheckpointError, match="refused"):
        load_weights(fresh_model(parity_fixture), tmp_path, ("depth_enc",))
    assert not _RunsCode.marker.exists()


def test_save_replaces_atomically(tmp_path, parity_fixture, filled_model):
    folder = tmp_path / "ckpt"
    save_weights(filled_model, folder, 96, 320)
    save_weights(filled_model, folder, 96, 320)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]

    class Exploding(torch.nn.Module):
        def __getattr__(self, name):
            if name == "motion_mask":
                raise RuntimeError("disk full")
            return getattr(filled_model, name)

    with pytest.raises(RuntimeError):
        save_weights(Exploding(), folder, 96, 320)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]
    load_weights(fresh_model(parity_fixture), folder)
