"""Memory layouts (and kernels) for each convolution, chosen by measurement on the machine at hand.

oneDNN's CPU convolutions run at different speeds in the default (NCHW) and channels-last (NHWC)
layouts, and which is faster depends on the operation, the shape and the CPU: on one AVX2 EPYC a
64->64 3x3 convolution ran its forward twice as fast channels-last and its weight gradient 3.6
times slower. A planned convolution runs its forward, its input gradient and its weight gradient
each in its own layout. The weight gradient has a third candidate, `im2col`: the unfolded input
times the output gradient as one matrix product. It wins where the map is small and the channels
many (ResNet's last stage at 2x6: 4.5 times faster than oneDNN on that EPYC), where oneDNN's
kernels leave the cores idle. In `auto` mode the three are timed in both layouts (and the weight gradient
by im2col too) the first time a shape is seen, and the choice is cached on disk per CPU model, torch version and thread count (think of
cuDNN's benchmark mode). Parameters keep the default layout, so optimisers, checkpoints and export
see ordinary tensors. Results agree with `nn.Conv2d` to float rounding.

    install(model, "auto")        # or "contiguous" / "channels_last" to force every operation
    remove(model)                 # back to plain nn.Conv2d
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .atomic_files import atomic_output
from .runtime import best_time, machine_info

log = logging.getLogger(__name__)

MODES = ("auto", "contiguous", "channels_last", "plain")
_FORMATS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}
IM2COL = "im2col"
"""The weight gradient as one matrix product over the unfolded input (ungrouped convolutions only)."""
WEIGHT_GRAD_KERNELS = (*_FORMATS, IM2COL)
# im2col is only tried where its unfolded input stays this small (bytes): it is meant for small maps,
# and a large unfolded copy would raise the step's peak memory.
_IM2COL_MAX_BYTES = 64 * 2**20
# Part of the cache file's signature: plans measured before a candidate was added are measured again.
_PLANNER_VERSION = 2
# Repeat a candidate until this much time has been spent on it (at least 2 runs after a warm-up).
_TIMING_BUDGET_S = 0.05


@dataclass(frozen=True)
class LayoutPlan:
    """The layout ("contiguous" or "channels_last") of each of one convolution's three operations; the
    weight gradient may instead use the `im2col` kernel."""

    forward: str
    input_grad: str
    weight_grad: str

    @classmethod
    def uniform(cls, layout: str) -> "LayoutPlan":
        return cls(layout, layout, layout)


@dataclass(frozen=True)
class _Geometry:
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    groups: int


def _in(layout: str, x: torch.Tensor) -> torch.Tensor:
    return x.contiguous(memory_format=_FORMATS[layout])


def _placeholder(layout: str, like: torch.Tensor) -> torch.Tensor:
    """An uninitialised tensor shaped like `like`: the input-gradient kernel reads only its shape and
    layout, so the saved input need not be copied into the other layout for it."""
    return torch.empty(like.shape, dtype=like.dtype, device=like.device, memory_format=_FORMATS[layout])


def _forward(x, weight, bias, geometry: _Geometry, layout: str) -> torch.Tensor:
    return torch.ops.aten.convolution(
        _in(layout, x), _in(layout, weight), bias, geometry.stride, geometry.padding, geometry.dilation,
        False, (0, 0), geometry.groups)


def _input_grad(grad, x, weight, geometry: _Geometry, layout: str) -> torch.Tensor:
    return torch.ops.aten.convolution_backward(
        _in(layout, grad), _placeholder(layout, x), _in(layout, weight), None, geometry.stride, geometry.padding,
        geometry.dilation, False, (0, 0), geometry.groups, (True, False, False))[0]


def _weight_grad(grad, x, weight, geometry: _Geometry, layout: str, with_bias: bool):
    _, grad_weight, grad_bias = torch.ops.aten.convolution_backward(
        _in(layout, grad), _in(layout, x), _in(layout, weight), [weight.shape[0]] if with_bias else None,
        geometry.stride, geometry.padding, geometry.dilation, False, (0, 0), geometry.groups, (False, True, with_bias))
    return _in_parameter_strides(grad_weight.contiguous(), weight), grad_bias


def _in_parameter_strides(grad_weight: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """A contiguous weight gradient with the parameter's own strides (a 1x1 kernel's may differ while both are
    contiguous): DDP's buckets expect them."""
    return grad_weight.as_strided(weight.shape, weight.stride()) if weight.is_contiguous() else grad_weight


def _im2col_bytes(x: torch.Tensor, weight: torch.Tensor, out_size: tuple[int, int]) -> int:
    """Size of the unfolded input: (B, C * kh * kw, H_out * W_out) elements."""
    return x.shape[0] * weight[0].numel() * out_size[0] * out_size[1] * x.element_size()


