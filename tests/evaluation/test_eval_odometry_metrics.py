"""Odometry metrics: parity with the reference ATEs and hand-computed tracks."""

import math

import numpy as np
import pytest

from dynamo_core.errors import DataError
from dynamo_core.evaluation import (
    compute_ate,
    evaluate_odometry,
    gt_relative_poses,
    pose_tracks,
    summary_stats,
    to_homogeneous,
)

RTOL = 1e-5


@pytest.fixture(scope="module")
def odometry_fixture(metrics_file) -> dict:
    return metrics_file["odometry"]


def test_parity_ate_and_speed_per_track(odometry_fixture):
    result = evaluate_odometry(
        odometry_fixture["pred_relative_poses"], odometry_fixture["gt_global_poses"],
        int(odometry_fixture["track_length"]),
    )
    np.testing.assert_allclose(result.ates, odometry_fixture["ates"].numpy(), rtol=RTOL, atol=0)
    np.testing.assert_allclose(result.speeds, odometry_fixture["speeds"].numpy(), rtol=RTOL, atol=0)


def _translation(x: float, y: float, z: float) -> np.ndarray:
    pose = np.eye(4)
    pose[:3, 3] = (x, y, z)
    return pose


def _rotation_z(angle: float) -> np.ndarray:
    pose = np.eye(4)
    pose[:2, :2] = [[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]]
    return pose


def _random_trajectory(frames: int, seed: int) -> np.ndarray:
    """(frames, 4, 4) camera-to-world poses that wander and turn."""
    rng = np.random.default_rng(seed)
    poses = [_translation(100.0, -50.0, 2.0)]
    for _ in range(frames - 1):
        step = _translation(*rng.uniform([0.5, -0.1, -0.1], [1.5, 0.1, 0.1])) @ _rotation_z(rng.uniform(-0.1, 0.1))
        poses.append(poses[-1] @ step)
    return np.stack(poses)


# Predicted (x, y, z) are read as ground-truth (z, x, y): conjugating by this permutation
# expresses a ground-truth motion in the predicted axes.
TO_PRED_AXES = np.eye(4)[[1, 2, 0, 3]]


def test_ground_truth_as_prediction_has_zero_ate():
    global_poses = _random_trajectory(12, seed=0)
    pred = TO_PRED_AXES @ gt_relative_poses(global_poses) @ TO_PRED_AXES.T
    result = evaluate_odometry(pred, global_poses, track_length=5)
    assert len(result.ates) == 12 - 1 - 2
    np.testing.assert_allclose(result.ates, 0, atol=1e-9)
    # A prediction at another scale is aligned by the least-squares scale.
    scaled = pred.copy()
    scaled[:, :3, 3] *= 3.0
    np.testing.assert_allclose(evaluate_odometry(scaled, global_poses, 5).ates, 0, atol=1e-9)
    # Without the axis change the same motion is wrong.
    assert evaluate_odometry(gt_relative_poses(global_poses), global_poses, 5).ates.max() > 0.01


def test_tracks_follow_the_published_rule():
    steps = np.stack([_translation(1.0, 0, 0)] * 6)
    tracks = pose_tracks(steps, track_length=5)
    # Starts 0..2 have four poses (five points); start 3 has three poses (four points) and
    # is still kept; starts 4 and 5 are too short.
    assert [len(track) for track in tracks] == [5, 5, 5, 4]
    np.testing.assert_allclose(tracks[0][:, 0], [0, 1, 2, 3, 4])
    np.testing.assert_allclose(tracks[3][:, 0], [0, 1, 2, 3])
    np.testing.assert_allclose(tracks[0][:, 1:], 0)


def test_relative_ground_truth_poses():
    global_poses = np.stack([_translation(0, 0, 0), _translation(2, 0, 0), _translation(2, 3, 0)])
    relative = gt_relative_poses(global_poses)
    # Each relative pose maps the next frame's origin back by the step.
    np.testing.assert_allclose(relative[0][:3, 3], [-2, 0, 0])
    np.testing.assert_allclose(relative[1][:3, 3], [0, -3, 0])
    speeds = evaluate_odometry(np.stack([_translation(0, 0, 1)] * 2), global_poses, track_length=3).speeds
    np.testing.assert_allclose(speeds, [2.5, 3.0])  # (2 + 3) / 2, then the short last track


def test_compute_ate_hand_computed():
    gt = np.array([[0.0, 0, 0], [1, 0, 0]])
    # Orthogonal motion: the best scale is 0, leaving the whole ground-truth step: sqrt(1) / 2.
    assert compute_ate(gt, np.array([[0.0, 0, 0], [0, 1, 0]])) == pytest.approx(0.5)
    # Shifted and twice as long: aligned exactly.
    assert compute_ate(gt, np.array([[5.0, 5, 5], [7, 5, 5]])) == pytest.approx(0.0)
    # Three points, scale (1*1 + 2*1) / (1 + 1) = 1.5: errors 0.5 and 0.5 -> sqrt(0.5) / 3.
    gt3 = np.array([[0.0, 0, 0], [1, 0, 0], [2, 0, 0]])
    pred3 = np.array([[0.0, 0, 0], [1, 0, 0], [1, 0, 0]])
    assert compute_ate(gt3, pred3) == pytest.approx(math.sqrt(0.5) / 3)


def test_summary_stats():
    stats = summary_stats([4.0, 1.0, 3.0, 2.0])
    expected = {"mean": 2.5, "std": pytest.approx(math.sqrt(1.25)), "median": 2.5, "min": 1.0, "max": 4.0, "count": 4}
    assert stats == expected
    empty = summary_stats([])
    assert empty["count"] == 0 and math.isnan(empty["mean"])


def test_pose_formats_and_errors():
    rows = np.arange(24, dtype=float).reshape(2, 12)  # two 3x4 poses, row-major
    poses = to_homogeneous(rows)
    assert poses.shape == (2, 4, 4)
    np.testing.assert_array_equal(poses[:, 3], [[0, 0, 0, 1]] * 2)
    np.testing.assert_array_equal(poses[1, 0], [12, 13, 14, 15])
    with pytest.raises(DataError, match="one pose more"):
        evaluate_odometry(np.stack([np.eye(4)] * 3), np.stack([np.eye(4)] * 3))
    with pytest.raises(DataError, match="poses must be"):
        to_homogeneous(np.zeros((2, 5)))
    with pytest.raises(DataError, match="track_length"):
        pose_tracks(np.stack([np.eye(4)] * 3), track_length=1)
