"""Learning curves on a fixed held-out batch with ground truth: what the motion mask and depth learn.

Training never sees this batch or its labels; the monitor only measures. Every `every` steps it runs
the model in eval mode on the batch and returns scalars for TensorBoard, and appends them to a JSON
Lines file so that a report can draw the curves:

| scalar                          | when the mask head runs | what                                        |
| ------------------------------- | ----------------------- | ------------------------------------------- |
| monitor/abs_rel                 | always                  | depth error over all ground-truth points    |
| monitor/abs_rel_moving          | always                  | depth error on independently moving objects |
| monitor/disp_spread             | always                  | disparity's std / mean per image, averaged: 0 for a constant map, whose median-scaled abs_rel looks fair |
| monitor/mask_f1, monitor/mask_ap | yes                    | best F1 and average precision of the mask   |
| monitor/mask_moving, _static    | yes                     | mean mask on moving and on all other pixels |
| monitor/moving_labelled_static  | yes                     | share of moving pixels that the sparsity term pushes towards "static" |
| monitor/photo_ego_moving, monitor/photo_flow_moving | yes | photometric error on moving pixels of the ego warp (depth and pose) and of the complete-flow warp |
| monitor/photo_ego_static, monitor/photo_flow_static | yes | the same on all other pixels |

The mask can only win against the sparsity term where the complete flow explains a pixel better than the
ego warp: when the two photometric errors on moving pixels meet, the mask has lost its support there.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import torch
import torch.nn.functional as F

from .. import losses
from ..evaluation.depth_metrics import mean_depth_errors, region_means, score_depth_batch
from ..evaluation.motseg_metrics import MOVING_LABEL, UNLABELED_LABEL, MotionSegAccumulator
from ..geometry import PhotometricError, disp_to_depth, grid_camera, pixel_grid, project_to_grid

log = logging.getLogger(__name__)


DEPTH_SCALARS = ("abs_rel", "abs_rel_moving", "disp_spread")
MASK_SCALARS = ("mask_f1", "mask_ap", "mask_moving", "mask_static", "moving_labelled_static",
                "photo_ego_moving", "photo_flow_moving", "photo_ego_static", "photo_flow_static")


class HeldOutMonitor:
    """Measures a model on one fixed batch every `every` steps.

    Args:
        batch: a collated batch of the evaluation dataset with ("color_aug", f, 0) for f in (0, -1, 1),
            ("K", 0), ("inv_K", 0), "depth_gt", "depth_valid", "gt_dim" and "mot_mask" (B, H_gt, W_gt).
        every: steps between measurements (the first step of every phase is measured too).
        record: JSON Lines file the measurements are appended to; None keeps them in memory only.
    """

    def __init__(self, batch: dict, every: int, record: Path | None = None, *, min_depth: float = 0.1,
                 max_depth: float = 100.0, eval_max_depth: float = 80.0):
        self.batch = batch
        self.every = max(1, int(every))
        self.record = Path(record) if record is not None else None
        self.min_depth, self.max_depth, self.eval_max_depth = min_depth, max_depth, eval_max_depth
        self.history: list[dict] = []
        self._phase: str | None = None

    def due(self, phase: str, phase_step: int) -> bool:
        started = phase != self._phase
        self._phase = phase
        return started or (phase_step + 1) % self.every == 0

    @torch.no_grad()
    def measure(self, model, phase: str, global_step: int, device: torch.device) -> dict[str, float]:
        """Scalars for this step (see the module docstring); the model is left in the mode it was in."""
        was_training = model.training
        model.eval()
        try:
            batch = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in self.batch.items()}
            inputs = {k: v for k, v in batch.items() if isinstance(k, tuple) and k[0] == "color_aug"}
            outputs = model(inputs)
            with_mask = ("motion_mask", -1, 0) in outputs
            if all(bool(torch.isfinite(v).all()) for v in outputs.values()):
                values = self._depth(batch, outputs)
                if with_mask:
                    values.update(self._mask(batch, outputs))
            else:
                # A diverged model is for the trainer to report; the curve shows a gap.
                log.warning("the model's outputs on the held-out frames are not finite at step %d", global_step)
                values = dict.fromkeys(DEPTH_SCALARS + (MASK_SCALARS if with_mask else ()), math.nan)
        finally:
            model.train(was_training)
        entry = {"phase": phase, "step": int(global_step), **values}
        self.history.append(entry)
        if self.record is not None:
            self.record.parent.mkdir(parents=True, exist_ok=True)
            with self.record.open("a") as handle:
                handle.write(json.dumps(entry) + "\n")
        return {f"monitor/{k}": v for k, v in values.items()}

    def _depth(self, batch: dict, outputs: dict) -> dict[str, float]:
        scaled, _ = disp_to_depth(outputs["disp", 0, 0].float(), self.min_depth, self.max_depth)
        scores = score_depth_batch(scaled.cpu(), batch["depth_gt"].cpu(), batch["depth_valid"].cpu(),
                                   batch["gt_dim"].cpu(), mask=batch["mot_mask"].cpu(), max_depth=self.eval_max_depth)
        regions = region_means(scores.by_label)
        moving = regions.get("moving")
        return {
            "abs_rel": mean_depth_errors(scores.per_image).abs_rel,
            "abs_rel_moving": moving.abs_rel if moving is not None else math.nan,
            "disp_spread": disparity_spread(outputs["disp", 0, 0]),
        }

    def _mask(self, batch: dict, outputs: dict) -> dict[str, float]:
        labels = batch["mot_mask"].cpu()
        size = tuple(labels.shape[-2:])
        mask = outputs["motion_mask", -1, 0].float()
        prob = F.interpolate(mask, size=size, mode="bilinear", align_corners=False).cpu()
        sweep = MotionSegAccumulator()
        sweep.update(prob, labels)
        result = sweep.compute()
        moving = labels == MOVING_LABEL
        others = (labels != MOVING_LABEL) & (labels != UNLABELED_LABEL)
        grid_ego, grid_complete = self._grids(batch, outputs)
        static = losses.static_pixels(grid_ego, grid_complete, mask.shape[-2:])
        static = F.interpolate(static.float(), size=size, mode="nearest")[:, 0].cpu() > 0.5
        errors = {}
        error_to_target = PhotometricError(batch["color_aug", 0, 0].float(), losses.LossConfig().ssim_weight)
        source = batch["color_aug", -1, 0].float()
        for name, grid in (("ego", grid_ego), ("flow", grid_complete)):
            warped = F.grid_sample(source, grid, padding_mode="border", align_corners=True)
            error = F.interpolate(error_to_target(warped), size=size, mode="bilinear", align_corners=False)[:, 0].cpu()
            errors[f"photo_{name}_moving"] = _mean_over(error, moving)
            errors[f"photo_{name}_static"] = _mean_over(error, others)
        prob = prob[:, 0]
        return {
            "mask_f1": float(result.best_f1),
            "mask_ap": float(result.average_precision),
            "mask_moving": _mean_over(prob, moving),
            "mask_static": _mean_over(prob, others),
            "moving_labelled_static": _mean_over(static.float(), moving),
            **errors,
        }

    def _grids(self, batch: dict, outputs: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Where source frame -1 is sampled at scale 0, (B, H, W, 2) each: by the ego warp (depth and pose, a
        static world) and by the complete flow. The sparsity term labels pixels by the gap between the two."""
        disp = outputs["disp", 0, 0].float()
        batch_size, _, height, width = disp.shape
        _, depth = disp_to_depth(disp, self.min_depth, self.max_depth)
        rays = batch["inv_K", 0][:, :3, :3] @ pixel_grid(height, width, dtype=disp.dtype, device=disp.device)
        points = depth.reshape(batch_size, 1, -1) * rays
        T = outputs["cam_T_cam", 0, -1].float()
        camera = grid_camera(batch["K", 0], height, width)
        flow = outputs["complete_flow", -1, 0].float() * batch["ts", -1].reshape(batch_size, 1, 1, 1).to(disp.dtype)
        grid_ego = project_to_grid(points, camera @ T, height, width)
        grid_complete = project_to_grid(points + flow.reshape(batch_size, 3, -1), camera, height, width)
        return grid_ego, grid_complete


