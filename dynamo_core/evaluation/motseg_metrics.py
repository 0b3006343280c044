"""Motion segmentation metrics: precision, recall and F1 over a sweep of thresholds, pooled
over every pixel of every image, plus a tally of false positives by semantic class.

Ground-truth motion labels: 0 background, 1 moving, 2 static object, 3 unlabeled.
Only label 1 is a positive. A pixel is predicted positive where its probability is strictly
greater than the threshold. Predictions on label-3 pixels are not counted as false positives.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from dynamo_core.errors import DataError

MOVING_LABEL = 1
UNLABELED_LABEL = 3
DEFAULT_THRESHOLD_COUNT = 150


def default_thresholds(count: int = DEFAULT_THRESHOLD_COUNT) -> torch.Tensor:
    """(count,) float32 thresholds evenly spaced from -1/(count-1) to 1 - 1/(count-1).

    The first threshold is below 0 so every pixel counts as positive there, and the last
    is below 1 so a probability of exactly 1 still counts as positive.
    """
    if count < 2:
        raise DataError(f"the threshold count must be at least 2, got {count}")
    step = 1 / (count - 1)
    return torch.linspace(0 - step, 1 - step, count)


def _flatten_pair(motion_prob: torch.Tensor, gt_mot_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Accept (B, 1, H, W), (B, H, W) or (H, W) probabilities with a matching label map."""
    prob = motion_prob[:, 0] if motion_prob.dim() == 4 and motion_prob.shape[1] == 1 else motion_prob
    if prob.shape != gt_mot_mask.shape:
        raise DataError(f"motion_prob {tuple(motion_prob.shape)} does not match gt_mot_mask "
                        f"{tuple(gt_mot_mask.shape)}; resize the prediction to the ground-truth size first")
    if prob.is_floating_point() and bool(torch.isnan(prob).any()):
        raise DataError("motion_prob contains NaN values")
    return prob.reshape(-1), gt_mot_mask.reshape(-1)


@dataclass
class MotionSegResult:
    """Pooled counts and scores, one entry per threshold (thresholds ascending)."""

    thresholds: np.ndarray
    true_positives: np.ndarray
    false_positives: np.ndarray
    false_negatives: np.ndarray

    @property
    def precision(self) -> np.ndarray:
        """tp / (tp + fp); 0 where nothing is predicted positive."""
        return self.true_positives / (self.true_positives + self.false_positives + 1e-10)

    @property
    def recall(self) -> np.ndarray:
        """tp / (tp + fn); 0 where no pixel is moving."""
        return self.true_positives / (self.true_positives + self.false_negatives + 1e-10)

    @property
    def f1(self) -> np.ndarray:
        precision, recall = self.precision, self.recall
        return 2 * precision * recall / (precision + recall + 1e-10)

    @property
    def best_index(self) -> int:
        """Index of the highest F1 (the first one on ties)."""
        return int(np.argmax(self.f1))

    @property
    def best_f1(self) -> float:
        return float(self.f1[self.best_index])

    @property
    def best_threshold(self) -> float:
        return float(self.thresholds[self.best_index])

    @property
    def average_precision(self) -> float:
        return average_precision(self.precision, self.recall)


