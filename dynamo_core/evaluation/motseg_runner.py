"""`dynamo eval motseg`: motion-segmentation precision, recall and F1 over a threshold sweep.

Items of `test_mask_files.txt` whose neighbouring frames (-1, +1) exist are scored. Each predicted
motion mask is upsampled to the ground-truth size; counts are pooled over all pixels (label 1
positive, label 3 ignored). Where semantic classes are known (Waymo, synthetic), false positives
at the best-F1 threshold are tallied per class.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from ..data.base import parse_split_line
from ..data.splits import SPLIT_FILES, read_split, validate_items
from ..errors import DataError
from .inference import (
    EvalContext, EvalOptions, Progress, has_neighbours, prepare, report_header, to_device, write_json, write_npz,
    write_text,
)
from .motseg_metrics import MOVING_LABEL, UNLABELED_LABEL, MotionSegAccumulator, MotionSegResult

WAYMO_CLASSES = {
    0: "undefined", 1: "ego_vehicle", 2: "car", 3: "truck", 4: "bus", 5: "other_vehicle", 6: "bicycle",
    7: "motorcycle", 8: "trailer", 9: "pedestrian", 10: "bicyclist", 11: "motorcyclist", 12: "bird",
    13: "ground_animal", 14: "construction_cone_pole", 15: "pole", 16: "pedestrian_object", 17: "sign",
    18: "traffic_light", 19: "building", 20: "road", 21: "lane_marker", 22: "road_marker", 23: "sidewalk",
    24: "vegetation", 25: "sky", 26: "ground", 27: "dynamic", 28: "static",
}


def semantic_classes(dataset: str) -> dict[int, str] | None:
    """Names of the semantic class ids of a dataset's masks; None where masks carry no classes."""
    if dataset == "waymo":
        return WAYMO_CLASSES
    if dataset == "synthetic":
        from ..synthetic import SEMANTIC_CODES

        return {code: name for name, code in SEMANTIC_CODES.items()}
    return None


@dataclass
class MotionSegEvalResult:
    """PR sweep of one checkpoint on one split."""

    sweep: MotionSegResult
    image_count: int
    skipped_count: int
    """Items of the mask split left out because a neighbouring frame is missing."""
    false_positives: dict[str, int] | None = None
    """False-positive pixels per semantic class at the best-F1 threshold; None without classes."""
    summary: dict = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)

    def to_dict(self) -> dict:
        sweep = self.sweep
        return {
            "task": "motseg",
            **self.summary,
            "images": self.image_count,
            "skipped_without_neighbours": self.skipped_count,
            "best_f1": sweep.best_f1,
            "best_threshold": sweep.best_threshold,
            "precision_at_best": float(sweep.precision[sweep.best_index]),
            "recall_at_best": float(sweep.recall[sweep.best_index]),
            "average_precision": sweep.average_precision,
            "thresholds": len(sweep.thresholds),
            "false_positives_by_class": self.false_positives,
            "files": [str(p) for p in self.files],
        }


def no_labels_error(context: EvalContext) -> DataError:
    return DataError(
        f"{context.split_folder / SPLIT_FILES['test_mask']} does not exist: the {context.options.dataset} dataset "
        "in this split has no motion labels, so motion segmentation cannot be scored. Use a split with "
        "test_mask_files.txt (Waymo, nuScenes or synthetic)."
    )


class ClassFalsePositiveSweep:
    """False-positive pixels per semantic class at every threshold of a sweep, streamed over batches.

    Counts match `false_positives_by_class` at each threshold: a pixel is a false positive when its
    probability is strictly above the threshold and its motion label is neither 1 nor 3.
    """

    CLASSES = 256  # semantic masks are uint8

    def __init__(self, thresholds: torch.Tensor):
        self.thresholds = thresholds.detach().cpu()
        self._hist = torch.zeros(self.CLASSES, len(self.thresholds) + 1, dtype=torch.int64)

    def update(self, motion_prob: torch.Tensor, gt_mot_mask: torch.Tensor, sem_mask: torch.Tensor) -> None:
        """motion_prob: (B, 1, H, W) at ground-truth size; gt_mot_mask, sem_mask: (B, H, W)."""
        labels = gt_mot_mask.reshape(-1)
        candidate = (labels != MOVING_LABEL) & (labels != UNLABELED_LABEL)
        prob = motion_prob.detach().cpu().reshape(-1)[candidate].contiguous()
        classes = sem_mask.detach().cpu().reshape(-1)[candidate].long()
        # Number of thresholds strictly below each probability: positive at threshold k iff k < below.
        below = torch.searchsorted(self.thresholds.to(prob.dtype), prob, right=False)
        bins = len(self.thresholds) + 1
        self._hist += torch.bincount(classes * bins + below, minlength=self.CLASSES * bins).reshape(self.CLASSES, bins)

    def counts_at(self, threshold_index: int) -> dict[int, int]:
        """{class id: false-positive pixels} at one threshold, classes without any left out."""
        counts = self._hist[:, threshold_index + 1 :].sum(dim=1)
        return {int(c): int(counts[c]) for c in torch.nonzero(counts).flatten().tolist()}


