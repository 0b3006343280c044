"""Train one phase with the trainer, from a checkpoint, on a synthetic dataset, and print its learning curve.

An experiment, never part of training or the demo: it trains one phase (`mask_init` or `fine_tune`,
usually) from a demo run's checkpoint of the phase before, under other seeds, learning rates, batch
sizes or phase lengths, to tell a robust effect from one data order's luck. `--zero-term` changes the
objective itself, setting a term's weight to 0, to find which term does what; the method never does this.
`--oracle-mask` replaces the mask network's output in training by the scenes' true motion mask (the share of
each pixel's area that moves), to ask what the other networks learn once the mask is right. The mask decoder
then gets no gradient; the monitor's mask figures still describe the network's own mask, which changes only
through the motion encoder it shares with the complete flow.

The phase runs as one epoch of `--steps` batches, so its ramped weights reach full strength after a
third of it, as in a demo phase of one epoch (the default demo runs two epochs a phase, so its ramp
covers a sixth of the phase); `--max-steps` stops it earlier without changing that ramp. Every
`--every` steps the held-out monitor of the demo measures the model on `--frames` test frames (see
dynamo_core/training/monitor.py) and the script prints one JSON line; training never sees those labels.
The loss's random stream starts afresh, so RANSAC draws in `fine_tune` differ from the demo's.

    python experiments/phase_from_checkpoint.py --data OUT/data -l OUT/run/models/motion_init_01 \\
        --phase mask_init --steps 250 --seed 3 --out /tmp/mask_seed3

DATA is a folder made by `dynamo demo` (OUT/data) or by `dynamo_core.synthetic.generate_dataset`;
the checkpoint folder must hold all seven module files. The model settings are the demo's: Monodepth2
from scratch at 64x192.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

import dynamo_core.data.augment as augment
from dynamo_core.config import DataConfig, ModelConfig, OptimConfig, RunConfig, TrainConfig, default_scales
from dynamo_core.losses import TERMS, LossConfig
from dynamo_core.evaluation.motseg_metrics import MOVING_LABEL
from dynamo_core.model import MODULE_NAMES, DynamoModel
from dynamo_core.training.monitor import HeldOutMonitor, held_out_batch
from dynamo_core.training.run import build_training_dataset
from dynamo_core.training.state import PHASE_ORDER
from dynamo_core.training.trainer import Trainer


class PrintingMonitor(HeldOutMonitor):
    """The trainer's held-out monitor, printing every measurement as one JSON line as it is taken."""

    def measure(self, model, phase: str, global_step: int, device):
        scalars = super().measure(model, phase, global_step, device)
        print(json.dumps(self.history[-1]), flush=True)
        return scalars


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line, checked; errors exit with status 2 and name what to fix."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="a synthetic dataset folder (train/, test/, splits/)")
    parser.add_argument("-l", "--checkpoint", type=Path, required=True,
                        help="the checkpoint folder to start from, e.g. OUT/run/models/motion_init_01")
    parser.add_argument("--phase", choices=PHASE_ORDER, default="mask_init")
    parser.add_argument("--steps", type=int, default=250, help="batches in the phase's one epoch; sets the ramp")
    parser.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (0: all)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the data order, augmentation and loss sampling")
    parser.add_argument("--learning-rate", type=float, default=3e-4)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--flow-start", choices=("random", "ego"), default="ego",
                        help="the demo's --flow-start; it only shapes networks that the checkpoint does not hold")
    parser.add_argument("--no-flip", action="store_true", help="no horizontal flips")
    parser.add_argument("--no-jitter", action="store_true", help="no colour jitter")
    parser.add_argument("--frames", type=int, default=48, help="held-out test frames the monitor measures")
    parser.add_argument("--every", type=int, default=25, help="steps between measurements")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--zero-term", action="append", default=[], choices=TERMS, metavar="TERM",
                        help=f"set this loss term's weight to 0, repeatable (one of {', '.join(TERMS)}): an experiment "
                             "on the objective, not the method")
    parser.add_argument("--oracle-mask", action="store_true",
                        help="train with the true motion mask in place of the mask network's (an experiment)")
    parser.add_argument("--out", type=Path, required=True, help="a new folder for the run's files")
    args = parser.parse_args(argv)
    missing = [f"{name}.pth" for name in MODULE_NAMES if not (args.checkpoint / f"{name}.pth").is_file()]
    if missing:
        parser.error(f"{args.checkpoint} is not a complete checkpoint folder: {', '.join(missing)} missing")
    if not (args.data / "splits" / "train_files.txt").is_file():
        parser.error(f"{args.data} has no splits/train_files.txt; pass a folder made by `dynamo demo` (OUT/data)")
    if args.out.exists() and (not args.out.is_dir() or any(args.out.iterdir())):
        parser.error(f"{args.out} is not an empty folder; choose a new --out")
    if min(args.steps, args.batch_size, args.every, args.frames) < 1 or args.max_steps < 0:
        parser.error("--steps, --batch-size, --every and --frames must be at least 1, --max-steps at least 0")
    return args


