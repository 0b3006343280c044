"""The objective against loss records of the original implementation, for every phase."""

import pytest
import torch

from conftest import fixture_inputs, fixture_objective
from dynamo_core import losses


def test_parity_color_pyramid(parity_fixture):
    pyramid = losses.color_pyramid(fixture_inputs(parity_fixture)["color", 0, 0], parity_fixture["scales"])
    for phase in parity_fixture["phases"].values():
        for scale in parity_fixture["scales"]:
            torch.testing.assert_close(pyramid[scale], phase["color_pyramid"][f"color/0/{scale}"], atol=1e-5, rtol=0)


def _losses_for(fixture, model, phase_name, **overrides):
    phase = losses.PHASES[phase_name]
    model.set_heads(phase.complete_flow, phase.motion_mask)
    inputs = fixture_inputs(fixture)
    try:
        with torch.no_grad():
            outputs = model(inputs)
    finally:
        model.set_heads(True, True)
    return fixture_objective(fixture, phase_name, inputs, outputs, **overrides)


@pytest.mark.parametrize("phase_name", list(losses.PHASES))
def test_parity_losses_every_term_and_coefficient(parity_fixture, filled_model, phase_name):
    assert phase_name in parity_fixture["phases"]
    record = _losses_for(parity_fixture, filled_model, phase_name).as_record()
    expected = parity_fixture["phases"][phase_name]["losses"]
    assert set(expected) <= set(record)
    for key, value in expected.items():
        assert record[key] == pytest.approx(value, rel=1e-4, abs=1e-7), key


def test_terms_of_untrained_networks_are_not_computed(parity_fixture, filled_model):
    record = _losses_for(parity_fixture, filled_model, "motion_init").as_record()
    for term in ("d_smooth", "d_ground", "c_consistency", "m_sparsity", "m_smooth"):
        assert record[f"loss_term/{term}"] == 0.0
    assert record["loss_term/c_smooth"] > 0


def test_ramp_starts_at_zero(parity_fixture, filled_model):
    result = _losses_for(parity_fixture, filled_model, "fine_tune", step=0)
    for term in losses.LossConfig().ramped:
        assert result.coefficients[term] == 0.0
        assert float(result.terms[term]) == 0.0
    assert result.coefficients["d_smooth"] == losses.LossConfig().weights["d_smooth"]


def test_ground_term_fits_its_own_plane(parity_fixture, filled_model):
    """Without injected planes the RANSAC fit runs; it is seeded, so two runs agree."""
    first = _losses_for(parity_fixture, filled_model, "fine_tune", planes=None, generator=torch.Generator().manual_seed(5))
    second = _losses_for(parity_fixture, filled_model, "fine_tune", planes=None, generator=torch.Generator().manual_seed(5))
    assert torch.isfinite(first.total)
    assert float(first.terms["d_ground"]) == float(second.terms["d_ground"])
