"""The networks against numbers produced by the original implementation."""

import torch

from conftest import MODULE_ORDER, fixture_inputs, parse_key


def test_parity_state_dict_keys_and_shapes(parity_fixture, filled_model):
    expected = parity_fixture["state_dict_keys"]
    assert set(expected) == set(MODULE_ORDER)
    for name in MODULE_ORDER:
        ours = {k: list(v.shape) for k, v in getattr(filled_model, name).state_dict().items()}
        theirs = {k: list(v) for k, v in expected[name].items()}
        assert ours == theirs, f"{name}: keys or shapes differ"


def test_parity_forward_every_entry(parity_fixture, filled_model):
    filled_model.set_heads(complete_flow=True, motion_mask=True)
    with torch.no_grad():
        outputs = filled_model(fixture_inputs(parity_fixture))
    assert parity_fixture["forward"], "fixture has no forward entries"
    for key, expected in parity_fixture["forward"].items():
        got = outputs[parse_key(key)]
        assert got.shape == expected.shape, key
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=0, msg=lambda m: f"{key}: {m}")


def test_parity_depth_runs_on_target_only(parity_fixture, filled_model):
    with torch.no_grad():
        outputs = filled_model(fixture_inputs(parity_fixture))
    depth_frames = {key[1] for key in outputs if key[0] == "disp"}
    assert depth_frames == {0}
    with torch.no_grad():
        more = filled_model(fixture_inputs(parity_fixture), depth_frames=tuple(parity_fixture["frame_ids"]))
    assert {key[1] for key in more if key[0] == "disp"} == set(parity_fixture["frame_ids"])


def test_heads_switch_off(parity_fixture, filled_model):
    inputs = fixture_inputs(parity_fixture)
    try:
        filled_model.set_heads(complete_flow=False, motion_mask=True)
        with torch.no_grad():
            outputs = filled_model(inputs)
        assert not any(k[0] == "complete_flow" for k in outputs)
        assert any(k[0] == "motion_mask" for k in outputs)
        filled_model.set_heads(complete_flow=False, motion_mask=False)
        with torch.no_grad():
            outputs = filled_model(inputs)
        assert not any(k[0] in ("complete_flow", "motion_mask", "motion_prob") for k in outputs)
        assert ("cam_T_cam", 0, -1) in outputs
    finally:
        filled_model.set_heads(complete_flow=True, motion_mask=True)


def test_smaller_last_batch(parity_fixture, filled_model):
    """Nothing is sized by batch: a batch of one after a full batch works and agrees."""
    inputs = fixture_inputs(parity_fixture)
    single = {k: v[:1] for k, v in inputs.items()}
    with torch.no_grad():
        full = filled_model(inputs)
        one = filled_model(single)
    for key, value in one.items():
        torch.testing.assert_close(value, full[key][:1], atol=1e-5, rtol=1e-5)