def _im2col_applies(x: torch.Tensor, weight: torch.Tensor, geometry: _Geometry, out_size: tuple[int, int]) -> bool:
    return geometry.groups == 1 and _im2col_bytes(x, weight, out_size) <= _IM2COL_MAX_BYTES


def _weight_grad_im2col(grad, x, weight, geometry: _Geometry, with_bias: bool):
    """grad (B, O, Ho, Wo) x unfold(x) (B, C*kh*kw, Ho*Wo), summed over the batch: (O, C, kh, kw)."""
    batch, out_channels = grad.shape[:2]
    columns = F.unfold(x, weight.shape[-2:], dilation=geometry.dilation, padding=geometry.padding,
                       stride=geometry.stride)
    # Batch and positions as one inner dimension, so that the product is a single matrix multiply.
    columns = columns.transpose(0, 1).reshape(columns.shape[1], -1)
    flat_grad = grad.reshape(batch, out_channels, -1).transpose(0, 1).reshape(out_channels, -1)
    grad_weight = _in_parameter_strides((flat_grad @ columns.t()).reshape(weight.shape), weight)
    return grad_weight, flat_grad.sum(1) if with_bias else None


def _weight_grad_by(kernel: str, grad, x, weight, geometry: _Geometry, with_bias: bool):
    if kernel == IM2COL:
        return _weight_grad_im2col(grad, x, weight, geometry, with_bias)
    return _weight_grad(grad, x, weight, geometry, kernel, with_bias)


class _PlannedConvolution(torch.autograd.Function):
    """conv2d whose forward, input gradient and weight gradient each run in the plan's layout."""

    @staticmethod
    def forward(ctx, x, weight, bias, geometry: _Geometry, plan: LayoutPlan):
        ctx.save_for_backward(x, weight)
        ctx.geometry, ctx.plan, ctx.has_bias = geometry, plan, bias is not None
        return _forward(x, weight, bias, geometry, plan.forward)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_x = _input_grad(grad, x, weight, ctx.geometry, ctx.plan.input_grad)
        if ctx.needs_input_grad[1] or (ctx.has_bias and ctx.needs_input_grad[2]):
            grad_weight, grad_bias = _weight_grad_by(ctx.plan.weight_grad, grad, x, weight, ctx.geometry,
                                                     ctx.has_bias and ctx.needs_input_grad[2])
            if not ctx.needs_input_grad[1]:
                grad_weight = None
        return grad_x, grad_weight, grad_bias, None, None


def _time(fn) -> float:
    return best_time(fn, _TIMING_BUDGET_S)


def measure_plan(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, geometry: _Geometry,
                 backward: bool = True) -> tuple[LayoutPlan, dict]:
    """Time each operation in both layouts, from `x` in the layout it arrives in.

    The output gradient is assumed to arrive in the layout of the chosen forward's output. The weight
    gradient's `im2col` kernel is timed too where it applies (ungrouped, unfolded input within
    _IM2COL_MAX_BYTES). With `backward` False (inference) only the forward is timed. Returns the
    fastest plan and the timings in seconds.
    """
    with torch.no_grad():
        x, weight = x.detach(), weight.detach()
        bias = bias.detach() if bias is not None else None
        forward = {layout: _time(lambda: _forward(x, weight, bias, geometry, layout)) for layout in _FORMATS}
        forward_layout = min(forward, key=forward.get)
        if not backward:
            return LayoutPlan.uniform(forward_layout), {"forward": forward}
        out = _forward(x, weight, bias, geometry, "contiguous")
        # A private generator: measuring must not move the global random stream that training replays on resume.
        noise = torch.randn(out.shape, generator=torch.Generator().manual_seed(0), dtype=out.dtype)
        grad = _in(forward_layout, noise.to(out.device))
        input_grad = {layout: _time(lambda: _input_grad(grad, x, weight, geometry, layout)) for layout in _FORMATS}
        kernels = [*_FORMATS, IM2COL] if _im2col_applies(x, weight, geometry, tuple(out.shape[-2:])) else list(_FORMATS)
        weight_grad = {kernel: _time(lambda: _weight_grad_by(kernel, grad, x, weight, geometry, bias is not None))
                       for kernel in kernels}
    plan = LayoutPlan(forward_layout, min(input_grad, key=input_grad.get), min(weight_grad, key=weight_grad.get))
    return plan, {"forward": forward, "input_grad": input_grad, "weight_grad": weight_grad}


