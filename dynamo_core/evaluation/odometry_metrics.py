"""Odometry metrics: absolute trajectory error (ATE) over short tracks, with scale alignment.

This is the SfMLearner protocol: the predicted relative poses are chained into tracks of
`track_length` frames, each track is shifted so its first point matches the ground truth,
scaled by the least-squares factor, and scored by sqrt(sum of squared errors) / points.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from dynamo_core.errors import DataError

DEFAULT_TRACK_LENGTH = 5


def _as_array(values, name: str) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise DataError(f"{name} must be numeric poses: {error}") from None


def to_homogeneous(poses, name: str = "poses") -> np.ndarray:
    """(M, 3, 4), (M, 4, 4), (M, 12) or (M, 16) poses -> (M, 4, 4) float64.

    Rows of 12 values are 3x4 matrices in row-major order, as pose text files store them.
    """
    poses = _as_array(poses, name)
    if poses.ndim == 2 and poses.shape[1] in (12, 16):
        poses = poses.reshape(len(poses), -1, 4)
    if poses.ndim != 3 or poses.shape[1:] not in ((3, 4), (4, 4)):
        raise DataError(f"{name} must be (M, 4, 4), (M, 3, 4), (M, 12) or (M, 16), got {poses.shape}")
    if poses.shape[1] == 3:
        last_row = np.broadcast_to(np.array([0.0, 0.0, 0.0, 1.0]), (len(poses), 1, 4))
        poses = np.concatenate([poses, last_row], axis=1)
    return poses


def gt_relative_poses(global_poses) -> np.ndarray:
    """(N+1, 4, 4) camera-to-world poses -> (N, 4, 4) relative poses, inv(inv(G[i]) @ G[i+1]).

    These are in the same sense as the predicted poses of the frame pairs (i, i+1). The
    motion is formed first and inverted last: global positions can be far from the origin,
    and this order keeps the published rounding.
    """
    poses = to_homogeneous(global_poses, "gt_global_poses")
    return np.linalg.inv(np.linalg.inv(poses[:-1]) @ poses[1:])


def chain_positions(relative_poses) -> np.ndarray:
    """(n, 4, 4) relative poses -> (n+1, 3) positions of the chained poses, starting at the origin."""
    poses = to_homogeneous(relative_poses, "relative_poses") if len(relative_poses) else np.zeros((0, 4, 4))
    current = np.eye(4)
    positions = [current[:3, 3].copy()]
    for pose in poses:
        current = current @ pose
        positions.append(current[:3, 3].copy())
    return np.stack(positions)


def pose_tracks(relative_poses, track_length: int = DEFAULT_TRACK_LENGTH) -> list[np.ndarray]:
    """Tracks of positions, one starting at each frame pair.

    Track i chains poses i .. i + track_length - 2, so it has `track_length` points. Near the
    end fewer poses remain; a track is kept while it has at least `track_length - 1` points,
    so the last kept track is one point short (the published protocol does this).

    Args:
        relative_poses: (N, 4, 4) pose of each frame pair.
    Returns:
        list of (track_length, 3) or (track_length - 1, 3) arrays.
    """
    if track_length < 2:
        raise DataError(f"track_length must be at least 2, got {track_length}")
    poses = to_homogeneous(relative_poses, "relative_poses")
    tracks = []
    for start in range(len(poses)):
        positions = chain_positions(poses[start : start + track_length - 1])
        if len(positions) >= track_length - 1:
            tracks.append(positions)
    return tracks


def reorder_pred_axes(positions: np.ndarray) -> np.ndarray:
    """(n, 3) predicted xyz -> (n, 3) ordered (z, x, y), the ground truth's axis order."""
    return positions[:, [2, 0, 1]]


def compute_ate(gt_positions: np.ndarray, pred_positions: np.ndarray) -> float:
    """ATE of one track after aligning the first point and the scale.

    Args:
        gt_positions, pred_positions: (n, 3) positions of the same frames.
    Returns:
        sqrt(sum ||scale * pred - gt||²) / n, with the least-squares scale
        (0 if the prediction does not move at all).
    """
    if gt_positions.shape != pred_positions.shape or gt_positions.ndim != 2 or gt_positions.shape[1] != 3:
        raise DataError(f"ATE needs two (n, 3) tracks of equal length, "
                        f"got {gt_positions.shape} and {pred_positions.shape}")
    pred = pred_positions + (gt_positions[0] - pred_positions[0])
    norm = np.sum(pred**2)
    scale = np.sum(gt_positions * pred) / norm if norm > 0 else 0.0
    return float(np.sqrt(np.sum((scale * pred - gt_positions) ** 2)) / len(gt_positions))


def mean_speed(positions: np.ndarray) -> float:
    """(n, 3) positions -> mean distance between consecutive points."""
    return float(np.linalg.norm(np.diff(positions, axis=0), axis=1).mean())


@dataclass
class OdometryResult:
    """Per-track values, in track order."""

    ates: np.ndarray
    """(T,) ATE of each track."""
    speeds: np.ndarray
    """(T,) mean ground-truth distance per frame of each track."""

    def summary(self) -> dict[str, dict[str, float]]:
        return {"ate": summary_stats(self.ates), "speed": summary_stats(self.speeds)}


def evaluate_odometry(pred_relative_poses, gt_global_poses, track_length: int = DEFAULT_TRACK_LENGTH) -> OdometryResult:
    """ATE and speed of every track of one sequence.

    Args:
        pred_relative_poses: (N, 4, 4) predicted pose of each frame pair (i, i+1); the
            chained positions are reordered from (x, y, z) to (z, x, y) before scoring.
        gt_global_poses: (N+1, 4, 4) (or 3x4) ground-truth camera-to-world pose of each frame.
        track_length: frames per track.
    Returns:
        per-track ATEs and speeds; empty when the sequence is shorter than one track.
    """
    pred = to_homogeneous(pred_relative_poses, "pred_relative_poses")
    gt_global = to_homogeneous(gt_global_poses, "gt_global_poses")
    if len(gt_global) != len(pred) + 1:
        raise DataError(f"gt_global_poses must have one pose more than pred_relative_poses "
                        f"(one per frame versus one per frame pair), got {len(gt_global)} and {len(pred)}")
    pred_tracks = pose_tracks(pred, track_length)
    gt_tracks = pose_tracks(gt_relative_poses(gt_global), track_length)
    ates = [compute_ate(gt, reorder_pred_axes(p)) for gt, p in zip(gt_tracks, pred_tracks)]
    speeds = [mean_speed(gt) for gt in gt_tracks]
    return OdometryResult(ates=np.asarray(ates, dtype=np.float64), speeds=np.asarray(speeds, dtype=np.float64))


def summary_stats(values) -> dict[str, float]:
    """mean, std (population), median, min, max and count; NaN statistics when empty."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if values.size == 0:
        nan = float("nan")
        return {"mean": nan, "std": nan, "median": nan, "min": nan, "max": nan, "count": 0}
    return {
        "mean": float(values.mean()),
        "std": float(values.std()),
        "median": float(np.median(values)),
        "min": float(values.min()),
        "max": float(values.max()),
        "count": int(values.size),
    }
