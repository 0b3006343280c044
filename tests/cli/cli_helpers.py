"""Shared pieces of the command-line tests: the runner, the tiny data sets and scratch checkpoints.

Import the fixture into a test module with `from cli_helpers import checkpoints`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import KITTI_DRIVE as DRIVE, SHARED
from dynamo_core.config import ModelConfig
from dynamo_core.model import DynamoModel
from dynamo_core.training.checkpoint import save_weights

runner = CliRunner()
# Tests that read TINY_WAYMO carry the sample_data marker; KITTI tests use conftest's generated `tiny_kitti`.
TINY_WAYMO = SHARED / "data" / "tiny_waymo"
SEGMENT = "val/segment-1024360143612057520_3580_000_3600_000"


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    """Scratch models at the tiny sets' sizes, in folders scratch_kitti and scratch_waymo."""
    root = tmp_path_factory.mktemp("ckpt")
    sizes = {"kitti": (96, 320), "waymo": (128, 192)}
    return {name: save_weights(DynamoModel(ModelConfig(weights_init="scratch", height=h, width=w)), root / f"scratch_{name}", h, w)
            for name, (h, w) in sizes.items()}
