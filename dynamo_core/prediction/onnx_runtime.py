"""The depth network from an exported ONNX file, run with onnxruntime.

This module needs numpy, Pillow and onnxruntime only; it does not import torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import ConfigError
from .intrinsics import KITTI_NORMALISED, Intrinsics


class OnnxDepthPredictor:
    """`predict_depth` like `Predictor`'s, from a `dynamo export onnx --part depth` file."""

    has_motion = False

    def __init__(self, path: str | Path, intrinsics: Intrinsics | None = None, threads: int | None = None):
        try:
            import onnxruntime as ort
        except ImportError:
            raise ConfigError("--onnx needs onnxruntime: pip install 'dynamo[onnx]'.") from None
        path = Path(path).expanduser()
        if not path.is_file():
            raise ConfigError(f"--onnx {path} does not exist.")
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own types for corrupt files
            raise ConfigError(f"--onnx {path} is not a readable ONNX model ({str(err).splitlines()[0]}).") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        if meta.get("dynamo.part", "depth") != "depth":
            raise ConfigError(f"--onnx {path} holds the {meta['dynamo.part']} network; export the depth part.")
        shape = self.session.get_inputs()[0].shape
        self.height = int(meta.get("dynamo.height", shape[2]))
        self.width = int(meta.get("dynamo.width", shape[3]))
        self.min_depth = float(meta.get("dynamo.min_depth", 0.1))
        self.max_depth = float(meta.get("dynamo.max_depth", 100.0))
        self.fixed_batch = shape[0] if isinstance(shape[0], int) else None
        self.input_name = self.session.get_inputs()[0].name
        self.intrinsics = intrinsics or Intrinsics("KITTI default", KITTI_NORMALISED)

    def preprocess(self, image: np.ndarray) -> np.ndarray:
        from PIL import Image

        if image.shape[:2] != (self.height, self.width):
            image = np.asarray(Image.fromarray(image).resize((self.width, self.height), Image.Resampling.BICUBIC))
        return np.ascontiguousarray(image, dtype=np.float32).transpose(2, 0, 1) / np.float32(255)

    def disparity(self, batch: np.ndarray) -> np.ndarray:
        """(B, 3, h, w) float32 -> (B, 1, h, w) sigmoid disparity."""
        if self.fixed_batch is not None and len(batch) != self.fixed_batch:
            return np.concatenate([self.disparity(batch[i:i + 1]) for i in range(len(batch))])
        return self.session.run(None, {self.input_name: batch})[0]

    def depth_at(self, disp: np.ndarray, height: int, width: int) -> np.ndarray:
        """(1, h, w) disparity -> float32 (height, width) depth, bilinear (half-pixel centres) then converted."""
        disp = disp[0].astype(np.float32)
        if disp.shape != (height, width):
            disp = _bilinear(disp, height, width)
        lo, hi = 1.0 / self.max_depth, 1.0 / self.min_depth
        return (1.0 / (lo + (hi - lo) * disp)).astype(np.float32)

    def predict_depth(self, images: Sequence, batch_size: int = 8) -> list[np.ndarray]:
        from .inputs import read_rgb

        rgb = [read_rgb(i) if isinstance(i, (str, Path)) else np.asarray(i, dtype=np.uint8)[..., :3] for i in images]
        out = []
        for start in range(0, len(rgb), batch_size):
            chunk = rgb[start:start + batch_size]
            disp = self.disparity(np.stack([self.preprocess(image) for image in chunk]))
            out.extend(self.depth_at(d, *image.shape[:2]) for d, image in zip(disp, chunk))
        return out


def _bilinear(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize with half-pixel centres, as torch's interpolate(align_corners=False)."""
    h, w = image.shape

    def axis(out_size, in_size):
        scale = in_size / out_size
        src = np.maximum((np.arange(out_size) + 0.5) * scale - 0.5, 0)
        lo = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
        hi = np.minimum(lo + 1, in_size - 1)
        return lo, hi, (src - lo).astype(np.float32)

    y0, y1, wy = axis(height, h)
    x0, x1, wx = axis(width, w)
    top = image[y0][:, x0] * (1 - wx) + image[y0][:, x1] * wx
    bottom = image[y1][:, x0] * (1 - wx) + image[y1][:, x1] * wx
    return top * (1 - wy[:, None]) + bottom * wy[:, None]
