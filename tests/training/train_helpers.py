"""Helpers for training tests: a split over a tiny KITTI drive and small run configs.

The drive is generated (conftest's `tiny_kitti`), so these tests need no sample data.
Import the fixtures into a test module with `from train_helpers import kitti_split, kitti_copy`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import KITTI_DRIVE as DRIVE
from dynamo_core.config import DataConfig, ModelConfig, OptimConfig, RunConfig, TrainConfig



@pytest.fixture
def kitti_split(tmp_path, tiny_kitti) -> Path:
    """A split folder whose train_files.txt holds the tiny drive's middle frame, both cameras.

    The drive is linked beside it as `kitti_data`, the default data path of `run_config`."""
    (tmp_path / "kitti_data").symlink_to(tiny_kitti, target_is_directory=True)
    folder = tmp_path / "split"
    folder.mkdir()
    (folder / "train_files.txt").write_text(f"{DRIVE} 1 l\n{DRIVE} 1 r\n")
    return folder


@pytest.fixture
def kitti_copy(tmp_path, tiny_kitti) -> Path:
    """A private copy of tiny_kitti that a test may damage."""
    target = tmp_path / "tiny_kitti"
    shutil.copytree(tiny_kitti, target)
    return target


def run_config(tmp_path: Path, split: Path, *, depth_model="monodepthv2", schedule=(1, 0, 0, 0), epoch_size=2,
               height=64, width=192, name="run", data_path=None, **train) -> RunConfig:
    if data_path is None:
        data_path = split.parent / "kitti_data"
    scales = [0, 1, 2] if depth_model == "litemono" else [0, 1, 2, 3]
    return RunConfig(
        model=ModelConfig(depth_model=depth_model, weights_init="scratch", height=height, width=width, scales=scales),
        data=DataConfig(dataset="kitti", data_path=str(data_path), split=str(split), num_workers=0),
        optim=OptimConfig(batch_size=1, epoch_schedule=list(schedule), epoch_size=epoch_size),
        train=TrainConfig(log_dir=str(tmp_path / "logs"), name=name, device="cpu", log_frequency=1000, **train),
    )
