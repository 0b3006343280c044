"""Per-convolution memory layouts: the same numbers as nn.Conv2d in every mode, and a plan cache that
measures each shape once per machine."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from conftest import fixture_inputs, fixture_objective, float_rounding_bound
from dynamo_core import conv_layouts, losses
from dynamo_core.config import RunConfig, TrainConfig
from dynamo_core.errors import ConfigError

FORCED = ("contiguous", "channels_last")

# Geometries the networks use: reflection-padded 3x3 (decoders), strided 7x7 without bias
# (ResNet stem), dilated depthwise (Lite-Mono), 1x1 (pose and motion heads).
CONVOLUTIONS = {
    "reflect3x3": lambda: nn.Conv2d(8, 12, 3, padding=1, padding_mode="reflect"),
    "stride2_7x7": lambda: nn.Conv2d(6, 16, 7, stride=2, padding=3, bias=False),
    "dilated_depthwise": lambda: nn.Conv2d(16, 16, 3, padding=2, dilation=2, groups=16, bias=False),
    "pointwise": lambda: nn.Conv2d(16, 6, 1),
}


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """Each test measures into its own empty cache."""
    monkeypatch.setenv("DYNAMO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(conv_layouts, "_shared_cache", None)


def _outputs_and_grads(conv: nn.Module, x: torch.Tensor, upstream: torch.Tensor):
    x = x.detach().requires_grad_()
    out = conv(x)
    params = [p for p in conv.parameters()]
    grads = torch.autograd.grad(out, [x, *params], upstream)
    return [out.detach(), *grads]


@pytest.mark.parametrize("mode", [*FORCED, "auto"])
@pytest.mark.parametrize("name", list(CONVOLUTIONS))
@pytest.mark.parametrize("input_layout", FORCED)
def test_planned_convolution_matches_nn_conv2d(name, mode, input_layout):
    torch.manual_seed(0)
    conv = CONVOLUTIONS[name]()
    x = torch.randn(2, conv.in_channels, 20, 36).contiguous(memory_format=conv_layouts._FORMATS[input_layout])
    upstream = torch.randn_like(conv(x))
    plain = _outputs_and_grads(conv, x, upstream)
    plain64 = _outputs_and_grads(conv.double(), x.double(), upstream.double())
    conv.float()
    bounds = float_rounding_bound(plain64, plain)

    conv_layouts.install(conv, mode)
    assert isinstance(conv, conv_layouts.PlannedConv2d)
    planned = _outputs_and_grads(conv, x, upstream)
    for ours, theirs, bound in zip(planned, plain, bounds):
        assert ours.shape == theirs.shape
        assert float((ours - theirs).abs().max()) <= bound


@pytest.mark.parametrize("name", [n for n in CONVOLUTIONS if CONVOLUTIONS[n]().groups == 1])
def test_every_choice_of_the_three_layouts_gives_the_same_gradients(name):
    """Forward, input gradient and weight gradient each in either layout, and the weight gradient by im2col
    too (all 12 plans), on every ungrouped geometry: padded, strided and pointwise."""
    torch.manual_seed(1)
    conv = CONVOLUTIONS[name]()
    x = torch.randn(2, conv.in_channels, 16, 24)
    upstream = torch.randn_like(conv(x))
    plain = _outputs_and_grads(conv, x, upstream)
    bounds = float_rounding_bound(_outputs_and_grads(conv.double(), x.double(), upstream.double()), plain)
    conv.float()
    conv_layouts.install(conv, "contiguous")
    for forward in FORCED:
        for input_grad in FORCED:
            for weight_grad in conv_layouts.WEIGHT_GRAD_KERNELS:
                plan = conv_layouts.LayoutPlan(forward, input_grad, weight_grad)
                conv._plan_for = lambda *args, plan=plan: plan
                for ours, theirs, bound in zip(_outputs_and_grads(conv, x, upstream), plain, bounds):
                    assert float((ours - theirs).abs().max()) <= bound, plan


def test_im2col_is_measured_only_where_it_applies(monkeypatch):
    """Grouped convolutions and inputs whose unfolded copy would be large keep to oneDNN's two layouts."""
    geometry = conv_layouts._Geometry((1, 1), (1, 1), (1, 1), 1)
    small = torch.randn(2, 8, 6, 10)
    weight = torch.randn(12, 8, 3, 3)
    _, timings = conv_layouts.measure_plan(small, weight, None, geometry)
    assert set(timings["weight_grad"]) == set(conv_layouts.WEIGHT_GRAD_KERNELS)

    grouped = conv_layouts._Geometry((1, 1), (1, 1), (1, 1), 4)
    _, timings = conv_layouts.measure_plan(small, torch.randn(12, 2, 3, 3), None, grouped)
    assert set(timings["weight_grad"]) == set(FORCED)

    # The same shape with a limit below its unfolded size (2 * 8*9 * 6*10 floats).
    monkeypatch.setattr(conv_layouts, "_IM2COL_MAX_BYTES", 2 * 8 * 9 * 6 * 10 * 4 - 1)
    _, timings = conv_layouts.measure_plan(small, weight, None, geometry)
    assert set(timings["weight_grad"]) == set(FORCED)


