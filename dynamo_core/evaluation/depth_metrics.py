"""Depth metrics: the seven standard errors, per-image scoring against sparse ground truth,
and error sums pooled by motion label.

Ground truth is sparse: each image has rows of `[row, col, depth]` at the ground-truth
image size. A prediction is a scaled disparity at network resolution; it is upsampled,
inverted, median-scaled (monocular depth has no absolute scale) and clamped before scoring.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, NamedTuple, Sequence

import torch
import torch.nn.functional as F

from dynamo_core.errors import DataError

DEPTH_METRIC_NAMES: tuple[str, ...] = ("abs_rel", "sq_rel", "rmse", "rmse_log", "a1", "a2", "a3")

# Motion labels of the ground-truth masks, used to split depth errors by region.
REGION_LABELS: dict[str, int] = {"background": 0, "moving": 1, "static": 2}

FULL_IMAGE: tuple[float, float, float, float] = (0.0, 1.0, 0.0, 1.0)
# Garg crop of the KITTI Eigen test split, as fractions [top, bottom, left, right].
KITTI_GARG_CROP: tuple[float, float, float, float] = (0.40810811, 0.99189189, 0.03594771, 0.96405229)


@dataclass(frozen=True)
class DepthEvalSettings:
    """How one dataset's depth is scored."""

    img_bound: tuple[float, float, float, float]
    """Kept region as fractions of the ground-truth size: [top, bottom, left, right]."""
    min_depth: float
    """Ground-truth points at or below this depth are ignored; predictions are clamped to it."""
    max_depth: float
    """Ground-truth points at or beyond this depth are ignored; predictions are clamped to it."""


DEPTH_EVAL_DEFAULTS: dict[str, DepthEvalSettings] = {
    "kitti": DepthEvalSettings(KITTI_GARG_CROP, 1e-3, 80.0),
    "waymo": DepthEvalSettings(FULL_IMAGE, 1e-3, 75.0),
    "nuscenes": DepthEvalSettings(FULL_IMAGE, 1e-3, 75.0),
    "synthetic": DepthEvalSettings(FULL_IMAGE, 1e-3, 80.0),
}


class DepthErrors(NamedTuple):
    """The seven standard depth metrics; a tuple in `DEPTH_METRIC_NAMES` order."""

    abs_rel: float
    sq_rel: float
    rmse: float
    rmse_log: float
    a1: float
    a2: float
    a3: float

    def as_dict(self) -> dict[str, float]:
        return dict(zip(DEPTH_METRIC_NAMES, self))


# {metric: {label: [sum over images of metric * point count, point count]}}
LabelSums = dict[str, dict[int, list]]


@dataclass
class DepthBatchScores:
    """Scores of one batch."""

    per_image: list[DepthErrors]
    """One entry per image; the dataset figure is the mean over all images."""
    by_label: LabelSums = field(default_factory=dict)
    """Point-weighted error sums per mask label; empty when no mask was given."""


def compute_depth_errors(gt: torch.Tensor, pred: torch.Tensor) -> DepthErrors:
    """Standard depth errors between matching ground-truth and predicted depths.

    Args:
        gt: (N,) positive ground-truth depths.
        pred: (N,) positive predicted depths.
    Returns:
        abs_rel, sq_rel, rmse, rmse_log and the threshold accuracies a1, a2, a3
        (fraction of points with max(gt/pred, pred/gt) below 1.25, 1.25², 1.25³).
    """
    if gt.shape != pred.shape or gt.dim() != 1:
        raise DataError(f"depth errors need two 1-D tensors of equal length, got gt {tuple(gt.shape)} "
                        f"and pred {tuple(pred.shape)}")
    if gt.numel() == 0:
        raise DataError("depth errors need at least one ground-truth point, got none")
    if not (bool((gt > 0).all()) and bool((pred > 0).all())):
        raise DataError("depth errors need strictly positive depths in both gt and pred; "
                        "filter ground truth by min_depth and clamp the prediction first")
    ratio = torch.maximum(gt / pred, pred / gt)
    diff = gt - pred
    return DepthErrors(
        abs_rel=(diff.abs() / gt).mean().item(),
        sq_rel=(diff**2 / gt).mean().item(),
        rmse=(diff**2).mean().sqrt().item(),
        rmse_log=((gt.log() - pred.log()) ** 2).mean().sqrt().item(),
        a1=(ratio < 1.25).float().mean().item(),
        a2=(ratio < 1.25**2).float().mean().item(),
        a3=(ratio < 1.25**3).float().mean().item(),
    )


def _row_validity(depth_valid: torch.Tensor, batch: int, rows: int) -> torch.Tensor:
    """(B,) counts of leading valid rows, or (B, N) row flags -> (B, N) bool."""
    if depth_valid.shape == (batch,):
        return torch.arange(rows, device=depth_valid.device)[None, :] < depth_valid.long()[:, None]
    if depth_valid.shape == (batch, rows):
        return depth_valid.bool()
    raise DataError(f"depth_valid must be (B,) counts or (B, N) row flags for depth_gt of shape "
                    f"({batch}, {rows}, 3), got {tuple(depth_valid.shape)}")


