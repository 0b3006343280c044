"""nuScenes in the processed layout.

`<scene>/<cam>/rgb/<type>/%06d.jpg`, `rgb/cam.json`, `rgb/ts.json` (the time between
consecutive frames, in 10 ms units), `depth/%06d.npy` and, for annotated frames,
`mask/%06d.npz` whose `motion_label` gives one label per lidar point of the frame.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError
from .base import CameraFolderDataset
from .files import read_json, read_npz_arrays
from .waymo import UNLABELLED

MEDIAN_FRAME_STEP = 100.0
"""The usual time between two frames, in ts.json units; time steps are relative to it."""
LABEL_CELL = 5
"""Point labels are spread over cells of this many pixels before upsampling to full size."""


class NuScenesDataset(CameraFolderDataset):
    name = "nuscenes"
    full_size = (900, 1600)

    def prepare(self) -> None:
        super().prepare()
        self._steps = {
            folder: self._read_steps(self.camera_folder(folder) / "rgb" / "ts.json") for folder in self.folders
        }

    @staticmethod
    def _read_steps(path: Path) -> list[int | float]:
        steps = read_json(path, "time-step file")
        if not isinstance(steps, list) or not all(
            isinstance(s, (int, float)) and not isinstance(s, bool) for s in steps
        ):
            raise DataError(f"time-step file {path} must hold a list of numbers; re-create it with `dynamo prepare`.")
        return steps

    def timestep(self, folder: str, frame_index: int, offset: int) -> float:
        low, high = sorted((frame_index, frame_index + offset))
        steps = self._steps[folder]
        if low < 0 or high > len(steps):
            path = self.camera_folder(folder) / "rgb" / "ts.json"
            raise DataError(
                f"time-step file {path} has {len(steps)} steps, too few for frames {low}..{high}; "
                "re-create it or drop the frame from the split."
            )
        return float(sum(steps[low:high]) / MEDIAN_FRAME_STEP)

    def gt_dim(self, folder: str, frame_index: int, side: str) -> tuple[int, int]:
        return self.full_size

    def mask_paths(self, folder: str, frame_index: int, side: str) -> list[Path]:
        mask = self.camera_folder(folder) / "mask" / f"{frame_index:06d}.npz"
        return [mask, self.depth_path(folder, frame_index, side)]

    def masks(self, folder: str, frame_index: int, side: str) -> tuple[np.ndarray, np.ndarray]:
        """No semantic classes (all ones); motion labels spread from the lidar points.

        Each point labels the LABEL_CELL x LABEL_CELL cell it falls in; cells without a point
        are unlabelled. The cell grid is then upsampled to full size by nearest neighbour.
        """
        mask_path = self.mask_paths(folder, frame_index, side)[0]
        labels = read_npz_arrays(mask_path, ("motion_label",))["motion_label"].reshape(-1)
        points = self.depth_points(folder, frame_index, side)
        if labels.shape[0] != points.shape[0]:
            raise DataError(
                f"mask file {mask_path} has {labels.shape[0]} motion labels but "
                f"{self.depth_path(folder, frame_index, side)} has {points.shape[0]} points; re-create both."
            )
        height, width = self.full_size
        cells_h, cells_w = height // LABEL_CELL, width // LABEL_CELL
        cells = np.clip((points[:, :2] / LABEL_CELL).astype(np.int64), 0, None)
        rows = np.minimum(cells[:, 0], cells_h - 1)
        cols = np.minimum(cells[:, 1], cells_w - 1)
        grid = np.full((cells_h, cells_w), UNLABELLED, dtype=np.uint8)
        grid[rows, cols] = labels  # where points share a cell, the later one wins
        motion = grid[np.arange(height) * cells_h // height][:, np.arange(width) * cells_w // width]
        return np.ones(self.full_size, dtype=np.uint8), motion
