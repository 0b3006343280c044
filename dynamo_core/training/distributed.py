"""Multi-process training through PyTorch's elastic launcher (torchrun), called from our code.

The launcher starts one worker per device (`python -m dynamo_core.training.worker`); each reads
the run's config JSON, joins the process group (NCCL on CUDA, gloo on CPU) and trains its share
of every epoch. Only rank 0 logs and saves.

Gradient reduction across phases: each phase trains different networks, and some parameters
(the ResNets' classifier, one unused norm per Lite-Mono block) are never used at all. The model
is therefore wrapped afresh for every phase with exactly the parameters that receive gradients,
so DistributedDataParallel runs with `find_unused_parameters=False` and no per-step graph search.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from ..errors import DynamoError
from ..losses import Phase
from ..model import NETWORK_MODULES, DynamoModel
from ..networks.litemono import DilatedConvBlock
from ..networks.resnet import ResnetEncoder

log = logging.getLogger(__name__)

ERRORS_DIR = "worker_errors"


def never_used(model: DynamoModel) -> set[str]:
    """Names of parameters no forward pass touches: the ResNets' classifiers and Lite-Mono's spare norms."""
    names = set()
    for prefix, module in model.named_modules():
        if isinstance(module, DilatedConvBlock):
            names |= {f"{prefix}.norm.{name}" for name, _ in module.norm.named_parameters()}
        elif isinstance(module, ResnetEncoder):
            names |= {f"{prefix}.encoder.fc.{name}" for name, _ in module.encoder.fc.named_parameters()}
    return names


def trainable_names(model: DynamoModel, phase: Phase) -> set[str]:
    """Parameters that receive a gradient in `phase`."""
    modules = {m for n in phase.networks for m in NETWORK_MODULES[n]}
    unused = never_used(model)
    return {name for name, _ in model.named_parameters() if name.split(".")[0] in modules and name not in unused}


def ddp_wrapper(device: torch.device, find_unused: bool = False):
    """A `wrap_model(model, phase)` for the Trainer: freeze what the phase does not train, then wrap."""

    def wrap(model: DynamoModel, phase: Phase) -> nn.Module:
        keep = trainable_names(model, phase)
        for name, parameter in model.named_parameters():
            parameter.requires_grad_(name in keep)
        device_ids = [device.index] if device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=device_ids, find_unused_parameters=find_unused)

    return wrap


@dataclass
class LaunchSpec:
    """How to start the workers."""

    nproc_per_node: int
    nnodes: int = 1
    node_rank: int = 0
    master_addr: str = "127.0.0.1"
    master_port: int = 29500
    resume: bool = False


def launcher_args(spec: LaunchSpec, config_path: Path, run_dir: Path) -> list[str]:
    """The torch.distributed.run argument list for `spec`."""
    args = [f"--nproc-per-node={spec.nproc_per_node}"]
    if spec.nnodes == 1:
        args.append("--standalone")
    else:
        args += [
            f"--nnodes={spec.nnodes}",
            f"--node-rank={spec.node_rank}",
            f"--master-addr={spec.master_addr}",
            f"--master-port={spec.master_port}",
        ]
    args += ["--max-restarts=0", "--module", "dynamo_core.training.worker", "--config", str(config_path)]
    if spec.resume:
        args.append("--resume")
    return args


def launch(spec: LaunchSpec, config_path: Path, run_dir: Path) -> None:
    """Run the workers to completion; a failure of any worker stops the job and is raised here."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    errors = Path(run_dir) / ERRORS_DIR
    if errors.is_dir():
        for stale in errors.glob("rank*.txt"):
            stale.unlink()
    args = launcher_args(spec, config_path, run_dir)
    log.info("launching %d worker(s): torchrun %s", spec.nproc_per_node * spec.nnodes, " ".join(args))
    try:
        run(parse_args(args))
    except ChildFailedError as failure:
        # A worker that failed on its own left a message; the others often died only because it left.
        own = sorted(int(p.stem[4:]) for p in errors.glob("rank*.txt")) if errors.is_dir() else []
        rank = own[0] if own else failure.get_first_failure()[0]
        detail = failure.failures.get(rank)
        raise DynamoError(f"worker rank {rank} failed: {worker_message(run_dir, rank, detail)}") from None


def worker_message(run_dir: Path, rank: int, detail) -> str:
    """The failed worker's own message when it left one, else what the launcher recorded."""
    own = Path(run_dir) / ERRORS_DIR / f"rank{rank}.txt"
    if own.is_file():
        return own.read_text().strip()
    message = getattr(detail, "message", "") or ""
    if isinstance(message, dict):
        message = message.get("message", "") or str(message)
    return str(message).strip().splitlines()[-1] if str(message).strip() else f"exit code {getattr(detail, 'exitcode', '?')}"


def init_process_group(device_name: str) -> tuple[int, int, torch.device]:
    """Join the group the launcher set up; returns (rank, world_size, device)."""
    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    use_cuda = device_name == "cuda" or (device_name == "auto" and torch.cuda.is_available())
    if use_cuda:
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    dist.init_process_group(backend="nccl" if use_cuda else "gloo", rank=rank, world_size=world_size)
    return rank, world_size, device


def report_failure(run_dir: Path, rank: int, message: str) -> None:
    folder = Path(run_dir) / ERRORS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"rank{rank}.txt").write_text(message + "\n")
    print(f"rank {rank}: error: {message}", file=sys.stderr)


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
