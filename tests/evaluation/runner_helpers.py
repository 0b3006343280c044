"""Shared pieces of the runner tests: the image size, scratch checkpoints and evaluation options.

Import the fixture into a test module with `from runner_helpers import checkpoint`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dynamo_core.config import ModelConfig
from dynamo_core.evaluation.inference import EvalOptions
from dynamo_core.model import DynamoModel
from dynamo_core.training.checkpoint import save_weights

HEIGHT, WIDTH = 64, 192


def scratch_checkpoint(folder: Path, modules=None) -> Path:
    """A randomly initialised model at HEIGHT x WIDTH saved to `folder` (all modules, or only `modules`)."""
    model = DynamoModel(ModelConfig(weights_init="scratch", height=HEIGHT, width=WIDTH))
    if modules is None:
        return save_weights(model, folder, HEIGHT, WIDTH)
    return save_weights(model, folder, HEIGHT, WIDTH, modules=modules)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return scratch_checkpoint(tmp_path_factory.mktemp("ckpt") / "scratch")


def options(checkpoint, scenes, tmp_path, batch_size=2, **extra) -> EvalOptions:
    return EvalOptions(checkpoint=checkpoint, dataset="synthetic", data_path=scenes, eval_dir=tmp_path / "outputs",
                       num_workers=0, batch_size=batch_size, **extra)
