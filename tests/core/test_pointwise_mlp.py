"""Lite-Mono's residual MLP run over blocks of rows at inference must compute the plain form."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from conftest import fill_module, fixture_inputs, float_rounding_bound
from dynamo_core import conv_layouts
from dynamo_core.networks import litemono, pointwise_mlp


def _stage_tensors(fixture: dict):
    """Stage 1's block input at the fixture's size, batch and seed: x (B, C, H/4, W/4) and an MLP of the block's
    widths with random weights (the published init makes the update 1e-6 of x, which would hide any error)."""
    generator = torch.Generator().manual_seed(int(fixture["seed"]))
    channels = litemono.DIMS[0]
    shape = (int(fixture["batch"]), channels, int(fixture["height"]) // 4, int(fixture["width"]) // 4)
    x = torch.randn(shape, generator=generator)
    branch = torch.randn(shape, generator=generator)
    pwconv1, pwconv2 = nn.Linear(channels, litemono.EXPANSION * channels), nn.Linear(litemono.EXPANSION * channels, channels)
    fill_module(pwconv1, int(fixture["seed"]), 0)
    fill_module(pwconv2, int(fixture["seed"]), 1)
    gamma = torch.rand(channels, generator=generator) + 0.5
    return x, branch, pwconv1, pwconv2, gamma


def _plain(x, branch_bhwc, pwconv1, pwconv2, gamma):
    with torch.enable_grad():  # the plain form: autograd on
        return pointwise_mlp.residual_mlp(x, branch_bhwc, pwconv1, pwconv2, gamma, 0.0, False).detach()


@pytest.mark.parametrize("x_layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("branch_layout", [torch.contiguous_format, torch.channels_last])
def test_row_blocks_agree_with_the_plain_form_for_any_block_size(parity_fixture, x_layout, branch_layout):
    x, branch, pwconv1, pwconv2, gamma = _stage_tensors(parity_fixture)
    x = x.contiguous(memory_format=x_layout)
    branch_bhwc = branch.contiguous(memory_format=branch_layout).permute(0, 2, 3, 1)
    plain = _plain(x, branch_bhwc, pwconv1, pwconv2, gamma)
    plain64 = _plain(x.double(), branch_bhwc.double(), pwconv1.double(), pwconv2.double(), gamma.double())
    pwconv1.float(), pwconv2.float()
    [bound] = float_rounding_bound([plain64], [plain])
    positions = x.shape[2] * x.shape[3]
    for rows in (1, 7, positions // 3, positions, positions * x.shape[0]):
        out = torch.empty(x.shape[0], x.shape[2], x.shape[3], x.shape[1])
        with torch.no_grad():
            for rows_in, residual, rows_out in pointwise_mlp._row_matrices(x, branch_bhwc, out):
                pointwise_mlp._run_blocks(rows_in, residual, rows_out, pwconv1, pwconv2, gamma, rows)
        blocks = out.permute(0, 3, 1, 2)
        assert float((blocks - plain).abs().max()) <= bound, rows
    with torch.no_grad():
        measured = pointwise_mlp.residual_mlp(x, branch_bhwc, pwconv1, pwconv2, gamma, 0.4, False)
    assert measured.shape == x.shape
    assert float((measured - plain).abs().max()) <= bound


class _Block(nn.Module):
    def __init__(self, pwconv1, pwconv2, gamma):
        super().__init__()
        self.pwconv1, self.pwconv2, self.gamma = pwconv1, pwconv2, nn.Parameter(gamma)

    def forward(self, x, branch):
        return pointwise_mlp.residual_mlp(x, branch, self.pwconv1, self.pwconv2, self.gamma, 0.0, False)


def test_blocks_run_only_at_inference_in_float32_untraced(parity_fixture, monkeypatch):
    calls = []
    real = pointwise_mlp._in_row_blocks
    monkeypatch.setattr(pointwise_mlp, "_in_row_blocks", lambda *a: calls.append(1) or real(*a))
    x, branch, pwconv1, pwconv2, gamma = _stage_tensors(parity_fixture)
    branch_bhwc = branch.permute(0, 2, 3, 1)

    def run(training=False):
        return pointwise_mlp.residual_mlp(x, branch_bhwc, pwconv1, pwconv2, gamma, 0.0, training)

    run()  # autograd on: the plain form, which training differentiates
    with torch.no_grad():
        run(training=True)  # a module in training mode keeps drop_path
        with torch.autocast("cpu", dtype=torch.bfloat16):
            run()
        torch.jit.trace(_Block(pwconv1, pwconv2, gamma), (x, branch_bhwc), check_trace=False)  # as ONNX export
        assert not calls
        run()
    assert len(calls) == 1


def test_block_rows_are_measured_once_per_machine_and_cached_on_disk(parity_fixture, monkeypatch, tmp_path):
    monkeypatch.setenv("DYNAMO_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(pointwise_mlp, "_shared_cache", None)
    timed = []
    # A fake timer under which the last candidate (the whole matrix) is fastest.
    monkeypatch.setattr(pointwise_mlp, "best_time", lambda fn, budget: timed.append(fn) or (fn(), 1.0 / len(timed))[1])
    x, branch, pwconv1, pwconv2, gamma = _stage_tensors(parity_fixture)
    out = torch.empty(x.shape[0], x.shape[2], x.shape[3], x.shape[1])
    matrices = next(pointwise_mlp._row_matrices(x, branch.permute(0, 2, 3, 1), out))
    total = matrices[0].shape[0]
    candidates = len([rows for rows in pointwise_mlp._CANDIDATE_ROWS if rows < total]) + 1

    def rows_for_a_new_process():
        monkeypatch.setattr(pointwise_mlp, "_shared_cache", None)
        with torch.no_grad():
            return pointwise_mlp.block_rows(*matrices, pwconv1, pwconv2, gamma)

    assert rows_for_a_new_process() == total
    if candidates == 1:  # a matrix no larger than the smallest block is one block, without timing
        assert not timed
        return
    assert len(timed) == candidates
    path = conv_layouts.cache_path("mlp_blocks")
    assert list(json.loads(path.read_text())["rows"].values()) == [total]
    assert rows_for_a_new_process() == total and len(timed) == candidates  # read from disk
    for damaged in ("{not json", json.dumps({"rows": {"k": "many"}})):
        path.write_text(damaged)
        assert rows_for_a_new_process() == total
    assert len(timed) == 3 * candidates  # each damaged cache measured again


def test_encoder_at_inference_agrees_with_its_plain_form(parity_fixture):
    """The whole Lite-Mono encoder: no_grad (row blocks) against autograd on (plain), float32 rounding apart."""
    torch.manual_seed(int(parity_fixture["seed"]))
    encoder = litemono.LiteMonoEncoder().eval()
    for index, block in enumerate(m for m in encoder.modules() if hasattr(m, "gamma")):
        nn.init.uniform_(block.gamma, 0.5, 1.5)  # a visible update (the published init scales it by 1e-6)
    image = fixture_inputs(parity_fixture)[("color_aug", 0, 0)]
    plain = [f.detach() for f in encoder(image)]
    plain64 = [f.detach() for f in encoder.double()(image.double())]
    bounds = float_rounding_bound(plain64, plain)
    with torch.no_grad():
        blocks = encoder.float()(image)
    for ours, theirs, bound in zip(blocks, plain, bounds):
        assert float((ours - theirs).abs().max()) <= bound
