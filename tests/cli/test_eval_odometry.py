"""`dynamo eval odometry` from the command line: synthetic scenes end to end, the ground-truth motion
scoring zero, and datasets or segments without ground-truth poses."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from dynamo_cli.main import app
from dynamo_core.config import ModelConfig
from dynamo_core.evaluation import odometry_runner
from dynamo_core.model import DynamoModel
from dynamo_core.synthetic import generate_dataset
from dynamo_core.training.checkpoint import save_weights

from cli_helpers import TINY_WAYMO, runner

HEIGHT, WIDTH, FRAMES = 64, 192, 8
SEGMENT = "test/seq-0001"


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("odometry") / "synthetic"
    generate_dataset(out, sequences=2, frames=FRAMES, height=HEIGHT, width=WIDTH, seed=0, test_sequences=1)
    return out


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("logs") / "run" / "models" / "fine_tune_00"
    return save_weights(DynamoModel(ModelConfig(weights_init="scratch", height=HEIGHT, width=WIDTH)), folder, HEIGHT, WIDTH)


def args(checkpoint, dataset, data_path, tmp_path, *extra) -> list[str]:
    return ["eval", "odometry", "-l", str(checkpoint), "-d", dataset, "--data-path", str(data_path),
            "--eval-dir", str(tmp_path / "outputs"), "--num-workers", "0", *extra]


def report_stats(report: str, title: str) -> dict[str, float]:
    lines = report.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    return {line.split()[0]: float(line.split()[1]) for line in lines[start + 1 : start + 6]}


def test_synthetic_end_to_end(checkpoint, scenes, tmp_path):
    result = runner.invoke(app, args(checkpoint, "synthetic", scenes, tmp_path, "--json", "-b", "3"))
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    folder = tmp_path / "outputs" / "run_fine_tune_00_synthetic" / "odometry"
    assert sorted(p.name for p in folder.iterdir()) == ["odometry.json", "odometry.txt", "tracks.npz"]
    # 8 frames: 6 with both neighbours, 6 pairs, tracks starting at pairs 0..3.
    assert document["tracks"] == 4 and document["track_length"] == 5
    assert [s["segment"] for s in document["segments"]] == [SEGMENT]
    report = (folder / "odometry.txt").read_text()
    for key, title in (("ate", "ATE"), ("speed", "speed")):
        stats = report_stats(report, title)
        assert stats == {k: round(document[key][k], 6) for k in ("mean", "std", "median", "min", "max")}
    # The generator drives at a constant speed (metres per frame), which every track reports.
    speed = json.loads((scenes / SEGMENT / "sequence.json").read_text())["ego_speed"]
    assert document["speed"]["min"] == pytest.approx(speed, rel=1e-9)
    assert document["speed"]["max"] == pytest.approx(speed, rel=1e-9)


def test_ground_truth_motion_scores_zero(monkeypatch, checkpoint, scenes, tmp_path):
    """Fed the relative poses of odometry.txt, in the camera axis order the scoring undoes, ATE is 0."""
    poses = np.loadtxt(scenes / SEGMENT / "FRONT" / "odometry.txt").reshape(-1, 4, 4)
    scored_axes = np.array([[0, 0, 1, 0], [1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1]], dtype=np.float64)
    frames = list(range(1, FRAMES - 1))  # the frames with both neighbours, in the order they are read

    def ground_truth(context, batch):
        motions = [np.linalg.inv(scored_axes) @ np.linalg.inv(np.linalg.inv(poses[k]) @ poses[k + 1]) @ scored_axes
                   for k in (frames[i] for i in batch["index"].tolist())]
        return torch.from_numpy(np.stack(motions))

    monkeypatch.setattr(odometry_runner, "predict_relative_poses", ground_truth)
    result = runner.invoke(app, args(checkpoint, "synthetic", scenes, tmp_path, "--json"))
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["ate"]["max"] < 1e-9 and document["tracks"] == 4


@pytest.mark.sample_data
def test_segment_without_odometry_file(checkpoint, tmp_path):
    split = tmp_path / "split"
    split.mkdir()
    segment = "val/segment-7932945205197754811_780_000_800_000"
    (split / "test_files.txt").write_text(f"{segment} 31\n")
    result = runner.invoke(app, args(checkpoint, "waymo", TINY_WAYMO, tmp_path, "--split", str(split)))
    assert result.exit_code == 1
    expected = TINY_WAYMO / segment / "FRONT" / "odometry.txt"
    assert f"{expected} does not exist: this segment has no ground-truth poses" in result.stderr
    assert "Traceback" not in result.output


def test_kitti_without_poses_says_how_to_make_them(tiny_kitti, checkpoint, tmp_path):
    split = tmp_path / "split"
    split.mkdir()
    (split / "test_files.txt").write_text("2011_09_26/2011_09_26_drive_0001_sync 1 l\n")
    result = runner.invoke(app, args(checkpoint, "kitti", tiny_kitti, tmp_path, "--split", str(split)))
    assert result.exit_code == 1
    assert "does not exist: this segment has no ground-truth poses" in result.stderr
    assert "prepare again from the raw drives" in result.stderr


def test_segments_too_short(checkpoint, scenes, tmp_path):
    result = runner.invoke(app, args(checkpoint, "synthetic", scenes, tmp_path, "--track-length", "9"))
    assert result.exit_code == 1
    assert "has a track of 9 frames" in result.stderr


def test_empty_split(checkpoint, scenes, tmp_path):
    split = tmp_path / "split"
    split.mkdir()
    (split / "test_files.txt").write_text("")
    result = runner.invoke(app, args(checkpoint, "synthetic", scenes, tmp_path, "--split", str(split)))
    assert result.exit_code == 1
    assert "test_files.txt lists no frames" in result.stderr
