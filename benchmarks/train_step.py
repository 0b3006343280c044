"""Median wall time of one training step per phase, and peak memory. Prints one JSON object.

    python benchmarks/train_step.py --depth-model litemono -b 2 --height 192 --width 640 --threads 2

`--work reference` repeats the work pattern of the reference implementation with this code base,
for a like-for-like comparison on the same machine: depth for every frame (two results unused),
gradients through every network whatever the phase trains, plain convolutions in the default memory
layout, the default allocator, float32 and torch's default (unfused) Adam.
The loss values are the same in both modes when our step runs in float32 (`--precision fp32`).

Each phase also reports its GFLOP (torch.utils.flop_counter, one extra step) and the GFLOP/s it
achieves, next to `conv_forward`: this machine's rate for a plain 3x3 convolution forward, the
floor a step can approach. `machine` names the CPU, its flags, the torch version and the threads.
`peak_rss_mb` is the whole process's: to compare memory, run `--work ours` and `--work reference`
separately.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode

from dynamo_core.config import ModelConfig, OptimConfig, RunConfig, TrainConfig, DataConfig, default_scales
from dynamo_core.losses import PHASES
from dynamo_core.runtime import machine_info
from dynamo_core.training.trainer import Trainer

SHARED = Path(os.environ.get("DYNAMO_SHARED", Path(__file__).resolve().parents[2] / "shared"))
KITTI = SHARED / "data/tiny_kitti/2011_09_26/2011_09_26_drive_0001_sync/image_02/rgb/downsample"


def intrinsics(height: int, width: int) -> torch.Tensor:
    """KITTI-like (4, 4) intrinsics at this size."""
    return torch.tensor([[0.58 * width, 0, 0.5 * width, 0], [0, 1.92 * height, 0.5 * height, 0], [0, 0, 1, 0], [0, 0, 0, 1]])


def add_size_options(parser: argparse.ArgumentParser, depth_model: str) -> None:
    """The options every training-step benchmark shares: model, batch, image size, threads."""
    parser.add_argument("--depth-model", default=depth_model, choices=["litemono", "monodepthv2"])
    parser.add_argument("-b", "--batch-size", type=int, default=2)
    parser.add_argument("--height", type=int, default=192)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--threads", type=int, default=2)


def bench_config(args: argparse.Namespace, run_dir: str) -> RunConfig:
    """A scratch-weights CPU run of the asked model and size, logging no images."""
    return RunConfig(
        model=ModelConfig(depth_model=args.depth_model, weights_init="scratch", height=args.height, width=args.width,
                          scales=default_scales(args.depth_model)),
        data=DataConfig(num_workers=0),
        optim=OptimConfig(batch_size=args.batch_size),
        train=TrainConfig(log_dir=run_dir, name="bench", log_frequency=10**9, device="cpu", threads=args.threads),
    )


def frames(height: int, width: int, batch: int) -> dict:
    """Real KITTI frames when available (random ones otherwise), resized; one batch in the loader's format."""
    images = []
    for index in range(3):
        path = KITTI / f"{index:010d}.jpg"
        if path.is_file():
            image = np.asarray(Image.open(path).convert("RGB").resize((width, height), Image.BICUBIC), dtype=np.float32) / 255
            images.append(torch.from_numpy(image).permute(2, 0, 1))
        else:
            images.append(torch.rand(3, height, width, generator=torch.Generator().manual_seed(index)))
    item = {}
    for frame, image in zip((-1, 0, 1), images):
        stacked = image.expand(batch, -1, -1, -1).contiguous()
        item["color", frame, 0] = stacked
        item["color_aug", frame, 0] = stacked
        item["ts", frame] = torch.ones(batch)
    for scale in range(4):
        K = intrinsics(height, width)
        K[:2] /= 2**scale
        item["K", scale] = K.expand(batch, 4, 4).clone()
        item["inv_K", scale] = torch.linalg.inv(K).expand(batch, 4, 4).clone()
    return item