def _mean_over(values: torch.Tensor, where: torch.Tensor) -> float:
    """Mean of `values` over the True pixels of `where` (same shape); NaN when there are none."""
    return float(values[where].mean()) if bool(where.any()) else math.nan


def disparity_spread(disp: torch.Tensor) -> float:
    """Coefficient of variation (std / mean) of each image's disparity (B, 1, H, W), averaged over the batch.

    A depth network that collapses to a constant map scores 0 here, while median scaling still gives it a
    plausible abs_rel (the error of predicting one depth everywhere)."""
    flat = disp.detach().float().flatten(1)
    return float((flat.std(1, unbiased=False) / flat.mean(1).clamp_min(1e-12)).mean())


def spread_inner_frames(lines: list[str], items: int) -> list[str]:
    """Up to `items` split lines spread evenly over those whose frame has both neighbours in its sequence
    (the mask needs them)."""
    inner = [line for i, line in enumerate(lines) if 0 < i < len(lines) - 1
             and lines[i - 1].split()[0] == line.split()[0] == lines[i + 1].split()[0]]
    step = max(1, len(inner) // items)
    return inner[step // 2 :: step][:items]


def held_out_batch(config, items: int = 8) -> dict | None:
    """`items` frames spread evenly over the test split of `config`'s dataset, with depth and motion labels,
    collated into one batch; None when the split has no motion labels (only labelled data can be monitored)."""
    from torch.utils.data import default_collate

    from ..data.factory import build_dataset
    from ..data.splits import SPLIT_FILES, read_split
    from .run import split_folder

    folder = split_folder(config)
    if not (folder / SPLIT_FILES["test_mask"]).is_file():
        return None
    chosen = spread_inner_frames(read_split(folder, "test_mask"), items)
    if not chosen:
        return None
    dataset = build_dataset(config.data.dataset, config.data.data_path, chosen, height=config.model.height,
                            width=config.model.width, frame_ids=(0, -1, 1), num_scales=1, load_depth=True,
                            load_mask=True, img_type=config.data.img_type or None)
    if not dataset.has_masks:
        return None
    return default_collate([dataset[i] for i in range(len(dataset))])
