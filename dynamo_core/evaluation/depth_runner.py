"""`dynamo eval depth`: the seven depth metrics over a split, and per motion region where labels exist.

Each image's disparity is upsampled to the ground-truth size, inverted, median-scaled, clamped and
scored on the lidar points inside the dataset's evaluation crop and depth range. The overall figure
is the mean over the images of `test_files.txt`; region figures pool the points of each motion label
over the images of `test_mask_files.txt`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..data.splits import SPLIT_FILES, read_split, validate_items
from ..geometry import disp_to_depth
from .depth_metrics import (
    DEPTH_EVAL_DEFAULTS,
    DEPTH_METRIC_NAMES,
    DepthErrors,
    DepthEvalSettings,
    mean_depth_errors,
    merge_label_sums,
    region_means,
    score_depth_batch,
)
from .inference import EvalContext, EvalOptions, Progress, prepare, report_header, to_device, write_json, write_text


@dataclass
class DepthEvalResult:
    """Depth metrics of one checkpoint on one split."""

    overall: DepthErrors
    """Mean over images of `test_files.txt`."""
    image_count: int
    settings: DepthEvalSettings
    regions: dict[str, DepthErrors] | None = None
    """Point-pooled errors per region (background, moving, static); None without motion labels."""
    region_image_count: int = 0
    region_note: str = ""
    """Why regions were not scored, when they were not."""
    summary: dict = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "task": "depth",
            **self.summary,
            "crop": list(self.settings.img_bound),
            "min_depth": self.settings.min_depth,
            "max_depth": self.settings.max_depth,
            "images": self.image_count,
            "overall": self.overall.as_dict(),
            "region_images": self.region_image_count,
            "regions": {name: errors.as_dict() for name, errors in self.regions.items()} if self.regions else None,
            "region_note": self.region_note or None,
            "files": [str(p) for p in self.files],
        }

    def table_rows(self) -> list[tuple[str, DepthErrors]]:
        rows = [("overall", self.overall)]
        if self.regions:
            rows += list(self.regions.items())
        return rows


@torch.no_grad()
def predict_scaled_disparity(context: EvalContext, batch: dict) -> torch.Tensor:
    """(B, 1, H, W) scaled disparity (1 / depth up to scale) of the target frame."""
    outputs: dict = {}
    context.model.predict_depth({("color_aug", 0, 0): batch["color_aug", 0, 0]}, outputs)
    scaled, _ = disp_to_depth(outputs["disp", 0, 0], context.config.min_depth, context.config.max_depth)
    return scaled


def score_split(context: EvalContext, dataset, settings: DepthEvalSettings, *, with_masks: bool,
                stage: str, progress: Progress | None = None):
    """Per-image errors and (with masks) per-label sums over a dataset."""
    per_image: list[DepthErrors] = []
    by_label: dict = {}
    loader = context.loader(dataset)
    total = len(loader)
    for done, batch in enumerate(loader, start=1):
        batch = to_device(batch, context.device)
        scores = score_depth_batch(
            predict_scaled_disparity(context, batch).float(),
            batch["depth_gt"],
            batch["depth_valid"],
            batch["gt_dim"],
            mask=batch["mot_mask"] if with_masks else None,
            img_bound=settings.img_bound,
            min_depth=settings.min_depth,
            max_depth=settings.max_depth,
        )
        per_image.extend(scores.per_image)
        merge_label_sums(by_label, scores.by_label)
        if progress is not None:
            progress(stage, done, total)
    return per_image, by_label


def evaluate_depth(context: EvalContext, progress: Progress | None = None) -> DepthEvalResult:
    """Score the context's model on its split; regions too when the split has `test_mask_files.txt`."""
    name = context.options.dataset
    settings = DEPTH_EVAL_DEFAULTS[name]
    lines = read_split(context.split_folder, "test")
    dataset = context.dataset(lines, frame_ids=(0,), load_depth=True)
    validate_items(dataset, (lambda done, total: progress("checking files", done, total)) if progress else None)
    per_image, _ = score_split(context, dataset, settings, with_masks=False, stage="depth", progress=progress)
    result = DepthEvalResult(overall=mean_depth_errors(per_image), image_count=len(per_image), settings=settings,
                             summary=context.summary())

    mask_file = context.split_folder / SPLIT_FILES["test_mask"]
    if not dataset.has_masks:
        result.region_note = f"the {name} dataset has no motion labels"
    elif not mask_file.is_file():
        result.region_note = f"{mask_file} does not exist"
    else:
        mask_dataset = context.dataset(read_split(context.split_folder, "test_mask"), frame_ids=(0,),
                                       load_depth=True, load_mask=True)
        validate_items(mask_dataset)
        _, by_label = score_split(context, mask_dataset, settings, with_masks=True, stage="depth by region",
                                  progress=progress)
        result.regions = region_means(by_label)
        result.region_image_count = len(mask_dataset)
    return result


def format_value(value: float) -> str:
    """3 decimals; n/a for a region without any scored point."""
    return "n/a" if math.isnan(value) else f"{value:.3f}"


def format_report(result: DepthEvalResult) -> str:
    """The text report: what was scored and one row of metrics per region, 3 decimals."""
    summary = result.summary
    network = f"{summary.get('depth_model')} at {summary.get('height')}x{summary.get('width')}"
    lines = report_header(summary, network) + [
        f"images:     {result.image_count} overall, {result.region_image_count} with motion labels",
        "",
        f"{'':<12}" + "".join(f"{name:>10}" for name in DEPTH_METRIC_NAMES),
    ]
    for region, errors in result.table_rows():
        lines.append(f"{region:<12}" + "".join(f"{format_value(value):>10}" for value in errors))
    if result.region_note:
        lines.append(f"regions not scored: {result.region_note}")
    return "\n".join(lines) + "\n"


def run_depth(options: EvalOptions, progress: Progress | None = None) -> DepthEvalResult:
    """Build the depth network from the checkpoint, score the split and write depth.txt and depth.json."""
    context = prepare(options, "depth", frame_ids=(0, -1, 1))
    result = evaluate_depth(context, progress)
    folder = context.output_folder
    result.files = [folder / "depth.txt", folder / "depth.json"]
    write_text(result.files[0], format_report(result))
    write_json(result.files[1], result.to_dict())
    return result
