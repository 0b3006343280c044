"""Network building blocks that replace slow torch kernels must compute the same function."""

import torch
import torch.nn.functional as F

from dynamo_core.networks.blocks import elu


def test_elu_equals_torch_elu_with_its_gradient():
    x = torch.cat([torch.linspace(-30, 30, 601, dtype=torch.float64), torch.tensor([0.0, 1e-12, -1e-12, 500.0, -500.0],
                                                                                   dtype=torch.float64)])
    x.requires_grad_()
    ours = elu(x)
    torch.testing.assert_close(ours, F.elu(x), atol=1e-15, rtol=1e-12)
    weights = torch.rand_like(x)
    grad_ours = torch.autograd.grad((ours * weights).sum(), x)[0]
    grad_torch = torch.autograd.grad((F.elu(x) * weights).sum(), x)[0]
    torch.testing.assert_close(grad_ours, grad_torch)
    assert torch.isfinite(grad_ours).all()
    assert torch.autograd.gradcheck(elu, (torch.randn(3, 4, dtype=torch.float64, requires_grad=True),))


def test_match_layout_gives_a_concatenation_in_the_reference_layout():
    from dynamo_core.networks.blocks import match_layout

    feature = torch.randn(2, 16, 8, 10).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    side = torch.randn(2, 3, 8, 10)
    joined = torch.cat([feature, match_layout(side, feature)], dim=1)
    assert joined.dtype == torch.bfloat16 and joined.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(joined[:, 16:], side.to(torch.bfloat16))
    plain = torch.randn(2, 16, 8, 10)
    assert match_layout(side.contiguous(memory_format=torch.channels_last), plain).is_contiguous()


def test_elu_in_place_gives_the_same_values_and_conv_block_uses_it_only_at_inference(monkeypatch):
    from dynamo_core.networks import blocks

    x = torch.cat([torch.linspace(-30, 30, 601), torch.tensor([0.0, 1e-12, -1e-12, 1e-8, -1e-8, 80.0, -200.0])])
    expected = elu(x)
    written = x.clone()
    assert blocks.elu_in_place(written) is written
    assert torch.equal(written, expected)  # same operations in the same order: bit for bit

    block = blocks.ConvBlock(3, 4)
    image = torch.randn(2, 3, 8, 10)
    in_place_calls = []
    real = blocks.elu_in_place
    monkeypatch.setattr(blocks, "elu_in_place", lambda t: in_place_calls.append(1) or real(t))
    plain = block(image).detach()  # autograd on: the differentiable form
    assert not in_place_calls
    with torch.no_grad():
        torch.jit.trace(block, (image,), check_trace=False)  # ONNX export traces the plain form
        assert not in_place_calls
        assert torch.equal(block(image), plain)
    assert in_place_calls == [1]
