"""Cost of the DDP strategy: per-phase wrapping (ours) against find_unused_parameters=True.

Two gloo processes on the CPU, the same batch on both, median step time per phase.
Prints one JSON object.

    python benchmarks/ddp_step.py --depth-model monodepthv2 --height 96 --width 320 -b 1 --steps 4
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_step import frames  # noqa: E402

from dynamo_core.config import DataConfig, ModelConfig, OptimConfig, RunConfig, TrainConfig, default_scales  # noqa: E402
from dynamo_core.losses import PHASES  # noqa: E402
from dynamo_core.training.distributed import ddp_wrapper  # noqa: E402
from dynamo_core.training.trainer import Trainer  # noqa: E402


def _worker(rank, world, port, args, mode, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as run_dir:
        config = RunConfig(
            model=ModelConfig(depth_model=args.depth_model, weights_init="scratch", height=args.height, width=args.width,
                              scales=default_scales(args.depth_model)),
            data=DataConfig(num_workers=0), optim=OptimConfig(batch_size=args.batch_size),
            train=TrainConfig(log_dir=run_dir, name="ddp", device="cpu", log_frequency=10**9),
        )
        trainer = Trainer(config, dataset=[None], rank=rank, world_size=world)
        if mode == "per_phase":
            wrap = ddp_wrapper(torch.device("cpu"))
        else:
            def wrap(model, phase):
                for parameter in model.parameters():
                    parameter.requires_grad_(True)
                return nn.parallel.DistributedDataParallel(model, find_unused_parameters=True)
        batch = frames(args.height, args.width, args.batch_size)
        results = {}
        for name, phase in PHASES.items():
            trainer.model.set_heads(phase.complete_flow, phase.motion_mask)
            trainer.model.train()
            network = wrap(trainer.model, phase)
            optimizer = torch.optim.Adam(trainer.model.parameters_of(list(phase.networks)), lr=1e-4)
            times = []
            for step in range(args.steps + 1):
                dist.barrier()
                started = time.perf_counter()
                trainer.train_step(network, optimizer, phase, dict(batch), 10 + step, 100, 1 + step)
                times.append(time.perf_counter() - started)
            results[name] = statistics.median(times[1:])
    if rank == 0:
        Path(out).write_text(json.dumps(results))
    dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--depth-model", default="monodepthv2", choices=["litemono", "monodepthv2"])
    parser.add_argument("-b", "--batch-size", type=int, default=1)
    parser.add_argument("--height", type=int, default=96)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--steps", type=int, default=4)
    args = parser.parse_args()
    report = {}
    for mode in ("per_phase", "find_unused_parameters"):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            mp.spawn(_worker, args=(2, port, args, mode, out.name), nprocs=2, join=True)
            report[mode] = json.loads(Path(out.name).read_text())
    ratio = {phase: report["find_unused_parameters"][phase] / report["per_phase"][phase] for phase in PHASES}
    json.dump({"median_step_s": report, "find_unused_over_per_phase": ratio, "config": vars(args)}, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
