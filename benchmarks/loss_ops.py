"""Median milliseconds of the objective and of its heaviest operations. Prints one JSON object.

    python benchmarks/loss_ops.py --depth-model monodepthv2 --height 192 --width 640 --threads 2

- "loss": forward and backward of `losses.compute` for each phase, on the outputs of a scratch model
  for real KITTI frames (random ones without ../shared);
- "photometric": forward and backward of `PhotometricError` against the plain formula through autograd;
- "upsample": backward of `upsample_bilinear` against `F.interpolate`, per factor;
- "ground_fit": the RANSAC road-plane fit at the input size.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_step import add_size_options, bench_config, frames, intrinsics  # noqa: E402

from dynamo_core import losses  # noqa: E402
from dynamo_core.geometry import PhotometricError, backproject, fit_ground_plane, ssim, upsample_bilinear  # noqa: E402
from dynamo_core.runtime import keep_freed_memory  # noqa: E402
from dynamo_core.training.trainer import Trainer, add_color_pyramid  # noqa: E402


def median_ms(work, repeats: int) -> float:
    for _ in range(2):
        work()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def loss_times(args) -> dict:
    with tempfile.TemporaryDirectory() as run_dir:
        config = bench_config(args, run_dir)
        trainer = Trainer(config, dataset=[None])
    batch = frames(args.height, args.width, args.batch_size)
    add_color_pyramid(batch, config.model.scales)
    results = {}
    for name, phase in losses.PHASES.items():
        trainer.model.set_heads(phase.complete_flow, phase.motion_mask)
        with torch.no_grad():
            outputs = {k: v.float() for k, v in trainer.model(batch).items()}
        timings = {"forward": [], "backward": []}

        def step():
            leaves = {k: v.detach().requires_grad_(True) for k, v in outputs.items()}
            started = time.perf_counter()
            result = losses.compute(batch, leaves, phase, 10, 100, frame_ids=config.model.frame_ids,
                                    scales=config.model.scales, generator=trainer.loss_generator)
            middle = time.perf_counter()
            result.total.backward()
            timings["forward"].append(middle - started)
            timings["backward"].append(time.perf_counter() - middle)

        for _ in range(2):
            step()
        timings = {"forward": [], "backward": []}
        for _ in range(args.repeats):
            step()
        results[name] = {part: 1000 * statistics.median(t) for part, t in timings.items()}
    return results


def photometric_times(args) -> dict:
    generator = torch.Generator().manual_seed(0)
    target = torch.rand(args.batch_size, 3, args.height, args.width, generator=generator)
    pred = torch.rand(args.batch_size, 3, args.height, args.width, generator=generator, requires_grad=True)
    ours = PhotometricError(target, 0.85)

    def plain(x):
        return 0.85 * ssim(x, target).mean(1, keepdim=True) + 0.15 * (target - x).abs().mean(1, keepdim=True)

    return {
        "ours_ms": median_ms(lambda: ours(pred).sum().backward(), args.repeats),
        "autograd_ms": median_ms(lambda: plain(pred).sum().backward(), args.repeats),
    }


def upsample_times(args) -> dict:
    results = {}
    for factor in (2, 4, 8):
        small = torch.rand(args.batch_size, 3, args.height // factor, args.width // factor, requires_grad=True)
        ours = upsample_bilinear(small, factor)
        reference = F.interpolate(small, scale_factor=factor, mode="bilinear", align_corners=False)
        grad = torch.rand_like(reference)
        results[f"x{factor}"] = {
            "ours_backward_ms": median_ms(lambda: torch.autograd.grad(ours, small, grad, retain_graph=True), args.repeats),
            "interpolate_backward_ms": median_ms(
                lambda: torch.autograd.grad(reference, small, grad, retain_graph=True), args.repeats),
        }
    return results


def ground_fit_ms(args) -> float:
    height, width = args.height, args.width
    K = intrinsics(height, width)
    depth = torch.rand(args.batch_size, 1, height, width, generator=torch.Generator().manual_seed(1)) * 20 + 1
    points = backproject(depth, torch.linalg.inv(K).expand(args.batch_size, 4, 4))[:, :3].reshape(-1, 3, height, width)
    generator = torch.Generator().manual_seed(2)
    return median_ms(lambda: fit_ground_plane(points, hypotheses=100, generator=generator), args.repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_size_options(parser, "monodepthv2")
    parser.add_argument("--repeats", type=int, default=10, help="timed repetitions of each measurement")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    keep_freed_memory()
    report = {
        "loss": loss_times(args),
        "photometric": photometric_times(args),
        "upsample": upsample_times(args),
        "ground_fit_ms": ground_fit_ms(args),
        "config": vars(args),
        "torch": torch.__version__,
    }
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
