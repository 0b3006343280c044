"""Predictor: depth, motion mask, independent flow and ego-motion on the user's own frames.

    from dynamo_core.prediction import Predictor

    predictor = Predictor.from_checkpoint("ckpt/K_Dynamo-Depth", device="auto")
    depths = predictor.predict_depth(["a.jpg", "b.png"])          # float32 (H, W) at each image's size
    result = predictor.predict_sequence(frames)                   # depth, mask, flow, poses

Images are resized (bicubic) to the checkpoint's size, as in training; every map comes back at
the image's own size. The depth is the network's disparity at scale 0, upsampled bilinearly to
the image size and then converted with the model's min/max depth, so it is in the model's units
(metric only up to an unknown scale; see `geometry.ground_plane_scale`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .. import conv_layouts
from ..checkpoints import CheckpointInfo, inspect_checkpoint, load_weights
from ..config import ModelConfig, default_scales
from ..errors import CheckpointError, ConfigError
from ..geometry import disp_to_depth
from ..model import DynamoModel
from ..runtime import keep_freed_memory, resolve_device
from . import intrinsics as intrinsics_module
from .geometry import independent_flow
from .inputs import read_rgb
from .sequence import SequencePrediction

log = logging.getLogger(__name__)

DEPTH_MODULES = ("depth_enc", "depth_dec")
POSE_MODULES = ("pose_enc", "pose_dec")
MOTION_MODULES = ("motion_enc", "motion_dec", "motion_mask")
PRECISIONS = ("fp32", "bf16", "fp16")

ImageLike = "np.ndarray | str | Path"


def as_rgb(image) -> np.ndarray:
    """A path, a PIL image or an (H, W, 3) array -> (H, W, 3) uint8 RGB."""
    if isinstance(image, (str, Path)):
        return read_rgb(image)
    if hasattr(image, "convert") and hasattr(image, "size"):  # PIL
        return np.asarray(image.convert("RGB"), dtype=np.uint8)
    array = np.asarray(image)
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ConfigError(f"an image array must be (H, W, 3) RGB, got shape {array.shape}.")
    array = array[..., :3]
    if array.dtype != np.uint8:
        if np.issubdtype(array.dtype, np.floating) and array.max(initial=0) <= 1.0:
            array = np.clip(array * 255 + 0.5, 0, 255)
        array = array.astype(np.uint8)
    return np.ascontiguousarray(array)


class Predictor:
    """A loaded model in eval mode with the preprocessing of training and the outputs at image size."""

    def __init__(self, model: DynamoModel, device: torch.device | str = "cpu", precision: str = "fp32",
                 intrinsics: intrinsics_module.Intrinsics | None = None, checkpoint: CheckpointInfo | None = None,
                 loaded: Sequence[str] = DEPTH_MODULES):
        if precision not in PRECISIONS:
            raise ConfigError(f"--precision must be fp32, bf16 or fp16, got {precision!r}.")
        self.device = torch.device(device)
        if precision == "fp16" and self.device.type != "cuda":
            raise ConfigError("--precision fp16 runs on CUDA only; use bf16 or fp32 on the CPU.")
        self.precision = precision
        self.model = model.eval().to(self.device)
        if self.device.type == "cpu":
            conv_layouts.install(self.model, "auto")  # each convolution in its faster layout, measured
            # As in training: each layer's large output would otherwise be mapped and unmapped on every call
            # (measured 7-15% of a batch-8 forward on a 2-core EPYC). A process-wide allocator setting.
            keep_freed_memory()
        self.config: ModelConfig = model.config
        self.intrinsics = intrinsics or intrinsics_module.Intrinsics("KITTI default", intrinsics_module.KITTI_NORMALISED)
        self.checkpoint = checkpoint
        self.loaded = tuple(loaded)

    # ---- construction --------------------------------------------------------------------------------

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "auto", *, precision: str = "fp32",
                        motion: bool | None = None, intrinsics: intrinsics_module.Intrinsics | None = None,
                        height: int | None = None, width: int | None = None) -> "Predictor":
        """Load a checkpoint folder in the per-module layout.

        Args:
            motion: True loads the pose and motion networks too (an error if absent); False loads
                only depth; None loads them when the folder has them.
            height, width: the size to run at; default the size stored in the checkpoint.
        """
        info = inspect_checkpoint(path)
        depth_model = info.depth_model
        if depth_model is None:
            raise CheckpointError(f"{info.folder} lacks depth_enc.pth, so it cannot predict depth.")
        height = height or info.height or 192
        width = width or info.width or 640
        scales = list(info.scales) if info.scales else default_scales(depth_model)
        config = ModelConfig(depth_model=depth_model, num_layers=info.num_layers or 18, weights_init="scratch",
                             height=int(height), width=int(width), scales=scales, frame_ids=[0, -1, 1])
        config.validate()
        has_motion = all(m in info.modules for m in POSE_MODULES + MOTION_MODULES)
        if motion is None:
            motion = has_motion
        modules = DEPTH_MODULES + (POSE_MODULES + MOTION_MODULES if motion else ())
        model = DynamoModel(config)
        load_weights(model, info.folder, modules=modules, height=config.height, width=config.width)
        if intrinsics is None:
            intrinsics = intrinsics_module.resolve(checkpoint=info.folder, warn=False)
        predictor = cls(model, resolve_device(device), precision, intrinsics, info, modules)
        log.info("predicting with %s (%s, %dx%d) on %s", info.folder, depth_model, config.height, config.width,
                 predictor.device)
        return predictor

    @property
    def height(self) -> int:
        return self.config.height

    @property
    def width(self) -> int:
        return self.config.width

    @property
    def has_motion(self) -> bool:
        return all(m in self.loaded for m in POSE_MODULES + MOTION_MODULES)

    # ---- the networks --------------------------------------------------------------------------------

    def _autocast(self):
        import contextlib

        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def preprocess(self, image: np.ndarray) -> torch.Tensor:
        """(H, W, 3) uint8 -> (3, h, w) float32 in [0, 1] at the model's size (bicubic, as in training)."""
        from PIL import Image

        if image.shape[:2] != (self.height, self.width):
            image = np.asarray(Image.fromarray(image).resize((self.width, self.height), Image.Resampling.BICUBIC))
        return torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).float().div_(255)

    def _batch(self, tensors: Sequence[torch.Tensor]) -> torch.Tensor:
        return torch.stack(list(tensors)).to(self.device)

    @torch.inference_mode()
    def disparity(self, batch: torch.Tensor) -> torch.Tensor:
        """(B, 3, h, w) in [0, 1] at the model's size -> (B, 1, h, w) float32 sigmoid disparity at scale 0."""
        with self._autocast():
            disp = self.model.depth_dec(self.model.depth_enc(batch))[0]
        return disp.float()

    def depth_at(self, disp: torch.Tensor, height: int, width: int) -> np.ndarray:
        """(1, h, w) sigmoid disparity -> float32 (height, width) depth: upsampled, then converted."""
        disp = disp[None].float()
        if disp.shape[-2:] != (height, width):
            disp = F.interpolate(disp, (height, width), mode="bilinear", align_corners=False)
        _, depth = disp_to_depth(disp, self.config.min_depth, self.config.max_depth)
        return depth[0, 0].cpu().numpy().astype(np.float32)

    @torch.inference_mode()
    def _poses(self, sources: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """(B, 4, 4) T_src_tgt for pairs of model-size frames, float64 on the CPU."""
        with self._autocast():
            features = self.model.pose_enc(torch.cat([sources, targets], dim=1))
            axis_angle, translation = self.model.pose_dec([features])
        from ..geometry import pose_vec_to_matrix

        T = pose_vec_to_matrix(axis_angle[:, 0].float(), translation[:, 0].float(), invert=True)
        return T.double().cpu()

    @torch.inference_mode()
    def _motion(self, before: torch.Tensor, target: torch.Tensor, after: torch.Tensor) -> dict:
        """Mask, complete flow and pose towards `after` for (B, 3, h, w) triplets, as training runs them."""
        inputs = {("color_aug", -1, 0): before, ("color_aug", 0, 0): target, ("color_aug", 1, 0): after}
        outputs: dict = {}
        self.model.set_heads(True, True)
        with self._autocast():
            self.model.predict_poses(inputs, outputs)
            self.model.predict_motion(inputs, outputs)
        return {
            "mask": outputs["motion_mask", 1, 0].float(),
            "complete": outputs["complete_flow", 1, 0].float(),
            "T": outputs["cam_T_cam", 0, 1].double().cpu(),
        }

    # ---- the public API ------------------------------------------------------------------------------

    def predict_depth(self, images: Sequence, batch_size: int = 8) -> list[np.ndarray]:
        """Depth of each image (paths, PIL images or (H, W, 3) arrays), float32 (H, W) at its own size."""
        rgb = [as_rgb(image) for image in images]
        out: list[np.ndarray] = []
        for start in range(0, len(rgb), batch_size):
            chunk = rgb[start:start + batch_size]
            disp = self.disparity(self._batch([self.preprocess(image) for image in chunk]))
            out.extend(self.depth_at(d, *image.shape[:2]) for d, image in zip(disp, chunk))
        return out

    def predict_sequence(self, frames: Sequence, motion: bool = True, batch_size: int = 8) -> SequencePrediction:
        """Depth for every frame; ego-motion for each consecutive pair of the same size; motion mask and
        independent flow for every frame whose two neighbours have its size (never the first or last)."""
        rgb = [as_rgb(frame) for frame in frames]
        window = SequenceWindow(self, motion=motion)
        result = window.run(rgb, list(range(len(rgb))), batch_size=batch_size)
        return result


class SequenceWindow:
    """Predictions over a stretch of frames, with one neighbour on each side for the motion outputs.

    Used by `Predictor.predict_sequence` on in-memory frames and by the command, which streams long
    sequences through it a batch at a time.
    """

    def __init__(self, predictor: Predictor, motion: bool = True):
        if motion and not predictor.has_motion:
            raise CheckpointError(
                "this predictor was loaded without the pose and motion networks; load a complete checkpoint "
                "or predict without motion."
            )
        self.predictor = predictor
        self.motion = motion

    def run(self, rgb: list[np.ndarray], centre: list[int], batch_size: int = 8) -> SequencePrediction:
        """Predict the frames `rgb[i]` for i in `centre` (consecutive); the others are neighbours only.

        Relative poses are returned for the pairs (i - 1, i) with i in `centre` and i > 0, so that
        streaming windows never compute a pair twice. With `centre` = every index, pair i is (i, i+1).
        """
        p = self.predictor
        tensors = [p.preprocess(image) for image in rgb]
        sizes = [image.shape[:2] for image in rgb]
        depth: list[np.ndarray] = []
        model_disp: dict[int, torch.Tensor] = {}
        for start in range(0, len(centre), batch_size):
            idx = centre[start:start + batch_size]
            disp = p.disparity(p._batch([tensors[i] for i in idx]))
            depth.extend(p.depth_at(d, *sizes[i]) for d, i in zip(disp, idx))
            model_disp.update(zip(idx, disp))
        result = SequencePrediction(depth=depth)
        if not self.motion:
            result.mask = [None] * len(centre)
            result.flow = [None] * len(centre)
            return result
        # Ego-motion of each consecutive pair (source i - 1, target i): T_(i-1)_i.
        pairs = [i for i in centre if i > 0 and sizes[i - 1] == sizes[i]]
        poses: dict[int, np.ndarray] = {}
        for start in range(0, len(pairs), batch_size):
            idx = pairs[start:start + batch_size]
            T = p._poses(p._batch([tensors[i - 1] for i in idx]), p._batch([tensors[i] for i in idx]))
            poses.update({i: t.numpy() for i, t in zip(idx, T)})
        result.relative_poses = [poses.get(i) for i in centre if i > 0]
        # Motion where both neighbours exist and share the frame's size.
        triplets = [i for i in centre if 0 < i < len(rgb) - 1 and sizes[i - 1] == sizes[i] == sizes[i + 1]]
        masks: dict[int, np.ndarray] = {}
        flows: dict[int, np.ndarray] = {}
        want_flow = "motion_dec" in p.loaded
        for start in range(0, len(triplets), batch_size):
            idx = triplets[start:start + batch_size]
            out = p._motion(*(p._batch([tensors[i + o] for i in idx]) for o in (-1, 0, 1)))
            for j, i in enumerate(idx):
                height, width = sizes[i]
                masks[i] = _resize(out["mask"][j], height, width)[0]
                if want_flow:
                    K = p.intrinsics.matrix(p.height, p.width)
                    model_depth = p.depth_at(model_disp[i], p.height, p.width)
                    flow = independent_flow(model_depth, K, out["T"][j].numpy(), out["complete"][j].cpu().numpy(),
                                            out["mask"][j, 0].cpu().numpy())
                    flows[i] = _resize(torch.from_numpy(flow).permute(2, 0, 1), height, width).transpose(1, 2, 0)
        result.mask = [masks.get(i) for i in centre]
        result.flow = [flows.get(i) for i in centre]
        return result


def _resize(tensor: torch.Tensor, height: int, width: int) -> np.ndarray:
    """(C, h, w) -> float32 (C, height, width), bilinear."""
    tensor = tensor[None].float()
    if tensor.shape[-2:] != (height, width):
        tensor = F.interpolate(tensor, (height, width), mode="bilinear", align_corners=False)
    return tensor[0].cpu().numpy().astype(np.float32)