class MotionSegAccumulator:
    """Streams batches and pools true/false positive counts per threshold.

    Memory does not grow with the dataset: only three (T,) count vectors are kept.
    """

    def __init__(self, thresholds: torch.Tensor | None = None):
        """thresholds: (T,) strictly increasing; `default_thresholds()` when omitted."""
        thresholds = default_thresholds() if thresholds is None else torch.as_tensor(thresholds)
        if thresholds.dim() != 1 or thresholds.numel() == 0:
            raise DataError(f"thresholds must be a non-empty 1-D tensor, got shape {tuple(thresholds.shape)}")
        if thresholds.numel() > 1 and not bool((thresholds[1:] > thresholds[:-1]).all()):
            raise DataError("thresholds must be strictly increasing")
        self.thresholds = thresholds.detach().cpu()
        count = thresholds.numel()
        self._tp = torch.zeros(count, dtype=torch.int64)
        self._predicted = torch.zeros(count, dtype=torch.int64)  # positives outside unlabeled pixels
        self._moving = 0

    def _above_counts(self, prob: torch.Tensor) -> torch.Tensor:
        """(P,) probabilities -> (T,) number of them strictly above each threshold."""
        thresholds = self.thresholds.to(dtype=prob.dtype)
        # Index of the first threshold >= p, i.e. how many thresholds lie strictly below p.
        below = torch.searchsorted(thresholds, prob.contiguous(), right=False)
        hist = torch.bincount(below, minlength=thresholds.numel() + 1)
        at_least = hist.flip(0).cumsum(0).flip(0)  # at_least[k] = #pixels with `below` >= k
        return at_least[1:]

    def update(self, motion_prob: torch.Tensor, gt_mot_mask: torch.Tensor) -> None:
        """Add one batch.

        Args:
            motion_prob: (B, 1, H, W) or (B, H, W) probabilities at ground-truth size.
            gt_mot_mask: (B, H, W) labels 0 background, 1 moving, 2 static, 3 unlabeled.
        """
        prob, labels = _flatten_pair(motion_prob.detach().cpu(), gt_mot_mask.detach().cpu())
        if not prob.is_floating_point():
            prob = prob.float()
        moving = labels == MOVING_LABEL
        self._tp += self._above_counts(prob[moving])
        self._predicted += self._above_counts(prob[labels != UNLABELED_LABEL])
        self._moving += int(moving.sum())

    def compute(self) -> MotionSegResult:
        tp = self._tp.numpy().copy()
        return MotionSegResult(
            thresholds=self.thresholds.numpy().copy(),
            true_positives=tp,
            false_positives=self._predicted.numpy() - tp,
            false_negatives=self._moving - tp,
        )


def average_precision(precision: np.ndarray, recall: np.ndarray) -> float:
    """Area under the precision-recall curve, as a step function.

    Points are visited in order of increasing recall (for a threshold sweep: from the highest
    threshold down; ties keep that order). Each rise in recall is weighted by the precision
    of the point where the rise happens, starting from recall 0:
        AP = sum_n (R_n - R_{n-1}) * P_n,  R_0 = 0.
    This is the non-interpolated AP formula of scikit-learn's `average_precision_score`,
    evaluated at the given thresholds only (a coarse sweep can differ from the exact value).

    Args:
        precision, recall: (T,) in threshold-ascending order, as `MotionSegResult` holds them.
    """
    precision = np.asarray(precision, dtype=np.float64)[::-1]
    recall = np.asarray(recall, dtype=np.float64)[::-1]
    if precision.shape != recall.shape or precision.ndim != 1:
        raise DataError(f"precision {precision.shape} and recall {recall.shape} must be 1-D of equal length")
    order = np.argsort(recall, kind="stable")
    recall, precision = recall[order], precision[order]
    rises = np.diff(recall, prepend=0.0)
    return float(np.sum(rises * precision))


def false_positives_by_class(
    motion_prob: torch.Tensor, gt_mot_mask: torch.Tensor, sem_mask: torch.Tensor, threshold: float
) -> dict[int, int]:
    """Count false-positive pixels per semantic class at one threshold.

    A false positive is a pixel with probability > threshold that is neither moving (1)
    nor unlabeled (3). Sum the returned counts over batches to tally a dataset.

    Args:
        motion_prob: (B, 1, H, W), (B, H, W) or (H, W) probabilities at ground-truth size.
        gt_mot_mask: labels of the same (B, H, W) or (H, W) shape.
        sem_mask: semantic class ids of the same shape.
    Returns:
        {class id: false-positive pixel count}, classes with no false positive left out.
    """
    prob, labels = _flatten_pair(motion_prob.detach().cpu(), gt_mot_mask.detach().cpu())
    if sem_mask.numel() != labels.numel() or tuple(sem_mask.shape) != tuple(gt_mot_mask.shape):
        raise DataError(f"sem_mask {tuple(sem_mask.shape)} does not match gt_mot_mask {tuple(gt_mot_mask.shape)}")
    false_positive = (prob > threshold) & (labels != MOVING_LABEL) & (labels != UNLABELED_LABEL)
    classes, counts = torch.unique(sem_mask.detach().cpu().reshape(-1)[false_positive], return_counts=True)
    return {int(c): int(n) for c, n in zip(classes.tolist(), counts.tolist())}
