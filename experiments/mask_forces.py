"""Which loss terms push the motion mask up or down on moving pixels, and how much the mask could gain there.

An experiment, never part of training or the demo. On `--frames` held-out test frames of a synthetic dataset,
with a checkpoint's networks and every ramped weight at full strength, it prints one JSON object:

- `mask_moving`, `mask_others`: the mean mask (source frame -1, scale 0) on moving and on all other pixels;
- `push/<term>/moving`, `push/<term>/others`: the mean over those pixels of minus the gradient of the term's
  share of the loss with respect to the mask's logits at scale 0, times the number of pixels of the batch
  (so that it reads per pixel): positive lifts the mask there, negative lowers it. `<term>` is each term
  that reaches the logits (`p_photo`, `m_sparsity`, `m_smooth`) and `total`, the whole objective, which
  their sum must equal; also on the moving pixels' outline (those with a non-moving pixel among their eight
  neighbours) and their interior (`moving_outline`, `moving_interior`, pixel counts in `pixels/...`), since a
  term that acts on the objects' outlines scales with their perimeter and one that acts inside them with
  their area;
- `photo_gain_on_moving`: the change of the photometric error per moving pixel (scale 0, both sources)
  when the mask is forced to m on the moving pixels and left as predicted elsewhere, for m from 0 to 1.
  A curve that falls steadily gives the mask a gradient to follow; a flat start would leave it none.

    python experiments/mask_forces.py --data OUT/data -l OUT/run/models/mask_init_01

The model settings are the demo's: Monodepth2 from scratch at 64x192.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import default_collate

from dynamo_core import losses
from dynamo_core.checkpoints import load_weights
from dynamo_core.config import ModelConfig, default_scales
from dynamo_core.data.factory import build_dataset
from dynamo_core.data.splits import read_split
from dynamo_core.evaluation.motseg_metrics import MOVING_LABEL, UNLABELED_LABEL
from dynamo_core.model import MODULE_NAMES, DynamoModel
from dynamo_core.training.monitor import spread_inner_frames
from dynamo_core.training.trainer import add_color_pyramid

HEIGHT, WIDTH = 64, 192
MASK_TERMS = ("p_photo", "m_sparsity", "m_smooth")
"""The terms whose gradient reaches the mask's logits (the consistency term sees the mask detached)."""
FORCED_VALUES = (0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0)


def held_out_frames(data: Path, frames: int, scales) -> dict:
    """`frames` inner test frames with motion labels, spread evenly, collated, with the colour pyramid."""
    chosen = spread_inner_frames(read_split(data / "splits", "test_mask"), frames)
    dataset = build_dataset("synthetic", str(data), chosen, height=HEIGHT, width=WIDTH, frame_ids=(0, -1, 1),
                            num_scales=len(scales), load_depth=False, load_mask=True, img_type="downsample")
    batch = default_collate([dataset[i] for i in range(len(dataset))])
    add_color_pyramid(batch, scales)
    return batch


def outline_and_interior(moving: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Split (B, H, W) bool `moving` into its outline (moving pixels with a non-moving pixel among their eight
    neighbours; beyond the image border counts as moving) and the rest, its interior."""
    near_other = F.max_pool2d((~moving).float()[:, None], 3, stride=1, padding=1)[:, 0] > 0
    return moving & near_other, moving & ~near_other


def measure(model: DynamoModel, batch: dict, phase: str = "fine_tune") -> dict:
    """The forces on the mask and the photometric gain curve (see the module docstring)."""
    scales = model.config.scales
    model.set_heads(True, True)
    model.eval()
    labels = F.interpolate(batch["mot_mask"].float()[:, None], size=(HEIGHT, WIDTH), mode="nearest")[:, 0]
    moving = labels == MOVING_LABEL
    others = (labels != MOVING_LABEL) & (labels != UNLABELED_LABEL)
    pixels = labels.numel()
    full_weight = (10**6, 1)  # a step far past the ramp

    def objective(outputs, used_scales=scales):
        return losses.compute(batch, outputs, losses.PHASES[phase], *full_weight, scales=used_scales,
                              generator=torch.Generator().manual_seed(0))

    outputs = model(batch)
    result = objective(outputs)
    logits = outputs["motion_prob", -1, 0]
    mask = outputs["motion_mask", -1, 0].detach()[:, 0]
    outline, interior = outline_and_interior(moving)
    regions = {"moving": moving, "others": others, "moving_outline": outline, "moving_interior": interior}
    report = {"mask_moving": float(mask[moving].mean()), "mask_others": float(mask[others].mean())}
    report.update({f"pixels/{name}": int(region.sum()) for name, region in regions.items()})
    shares = {term: result.coefficients[term] * result.terms[term] / len(scales) for term in MASK_TERMS}
    shares["total"] = result.total
    for term, share in shares.items():
        (grad,) = torch.autograd.grad(share, logits, retain_graph=True)
        push = -grad[:, 0] * pixels
        for name, region in regions.items():
            report[f"push/{term}/{name}"] = float(push[region].mean()) if bool(region.any()) else 0.0

    with torch.no_grad():
        predicted = {k: v.detach() for k, v in outputs.items()}
        errors = {}
        for value in FORCED_VALUES:
            forced = dict(predicted)
            for scale in scales:
                current = predicted["motion_mask", -1, scale]
                on_moving = F.interpolate(moving[:, None].float(), size=current.shape[-2:], mode="nearest") > 0.5
                forced["motion_mask", -1, scale] = forced["motion_mask", 1, scale] = torch.where(
                    on_moving, torch.full_like(current, value), current)
            # Only scale 0, whose error is a plain mean over the pixels: its change is the moving pixels' change.
            errors[value] = float(objective(forced, (0,)).terms["p_photo"]) * pixels / float(moving.sum())
        report["photo_gain_on_moving"] = {str(value): errors[value] - errors[0.0] for value in FORCED_VALUES}
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="a synthetic dataset folder (test/, splits/)")
    parser.add_argument("-l", "--checkpoint", type=Path, required=True, help="a checkpoint folder with all seven networks")
    parser.add_argument("--frames", type=int, default=24, help="held-out test frames to measure on")
    parser.add_argument("--phase", choices=("mask_init", "fine_tune"), default="fine_tune",
                        help="whose objective; both train the mask with the same terms")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    missing = [f"{name}.pth" for name in MODULE_NAMES if not (args.checkpoint / f"{name}.pth").is_file()]
    if missing:
        parser.error(f"{args.checkpoint} is not a complete checkpoint folder: {', '.join(missing)} missing")
    if not (args.data / "splits" / "test_mask_files.txt").is_file():
        parser.error(f"{args.data} has no splits/test_mask_files.txt; pass a folder made by `dynamo demo` (OUT/data)")
    if args.frames < 1:
        parser.error("--frames must be at least 1")
    torch.set_num_threads(args.threads)
    scales = default_scales("monodepthv2")
    model = DynamoModel(ModelConfig(depth_model="monodepthv2", weights_init="scratch", height=HEIGHT, width=WIDTH,
                                    scales=scales))
    load_weights(model, args.checkpoint, height=HEIGHT, width=WIDTH)
    print(json.dumps(measure(model, held_out_frames(args.data, args.frames, scales), args.phase)))


if __name__ == "__main__":
    main()
