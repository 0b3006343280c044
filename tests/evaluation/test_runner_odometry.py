"""Odometry runner: the true ego-motion gives an ATE of zero and the true speeds, frame pairs line up
with the ground-truth poses, and segments without poses are refused."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dynamo_core.errors import ConfigError, DataError
from dynamo_core.evaluation import odometry_runner
from dynamo_core.evaluation.odometry_runner import consecutive_runs
from dynamo_core.synthetic import generate_dataset

from runner_helpers import HEIGHT, WIDTH, scratch_checkpoint
from runner_helpers import options as shared_options

FRAMES = 9
SEGMENT = "test/seq-0000"
# The scoring compares predicted positions in the axis order (z, x, y) with the ground truth's (x, y, z).
SCORED_AXES = np.array([[0, 0, 1, 0], [1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1]], dtype=np.float64)
STEPS = 1.0 + 0.5 * np.arange(FRAMES)
"""Distance driven from frame k to k + 1: every track has its own speed profile."""


def vehicle_poses() -> np.ndarray:
    """(FRAMES, 4, 4) camera-to-world poses driving forward along a curving heading."""
    headings = 0.2 * np.sin(np.arange(FRAMES))
    position = np.zeros(3)
    poses = []
    for k in range(FRAMES):
        pose = np.eye(4)
        cos, sin = math.cos(headings[k]), math.sin(headings[k])
        pose[:3, :3] = [[cos, -sin, 0], [sin, cos, 0], [0, 0, 1]]
        pose[:3, 3] = position
        poses.append(pose)
        position = position + STEPS[k] * np.array([cos, sin, 0.0])
    return np.stack(poses)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("odometry") / "synthetic"
    generate_dataset(out, sequences=1, frames=FRAMES, height=HEIGHT, width=WIDTH, seed=4, test_sequences=1)
    rows = [" ".join(repr(float(v)) for v in pose.reshape(-1)) for pose in vehicle_poses()]
    (out / SEGMENT / "FRONT" / "odometry.txt").write_text("\n".join(rows) + "\n")
    return out


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return scratch_checkpoint(tmp_path_factory.mktemp("ckpt") / "scratch", modules=("pose_enc", "pose_dec"))


def options(checkpoint, scenes, tmp_path, **extra):
    return shared_options(checkpoint, scenes, tmp_path, batch_size=3, **extra)


def true_motion(scenes: Path):
    """A stand-in for the pose network: the ground-truth relative pose of each pair (k, k+1), in the
    camera convention the scoring assumes: inv(inv(G_k) @ G_k+1) with its axes taken back from the
    ground truth's order (x, y, z) to the camera's (z, x, y).

    The frame of each batch item is found from its pixels, so a pairing mistake in the runner shows.
    """
    rgb = scenes / SEGMENT / "FRONT" / "rgb" / "original"
    images = {k: torch.from_numpy(np.array(Image.open(rgb / f"{k:06d}.jpg").convert("RGB"))) for k in range(FRAMES)}
    poses = vehicle_poses()
    to_camera = np.linalg.inv(SCORED_AXES)

    def predict(context, batch):
        motions = []
        for target in batch["color_aug", 0, 0]:
            pixels = (target.permute(1, 2, 0) * 255).round().to(torch.uint8)
            (k,) = [k for k, image in images.items() if torch.equal(image, pixels)]
            relative = np.linalg.inv(np.linalg.inv(poses[k]) @ poses[k + 1])
            motions.append(to_camera @ relative @ SCORED_AXES)
        return torch.from_numpy(np.stack(motions))

    return predict


def test_true_motion_has_zero_ate_and_the_true_speeds(monkeypatch, checkpoint, scenes, tmp_path):
    monkeypatch.setattr(odometry_runner, "predict_relative_poses", true_motion(scenes))
    result = odometry_runner.run_odometry(options(checkpoint, scenes, tmp_path))
    # Frames 1..7 have both neighbours: 7 pairs; tracks start at pairs 0..4, the last one a frame short.
    assert len(result.ates) == 5
    assert np.all(result.ates < 1e-9)
    # Track i chains the pairs of frames i+1 .. i+4 (i+1 .. i+3 for the short last one).
    expected = [STEPS[1 + i : 5 + i].mean() for i in range(4)] + [STEPS[5:8].mean()]
    np.testing.assert_allclose(result.speeds, expected, rtol=1e-9)


def test_a_pairing_off_by_one_frame_is_caught(monkeypatch, checkpoint, scenes, tmp_path):
    predict = true_motion(scenes)

    def shifted(context, batch):
        following = {("color_aug", 0, 0): batch["color_aug", 1, 0]}  # the motion of the next pair
        return predict(context, following)

    monkeypatch.setattr(odometry_runner, "predict_relative_poses", shifted)
    # The last target has no following pair in the data: stop the shift there.
    monkeypatch.setattr(odometry_runner, "has_neighbours", lambda dataset, line: 1 <= line.frame_index <= FRAMES - 3)
    result = odometry_runner.run_odometry(options(checkpoint, scenes, tmp_path))
    assert np.all(result.ates > 1e-3)


def test_reports_are_written_and_agree(monkeypatch, checkpoint, scenes, tmp_path):
    monkeypatch.setattr(odometry_runner, "predict_relative_poses", true_motion(scenes))
    result = odometry_runner.run_odometry(options(checkpoint, scenes, tmp_path), track_length=3)
    folder = tmp_path / "outputs" / "scratch_synthetic" / "odometry"
    assert sorted(p.name for p in folder.iterdir()) == ["odometry.json", "odometry.txt", "tracks.npz"]
    document = json.loads((folder / "odometry.json").read_text())
    assert document["track_length"] == 3 and document["tracks"] == len(result.ates)
    assert document["speed"]["mean"] == pytest.approx(float(np.mean(result.speeds)))
    with np.load(folder / "tracks.npz", allow_pickle=False) as tracks:
        np.testing.assert_array_equal(tracks["speed"], result.speeds)
        assert tracks["segments"].tolist() == [SEGMENT]
    assert f"mean    {np.mean(result.speeds):.6f}" in (folder / "odometry.txt").read_text()


def test_the_pose_network_runs_end_to_end(checkpoint, scenes, tmp_path):
    result = odometry_runner.run_odometry(options(checkpoint, scenes, tmp_path))
    assert len(result.ates) == 5 and np.all(np.isfinite(result.ates))


def test_segment_without_odometry_file(checkpoint, tmp_path_factory, tmp_path):
    out = tmp_path_factory.mktemp("no_poses") / "synthetic"
    generate_dataset(out, sequences=1, frames=4, height=HEIGHT, width=WIDTH, seed=1, test_sequences=1)
    (out / SEGMENT / "FRONT" / "odometry.txt").unlink()
    with pytest.raises(DataError, match=r"odometry.txt does not exist: this segment has no ground-truth poses"):
        odometry_runner.run_odometry(options(checkpoint, out, tmp_path))


def test_too_few_poses(checkpoint, tmp_path_factory, tmp_path):
    out = tmp_path_factory.mktemp("short_poses") / "synthetic"
    generate_dataset(out, sequences=1, frames=4, height=HEIGHT, width=WIDTH, seed=1, test_sequences=1)
    path = out / SEGMENT / "FRONT" / "odometry.txt"
    path.write_text("\n".join(path.read_text().splitlines()[:2]) + "\n")
    with pytest.raises(DataError, match="has 2 poses but frame 3 of the segment needs 4"):
        odometry_runner.run_odometry(options(checkpoint, out, tmp_path))


def test_segments_too_short_for_a_track(checkpoint, scenes, tmp_path):
    with pytest.raises(DataError, match="has a track of 12 frames"):
        odometry_runner.run_odometry(options(checkpoint, scenes, tmp_path), track_length=12)


def test_bad_track_options(checkpoint, scenes, tmp_path):
    with pytest.raises(ConfigError, match="--track-length must be at least 2"):
        odometry_runner.run_odometry(options(checkpoint, scenes, tmp_path), track_length=1)
    with pytest.raises(ConfigError, match="--max-segments must be at least 1"):
        odometry_runner.run_odometry(options(checkpoint, scenes, tmp_path), max_segments=0)


def test_consecutive_runs():
    assert consecutive_runs([1, 2, 3, 7, 8, 10]) == [[1, 2, 3], [7, 8], [10]]
    assert consecutive_runs([]) == []
