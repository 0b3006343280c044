"""Procedural scenes in the Waymo-style layout, with plain arrays instead of pickles.

`<scene>/<cam>/rgb/<type>/%06d.jpg`, `rgb/cam.json` (`intrinsic_mat`, and `dim` = [height, width]
of the original images), `depth/%06d.npy` (rows of [col, row, depth], as Waymo),
`mask/%06d.npz` with `semantic` and `motion` (0 background, 1 moving, 2 static object) at the
original size, and `odometry.txt`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError
from .base import CameraFolderDataset, camera_matrix
from .files import read_image_size, read_json, read_npz_arrays


class SyntheticDataset(CameraFolderDataset):
    name = "synthetic"

    def prepare(self) -> None:
        self._K = {}
        self._dims: dict[str, tuple[int, int] | None] = {}
        for folder in self.folders:
            cam_json = self.camera_folder(folder) / "rgb" / "cam.json"
            self._K[folder] = camera_matrix(cam_json)
            dim = read_json(cam_json, "camera file").get("dim")
            if dim is None:
                self._dims[folder] = None
            elif isinstance(dim, list) and len(dim) == 2 and all(isinstance(v, int) and v > 0 for v in dim):
                self._dims[folder] = (dim[0], dim[1])
            else:
                raise DataError(f"camera file {cam_json}: 'dim' must be [height, width] in pixels, got {dim!r}.")

    def gt_dim(self, folder: str, frame_index: int, side: str) -> tuple[int, int]:
        dim = self._dims[folder]
        if dim is None:  # no 'dim' entry: the original image tells
            original = self.camera_folder(folder) / "rgb" / "original" / f"{frame_index:06d}{self.img_ext}"
            dim = read_image_size(original)
        return dim

    def mask_paths(self, folder: str, frame_index: int, side: str) -> list[Path]:
        return [self.camera_folder(folder) / "mask" / f"{frame_index:06d}.npz"]

    def masks(self, folder: str, frame_index: int, side: str) -> tuple[np.ndarray, np.ndarray]:
        path = self.mask_paths(folder, frame_index, side)[0]
        arrays = read_npz_arrays(path, ("semantic", "motion"))
        size = self.gt_dim(folder, frame_index, side)
        for key, array in arrays.items():
            if array.squeeze().shape != size:
                raise DataError(f"mask file {path}: '{key}' has shape {array.shape}, expected {size}.")
        return arrays["semantic"].squeeze().astype(np.uint8), arrays["motion"].squeeze().astype(np.uint8)
