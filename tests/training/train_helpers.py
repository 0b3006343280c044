"""Helpers for training tests: a split over the tiny KITTI drive and small run configs.

Import the fixtures into a test module with `from train_helpers import kitti_split, kitti_copy`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import SHARED
from dynamo_core.config import DataConfig, ModelConfig, OptimConfig, RunConfig, TrainConfig

TINY_KITTI = SHARED / "data" / "tiny_kitti"
DRIVE = "2011_09_26/2011_09_26_drive_0001_sync"


@pytest.fixture
def kitti_split(tmp_path) -> Path:
    """A split folder whose train_files.txt holds the tiny drive's middle frame, both cameras."""
    folder = tmp_path / "split"
    folder.mkdir()
    (folder / "train_files.txt").write_text(f"{DRIVE} 1 l\n{DRIVE} 1 r\n")
    return folder


@pytest.fixture
def kitti_copy(tmp_path) -> Path:
    """A private copy of tiny_kitti that a test may damage."""
    target = tmp_path / "tiny_kitti"
    shutil.copytree(TINY_KITTI, target)
    return target


def run_config(tmp_path: Path, split: Path, *, depth_model="monodepthv2", schedule=(1, 0, 0, 0), epoch_size=2,
               height=64, width=192, name="run", data_path=TINY_KITTI, **train) -> RunConfig:
    scales = [0, 1, 2] if depth_model == "litemono" else [0, 1, 2, 3]
    return RunConfig(
        model=ModelConfig(depth_model=depth_model, weights_init="scratch", height=height, width=width, scales=scales),
        data=DataConfig(dataset="kitti", data_path=str(data_path), split=str(split), num_workers=0),
        optim=OptimConfig(batch_size=1, epoch_schedule=list(schedule), epoch_size=epoch_size),
        train=TrainConfig(log_dir=str(tmp_path / "logs"), name=name, device="cpu", log_frequency=1000, **train),
    )
