"""Evaluation metrics: pure functions over predictions and ground truth (no model, no dataset).

- depth: `compute_depth_errors`, `score_depth_batch`, `mean_depth_errors`, `region_means`
- motion segmentation: `MotionSegAccumulator`, `average_precision`, `false_positives_by_class`
- odometry: `evaluate_odometry`, `pose_tracks`, `compute_ate`, `summary_stats`

Figures are in `dynamo_core.evaluation.plots` (imported on demand: it needs matplotlib).
"""

from dynamo_core.evaluation.depth_metrics import (
    DEPTH_EVAL_DEFAULTS,
    DEPTH_METRIC_NAMES,
    REGION_LABELS,
    DepthBatchScores,
    DepthErrors,
    DepthEvalSettings,
    compute_depth_errors,
    mean_depth_errors,
    merge_label_sums,
    region_means,
    score_depth_batch,
)
from dynamo_core.evaluation.motseg_metrics import (
    MotionSegAccumulator,
    MotionSegResult,
    average_precision,
    default_thresholds,
    false_positives_by_class,
)
from dynamo_core.evaluation.odometry_metrics import (
    OdometryResult,
    chain_positions,
    compute_ate,
    evaluate_odometry,
    gt_relative_poses,
    pose_tracks,
    summary_stats,
    to_homogeneous,
)

__all__ = [
    "DEPTH_EVAL_DEFAULTS",
    "DEPTH_METRIC_NAMES",
    "REGION_LABELS",
    "DepthBatchScores",
    "DepthErrors",
    "DepthEvalSettings",
    "MotionSegAccumulator",
    "MotionSegResult",
    "OdometryResult",
    "average_precision",
    "chain_positions",
    "compute_ate",
    "compute_depth_errors",
    "default_thresholds",
    "evaluate_odometry",
    "false_positives_by_class",
    "gt_relative_poses",
    "mean_depth_errors",
    "merge_label_sums",
    "pose_tracks",
    "region_means",
    "score_depth_batch",
    "summary_stats",
    "to_homogeneous",
]
