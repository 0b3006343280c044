"""Parameter gradients of the objective against those of the original implementation, for every phase.

Loss values can agree while gradients do not (a wrong detach, a missing path). The gradient
fixtures summarise each parameter tensor's gradient as [norm, projection on a fixed random
direction]; see "Gradient fixtures" in tests/fixtures/README.md for the format and tolerance.
"""

from __future__ import annotations

import statistics
import zlib

import pytest
import torch

from conftest import fill_model, fixture_files, fixture_id, fixture_inputs, fixture_objective, load_fixture, model_config_for
from dynamo_core import losses
from dynamo_core.model import DynamoModel

MEDIAN_TOLERANCE = 1e-3
WORST_TOLERANCE = 5e-2


@pytest.fixture(scope="module", params=fixture_files("gradients_*.pt"), ids=fixture_id)
def gradient_setup(request):
    """The gradient fixture and its model, filled by the fill rule and in eval mode."""
    fixture = load_fixture(request.param)
    model = DynamoModel(model_config_for(fixture))
    fill_model(model, int(fixture["seed"]))
    return fixture, model.eval()


def summarise(name: str, grad: torch.Tensor) -> tuple[float, float]:
    """[norm, projection] of one gradient, in float64, as the fixture records them."""
    grad = grad.detach().to(torch.float64)
    direction = torch.randn(grad.shape, generator=torch.Generator().manual_seed(zlib.crc32(name.encode())), dtype=torch.float64)
    return float(grad.norm()), float((grad * direction).sum())


def phase_gradients(fixture: dict, model: DynamoModel, phase_name: str) -> tuple[float, dict[str, tuple[float, float]]]:
    """Total loss and {module.parameter: (norm, projection)} of every parameter that received a gradient."""
    phase = losses.PHASES[phase_name]
    model.zero_grad(set_to_none=True)
    model.set_heads(phase.complete_flow, phase.motion_mask)
    inputs = fixture_inputs(fixture)
    try:
        outputs = model(inputs, trainable=phase.networks)
    finally:
        model.set_heads(True, True)
    result = fixture_objective(fixture, phase_name, inputs, outputs)
    result.total.backward()
    grads = {name: summarise(name, p.grad) for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return float(result.total), grads


def relative_errors(ours: dict, theirs: dict) -> dict[str, float]:
    """The relative error of each of norm and projection, per tensor, keyed '<name>:norm' and '<name>:projection'."""
    errors = {}
    for name, expected in theirs.items():
        for label, got, want in zip(("norm", "projection"), ours[name], expected):
            errors[f"{name}:{label}"] = abs(got - want) / abs(want) if want != 0 else abs(got)
    return errors


@pytest.mark.parametrize("phase_name", list(losses.PHASES))
def test_parity_gradients_of_every_trained_parameter(gradient_setup, phase_name):
    fixture, model = gradient_setup
    expected = fixture["phases"][phase_name]
    total, ours = phase_gradients(fixture, model, phase_name)
    assert total == pytest.approx(float(expected["loss"]), rel=1e-4)

    theirs = {name: tuple(float(v) for v in value) for name, value in expected["grads"].items()}
    ours_nonzero = {name for name, (norm, _) in ours.items() if norm > 0}
    theirs_nonzero = {name for name, (norm, _) in theirs.items() if norm > 0}
    assert not ours_nonzero - theirs_nonzero, f"gradient here only: {sorted(ours_nonzero - theirs_nonzero)}"
    assert not theirs_nonzero - ours_nonzero, f"gradient in the original only: {sorted(theirs_nonzero - ours_nonzero)}"

    errors = relative_errors(ours, {name: theirs[name] for name in theirs_nonzero})
    median = statistics.median(errors.values())
    worst_key = max(errors, key=errors.get)
    assert median <= MEDIAN_TOLERANCE, f"median relative error {median:.2e}"
    assert errors[worst_key] <= WORST_TOLERANCE, f"worst relative error {errors[worst_key]:.2e} at {worst_key}"
