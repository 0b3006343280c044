"""Output files of `dynamo predict`, each written atomically (a temporary file moved into place).

| name          | file                     | content                                                     |
| ------------- | ------------------------ | ----------------------------------------------------------- |
| depth_npy     | `<stem>_depth.npy`       | float32 (H, W) depth at the input image's own size          |
| depth_png     | `<stem>_depth.png`       | uint16 depth x 256 (KITTI convention), 0 = no value         |
| disparity_png | `<stem>_disparity.png`   | colour-mapped disparity for people to look at               |
| mask_png      | `<stem>_mask.png`        | uint8 motion probability x 255                              |
| mask_npy      | `<stem>_mask.npy`        | float32 (H, W) motion probability                           |
| flow_npy      | `<stem>_flow.npy`        | float32 (H, W, 3) independent 3D flow towards the next frame|
| ply           | `<stem>_points.ply`      | binary little-endian coloured point cloud (x, y, z, r, g, b)|
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Callable

import numpy as np

from .. import atomic_files
from ..errors import DynamoError

OUTPUTS = ("depth_npy", "depth_png", "disparity_png", "mask_png", "mask_npy", "flow_npy", "ply")
MOTION_OUTPUTS = ("mask_png", "mask_npy", "flow_npy")
DEFAULT_OUTPUTS = ("depth_npy", "depth_png", "disparity_png")
SEQUENCE_DEFAULT_OUTPUTS = DEFAULT_OUTPUTS + ("mask_png",)

SUFFIXES = {
    "depth_npy": "_depth.npy",
    "depth_png": "_depth.png",
    "disparity_png": "_disparity.png",
    "mask_png": "_mask.png",
    "mask_npy": "_mask.npy",
    "flow_npy": "_flow.npy",
    "ply": "_points.ply",
}

PNG_DEPTH_SCALE = 256.0
PNG_DEPTH_MAX = 65535 / PNG_DEPTH_SCALE


class OutputExists(DynamoError):
    """An output file is already there and --force was not given."""


def atomic_write(path: Path, write: Callable[[io.BufferedWriter], None], force: bool = False) -> Path:
    """Write `path` through a temporary sibling moved into place; refuses to replace a file unless `force`."""
    path = Path(path)
    if path.exists() and not force:
        raise OutputExists(f"{path} already exists; pass --force to overwrite it.")
    return atomic_files.atomic_write(path, write)


def write_npy(path: Path, array: np.ndarray, force: bool = False) -> Path:
    return atomic_write(path, lambda s: np.save(s, np.ascontiguousarray(array), allow_pickle=False), force)


def _png(path: Path, image, force: bool) -> Path:
    return atomic_write(path, lambda s: image.save(s, format="PNG"), force)


def depth_to_png16(depth: np.ndarray) -> np.ndarray:
    """(H, W) depth in metres (or model units) -> uint16 depth x 256; 0 where not finite or <= 0."""
    valid = np.isfinite(depth) & (depth > 0)
    scaled = np.where(valid, np.clip(np.round(depth * PNG_DEPTH_SCALE), 1, 65535), 0)
    return scaled.astype(np.uint16)


def png16_to_depth(pixels: np.ndarray) -> np.ndarray:
    """Inverse of `depth_to_png16`: 0 becomes NaN."""
    depth = pixels.astype(np.float32) / PNG_DEPTH_SCALE
    depth[pixels == 0] = np.nan
    return depth


def write_depth_png(path: Path, depth: np.ndarray, force: bool = False) -> Path:
    from PIL import Image

    pixels = depth_to_png16(depth)
    image = Image.fromarray(pixels)  # mode I;16
    return _png(path, image, force)


def colour_disparity(depth: np.ndarray) -> np.ndarray:
    """(H, W) depth -> (H, W, 3) uint8 magma colour map of 1 / depth, limits 0 and the 95th percentile."""
    from matplotlib import colormaps

    disp = np.where(np.isfinite(depth) & (depth > 0), 1.0 / np.maximum(depth, 1e-12), 0.0)
    hi = float(np.percentile(disp, 95)) if disp.size else 1.0
    scaled = np.clip(disp / max(hi, 1e-12), 0, 1)
    table = (colormaps["magma"](np.linspace(0, 1, 256))[:, :3] * 255 + 0.5).astype(np.uint8)
    return table[(scaled * 255).astype(np.int64)]


def write_rgb_png(path: Path, image: np.ndarray, force: bool = False) -> Path:
    from PIL import Image

    return _png(path, Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)), force)


def write_mask_png(path: Path, mask: np.ndarray, force: bool = False) -> Path:
    from PIL import Image

    pixels = np.clip(np.round(mask * 255), 0, 255).astype(np.uint8)
    return _png(path, Image.fromarray(pixels), force)


def write_ply(path: Path, points: np.ndarray, colours: np.ndarray, force: bool = False) -> Path:
    """Binary little-endian PLY of (N, 3) float32 points with (N, 3) uint8 colours."""
    points = np.asarray(points, dtype="<f4").reshape(-1, 3)
    colours = np.asarray(colours, dtype=np.uint8).reshape(-1, 3)
    record = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")])
    data = np.empty(len(points), dtype=record)
    data["x"], data["y"], data["z"] = points[:, 0], points[:, 1], points[:, 2]
    data["red"], data["green"], data["blue"] = colours[:, 0], colours[:, 1], colours[:, 2]
    header = (
        "ply\nformat binary_little_endian 1.0\ncomment dynamo predict: camera frame, x right, y down, z forward\n"
        f"element vertex {len(points)}\n"
        "property float x\nproperty float y\nproperty float z\n"
        "property uchar red\nproperty uchar green\nproperty uchar blue\nend_header\n"
    ).encode("ascii")

    def write(stream):
        stream.write(header)
        stream.write(data.tobytes())

    return atomic_write(path, write, force)


def read_ply(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(N, 3) float32 points and (N, 3) uint8 colours of a file written by `write_ply`."""
    raw = Path(path).read_bytes()
    end = raw.index(b"end_header\n") + len(b"end_header\n")
    record = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")])
    data = np.frombuffer(raw[end:], dtype=record)
    points = np.stack([data["x"], data["y"], data["z"]], axis=1)
    colours = np.stack([data["red"], data["green"], data["blue"]], axis=1)
    return points, colours


