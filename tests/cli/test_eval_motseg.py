"""`dynamo eval motseg` from the command line: the tiny Waymo data end to end, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dynamo_cli.main import app
from dynamo_core.config import ModelConfig
from dynamo_core.model import DynamoModel
from dynamo_core.training.checkpoint import save_weights

from cli_helpers import SEGMENT, TINY_WAYMO, runner


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ckpt") / "scratch"
    return save_weights(DynamoModel(ModelConfig(weights_init="scratch", height=128, width=192)), folder, 128, 192)


def split_folder(tmp_path: Path, files: dict[str, str]) -> Path:
    folder = tmp_path / "split"
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def args(checkpoint, dataset, data_path, split, tmp_path, *extra) -> list[str]:
    return ["eval", "motseg", "-l", str(checkpoint), "-d", dataset, "--data-path", str(data_path), "--split", str(split),
            "--eval-dir", str(tmp_path / "outputs"), "--num-workers", "0", *extra]


@pytest.mark.sample_data
def test_waymo_end_to_end(checkpoint, tmp_path):
    split = split_folder(tmp_path, {"test_files.txt": f"{SEGMENT} 1\n", "test_mask_files.txt": f"{SEGMENT} 1\n"})
    result = runner.invoke(app, args(checkpoint, "waymo", TINY_WAYMO, split, tmp_path, "--json"))
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    folder = tmp_path / "outputs" / "scratch_waymo" / "motseg"
    assert {p.name for p in folder.iterdir()} == {
        "pr_curve.pdf", "pr_curve.png", "pr_record.npz", "false_positives.pdf", "false_positives.png",
        "motseg.txt", "motseg.json",
    }
    assert document["images"] == 1 and document["thresholds"] == 150
    with np.load(folder / "pr_record.npz", allow_pickle=False) as record:
        best = int(np.argmax(record["f1"]))
        assert document["best_f1"] == pytest.approx(float(record["f1"][best]))
        assert document["best_threshold"] == pytest.approx(float(record["thresholds"][best]))
    report = (folder / "motseg.txt").read_text()
    assert f"best F1:            {document['best_f1']:.4f}" in report
    assert f"average precision:  {document['average_precision']:.4f}" in report
    # Waymo masks carry semantic classes: false positives are tallied by class name.
    classes = document["false_positives_by_class"]
    assert classes and all(isinstance(n, int) and n > 0 for n in classes.values())
    for name, count in classes.items():
        assert f"  {name:<24}{count:>12}" in report


@pytest.mark.sample_data
def test_split_without_motion_labels(checkpoint, tmp_path):
    split = split_folder(tmp_path, {"test_files.txt": f"{SEGMENT} 1\n"})
    result = runner.invoke(app, args(checkpoint, "waymo", TINY_WAYMO, split, tmp_path))
    assert result.exit_code == 1
    assert "test_mask_files.txt does not exist: the waymo dataset in this split has no motion labels" in result.stderr
    assert "Traceback" not in result.output


def test_kitti_has_no_motion_labels(tiny_kitti, checkpoint, tmp_path):
    drive = "2011_09_26/2011_09_26_drive_0001_sync"
    split = split_folder(tmp_path, {"test_files.txt": f"{drive} 1 l\n", "test_mask_files.txt": f"{drive} 1 l\n"})
    result = runner.invoke(app, args(checkpoint, "kitti", tiny_kitti, split, tmp_path))
    assert result.exit_code == 1
    assert "the kitti dataset in this split has no motion labels" in result.stderr


@pytest.mark.sample_data
def test_empty_mask_split(checkpoint, tmp_path):
    split = split_folder(tmp_path, {"test_mask_files.txt": "\n\n"})
    result = runner.invoke(app, args(checkpoint, "waymo", TINY_WAYMO, split, tmp_path))
    assert result.exit_code == 1
    assert "test_mask_files.txt lists no frames" in result.stderr


@pytest.mark.sample_data
def test_missing_checkpoint(tmp_path):
    split = split_folder(tmp_path, {"test_mask_files.txt": f"{SEGMENT} 1\n"})
    result = runner.invoke(app, args(tmp_path / "gone", "waymo", TINY_WAYMO, split, tmp_path))
    assert result.exit_code == 1
    assert f"checkpoint folder {tmp_path / 'gone'} does not exist" in result.stderr
