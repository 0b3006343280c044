"""A small synthetic dataset rendered once per test module, and readers for its files.

The readers use only the file formats (NumPy, JSON, JPEG), never the generator's own code,
so the tests check what a loader would see.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dynamo_core.synthetic import generate_dataset

SMALL = dict(sequences=3, frames=5, height=96, width=320, seed=7, test_sequences=1)

# Camera axes (x right, y down, z forward) in vehicle axes (x forward, y left, z up).
CAMERA_IN_VEHICLE = np.array([[0.0, 0.0, 1.0, 0.0], [-1.0, 0.0, 0.0, 0.0], [0.0, -1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]])


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synthetic") / "data"
    generate_dataset(out, **SMALL)
    return out


def sequence_folders(root: Path) -> list[Path]:
    return sorted(root.glob("*/seq-*/FRONT"))


def intrinsics(front: Path) -> tuple[np.ndarray, int, int]:
    """K in pixels of the original image, its height and width."""
    cam = json.loads((front / "rgb" / "cam.json").read_text())
    height, width = cam["dim"]
    K = np.array(cam["intrinsic_mat"], dtype=np.float64)[:3, :3]
    K[0] *= width
    K[1] *= height
    return K, height, width


def camera_poses(front: Path) -> np.ndarray:
    """(F, 4, 4) camera-to-world transforms in camera axes, from odometry.txt in vehicle axes."""
    rows = np.loadtxt(front / "odometry.txt", ndmin=2)
    return rows.reshape(-1, 4, 4) @ CAMERA_IN_VEHICLE


def dense_depth(front: Path, frame: int) -> np.ndarray:
    return np.load(front / "depth_dense" / f"{frame:06d}.npy").astype(np.float64)


def masks(front: Path, frame: int) -> dict[str, np.ndarray]:
    with np.load(front / "mask" / f"{frame:06d}.npz", allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def scene_flow(front: Path, frame: int) -> np.ndarray:
    return np.load(front / "scene_flow" / f"{frame:06d}.npy").astype(np.float64)


def image(front: Path, frame: int, kind: str = "original") -> np.ndarray:
    with Image.open(front / "rgb" / kind / f"{frame:06d}.jpg") as im:
        return np.asarray(im.convert("RGB"), dtype=np.float64) / 255.0
