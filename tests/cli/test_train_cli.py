"""`dynamo train` from the command line: the acceptance run and every bad input."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from typer.testing import CliRunner

from conftest import KITTI_DRIVE as DRIVE
from dynamo_cli.main import app
from dynamo_core.config import ModelConfig
from dynamo_core.model import DynamoModel
from dynamo_core.training.checkpoint import inspect_checkpoint, load_weights

runner = CliRunner()


@pytest.fixture
def split(tmp_path, tiny_kitti):
    """A split of the generated tiny drive, which is linked beside it as `kitti_data`."""
    (tmp_path / "kitti_data").symlink_to(tiny_kitti, target_is_directory=True)
    folder = tmp_path / "split"
    folder.mkdir()
    (folder / "train_files.txt").write_text(f"{DRIVE} 1 l\n{DRIVE} 1 r\n")
    return folder


def train_args(tmp_path, split, data_path=None, *extra):
    data_path = split.parent / "kitti_data" if data_path is None else data_path
    return [
        "train", "-d", "kitti", "--data-path", str(data_path), "--split", str(split),
        "--epoch-schedule", "1", "1", "1", "1", "--epoch-size", "2", "-b", "1",
        "--height", "96", "--width", "320", "--weights-init", "scratch",
        "--log-dir", str(tmp_path / "logs"), "--num-workers", "0", *extra,
    ]


@pytest.mark.slow
def test_acceptance_run_all_four_phases(tmp_path, split):
    result = runner.invoke(app, train_args(tmp_path, split))
    assert result.exit_code == 0, result.output
    run = tmp_path / "logs" / "dynamo"
    names = sorted(p.name for p in (run / "models").iterdir())
    assert names == ["disp_init_00", "fine_tune_00", "mask_init_00", "motion_init_00"]
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["height"] == 96 and config["optim"]["epoch_schedule"] == [1, 1, 1, 1]
    info = inspect_checkpoint(run / "models" / "fine_tune_00")
    assert (info.depth_model, info.height, info.width) == ("litemono", 96, 320)
    model = DynamoModel(ModelConfig(weights_init="scratch", height=96, width=320))
    load_weights(model, run / "models" / "fine_tune_00", height=96, width=320)
    assert "finished fine_tune" in result.stdout


def test_height_not_multiple_of_32(tmp_path, split):
    args = train_args(tmp_path, split)
    args[args.index("--height") + 1] = "100"
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert "--height must be a positive multiple of 32, got 100" in result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "logs").exists()


@pytest.mark.parametrize(("option", "value", "message"), [
    ("--precision", "fp16", "--precision must be auto, fp32 or bf16, got 'fp16'"),
    ("--keep-checkpoints", "newest", "--keep-checkpoints must be all or phase-end, got 'newest'"),
    ("--flow-start", "zeros", "--flow-start must be one of random, ego, got 'zeros'"),
])
def test_unknown_choice(tmp_path, split, option, value, message):
    result = runner.invoke(app, train_args(tmp_path, split) + [option, value])
    assert result.exit_code == 1
    assert message in result.stderr
    assert not (tmp_path / "logs").exists()


@pytest.mark.parametrize(("options", "expected"), [([], "fp32"), (["--precision", "bf16"], "bf16")])
def test_precision_is_recorded_in_the_config(tmp_path, split, options, expected):
    """float32 unless asked otherwise."""
    result = runner.invoke(app, train_args(tmp_path, split) + [*options, "--max-steps", "1"])
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "logs" / "dynamo" / "config.json").read_text())
    assert config["train"]["precision"] == expected


def test_wrong_data_path(tmp_path, split):
    result = runner.invoke(app, train_args(tmp_path, split, tmp_path / "missing"))
    assert result.exit_code == 1
    assert f"--data-path {tmp_path / 'missing'} does not exist" in result.stderr


def test_empty_split_file(tmp_path, split):
    (split / "train_files.txt").write_text("\n")
    result = runner.invoke(app, train_args(tmp_path, split))
    assert result.exit_code == 1
    assert "train_files.txt lists no frames" in result.stderr


def test_missing_frame_listed(tmp_path, split):
    data = tmp_path / "kitti"
    shutil.copytree(tmp_path / "kitti_data", data)
    (data / DRIVE / "image_02" / "rgb" / "downsample" / "0000000000.jpg").unlink()
    result = runner.invoke(app, train_args(tmp_path, split, data))
    assert result.exit_code == 1
    assert "image_02/rgb/downsample/0000000000.jpg" in result.stderr
    assert not (tmp_path / "logs" / "dynamo" / "models").exists()


def test_corrupt_jpeg_named(tmp_path, split):
    data = tmp_path / "kitti"
    shutil.copytree(tmp_path / "kitti_data", data)
    bad = data / DRIVE / "image_03" / "rgb" / "downsample" / "0000000001.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    result = runner.invoke(app, train_args(tmp_path, split, data))
    assert result.exit_code == 1
    assert "0000000001.jpg" in result.stderr
    assert "Traceback" not in result.output


def test_corrupt_jpeg_named_from_a_worker_process(tmp_path, split):
    data = tmp_path / "kitti"
    shutil.copytree(tmp_path / "kitti_data", data)
    bad = data / DRIVE / "image_03" / "rgb" / "downsample" / "0000000001.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    args = train_args(tmp_path, split, data)
    args[args.index("--num-workers") + 1] = "1"
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert "0000000001.jpg" in result.stderr
    assert "Traceback" not in result.output


def test_flow_start_is_recorded_and_used(tmp_path, split):
    result = runner.invoke(app, train_args(tmp_path, split) + ["--flow-start", "ego", "--max-steps", "1"])
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "logs" / "dynamo" / "config.json").read_text())
    assert config["model"]["flow_start"] == "ego"
