"""`dynamo eval odometry`: absolute trajectory error of short tracks of predicted ego-motion.

For each test segment (sorted, up to `max_segments`), the frames with both neighbours are taken in
order; the pose network predicts the motion of each pair (frame, frame + 1), the poses are chained
into tracks of `track_length` frames and scored against `<segment>/<cam>/odometry.txt` (one
camera-to-world pose per frame, 12 or 16 numbers a line) with the SfMLearner protocol.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..data.base import FrameDataset, SplitLine
from ..data.splits import read_split
from ..errors import ConfigError, DataError
from ..geometry import pose_vec_to_matrix
from .inference import (
    EvalContext,
    EvalOptions,
    Progress,
    has_neighbours,
    prepare,
    report_header,
    segment_frames,
    split_segments,
    to_device,
    write_json,
    write_npz,
    write_text,
)
from .odometry_metrics import DEFAULT_TRACK_LENGTH, evaluate_odometry, summary_stats, to_homogeneous

DEFAULT_MAX_SEGMENTS = 100
ODOMETRY_FILE = "odometry.txt"


@dataclass
class SegmentOdometry:
    name: str
    ates: np.ndarray
    speeds: np.ndarray

    def to_dict(self) -> dict:
        return {"segment": self.name, "tracks": int(len(self.ates)), "ate": summary_stats(self.ates),
                "speed": summary_stats(self.speeds)}


@dataclass
class OdometryEvalResult:
    """ATE and speed statistics of every track of the evaluated segments."""

    track_length: int
    segments: list[SegmentOdometry]
    summary: dict = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)

    @property
    def ates(self) -> np.ndarray:
        return np.concatenate([s.ates for s in self.segments]) if self.segments else np.zeros(0)

    @property
    def speeds(self) -> np.ndarray:
        return np.concatenate([s.speeds for s in self.segments]) if self.segments else np.zeros(0)

    def to_dict(self) -> dict:
        return {
            "task": "odometry",
            **self.summary,
            "track_length": self.track_length,
            "tracks": int(len(self.ates)),
            "ate": summary_stats(self.ates),
            "speed": summary_stats(self.speeds),
            "segments": [s.to_dict() for s in self.segments],
            "files": [str(p) for p in self.files],
        }


def odometry_path(dataset: FrameDataset, segment: str) -> Path:
    """Where a segment's ground-truth poses live: beside the camera's image folders."""
    return dataset.image_path(segment, 0, "l").parents[2] / ODOMETRY_FILE


def read_global_poses(path: Path) -> np.ndarray:
    """(N, 4, 4) camera-to-world poses, one per frame, from a text file of 12 or 16 numbers a line."""
    if not path.is_file():
        raise DataError(
            f"{path} does not exist: this segment has no ground-truth poses, so its odometry cannot be scored. "
            "Odometry needs <segment>/<cam>/odometry.txt, which `dynamo prepare` writes for every dataset "
            "(for KITTI, from the OXTS packets: prepare again from the raw drives if it is missing)."
        )
    try:
        rows = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except (ValueError, OSError) as err:
        raise DataError(f"{path} is not a text file of pose rows ({err}); re-create it with `dynamo prepare`.") from None
    if rows.shape[1] not in (12, 16) or not np.isfinite(rows).all():
        raise DataError(f"{path} must hold 12 or 16 finite numbers per line (a 3x4 or 4x4 pose), "
                        f"found {rows.shape[1]}; re-create it with `dynamo prepare`.")
    return to_homogeneous(rows, str(path))


def consecutive_runs(frames: list[int]) -> list[list[int]]:
    """[1, 2, 3, 7, 8] -> [[1, 2, 3], [7, 8]]: tracks never bridge a gap."""
    runs: list[list[int]] = []
    for frame in frames:
        if runs and frame == runs[-1][-1] + 1:
            runs[-1].append(frame)
        else:
            runs.append([frame])
    return runs


@torch.no_grad()
def predict_relative_poses(context: EvalContext, batch: dict) -> torch.Tensor:
    """(B, 4, 4) motion of each pair (frame, frame + 1): the pose of frame + 1 in the frame's camera."""
    outputs: dict = {}
    inputs = {("color_aug", f, 0): batch["color_aug", f, 0] for f in (0, 1)}
    context.model.predict_poses(inputs, outputs)
    return pose_vec_to_matrix(outputs["axisangle", 0, 1], outputs["translation", 0, 1], invert=False)


def segment_plan(context: EvalContext, segments: list[str]) -> list[tuple[str, FrameDataset, list[list[int]], np.ndarray]]:
    """For each segment: its dataset over the frames with both neighbours, their runs and the GT poses.

    Everything is checked before the first prediction, so a bad segment fails fast.
    """
    plan = []
    for segment in segments:
        probe = context.dataset([f"{segment} 0"], frame_ids=(0,))
        frames = [f for f in segment_frames(probe, segment) if has_neighbours(probe, SplitLine(segment, f))]
        poses_path = odometry_path(probe, segment)
        poses = read_global_poses(poses_path)
        if not frames:
            plan.append((segment, probe, [], poses))
            continue
        needed = frames[-1] + 2
        if len(poses) < needed:
            raise DataError(f"{poses_path} has {len(poses)} poses but frame {frames[-1] + 1} of the segment needs "
                            f"{needed}; the file must hold one pose per frame.")
        dataset = context.dataset([f"{segment} {f}" for f in frames], frame_ids=(0, 1))
        plan.append((segment, dataset, consecutive_runs(frames), poses))
    return plan


