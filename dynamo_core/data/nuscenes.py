"""nuScenes in the processed layout.

`<scene>/<cam>/rgb/<type>/%06d.jpg`, `rgb/cam.json`, `rgb/ts.json` (the time between
consecutive frames in milliseconds; the released files wrapped gaps over 255 ms, see
`unwrap_time_steps`), `depth/%06d.npy` and, for annotated frames,
`mask/%06d.npz` whose `motion_label` gives one label per lidar point of the frame.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..errors import DataError
from .base import CameraFolderDataset
from .files import read_json, read_npz_arrays
from .waymo import UNLABELLED

logger = logging.getLogger(__name__)

WRAP = 256
"""The original preparation stored milliseconds as uint8, so a 300 ms gap reads 44."""
IMPLAUSIBLE_FRACTION = 0.45
"""A step below this fraction of the median cannot be a real camera gap: CAM_FRONT steps run
100, 100, 50 ms (median 100), so anything under 45 ms is suspect."""
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
        return unwrap_time_steps(steps, path)

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


def unwrap_time_steps(steps: list[int | float], path: Path) -> list[int | float]:
    """Undo the uint8 wrap of released `ts.json` files, loudly.

    Files written by `dynamo prepare nuscenes` hold true milliseconds. Released files stored them
    modulo 256. A step below IMPLAUSIBLE_FRACTION of the median, in a file whose values all fit in
    a byte, is taken as wrapped: 256 is added and a warning names the file and the frames. A
    wrapped gap of 256 + 40 ms or more looks plausible and cannot be told apart; re-create such
    scenes with `dynamo prepare nuscenes` to be sure.
    """
    if not steps or max(steps) >= WRAP:
        return steps
    median = float(np.median(steps))
    suspect = [i for i, step in enumerate(steps) if step < IMPLAUSIBLE_FRACTION * median]
    if not suspect:
        return steps
    logger.warning(
        "%s: %d time steps are implausibly small against the median %.0f ms (frames %s); they are read as "
        "gaps that the original preparation wrapped at 256 ms and %d is added to each. Re-create the scene "
        "with `dynamo prepare nuscenes` to have the true values.",
        path, len(suspect), median, ", ".join(str(i) for i in suspect[:10]), WRAP,
    )
    fixed = list(steps)
    for i in suspect:
        fixed[i] = steps[i] + WRAP
    return fixed