def conv_forward_rate(batch: int, height: int, width: int) -> dict:
    """This machine's convolution speed, the floor a step is compared against: GFLOP/s of a 64->64 3x3
    convolution forward at (batch, 64, height/2, width/2), in the faster of the two memory layouts."""
    x = torch.randn(batch, 64, height // 2, width // 2)
    weight = torch.randn(64, 64, 3, 3)
    gflop = 2 * x.numel() * 64 * 9 / 1e9
    rates = {}
    for name, layout in (("contiguous", torch.contiguous_format), ("channels_last", torch.channels_last)):
        xs, ws = x.contiguous(memory_format=layout), weight.contiguous(memory_format=layout)
        with torch.no_grad():
            torch.nn.functional.conv2d(xs, ws, padding=1)
            seconds = min(timed(lambda: torch.nn.functional.conv2d(xs, ws, padding=1)) for _ in range(5))
        rates[name] = gflop / seconds
    return {"shape": list(x.shape), "gflop_per_s": max(rates.values()), "by_layout": rates}


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def step_gflop(trainer, network, optimizer, phase, batch) -> float:
    """Floating-point work of one training step (torch.utils.flop_counter: convolutions and matrix products)."""
    with FlopCounterMode(display=False) as counter:
        trainer.train_step(network, optimizer, phase, dict(batch), 10, 100, 1)
    return counter.get_total_flops() / 1e9


class ReferenceWork(torch.nn.Module):
    """The reference work pattern: depth for every frame and a graph through every network."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, batch, trainable=None):
        return self.model(batch, depth_frames=tuple(self.model.config.frame_ids), trainable=None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_size_options(parser, "litemono")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per phase (after one warm-up step)")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                        help="precision of our step (as `dynamo train --precision`); the reference pattern is always fp32")
    parser.add_argument("--conv-layout", default="auto", choices=["auto", "contiguous", "channels_last", "plain"],
                        help="convolution layouts of our step (as `dynamo train --conv-layout`)")
    parser.add_argument("--phases", default="disp_init,motion_init,mask_init,fine_tune")
    parser.add_argument("--work", default="ours", choices=["ours", "reference", "both"],
                        help="both: alternate steps of the two in one process (same allocator), report the ratio")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    import dynamo_core.training.trainer as trainer_module

    if args.work == "reference":
        trainer_module.keep_freed_memory = lambda: None
    with tempfile.TemporaryDirectory() as run_dir:
        config = bench_config(args, run_dir)
        runs = {}
        modes = ["ours", "reference"] if args.work == "both" else [args.work]
        for mode in modes:
            config.train.precision = args.precision if mode == "ours" else "fp32"
            config.train.conv_layout = args.conv_layout if mode == "ours" else "plain"
            trainer = Trainer(config, dataset=[None])
            network = ReferenceWork(trainer.model) if mode == "reference" else trainer.model
            runs[mode] = (trainer, network)
        batch = frames(args.height, args.width, args.batch_size)
        results = {}
        for name in args.phases.split(","):
            phase = PHASES[name]
            times = {mode: [] for mode in modes}
            optimizers = {}
            for mode, (trainer, _) in runs.items():
                trainer.model.set_heads(phase.complete_flow, phase.motion_mask)
                trainer.model.train()
                optimizers[mode] = (trainer.build_optimizer(phase) if mode == "ours" else
                                    torch.optim.Adam(trainer.model.parameters_of(list(phase.networks)), lr=1e-4))
            for step in range(args.steps + 1):
                for mode, (trainer, network) in runs.items():
                    started = time.perf_counter()
                    trainer.train_step(network, optimizers[mode], phase, dict(batch), 10 + step, 100, 1 + step)
                    times[mode].append(time.perf_counter() - started)
            stats = {}
            for mode, t in times.items():
                trainer, network = runs[mode]
                gflop = step_gflop(trainer, network, optimizers[mode], phase, batch)
                median = statistics.median(t[1:])
                stats[mode] = {"median_s": median, "min_s": min(t[1:]), "max_s": max(t[1:]), "first_step_s": t[0],
                               "gflop": gflop, "gflop_per_s": gflop / median}
            results[name] = stats[modes[0]] if len(modes) == 1 else {
                **stats, "ratio_ours_over_reference": stats["ours"]["median_s"] / stats["reference"]["median_s"]}
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    precision = {mode: str(trainer.compute_dtype or torch.float32) for mode, (trainer, _) in runs.items()}
    report = {"phases": results, "precision": precision, "peak_rss_mb": peak_kb / 1024, "config": vars(args),
              "machine": machine_info(), "conv_forward": conv_forward_rate(args.batch_size, args.height, args.width)}
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