def cache_path(kind: str = "conv_layouts") -> Path:
    """Where measured choices of one `kind` are cached: $DYNAMO_CACHE_DIR, else $XDG_CACHE_HOME/dynamo, else
    ~/.cache/dynamo, in a file named by the kind and a hash of the CPU signature."""
    root = os.environ.get("DYNAMO_CACHE_DIR") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dynamo"
    signature = json.dumps({**machine_info(), "planner": _PLANNER_VERSION}, sort_keys=True)
    return Path(root) / f"{kind}-{hashlib.sha256(signature.encode()).hexdigest()[:16]}.json"


class PlanCache:
    """Plans by convolution shape, for this CPU signature; read once, written back atomically."""

    def __init__(self, path: Path | None = None):
        self.path = path or cache_path()
        self.plans: dict[str, LayoutPlan] = {}
        self._lock = threading.Lock()
        try:
            stored = json.loads(self.path.read_text(encoding="utf-8"))
            for key, value in stored.get("plans", {}).items():
                plan = LayoutPlan(**value)
                if plan.forward in _FORMATS and plan.input_grad in _FORMATS and plan.weight_grad in WEIGHT_GRAD_KERNELS:
                    self.plans[key] = plan
        except (OSError, ValueError, TypeError, AttributeError):
            pass  # a missing or damaged cache is measured again

    def get(self, key: str) -> LayoutPlan | None:
        return self.plans.get(key)

    def put(self, key: str, plan: LayoutPlan) -> None:
        with self._lock:
            self.plans[key] = plan
            write_cache(self.path, "plans", {k: vars(v) for k, v in sorted(self.plans.items())})


def write_cache(path: Path, field: str, entries: dict) -> None:
    """Store measured choices under `field` with the CPU signature, atomically. A read-only home still
    works: it only measures again next time."""
    try:
        with atomic_output(path, "w") as out:
            json.dump({"signature": machine_info(), field: entries}, out, indent=1)
    except OSError as error:
        log.debug("could not write %s: %s", path, error)


_shared_cache: PlanCache | None = None


def _cache() -> PlanCache:
    global _shared_cache
    if _shared_cache is None or _shared_cache.path != cache_path():
        _shared_cache = PlanCache()
    return _shared_cache


def _layout_of(x: torch.Tensor) -> str:
    return "contiguous" if x.is_contiguous() else "channels_last" if x.is_contiguous(memory_format=torch.channels_last) else "strided"


class PlannedConv2d(nn.Conv2d):
    """nn.Conv2d run through a LayoutPlan on the CPU; same parameters, names and results.

    `layout_mode` is "auto" (measure and cache), "contiguous" or "channels_last" (forced). Under
    autocast, on other devices and for string padding it runs as a plain nn.Conv2d.
    """

    layout_mode: str = "auto"

    def _plan_for(self, x: torch.Tensor, weight: torch.Tensor, bias, geometry: _Geometry) -> LayoutPlan:
        if self.layout_mode != "auto":
            return LayoutPlan.uniform(self.layout_mode)
        backward = torch.is_grad_enabled()
        key = json.dumps(["train" if backward else "inference", list(x.shape), _layout_of(x), str(x.dtype),
                          list(weight.shape), bias is not None, geometry.stride, geometry.padding, geometry.dilation,
                          geometry.groups])
        cache = _cache()
        plan = cache.get(key)
        if plan is None:
            plan, timings = measure_plan(x, weight, bias, geometry, backward)
            log.debug("conv %s: %s %s", key, plan, timings)
            cache.put(key, plan)
        return plan

    def _conv_forward(self, input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if (input.device.type != "cpu" or isinstance(self.padding, str) or input.dim() != 4
                or torch.is_autocast_enabled("cpu") or self.layout_mode == "plain"):
            return super()._conv_forward(input, weight, bias)
        padding = tuple(self.padding)
        if self.padding_mode != "zeros":
            input = F.pad(input, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            padding = (0, 0)
        geometry = _Geometry(tuple(self.stride), padding, tuple(self.dilation), self.groups)
        plan = self._plan_for(input, weight, bias, geometry)
        if not torch.is_grad_enabled():
            return _forward(input, weight, bias, geometry, plan.forward)
        return _PlannedConvolution.apply(input, weight, bias, geometry, plan)


def install(model: nn.Module, mode: str = "auto") -> nn.Module:
    """Run every nn.Conv2d of `model` through a layout plan (in place); "plain" removes them."""
    if mode not in MODES:
        raise ValueError(f"conv layout must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "plain":
        return remove(model)
    for module in model.modules():
        if type(module) in (nn.Conv2d, PlannedConv2d):
            module.__class__ = PlannedConv2d
            module.layout_mode = mode
    return model


def remove(model: nn.Module) -> nn.Module:
    """Turn planned convolutions back into plain nn.Conv2d (in place)."""
    for module in model.modules():
        if type(module) is PlannedConv2d:
            module.__class__ = nn.Conv2d
            module.__dict__.pop("layout_mode", None)
    return model