@torch.no_grad()
def predict_motion_mask(context: EvalContext, batch: dict) -> torch.Tensor:
    """(B, 1, H, W) probability of independent motion at the model's size.

    Runs only the pose network (the mask is conditioned on ego-motion) and the mask head.
    """
    model = context.model
    inputs = {key: batch[key] for key in batch if isinstance(key, tuple) and key[0] == "color_aug"}
    outputs: dict = {}
    model.set_heads(complete_flow=False, motion_mask=True)
    model.predict_poses(inputs, outputs)
    model.predict_motion(inputs, outputs)
    return outputs["motion_mask", -1, 0]


def evaluate_motseg(context: EvalContext, progress: Progress | None = None) -> MotionSegEvalResult:
    """Sweep thresholds over the items of `test_mask_files.txt` that have both neighbours."""
    if not (context.split_folder / SPLIT_FILES["test_mask"]).is_file():
        raise no_labels_error(context)
    lines = read_split(context.split_folder, "test_mask")
    probe = context.dataset(lines, frame_ids=(0,))
    if not probe.has_masks:
        raise no_labels_error(context)
    kept = [line for number, line in enumerate(lines, start=1) if has_neighbours(probe, parse_split_line(line, number))]
    if not kept:
        raise DataError(
            f"none of the {len(lines)} items of {context.split_folder / SPLIT_FILES['test_mask']} has both "
            "neighbouring frames (-1 and +1) in the data folder; the motion mask needs three frames."
        )
    dataset = context.dataset(kept, frame_ids=(0, -1, 1), load_mask=True)
    validate_items(dataset, (lambda done, total: progress("checking files", done, total)) if progress else None)

    accumulator = MotionSegAccumulator()
    tally = ClassFalsePositiveSweep(accumulator.thresholds)
    classes = semantic_classes(context.options.dataset)
    loader = context.loader(dataset)
    for done, batch in enumerate(loader, start=1):
        labels = batch["mot_mask"]
        mask = predict_motion_mask(context, to_device(batch, context.device)).float().cpu()
        prob = F.interpolate(mask, size=tuple(labels.shape[-2:]), mode="bilinear", align_corners=False)
        accumulator.update(prob, labels)
        if classes is not None:
            tally.update(prob, labels, batch["sem_mask"])
        if progress is not None:
            progress("motion mask", done, len(loader))
    sweep = accumulator.compute()

    result = MotionSegEvalResult(sweep=sweep, image_count=len(dataset), skipped_count=len(lines) - len(kept),
                                 summary=context.summary())
    if classes is not None:
        counts = tally.counts_at(sweep.best_index)
        result.false_positives = {classes.get(c, f"class_{c}"): n for c, n in sorted(counts.items(), key=lambda kv: -kv[1])}
    return result


def format_report(result: MotionSegEvalResult) -> str:
    summary, sweep = result.summary, result.sweep
    network = f"{summary.get('depth_model')} at {summary.get('height')}x{summary.get('width')}"
    lines = report_header(summary, network) + [
        f"images:     {result.image_count} ({result.skipped_count} skipped without both neighbours)",
        "",
        f"best F1:            {sweep.best_f1:.4f}",
        f"at threshold:       {sweep.best_threshold:.4f}",
        f"precision, recall:  {sweep.precision[sweep.best_index]:.4f}, {sweep.recall[sweep.best_index]:.4f}",
        f"average precision:  {sweep.average_precision:.4f}",
    ]
    if result.false_positives is not None:
        total = sum(result.false_positives.values())
        lines += ["", f"false positives by class at the best-F1 threshold ({total} pixels):"]
        lines += [f"  {name:<24}{count:>12}" for name, count in result.false_positives.items()]
    return "\n".join(lines) + "\n"


def run_motseg(options: EvalOptions, progress: Progress | None = None) -> MotionSegEvalResult:
    """Build the pose and mask networks, sweep the split, and write the report, npz and figures."""
    from .plots import save_false_positive_bars, save_pr_curve

    context = prepare(options, "motseg", frame_ids=(0, -1, 1))
    result = evaluate_motseg(context, progress)
    folder, sweep = context.output_folder, result.sweep
    files = [
        write_npz(folder / "pr_record.npz", precision=sweep.precision, recall=sweep.recall, f1=sweep.f1,
                  thresholds=sweep.thresholds),
    ]
    files += save_pr_curve(sweep.precision, sweep.recall, folder / "pr_curve", baseline=float(sweep.precision[0]),
                           best_index=sweep.best_index, label=f"AP {sweep.average_precision:.3f}")
    if result.false_positives:
        files += save_false_positive_bars(list(result.false_positives), list(result.false_positives.values()),
                                          folder / "false_positives",
                                          title=f"False positives at threshold {sweep.best_threshold:.2f}")
    result.files = files + [folder / "motseg.txt", folder / "motseg.json"]
    write_text(folder / "motseg.txt", format_report(result))
    write_json(folder / "motseg.json", result.to_dict())
    return result
