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
