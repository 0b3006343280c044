"""Distributed training: DDP equals one process, the torchrun path end to end, and failures surface."""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from typer.testing import CliRunner

from dynamo_cli.main import app
from dynamo_core.config import DataConfig, ModelConfig, OptimConfig, RunConfig, TrainConfig, load_json
from dynamo_core.losses import PHASES
from dynamo_core.model import MODULE_NAMES
from dynamo_core.training.distributed import ddp_wrapper, never_used, trainable_names
from dynamo_core.training.state import latest_checkpoint
from dynamo_core.training.trainer import Trainer
from train_helpers import DRIVE, kitti_split  # noqa: F401  (fixture)

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from train_step import frames  # noqa: E402

runner = CliRunner()
HEIGHT, WIDTH = 64, 192


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _config(run_dir: str, depth_model: str) -> RunConfig:
    scales = [0, 1, 2] if depth_model == "litemono" else [0, 1, 2, 3]
    return RunConfig(
        model=ModelConfig(depth_model=depth_model, weights_init="scratch", height=HEIGHT, width=WIDTH, scales=scales),
        data=DataConfig(num_workers=0),
        optim=OptimConfig(batch_size=2),
        # One fixed convolution layout: measured plans may differ between processes, a rounding-level
        # difference that Adam's first step can lift above the tolerance.
        train=TrainConfig(log_dir=run_dir, name="eq", device="cpu", log_frequency=10**9, threads=1,
                          conv_layout="contiguous"),
    )


def _steps(trainer: Trainer, wrap) -> dict[str, torch.Tensor]:
    """One step of every phase on the same batch, from the same seeds; returns the weights."""
    batch = frames(HEIGHT, WIDTH, 2)
    for step, (name, phase) in enumerate(PHASES.items()):
        trainer.model.set_heads(phase.complete_flow, phase.motion_mask)
        trainer.model.train()
        network = wrap(trainer.model, phase)
        optimizer = torch.optim.Adam(trainer.model.parameters_of(list(phase.networks)), lr=1e-3)
        torch.manual_seed(100 + step)
        trainer.loss_generator.manual_seed(200 + step)
        trainer.train_step(network, optimizer, phase, dict(batch), 50, 100, step + 1)
    return {f"{m}.{k}": v.detach().clone() for m in MODULE_NAMES for k, v in getattr(trainer.model, m).state_dict().items()}


def _ddp_worker(rank: int, world: int, port: int, run_dir: str, depth_model: str, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(0)
    trainer = Trainer(_config(run_dir, depth_model), dataset=[None], rank=rank, world_size=world)
    weights = _steps(trainer, ddp_wrapper(torch.device("cpu")))
    if rank == 0:
        torch.save(weights, out)
    dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.parametrize("depth_model", ["monodepthv2", "litemono"])
def test_ddp_step_equals_single_process_in_every_phase(tmp_path, depth_model):
    out = tmp_path / "ddp.pt"
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path / "ddp"), depth_model, str(out)), nprocs=2, join=True)
    torch.manual_seed(0)
    single = _steps(Trainer(_config(str(tmp_path / "single"), depth_model), dataset=[None]), lambda model, phase: model)
    distributed = torch.load(out, weights_only=True)
    assert single.keys() == distributed.keys()
    for key, value in single.items():
        torch.testing.assert_close(distributed[key], value, atol=1e-6, rtol=0, msg=key)


def test_unused_parameters_are_excluded_per_phase():
    from dynamo_core.model import DynamoModel

    model = DynamoModel(ModelConfig(weights_init="scratch", height=HEIGHT, width=WIDTH))
    unused = never_used(model)
    assert "depth_enc.stages.0.0.norm.weight" in unused and "pose_enc.encoder.fc.weight" in unused
    assert not any("norm_xca" in name for name in unused)
    motion_init = trainable_names(model, PHASES["motion_init"])
    assert all(name.startswith(("motion_enc.", "motion_dec.")) for name in motion_init)
    assert "motion_enc.encoder.conv1.weight" in motion_init
    fine_tune = trainable_names(model, PHASES["fine_tune"])
    assert not fine_tune & unused


