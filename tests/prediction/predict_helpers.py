"""Shared pieces of the prediction tests: a scratch checkpoint, the tiny sample frames, small images.

Import fixtures into a test module with `from predict_helpers import checkpoint`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import SHARED
from dynamo_core.checkpoints import save_weights
from dynamo_core.config import ModelConfig
from dynamo_core.model import DynamoModel

HEIGHT, WIDTH = 64, 192
TINY_KITTI = SHARED / "data" / "tiny_kitti" / "2011_09_26" / "2011_09_26_drive_0001_sync" / "image_02" / "rgb" / "downsample"
TINY_WAYMO = SHARED / "data" / "tiny_waymo" / "val" / "segment-1024360143612057520_3580_000_3600_000" / "FRONT" / "rgb" / "downsample"
TINY_NUSCENES = SHARED / "data" / "tiny_nuscenes" / "scenes" / "scene-0001" / "FRONT" / "rgb" / "downsample"

# Camera axes (x right, y down, z forward) in vehicle axes (x forward, y left, z up), as the synthetic files use.
CAMERA_IN_VEHICLE = np.array([[0.0, 0.0, 1.0, 0.0], [-1.0, 0.0, 0.0, 0.0], [0.0, -1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]])


def scratch_checkpoint(folder: Path, depth_model: str = "litemono", modules=None) -> Path:
    """A randomly initialised model at HEIGHT x WIDTH in the per-module layout."""
    config = ModelConfig(weights_init="scratch", height=HEIGHT, width=WIDTH, depth_model=depth_model,
                         scales=[0, 1, 2] if depth_model == "litemono" else [0, 1, 2, 3])
    model = DynamoModel(config)
    if modules is None:
        return save_weights(model, folder, HEIGHT, WIDTH)
    return save_weights(model, folder, HEIGHT, WIDTH, modules=modules)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return scratch_checkpoint(tmp_path_factory.mktemp("ckpt") / "scratch")


@pytest.fixture(scope="module")
def predictor(checkpoint):
    from dynamo_core.prediction import Predictor

    return Predictor.from_checkpoint(checkpoint, device="cpu")


def frames_of(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.suffix in (".jpg", ".png"))
    if not files:
        pytest.skip(f"no sample frames in {folder}; set DYNAMO_SHARED")
    return files


def small_image(path: Path, size=(96, 40), seed: int = 0, mode: str = "RGB") -> Path:
    """A small random image file (PIL size is (width, height))."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    if mode != "RGB":
        image = image.convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def render_sequence(out: Path, frames: int = 4, height: int = 64, width: int = 192, seed: int = 3) -> Path:
    """A synthetic sequence with true depth and poses; returns its FRONT folder."""
    from dynamo_core.synthetic import generate_dataset

    generate_dataset(out, sequences=2, frames=frames, height=height, width=width, seed=seed, test_sequences=1,
                     workers=1)
    return sorted(out.glob("*/seq-*/FRONT"))[0]


def camera_poses(front: Path) -> np.ndarray:
    """(F, 4, 4) camera-to-world transforms in camera axes."""
    rows = np.loadtxt(front / "odometry.txt", ndmin=2)
    return rows.reshape(-1, 4, 4) @ CAMERA_IN_VEHICLE


def camera_matrix(front: Path) -> np.ndarray:
    import json

    cam = json.loads((front / "rgb" / "cam.json").read_text())
    height, width = cam["dim"]
    K = np.array(cam["intrinsic_mat"], dtype=np.float64)[:3, :3]
    K[0] *= width
    K[1] *= height
    return K
