"""Tiny scenes in the camera-folder layout (Waymo, nuScenes, synthetic), written under a test's tmp_path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

INTRINSIC_MAT = [[0.6, 0.0, 0.5], [0.0, 0.9, 0.5], [0.0, 0.0, 1.0]]


def frame_pixels(height: int, width: int, seed: int) -> np.ndarray:
    """A smooth, asymmetric colour image (H, W, 3) uint8, so that flips and jitter are visible."""
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float64)
    phase = seed * 0.7
    image = np.stack(
        [
            128 + 100 * np.sin(cols / width * 3.0 + phase),
            128 + 90 * np.cos(rows / height * 2.0 + cols / width + phase),
            40 + 180 * cols / width * rows / height,
        ],
        axis=-1,
    )
    return np.clip(image, 0, 255).astype(np.uint8)


def write_scene(
    root: Path,
    folder: str = "seq-a",
    cam: str = "FRONT",
    frames=(0, 1, 2),
    size: tuple[int, int] = (48, 64),
    full_size: tuple[int, int] = (96, 128),
    identical_frames: bool = False,
    points: np.ndarray | None = None,
) -> Path:
    """Write rgb/downsample (size), rgb/original (full_size), rgb/cam.json and depth/*.npy; returns the camera folder.

    `points` are depth rows of [col, row, depth] at full size, written for every frame.
    """
    camera = root / folder / cam
    for kind, (height, width) in (("downsample", size), ("original", full_size)):
        (camera / "rgb" / kind).mkdir(parents=True, exist_ok=True)
        for frame in frames:
            pixels = frame_pixels(height, width, 0 if identical_frames else frame)
            Image.fromarray(pixels).save(camera / "rgb" / kind / f"{frame:06d}.jpg", quality=95)
    (camera / "rgb" / "cam.json").write_text(json.dumps({"intrinsic_mat": INTRINSIC_MAT, "dim": list(full_size)}))
    (camera / "depth").mkdir(exist_ok=True)
    if points is None:
        points = np.array([[0.0, 5.0, 10.0], [10.25, 20.5, 12.0], [127.5, 95.0, 30.0]])
    for frame in frames:
        np.save(camera / "depth" / f"{frame:06d}.npy", points)
    (camera / "mask").mkdir(exist_ok=True)
    return camera