def test_cli_hands_the_launcher_its_arguments(tmp_path, kitti_split, tiny_kitti, monkeypatch):
    import torch.distributed.run as torchrun

    seen = {}

    def fake_run(args):
        seen["args"] = args

    monkeypatch.setattr(torchrun, "run", fake_run)
    result = runner.invoke(app, [
        "train", "-d", "kitti", "--data-path", str(tiny_kitti), "--split", str(kitti_split), "--height", "64", "--width", "192",
        "--weights-init", "scratch", "--log-dir", str(tmp_path / "logs"), "-n", "multi", "--device", "cpu",
        "--gpus", "4", "--nnodes", "2", "--node-rank", "1", "--master-addr", "10.0.0.5", "--master-port", "29999", "--resume",
    ])
    assert result.exit_code == 0, result.output
    args = seen["args"]
    assert (args.nproc_per_node, args.nnodes, args.node_rank, args.master_addr, args.master_port) == ("4", "2", 1, "10.0.0.5", 29999)
    assert args.standalone is False and args.max_restarts == 0
    assert args.module and args.training_script == "dynamo_core.training.worker"
    config_path = Path(args.training_script_args[args.training_script_args.index("--config") + 1])
    assert config_path == tmp_path / "logs" / "multi" / "launch_config.json"
    assert "--resume" in args.training_script_args
    config = load_json(RunConfig, config_path)
    assert (config.model.height, config.data.split, config.train.device) == (64, str(kitti_split), "cpu")

    result = runner.invoke(app, [
        "train", "-d", "kitti", "--data-path", str(tiny_kitti), "--split", str(kitti_split), "--height", "64", "--width", "192",
        "--weights-init", "scratch", "--log-dir", str(tmp_path / "logs"), "--device", "cpu", "--gpus", "2",
    ])
    assert result.exit_code == 0
    assert seen["args"].standalone is True and seen["args"].nproc_per_node == "2"


@pytest.mark.slow
def test_two_cpu_workers_train_every_phase_save_once_and_resume(tmp_path, kitti_split, tiny_kitti):
    args = [
        "train", "-d", "kitti", "--data-path", str(tiny_kitti), "--split", str(kitti_split), "--height", "64", "--width", "192",
        "--depth-model", "monodepthv2", "--weights-init", "scratch", "--epoch-schedule", "1", "1", "1", "1",
        "--epoch-size", "1", "-b", "1", "--log-dir", str(tmp_path / "logs"), "--num-workers", "0", "--device", "cpu", "--gpus", "2",
    ]
    result = runner.invoke(app, [*args, "--max-steps", "3"])
    assert result.exit_code == 0, result.output
    models = tmp_path / "logs" / "dynamo" / "models"
    assert sorted(p.name for p in models.iterdir()) == ["disp_init_00", "mask_init_00", "motion_init_00"]
    result = runner.invoke(app, [*args, "--resume"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in models.iterdir()) == ["disp_init_00", "fine_tune_00", "mask_init_00", "motion_init_00"]
    marker = json.loads((latest_checkpoint(models) / "COMPLETE").read_text())
    assert (marker["phase"], marker["global_step"]) == ("fine_tune", 4)


@pytest.mark.slow
def test_a_failing_worker_stops_the_job_with_its_message(tmp_path, kitti_split, tiny_kitti):
    data = tmp_path / "kitti"
    shutil.copytree(tiny_kitti, data)
    (data / DRIVE / "image_02" / "rgb" / "downsample" / "0000000001.jpg").write_bytes(b"broken")
    result = runner.invoke(app, [
        "train", "-d", "kitti", "--data-path", str(data), "--split", str(kitti_split), "--height", "64", "--width", "192",
        "--depth-model", "monodepthv2", "--weights-init", "scratch", "--epoch-size", "1", "-b", "1",
        "--log-dir", str(tmp_path / "logs"), "--num-workers", "0", "--device", "cpu", "--gpus", "2",
    ])
    assert result.exit_code == 1
    assert "worker rank" in result.stderr and "0000000001.jpg" in result.stderr
    assert not (tmp_path / "logs" / "dynamo" / "models").exists()