def test_install_keeps_parameters_names_and_checkpoints():
    model = nn.Sequential(CONVOLUTIONS["reflect3x3"](), nn.ReLU(), nn.Conv2d(12, 4, 3))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    conv_layouts.install(model, "channels_last")
    assert all(type(m) is conv_layouts.PlannedConv2d for m in (model[0], model[2]))
    assert model.state_dict().keys() == before.keys()
    assert all(p.is_contiguous() for p in model.parameters())  # the optimiser and checkpoints see plain tensors
    model.load_state_dict(before)
    conv_layouts.install(model, "plain")
    assert all(type(m) is nn.Conv2d for m in (model[0], model[2]))


def test_autocast_runs_the_plain_convolution():
    conv = conv_layouts.install(CONVOLUTIONS["pointwise"](), "channels_last")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = conv(torch.randn(1, 16, 8, 8))
    assert out.dtype == torch.bfloat16


def test_auto_measures_each_shape_once_and_caches_it(monkeypatch):
    calls = []
    measure = conv_layouts.measure_plan

    def counting(*args):
        calls.append(args[0].shape)
        return measure(*args)

    monkeypatch.setattr(conv_layouts, "measure_plan", counting)
    conv = conv_layouts.install(CONVOLUTIONS["reflect3x3"](), "auto")
    small, large = torch.randn(1, 8, 12, 16), torch.randn(1, 8, 24, 32)
    for x in (small, small, large, small):
        conv(x)
    assert len(calls) == 2  # one measurement per input shape

    path = conv_layouts.cache_path()
    stored = json.loads(path.read_text())
    assert stored["signature"]["cpu"] and len(stored["plans"]) == 2
    for plan in stored["plans"].values():
        assert {plan["forward"], plan["input_grad"]} <= set(FORCED)
        assert plan["weight_grad"] in conv_layouts.WEIGHT_GRAD_KERNELS

    # A new process (a fresh cache object) reads the plans instead of measuring again.
    monkeypatch.setattr(conv_layouts, "_shared_cache", None)
    conv(large)
    assert len(calls) == 2


def test_a_damaged_cache_is_measured_again_and_rewritten(monkeypatch):
    path = conv_layouts.cache_path()
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    conv = conv_layouts.install(CONVOLUTIONS["pointwise"](), "auto")
    conv(torch.randn(1, 16, 8, 8))
    assert len(json.loads(path.read_text())["plans"]) == 1
    assert not list(path.parent.glob(".conv_layouts-*"))  # no temporary file left behind


def test_an_unknown_layout_names_the_option():
    config = RunConfig(train=TrainConfig(conv_layout="nhwc"))
    with pytest.raises(ConfigError, match="--conv-layout"):
        config.validate()


def _phase_step(fixture: dict, model, phase_name: str):
    """Loss record and per-parameter gradients of one phase on the fixture's batch."""
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
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return result.as_record(), grads


