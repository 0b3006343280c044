"""What the planner's im2col weight-gradient kernel buys: training steps with the measured plans, alternating
in one process with the same plans where every im2col weight gradient runs in the faster oneDNN layout
instead. Prints one JSON object.

    python benchmarks/weight_grad_kernel.py --depth-model monodepthv2 -b 4 --height 64 --width 192 --threads 2

Per phase: median seconds with and without the kernel and their ratio; also how many training
convolution shapes the planner gave to im2col, and the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_step import add_size_options, bench_config, frames  # noqa: E402

from dynamo_core import conv_layouts  # noqa: E402
from dynamo_core.losses import PHASES  # noqa: E402
from dynamo_core.runtime import machine_info  # noqa: E402
from dynamo_core.training.trainer import Trainer  # noqa: E402


class KernelSwitch:
    """Records the faster oneDNN layout of each measured weight gradient, and can stand it in for im2col."""

    def __init__(self):
        self.use_im2col = True
        self.best_layout: dict = {}
        self.im2col_shapes = 0
        self._measure, self._weight_grad_by = conv_layouts.measure_plan, conv_layouts._weight_grad_by

    def install(self) -> None:
        conv_layouts.measure_plan, conv_layouts._weight_grad_by = self.measure, self.weight_grad_by

    def measure(self, x, weight, bias, geometry, backward=True):
        plan, timings = self._measure(x, weight, bias, geometry, backward)
        if backward:
            layouts = {k: v for k, v in timings["weight_grad"].items() if k != conv_layouts.IM2COL}
            self.best_layout[tuple(x.shape), tuple(weight.shape), geometry] = min(layouts, key=layouts.get)
            self.im2col_shapes += plan.weight_grad == conv_layouts.IM2COL
        return plan, timings

    def weight_grad_by(self, kernel, grad, x, weight, geometry, with_bias):
        if kernel == conv_layouts.IM2COL and not self.use_im2col:
            kernel = self.best_layout[tuple(x.shape), tuple(weight.shape), geometry]
        return self._weight_grad_by(kernel, grad, x, weight, geometry, with_bias)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_size_options(parser, "monodepthv2")
    parser.add_argument("--steps", type=int, default=6, help="timed steps per phase and setting (after a warm-up)")
    parser.add_argument("--phases", default="disp_init,motion_init,mask_init,fine_tune")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    switch = KernelSwitch()
    switch.install()
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        # A fresh plan cache, so that every shape is measured here and its best layout recorded.
        os.environ["DYNAMO_CACHE_DIR"] = str(Path(folder) / "cache")
        trainer = Trainer(bench_config(args, folder), dataset=[None])
        batch = frames(args.height, args.width, args.batch_size)
        for name in args.phases.split(","):
            phase = PHASES[name]
            trainer.model.set_heads(phase.complete_flow, phase.motion_mask)
            trainer.model.train()
            optimizer = trainer.build_optimizer(phase)
            switch.use_im2col = True
            trainer.train_step(trainer.model, optimizer, phase, dict(batch), 10, 100, 1)  # measures the plans
            seconds = {True: [], False: []}
            for step in range(2 * args.steps):
                switch.use_im2col = step % 2 == 0
                started = time.perf_counter()
                trainer.train_step(trainer.model, optimizer, phase, dict(batch), 10, 100, 1)
                seconds[switch.use_im2col].append(time.perf_counter() - started)
            with_kernel, without = statistics.median(seconds[True]), statistics.median(seconds[False])
            results[name] = {"with_im2col_s": with_kernel, "layouts_only_s": without, "ratio": with_kernel / without}
        trainer.logger.close()
    print(json.dumps({"phases": results, "im2col_shapes": switch.im2col_shapes, "measured_shapes": len(switch.best_layout),
                      "config": vars(args), "machine": machine_info()}, indent=2))


if __name__ == "__main__":
    main()
