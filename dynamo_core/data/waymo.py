"""Waymo Open Dataset in the processed layout.

`<segment>/<cam>/rgb/<type>/%06d.jpg`, `rgb/cam.json`, `depth/%06d.npy` and, for annotated
frames, `mask/%06d.npz` (array `semantic`) with the object annotations: a list of objects, each
a dict with `mask` (OpenCV contours at the original size), `box_label` (None when the object has
no 3D box) and `speed` (m/s, 3 components). `dynamo prepare waymo` writes them as
`mask/%06d.json`; the released data hold `mask/%06d.pickle`, read with a restricted unpickler.
When both exist the JSON file is read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..errors import DataError
from .base import CameraFolderDataset
from .files import read_json, read_npz_arrays, read_safe_pickle

MOVING_SPEED = 1.0
"""Objects faster than this (m/s) count as moving."""
BACKGROUND, MOVING, STATIC, UNLABELLED = 0, 1, 2, 3


def _contours(value: Any, path: Path) -> list[np.ndarray]:
    if not isinstance(value, (list, tuple)):
        raise DataError(f"motion-label file {path}: an object's 'mask' must be a list of contours.")
    contours = []
    for contour in value:
        points = np.asarray(contour)
        if points.size == 0 or points.size % 2 or not np.issubdtype(points.dtype, np.number):
            raise DataError(f"motion-label file {path}: a contour is not a list of (x, y) points.")
        contours.append(points.reshape(-1, 1, 2).astype(np.int32))
    return contours


def motion_label_mask(objects: Any, size: tuple[int, int], path: Path) -> np.ndarray:
    """Rasterise the objects of a motion-label file into an (H, W) uint8 label image.

    Objects are drawn in file order, so a later object covers an earlier one.
    """
    if not isinstance(objects, list):
        raise DataError(f"motion-label file {path} must hold a list of objects, found {type(objects).__name__}.")
    mask = np.zeros(size, dtype=np.uint8)
    for obj in objects:
        if not isinstance(obj, dict) or not {"mask", "box_label", "speed"} <= obj.keys():
            raise DataError(f"motion-label file {path}: every object needs 'mask', 'box_label' and 'speed'.")
        contours = _contours(obj["mask"], path)
        if obj["box_label"] is None:
            label = UNLABELLED
        else:
            try:
                speed = float(np.sqrt(np.sum(np.asarray(obj["speed"], dtype=np.float64) ** 2)))
            except (TypeError, ValueError):
                raise DataError(f"motion-label file {path}: a labelled object has no numeric speed.") from None
            label = MOVING if speed > MOVING_SPEED else STATIC
        if contours:
            cv2.drawContours(mask, contours, -1, label, thickness=cv2.FILLED)
    return mask


class WaymoDataset(CameraFolderDataset):
    name = "waymo"
    full_size = (1280, 1920)

    def gt_dim(self, folder: str, frame_index: int, side: str) -> tuple[int, int]:
        return self.full_size

    def mask_paths(self, folder: str, frame_index: int, side: str) -> list[Path]:
        mask_dir = self.camera_folder(folder) / "mask"
        annotations = mask_dir / f"{frame_index:06d}.json"
        if not annotations.is_file():
            annotations = mask_dir / f"{frame_index:06d}.pickle"
        return [mask_dir / f"{frame_index:06d}.npz", annotations]

    def masks(self, folder: str, frame_index: int, side: str) -> tuple[np.ndarray, np.ndarray]:
        semantic_path, motion_path = self.mask_paths(folder, frame_index, side)
        semantic = read_npz_arrays(semantic_path, ("semantic",))["semantic"].squeeze()
        if semantic.shape != self.full_size:
            raise DataError(
                f"mask file {semantic_path}: 'semantic' has shape {semantic.shape}, expected {self.full_size}."
            )
        if motion_path.suffix == ".json":
            objects = read_json(motion_path, "motion-label file")
        else:
            objects = read_safe_pickle(motion_path)
        motion = motion_label_mask(objects, self.full_size, motion_path)
        return semantic.astype(np.uint8), motion