def score_depth_batch(
    disp_scaled: torch.Tensor,
    depth_gt: torch.Tensor,
    depth_valid: torch.Tensor,
    gt_dim: torch.Tensor,
    *,
    mask: torch.Tensor | None = None,
    img_bound: Sequence[float] = FULL_IMAGE,
    min_depth: float = 1e-3,
    max_depth: float = 80.0,
) -> DepthBatchScores:
    """Score each image of a batch against its sparse ground truth.

    For each image: upsample the disparity bilinearly to the ground-truth size, invert it,
    keep ground-truth points inside `img_bound` with min_depth < depth < max_depth, scale
    the prediction by median(gt) / median(pred), clamp it to [min_depth, max_depth] and score.

    Args:
        disp_scaled: (B, 1, h, w) scaled disparity (1 / depth up to scale).
        depth_gt: (B, N, 3) rows of [row, col, depth] at ground-truth size, zero padded.
        depth_valid: (B,) number of leading valid rows, or (B, N) flags of valid rows.
        gt_dim: (B, 2) ground-truth image size as (height, width).
        mask: optional (B, H_gt, W_gt) integer labels; errors are then also pooled per label.
        img_bound: kept region as fractions [top, bottom, left, right] of the ground-truth size.
        min_depth, max_depth: depth range of the scored points and of the clamp.
    Returns:
        per-image errors, and per-label sums `{metric: {label: [sum of metric * count, count]}}`.
    """
    if disp_scaled.dim() != 4 or disp_scaled.shape[1] != 1:
        raise DataError(f"disp_scaled must be (B, 1, h, w), got {tuple(disp_scaled.shape)}")
    batch = disp_scaled.shape[0]
    if depth_gt.dim() != 3 or depth_gt.shape[0] != batch or depth_gt.shape[2] != 3:
        raise DataError(f"depth_gt must be (B, N, 3) with B={batch}, got {tuple(depth_gt.shape)}")
    if tuple(gt_dim.shape) != (batch, 2):
        raise DataError(f"gt_dim must be (B, 2) with B={batch}, got {tuple(gt_dim.shape)}")
    if len(img_bound) != 4:
        raise DataError(f"img_bound must hold four fractions [top, bottom, left, right], got {list(img_bound)}")
    if mask is not None and (mask.dim() != 3 or mask.shape[0] != batch):
        raise DataError(f"mask must be (B, H_gt, W_gt) with B={batch}, got {tuple(mask.shape)}")
    top, bottom, left, right = (float(b) for b in img_bound)
    if not (0 <= top < bottom <= 1 and 0 <= left < right <= 1):
        raise DataError("img_bound must satisfy 0 <= top < bottom <= 1 and 0 <= left < right <= 1, "
                        f"got {list(img_bound)}")
    valid_rows = _row_validity(depth_valid, batch, depth_gt.shape[1])

    # Every label of the batch gets an entry, even one that no scored point carries.
    labels = [int(v) for v in torch.unique(mask).tolist()] if mask is not None else []
    by_label: LabelSums = {name: {label: [0.0, 0] for label in labels} for name in DEPTH_METRIC_NAMES} if labels else {}
    per_image: list[DepthErrors] = []

    for i in range(batch):
        height, width = int(gt_dim[i, 0]), int(gt_dim[i, 1])
        if mask is not None and tuple(mask.shape[1:]) != (height, width):
            raise DataError(f"mask image {i} is {tuple(mask.shape[1:])} but gt_dim says {(height, width)}")
        rows, cols, depth = depth_gt[i].unbind(dim=1)
        keep = (
            valid_rows[i]
            & (rows >= int(top * height)) & (rows < int(bottom * height))
            & (cols >= int(left * width)) & (cols < int(right * width))
            & (depth > min_depth) & (depth < max_depth)
        )
        if not bool(keep.any()):
            raise DataError(f"image {i} of the batch has no ground-truth point inside img_bound "
                            f"{list(img_bound)} and depth range ({min_depth}, {max_depth}); "
                            "check depth_gt, depth_valid and gt_dim")
        row_idx, col_idx = rows[keep].long(), cols[keep].long()

        disp_full = F.interpolate(disp_scaled[i : i + 1], size=(height, width), mode="bilinear", align_corners=False)
        pred = 1.0 / disp_full[0, 0][row_idx, col_idx]
        gt = depth[keep]
        pred = pred * (gt.median() / pred.median())
        pred = pred.clamp(min_depth, max_depth)
        per_image.append(compute_depth_errors(gt, pred))

        if mask is not None:
            point_labels = mask[i][row_idx, col_idx]
            for label in labels:
                selected = point_labels == label
                count = int(selected.sum())
                if count == 0:
                    continue
                for name, value in zip(DEPTH_METRIC_NAMES, compute_depth_errors(gt[selected], pred[selected])):
                    by_label[name][label][0] += value * count
                    by_label[name][label][1] += count

    return DepthBatchScores(per_image=per_image, by_label=by_label)


def mean_depth_errors(per_image: Iterable[DepthErrors]) -> DepthErrors:
    """Mean of each metric over images (the dataset's overall figure)."""
    per_image = list(per_image)
    if not per_image:
        raise DataError("no images were scored, so there is no mean depth error")
    return DepthErrors(*(math.fsum(column) / len(per_image) for column in zip(*per_image)))


def merge_label_sums(total: LabelSums, batch: LabelSums) -> LabelSums:
    """Add one batch's per-label sums into `total` (in place) and return it."""
    for name, per_label in batch.items():
        target = total.setdefault(name, {})
        for label, (value_sum, count) in per_label.items():
            current = target.setdefault(label, [0.0, 0])
            current[0] += value_sum
            current[1] += count
    return total


def region_means(by_label: LabelSums, regions: dict[str, int] = REGION_LABELS) -> dict[str, DepthErrors]:
    """Point-weighted mean errors per region (background 0, moving 1, static 2 by default).

    A region without any scored point gets NaN for every metric.
    """
    result = {}
    for region, label in regions.items():
        values = []
        for name in DEPTH_METRIC_NAMES:
            value_sum, count = by_label.get(name, {}).get(label, (0.0, 0))
            values.append(value_sum / count if count else math.nan)
        result[region] = DepthErrors(*values)
    return result
