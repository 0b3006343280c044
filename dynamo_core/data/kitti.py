"""KITTI raw in the processed layout.

`<drive>/image_0{2,3}/rgb/{downsample,original}/%010d<ext>`, `<drive>/image_0X/depth/%010d.npy`
(rows of [row, col, depth] at pixel indices) and `<drive>/calib_cam_to_cam.txt`. Side `l` is
camera 02 and `r` camera 03.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError
from .base import FrameDataset
from .files import read_points

# Intrinsics shared by all KITTI drives, normalised by the image size.
KITTI_K = np.array(
    [[0.58, 0, 0.5, 0],
     [0, 1.92, 0.5, 0],
     [0, 0, 1, 0],
     [0, 0, 0, 1]],
    dtype=np.float32,
)
# Ground-truth points are clipped to this (height, width), as in the published evaluation.
KITTI_CLIP_SIZE = (375, 1242)
CAMERAS = {"l": 2, "r": 3, "2": 2, "3": 3}


def read_rectified_size(calib: Path, camera: int) -> tuple[int, int]:
    """(height, width) of a rectified camera from the `S_rect_0X` entry of `calib_cam_to_cam.txt`."""
    key = f"S_rect_0{camera}:"
    try:
        lines = calib.read_text().splitlines()
    except FileNotFoundError:
        raise DataError(f"calibration file {calib} is missing; copy it from the KITTI raw drive folder.") from None
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"calibration file {calib} is unreadable ({err}).") from None
    for line in lines:
        if line.startswith(key):
            try:
                width, height = (int(float(v)) for v in line[len(key):].split())
            except ValueError:
                break
            return height, width
    raise DataError(f"calibration file {calib} has no valid '{key} <width> <height>' line.")


def kitti_frame(frame_index: int) -> int:
    # The frame before the first one of a drive is taken to be the first one.
    return 0 if frame_index == -1 else frame_index


class KITTIDataset(FrameDataset):
    name = "kitti"
    continuous_columns = False
    has_masks = False

    def prepare(self) -> None:
        sides = {(line.folder, CAMERAS[line.side]) for line in self.lines}
        self._gt_dim = {
            key: read_rectified_size(self.data_path / key[0] / "calib_cam_to_cam.txt", key[1]) for key in sorted(sides)
        }

    def camera_folder(self, folder: str, side: str) -> Path:
        return self.data_path / folder / f"image_0{CAMERAS[side]}"

    def image_path(self, folder: str, frame_index: int, side: str) -> Path:
        name = f"{kitti_frame(frame_index):010d}{self.img_ext}"
        return self.camera_folder(folder, side) / "rgb" / self.img_type / name

    def intrinsics(self, folder: str) -> np.ndarray:
        return KITTI_K

    def gt_dim(self, folder: str, frame_index: int, side: str) -> tuple[int, int]:
        return self._gt_dim[(folder, CAMERAS[side])]

    def depth_path(self, folder: str, frame_index: int, side: str) -> Path:
        return self.camera_folder(folder, side) / "depth" / f"{kitti_frame(frame_index):010d}.npy"

    def depth_points(self, folder: str, frame_index: int, side: str) -> np.ndarray:
        points = read_points(self.depth_path(folder, frame_index, side)).copy()
        height, width = KITTI_CLIP_SIZE
        points[:, 0] = np.where(points[:, 0] >= height, height - 1, points[:, 0])
        points[:, 1] = np.where(points[:, 1] >= width, width - 1, points[:, 1])
        return points
