"""ONNX export of the depth, pose and motion networks, checked against PyTorch before the file is written.

| part   | inputs (float32, [0, 1] RGB at H x W)     | outputs                                                   |
| ------ | ----------------------------------------- | --------------------------------------------------------- |
| depth  | image (B, 3, H, W)                        | disp (B, 1, H, W): sigmoid disparity at scale 0           |
| pose   | source, target (B, 3, H, W)               | axisangle, translation (B, 3); cam_T_cam (B, 4, 4) = T_src_tgt |
| motion | before, target, after (B, 3, H, W)        | axisangle, translation (B, 2, 3) for (before, after); complete_flow (B, 3, H, W) towards `after`; motion_mask (B, 1, H, W) |

The model's size and depth range are stored as metadata (`dynamo.part`, `dynamo.height`,
`dynamo.width`, `dynamo.min_depth`, `dynamo.max_depth`) so `dynamo predict --onnx` needs nothing else.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from .. import conv_layouts
from ..atomic_files import atomic_write
from ..errors import ConfigError, DynamoError
from ..geometry import pose_vec_to_matrix

log = logging.getLogger(__name__)

PARTS = ("depth", "pose", "motion")
TOLERANCE = 1e-4
OPSET = 17


class ExportError(DynamoError):
    """The export failed, or onnxruntime disagrees with PyTorch."""


class DepthPart(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.enc, self.dec = model.depth_enc, model.depth_dec

    def forward(self, image):
        return self.dec(self.enc(image))[0]


class PosePart(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.enc, self.dec = model.pose_enc, model.pose_dec

    def forward(self, source, target):
        axis_angle, translation = self.dec([self.enc(torch.cat([source, target], dim=1))])
        axis_angle, translation = axis_angle[:, 0, 0], translation[:, 0, 0]
        T = pose_vec_to_matrix(axis_angle[:, None], translation[:, None], invert=True)
        return axis_angle, translation, T


class MotionPart(nn.Module):
    """The pose network on both neighbours, then complete flow and mask as `DynamoModel.predict_motion`."""

    def __init__(self, model):
        super().__init__()
        self.pose_enc, self.pose_dec = model.pose_enc, model.pose_dec
        self.motion_enc, self.motion_dec, self.motion_mask = model.motion_enc, model.motion_dec, model.motion_mask

    def _pose(self, source, target):
        axis_angle, translation = self.pose_dec([self.pose_enc(torch.cat([source, target], dim=1))])
        return axis_angle[:, 0], translation[:, 0]  # (B, 1, 3)

    def forward(self, before, target, after):
        aa_before, t_before = self._pose(before, target)
        aa_after, t_after = self._pose(after, target)
        stacked = torch.cat([before, target, after], dim=1)
        features = [stacked] + self.motion_enc(stacked)
        translation = (t_before - t_after) / 2
        axis_angle = (aa_before - aa_after) / 2
        ego_motion = torch.cat([translation, axis_angle], dim=-1).permute(0, 2, 1).unsqueeze(3)
        flow = self.motion_dec(features, ego_motion)[0]
        mask = torch.sigmoid(self.motion_mask(features, ego_motion)[0])
        return (torch.cat([aa_before, aa_after], dim=1), torch.cat([t_before, t_after], dim=1), flow, mask)


INPUT_NAMES = {"depth": ["image"], "pose": ["source", "target"], "motion": ["before", "target", "after"]}
OUTPUT_NAMES = {
    "depth": ["disp"],
    "pose": ["axisangle", "translation", "cam_T_cam"],
    "motion": ["axisangle", "translation", "complete_flow", "motion_mask"],
}
MODULES = {
    "depth": ("depth_enc", "depth_dec"),
    "pose": ("pose_enc", "pose_dec"),
    "motion": ("pose_enc", "pose_dec", "motion_enc", "motion_dec", "motion_mask"),
}


def wrap(model, part: str) -> nn.Module:
    if part not in PARTS:
        raise ConfigError(f"--part must be one of {', '.join(PARTS)}, got {part!r}.")
    return {"depth": DepthPart, "pose": PosePart, "motion": MotionPart}[part](model).eval()


@dataclass
class ExportResult:
    path: Path
    part: str
    height: int
    width: int
    max_abs_error: float
    frames: int

    def to_dict(self) -> dict:
        return {"path": str(self.path), "part": self.part, "height": self.height, "width": self.width,
                "max_abs_error": self.max_abs_error, "frames": self.frames, "tolerance": TOLERANCE}


def _require_onnx():
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        raise ConfigError("ONNX export needs onnx and onnxruntime: pip install 'dynamo[onnx]'.") from None


def check_frames(height: int, width: int, images: Sequence[np.ndarray] | None = None, count: int = 3) -> torch.Tensor:
    """(N, 3, H, W) real frames for the parity check: the given images, else rendered synthetic road frames."""
    from PIL import Image

    if not images:
        from ..synthetic import Camera, render_frame, sequence_scene

        scene = sequence_scene(0, 0, count)
        camera = Camera.for_size(height, width)
        images = [(np.clip(render_frame(scene, camera, f, 1)[0], 0, 1) * 255 + 0.5).astype(np.uint8)
                  for f in range(count)]
    tensors = []
    for image in images:
        if image.shape[:2] != (height, width):
            image = np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.BICUBIC))
        tensors.append(torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255)
    return torch.stack(tensors)


def part_inputs(part: str, frames: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The part's inputs from consecutive frames: depth (all), pose (frame i, i+1), motion (i-1, i, i+1)."""
    n = len(frames)
    if part == "depth":
        return (frames,)
    if n < (2 if part == "pose" else 3):
        raise ConfigError(f"the {part} check needs at least {2 if part == 'pose' else 3} frames.")
    if part == "pose":
        return frames[:-1], frames[1:]
    return frames[:-2], frames[1:-1], frames[2:]