def write_poses(folder: Path, trajectory: np.ndarray, timestamps: list[float], force: bool = False) -> list[Path]:
    """`poses.txt` (16 numbers of a row-major 4x4 camera-to-first-frame pose per line) and
    `poses_tum.txt` (`timestamp tx ty tz qx qy qz qw`). Rows with NaN mark frames without a pose."""
    from .geometry import rotation_to_quaternion

    matrix_lines, tum_lines = [], ["# timestamp tx ty tz qx qy qz qw (camera in the first frame's coordinates)"]
    for stamp, pose in zip(timestamps, trajectory):
        matrix_lines.append(" ".join(f"{v:.9g}" for v in pose.reshape(-1)))
        if np.isfinite(pose).all():
            q = rotation_to_quaternion(pose[:3, :3])
            values = list(pose[:3, 3]) + list(q)
        else:
            values = [float("nan")] * 7
        tum_lines.append(f"{stamp:.6f} " + " ".join(f"{v:.9g}" for v in values))
    poses = atomic_write(folder / "poses.txt", lambda s: s.write(("\n".join(matrix_lines) + "\n").encode()), force)
    tum = atomic_write(folder / "poses_tum.txt", lambda s: s.write(("\n".join(tum_lines) + "\n").encode()), force)
    return [poses, tum]


def read_poses(path: Path) -> np.ndarray:
    """(N, 4, 4) from a `poses.txt`."""
    return np.loadtxt(path, ndmin=2).reshape(-1, 4, 4)