@pytest.mark.parametrize("phase_name", list(losses.PHASES))
def test_a_training_step_is_the_same_with_either_layout(parity_fixture, filled_model, phase_name):
    """Loss and every parameter's gradient agree with plain nn.Conv2d, with the layouts forced both ways and
    with every ungrouped weight gradient forced to im2col.

    Only the order of float32 sums inside each convolution changes. The loss is well conditioned
    (it moves by about 1e-7). The gradient is not: the objective takes per-pixel minima and
    auto-masking comparisons whose winners flip when two errors tie within rounding, and so do
    the gradients of those pixels. Perturbing the input images by one float32 ulp with plain
    convolutions already moves the per-tensor gradients by up to 1.3e-2 (median over tensors) and
    2.7e-2 (worst tensor) on the committed and reference fixtures. The bounds are those of the
    gradient fixtures' worst-tensor tolerance (5e-2) and the median just above that rounding noise."""
    plain_record, plain_grads = _phase_step(parity_fixture, filled_model, phase_name)
    try:
        for mode in (*FORCED, conv_layouts.IM2COL):
            if mode == conv_layouts.IM2COL:
                # Every ungrouped convolution's weight gradient by im2col, the rest in the default layout.
                conv_layouts.install(filled_model, "contiguous")
                for module in filled_model.modules():
                    if isinstance(module, conv_layouts.PlannedConv2d) and module.groups == 1:
                        module._plan_for = lambda *args: conv_layouts.LayoutPlan("contiguous", "contiguous", "im2col")
            else:
                conv_layouts.install(filled_model, mode)
            record, grads = _phase_step(parity_fixture, filled_model, phase_name)
            assert grads.keys() == plain_grads.keys()
            for key, value in plain_record.items():
                assert record[key] == pytest.approx(value, rel=1e-5, abs=1e-7), (mode, key)
            errors = sorted(float((grads[name] - grad).norm() / grad.norm().clamp_min(1e-30))
                            for name, grad in plain_grads.items())
            assert errors[len(errors) // 2] <= 2e-2, mode
            assert errors[-1] <= 5e-2, mode
    finally:
        for module in filled_model.modules():
            module.__dict__.pop("_plan_for", None)
        conv_layouts.remove(filled_model)


def test_inference_times_only_the_forward(monkeypatch):
    timed = []
    monkeypatch.setattr(conv_layouts, "_input_grad", lambda *args: timed.append("input_grad"))
    monkeypatch.setattr(conv_layouts, "_weight_grad", lambda *args: timed.append("weight_grad"))
    torch.manual_seed(2)
    conv = CONVOLUTIONS["dilated_depthwise"]()
    x = torch.randn(1, 16, 20, 36)
    with torch.inference_mode():
        expected = nn.functional.conv2d(x, conv.weight, None, 1, 2, 2, 16)
        conv_layouts.install(conv, "auto")
        got = conv(x)
    assert timed == []
    stored = json.loads(conv_layouts.cache_path().read_text())["plans"]
    assert [json.loads(key)[0] for key in stored] == ["inference"]
    bound = 8 * torch.finfo(torch.float32).eps * float(expected.abs().max()) * 16
    assert float((got - expected).abs().max()) <= bound


@pytest.mark.parametrize("mode", ["auto", "channels_last", "plain"])
def test_the_trainer_runs_the_configured_layout(tmp_path, mode):
    from dynamo_core.config import ModelConfig, default_scales
    from dynamo_core.training.trainer import Trainer

    config = RunConfig(
        model=ModelConfig(depth_model="monodepthv2", weights_init="scratch", height=64, width=192,
                          scales=default_scales("monodepthv2")),
        train=TrainConfig(log_dir=str(tmp_path), name="run", device="cpu", conv_layout=mode),
    )
    trainer = Trainer(config, dataset=[None])
    convolutions = [m for m in trainer.model.modules() if isinstance(m, nn.Conv2d)]
    if mode == "plain":
        assert all(type(m) is nn.Conv2d for m in convolutions)
    else:
        assert all(type(m) is conv_layouts.PlannedConv2d and m.layout_mode == mode for m in convolutions)
    trainer.logger.close()


def test_measuring_leaves_the_global_random_stream_alone():
    """Training replays the random stream on resume; a measurement in one run only must not shift it."""
    conv = nn.Conv2d(3, 4, 3, padding=1)
    x = torch.rand(1, 3, 8, 8)
    state = torch.get_rng_state()
    conv_layouts.measure_plan(x, conv.weight, conv.bias, conv_layouts._Geometry((1, 1), (1, 1), (1, 1), 1))
    assert torch.equal(torch.get_rng_state(), state)
