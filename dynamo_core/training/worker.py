"""Entry point of one distributed training worker: `python -m dynamo_core.training.worker --config FILE`."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import torch.distributed as dist
from torch.distributed.elastic.multiprocessing.errors import record

from ..config import RunConfig, load_json
from ..errors import DynamoError
from .distributed import ddp_wrapper, init_process_group, report_failure
from .run import build_training_dataset
from .trainer import Trainer


@record
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", required=True, help="run config JSON written by `dynamo train --gpus N`")
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args(argv)
    config = load_json(RunConfig, args.config)
    run_dir = Path(config.train.log_dir) / config.train.name
    rank, world_size, device = init_process_group(config.train.device)
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING, format=f"[rank {rank}] %(message)s")
    try:
        dataset = build_training_dataset(config, rank=rank)
        trainer = Trainer(config, dataset, rank=rank, world_size=world_size, wrap_model=ddp_wrapper(device), resume=args.resume)
        trainer.fit()
    except DynamoError as err:
        report_failure(run_dir, rank, str(err))
        return 1
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