def run_config(args: argparse.Namespace) -> RunConfig:
    """The training configuration of one phase run: the demo's model settings, one epoch of `--steps` batches."""
    weights = {**LossConfig().weights, **dict.fromkeys(args.zero_term, 0.0)}
    return RunConfig(
        model=ModelConfig(depth_model="monodepthv2", weights_init="scratch", height=64, width=192,
                          scales=default_scales("monodepthv2"), flow_start=args.flow_start),
        data=DataConfig(dataset="synthetic", data_path=str(args.data), split=str(args.data / "splits"),
                        img_type="downsample", num_workers=0),
        optim=OptimConfig(learning_rate=args.learning_rate, batch_size=args.batch_size, scheduler_step_size=1000,
                          epoch_schedule=[int(name == args.phase) for name in PHASE_ORDER], epoch_size=args.steps),
        train=TrainConfig(log_dir=str(args.out.parent), name=args.out.name, seed=args.seed, device="cpu",
                          max_steps=args.max_steps, log_frequency=1000, threads=args.threads,
                          keep_checkpoints="phase-end", load=str(args.checkpoint)),
        loss=LossConfig(weights=weights),
    )


def use_true_motion_mask() -> None:
    """Make every model put the batch's true motion mask in place of its mask network's output, when the
    batch carries one ("mot_mask", (B, H_gt, W_gt) labels): at each scale, the share of the pixel's area
    that moves, and the matching logits."""
    predict_motion = DynamoModel.predict_motion

    def with_true_mask(self, inputs: dict, outputs: dict) -> None:
        predict_motion(self, inputs, outputs)
        if "mot_mask" not in inputs or not self.use_motion_mask:
            return
        moving = (inputs["mot_mask"] == MOVING_LABEL).float()[:, None]
        for key in [k for k in outputs if isinstance(k, tuple) and k[0] == "motion_mask"]:
            _, frame, scale = key
            mask = F.interpolate(moving, size=outputs[key].shape[-2:], mode="area")
            outputs[key] = mask
            outputs["motion_prob", frame, scale] = torch.logit(mask.clamp(1e-4, 1 - 1e-4))

    DynamoModel.predict_motion = with_true_mask


def main() -> None:
    args = parse()
    if args.no_flip:
        augment.FLIP_PROBABILITY = 0.0
    if args.no_jitter:
        augment.JITTER_PROBABILITY = 0.0
    config = run_config(args)
    batch = held_out_batch(config, args.frames)
    if batch is None:
        sys.exit(f"{args.data} has no motion labels in its test split; the monitor needs them")
    monitor = PrintingMonitor(batch, args.every, args.out / "monitor.jsonl")
    dataset = build_training_dataset(config)
    if args.oracle_mask:
        if not dataset.has_masks:
            sys.exit(f"{args.data} has no motion labels for its training frames; --oracle-mask needs them")
        dataset.load_mask = True
        use_true_motion_mask()
    Trainer(config, dataset, monitor=monitor).fit()


if __name__ == "__main__":
    main()