def check_track_options(max_segments: int, track_length: int) -> None:
    if max_segments < 1:
        raise ConfigError(f"--max-segments must be at least 1, got {max_segments}.")
    if track_length < 2:
        raise ConfigError(f"--track-length must be at least 2, got {track_length}.")


def evaluate_odometry_segments(context: EvalContext, *, max_segments: int = DEFAULT_MAX_SEGMENTS,
                               track_length: int = DEFAULT_TRACK_LENGTH,
                               progress: Progress | None = None) -> OdometryEvalResult:
    check_track_options(max_segments, track_length)
    segments = split_segments(read_split(context.split_folder, "test"))[:max_segments]
    plan = segment_plan(context, segments)
    # A track of n frames chains n - 2 pairs at least (the last track of a run is a frame short).
    if not any(len(run) >= track_length - 2 for _, _, runs, _ in plan for run in runs):
        raise no_tracks_error(context, track_length)
    total = sum(len(dataset) for _, dataset, runs, _ in plan if runs)
    done = 0
    results = []
    for segment, dataset, runs, poses in plan:
        predicted: list[torch.Tensor] = []
        if runs:
            for batch in context.loader(dataset):
                predicted.append(predict_relative_poses(context, to_device(batch, context.device)).double().cpu())
                done += len(predicted[-1])
                if progress is not None:
                    progress("odometry", done, total)
        relative = torch.cat(predicted).numpy() if predicted else np.zeros((0, 4, 4))
        ates, speeds, start = [], [], 0
        for run in runs:
            scored = evaluate_odometry(relative[start : start + len(run)], poses[run[0] : run[-1] + 2], track_length)
            ates.append(scored.ates)
            speeds.append(scored.speeds)
            start += len(run)
        results.append(SegmentOdometry(segment, np.concatenate(ates) if ates else np.zeros(0),
                                       np.concatenate(speeds) if speeds else np.zeros(0)))
    result = OdometryEvalResult(track_length=track_length, segments=results, summary=context.summary())
    if len(result.ates) == 0:
        raise no_tracks_error(context, track_length)
    return result


def no_tracks_error(context: EvalContext, track_length: int) -> DataError:
    return DataError(
        f"no segment of {context.split_folder} has a track of {track_length} frames: a track needs "
        f"{track_length - 2} consecutive frames whose neighbours exist. Use longer segments or a smaller --track-length."
    )


def _stats_lines(title: str, stats: dict) -> list[str]:
    return [title] + [f"  {key:<8}{stats[key]:.6f}" for key in ("mean", "std", "median", "min", "max")]


def format_report(result: OdometryEvalResult) -> str:
    summary = result.summary
    lines = report_header(summary, f"{summary.get('height')}x{summary.get('width')}") + [
        f"tracks:     {len(result.ates)} of {result.track_length} frames in {len(result.segments)} segments",
        "",
    ]
    for segment in result.segments:
        ate, speed = summary_stats(segment.ates), summary_stats(segment.speeds)
        lines.append(f"{segment.name:<60} ATE {ate['mean']:.4f} ± {ate['std']:.4f}  "
                     f"speed {speed['mean']:.4f} ± {speed['std']:.4f}  tracks {len(segment.ates)}")
    lines.append("")
    lines += _stats_lines(f"ATE (track length {result.track_length}):", summary_stats(result.ates))
    lines += _stats_lines("speed (ground-truth distance per frame):", summary_stats(result.speeds))
    return "\n".join(lines) + "\n"


def run_odometry(options: EvalOptions, *, max_segments: int = DEFAULT_MAX_SEGMENTS,
                 track_length: int = DEFAULT_TRACK_LENGTH, progress: Progress | None = None) -> OdometryEvalResult:
    """Build the pose network, score the test segments and write odometry.txt, .json and tracks.npz."""
    check_track_options(max_segments, track_length)
    context = prepare(options, "odometry", frame_ids=(0, 1))
    result = evaluate_odometry_segments(context, max_segments=max_segments, track_length=track_length, progress=progress)
    folder = context.output_folder
    segment_of_track = np.concatenate([np.full(len(s.ates), i) for i, s in enumerate(result.segments)])
    result.files = [folder / "odometry.txt", folder / "odometry.json", folder / "tracks.npz"]
    write_text(result.files[0], format_report(result))
    write_json(result.files[1], result.to_dict())
    write_npz(result.files[2], ate=result.ates, speed=result.speeds, segment=segment_of_track,
              segments=np.array([s.name for s in result.segments]))
    return result