def onnx_outputs(path_or_bytes, inputs: Sequence[np.ndarray], names: Sequence[str]) -> list[np.ndarray]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    source = str(path_or_bytes) if isinstance(path_or_bytes, (str, Path)) else path_or_bytes
    session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    return session.run(None, dict(zip(names, inputs)))


def parity_error(model_bytes: bytes, wrapper: nn.Module, part: str, frames: torch.Tensor) -> float:
    """Largest absolute difference between onnxruntime and PyTorch over every output."""
    inputs = part_inputs(part, frames)
    with torch.inference_mode():
        expected = wrapper(*inputs)
    expected = expected if isinstance(expected, tuple) else (expected,)
    got = onnx_outputs(model_bytes, [x.numpy() for x in inputs], INPUT_NAMES[part])
    worst = 0.0
    for e, g in zip(expected, got):
        e = e.float().numpy()
        if e.shape != g.shape:
            return float("inf")
        worst = max(worst, float(np.max(np.abs(e - g))) if e.size else 0.0)
    return worst


def plain_copy(model: nn.Module) -> nn.Module:
    """A float32 CPU copy with plain convolutions: the layout plans are a CPU speed choice of torch,
    not part of the graph (and the exporter cannot trace them)."""
    return conv_layouts.remove(copy.deepcopy(model)).eval().float().to("cpu", memory_format=torch.contiguous_format)


def export_bytes(model, part: str, height: int, width: int, dynamic_batch: bool = False) -> bytes:
    """Serialise one part to ONNX in memory, with the metadata."""
    _require_onnx()
    import io

    import onnx

    wrapper = wrap(plain_copy(model), part)
    example = tuple(torch.rand(1, 3, height, width) for _ in INPUT_NAMES[part])
    axes = None
    if dynamic_batch:
        axes = {name: {0: "batch"} for name in INPUT_NAMES[part] + OUTPUT_NAMES[part]}
    buffer = io.BytesIO()
    try:
        with torch.inference_mode(False), torch.no_grad():
            torch.onnx.export(wrapper, example, buffer, input_names=INPUT_NAMES[part],
                              output_names=OUTPUT_NAMES[part], dynamic_axes=axes, opset_version=OPSET,
                              dynamo=False, do_constant_folding=True)
    except Exception as err:  # the exporter raises many types
        raise ExportError(f"exporting the {part} network to ONNX failed: {type(err).__name__}: {err}") from None
    proto = onnx.load_from_string(buffer.getvalue())
    config = model.config
    for key, value in {"part": part, "height": height, "width": width, "min_depth": config.min_depth,
                       "max_depth": config.max_depth, "depth_model": config.depth_model}.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = f"dynamo.{key}", str(value)
    return proto.SerializeToString()


def export_onnx(model, out: str | Path, part: str = "depth", *, height: int | None = None, width: int | None = None,
                dynamic_batch: bool = False, frames: torch.Tensor | None = None, force: bool = False,
                tamper=None) -> ExportResult:
    """Export one part, check onnxruntime against PyTorch within 1e-4 on real frames, then write `out`.

    Args:
        frames: (N, 3, H, W) frames for the check; default rendered synthetic road frames.
        tamper: for tests, a function applied to the serialised model before the check.
    Raises:
        ExportError: the outputs differ by more than 1e-4 (the file is not written).
    """
    _require_onnx()
    out = Path(out).expanduser()
    if out.exists() and not force:
        raise ConfigError(f"{out} already exists; pass --force to overwrite it.")
    height = height or model.config.height
    width = width or model.config.width
    if height % 32 or width % 32 or height <= 0 or width <= 0:
        raise ConfigError(f"--height and --width must be positive multiples of 32, got {height}x{width}.")
    model = plain_copy(model)
    data = export_bytes(model, part, height, width, dynamic_batch)
    if tamper is not None:
        data = tamper(data)
    if frames is None:
        frames = check_frames(height, width)
    if not dynamic_batch:
        # A fixed batch of 1: check frame by frame.
        errors = [parity_error(data, wrap(model, part), part, frames[i:i + (1 if part == "depth" else
                                                                             2 if part == "pose" else 3)])
                  for i in range(len(frames) - (0 if part == "depth" else 1 if part == "pose" else 2))]
        error = max(errors)
    else:
        error = parity_error(data, wrap(model, part), part, frames)
    if not error <= TOLERANCE:
        raise ExportError(
            f"onnxruntime's {part} outputs differ from PyTorch's by {error:.3g} (more than {TOLERANCE:g}) on "
            f"{len(frames)} frames; {out} was not written. Report this with your torch and onnxruntime versions."
        )
    atomic_write(out, lambda stream: stream.write(data))
    log.info("wrote %s (%s, %dx%d); onnxruntime matches PyTorch within %.2g", out, part, height, width, error)
    return ExportResult(out, part, height, width, error, len(frames))
