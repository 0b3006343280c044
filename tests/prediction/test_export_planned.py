"""ONNX export of a model whose convolutions run in measured layouts, as a Predictor's do."""

from __future__ import annotations

import copy

import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from dynamo_core import conv_layouts  # noqa: E402
from dynamo_core.config import ModelConfig  # noqa: E402
from dynamo_core.model import DynamoModel  # noqa: E402
from dynamo_core.prediction.export import TOLERANCE, export_bytes, parity_error, wrap  # noqa: E402


def planned_convolutions(model: torch.nn.Module) -> int:
    return sum(isinstance(module, conv_layouts.PlannedConv2d) for module in model.modules())


def test_export_bytes_exports_plain_convolutions_and_leaves_the_plans(tmp_path, monkeypatch):
    monkeypatch.setenv("DYNAMO_CACHE_DIR", str(tmp_path))
    height, width = 64, 192
    model = DynamoModel(ModelConfig(depth_model="monodepthv2", weights_init="scratch", height=height, width=width)).eval()
    conv_layouts.install(model, "auto")  # as a Predictor installs them
    planned = planned_convolutions(model)
    assert planned > 0

    data = export_bytes(model, "depth", height, width)

    plain = conv_layouts.remove(copy.deepcopy(model))
    frames = torch.rand(2, 3, height, width, generator=torch.Generator().manual_seed(0))
    assert parity_error(data, wrap(plain, "depth"), "depth", frames[:1]) <= TOLERANCE
    assert planned_convolutions(model) == planned  # the caller's model keeps its plans
