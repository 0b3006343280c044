"""Shared test helpers: where the shared data and fixtures live, and the deterministic fill rule."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DYNAMO_SHARED", ROOT.parent / "shared")).resolve()
FIXTURES = Path(os.environ.get("DYNAMO_FIXTURES", SHARED / "fixtures" / "reference")).resolve()

MODULE_ORDER = ("depth_enc", "depth_dec", "pose_enc", "pose_dec", "motion_enc", "motion_dec", "motion_mask")


def parity_files() -> list[Path]:
    files = sorted(FIXTURES.glob("parity_*.pt"))
    if not files:
        raise RuntimeError(f"no parity_*.pt fixture files in {FIXTURES}; set DYNAMO_FIXTURES or DYNAMO_SHARED")
    return files


def load_fixture(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def fill_module(module: torch.nn.Module, seed: int, index: int) -> None:
    """The fixture README's deterministic fill rule, applied in place."""
    generator = torch.Generator().manual_seed(seed * 100 + index)
    state = module.state_dict()
    for name in sorted(state):
        tensor = state[name]
        if not tensor.is_floating_point():
            continue
        u = torch.rand(tensor.shape, generator=generator, dtype=torch.float64)
        if name.endswith("running_var"):
            value = 0.5 + u
        elif tensor.dim() >= 2:
            value = (2 * u - 1) * math.sqrt(3 / (tensor.numel() // tensor.shape[0]))
        elif name.endswith("weight"):
            value = 1 + 0.1 * (2 * u - 1)
        else:
            value = 0.1 * (2 * u - 1)
        tensor.copy_(value.to(tensor.dtype))


def fill_model(model: torch.nn.Module, seed: int) -> None:
    for index, name in enumerate(MODULE_ORDER):
        fill_module(getattr(model, name), seed, index)


def parse_key(key: str) -> tuple:
    """'disp/0/2' -> ('disp', 0, 2)."""
    name, *rest = key.split("/")
    return (name, *(int(p) for p in rest))


def fixture_inputs(fixture: dict) -> dict:
    return {parse_key(k): v for k, v in fixture["inputs"].items()}


def fixture_objective(fixture: dict, phase_name: str, inputs: dict, outputs: dict, **overrides):
    """The objective of one phase on the fixture's batch, as the reference records were taken:
    step 10 of 100, the fixture's ground planes injected, a fixed generator. `overrides` replace
    any of these keyword arguments of losses.compute."""
    from dynamo_core import losses

    batch = dict(inputs)
    for scale, image in losses.color_pyramid(inputs["color", 0, 0], fixture["scales"]).items():
        batch["color", 0, scale] = image
    planes = {index: plane for index, plane in enumerate(fixture["phases"][phase_name]["planes"])}
    kwargs = dict(
        step=10,
        steps_per_epoch=100,
        frame_ids=fixture["frame_ids"],
        scales=fixture["scales"],
        min_depth=float(fixture["min_depth"]),
        max_depth=float(fixture["max_depth"]),
        planes=planes,
        generator=torch.Generator().manual_seed(0),
    )
    kwargs.update(overrides)
    return losses.compute(batch, outputs, losses.PHASES[phase_name], **kwargs)


def model_config_for(fixture: dict):
    from dynamo_core.config import ModelConfig

    return ModelConfig(
        depth_model=fixture["model"],
        weights_init="scratch",
        height=int(fixture["height"]),
        width=int(fixture["width"]),
        scales=[int(s) for s in fixture["scales"]],
        frame_ids=[int(f) for f in fixture["frame_ids"]],
        min_depth=float(fixture["min_depth"]),
        max_depth=float(fixture["max_depth"]),
    )


@pytest.fixture(scope="session", params=parity_files(), ids=lambda p: p.stem)
def parity_fixture(request) -> dict:
    return load_fixture(request.param)


@pytest.fixture(scope="session")
def filled_model(parity_fixture):
    """The fixture's model, filled by the fill rule and in eval mode."""
    from dynamo_core.model import DynamoModel

    model = DynamoModel(model_config_for(parity_fixture))
    fill_model(model, int(parity_fixture["seed"]))
    return model.eval()
