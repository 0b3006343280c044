"""Camera intrinsics for the user's images, from the most specific source available.

Intrinsics matter for ego-motion, the flows and the point cloud, not for depth itself: the depth
network sees only pixels.

Order: `--intrinsics FILE`, `--fov DEGREES`, the training dataset's K when the checkpoint's run
folder records it (`config.json`), else KITTI's K with a warning that says so.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError

log = logging.getLogger(__name__)

# KITTI's K normalised by the image size (as in dynamo_core.data.kitti).
KITTI_NORMALISED = np.array([[0.58, 0, 0.5], [0, 1.92, 0.5], [0, 0, 1]], dtype=np.float64)


@dataclass(frozen=True)
class Intrinsics:
    """A camera model that gives the pixel K of an image of any size.

    `normalised` is K with row 0 divided by the image width and row 1 by its height; with
    `fov_degrees` set instead, fx = fy = W / (2 tan(fov / 2)) and the centre is the image centre.
    """

    source: str
    """What the intrinsics came from, for messages and the JSON."""
    normalised: np.ndarray | None = None
    fov_degrees: float | None = None

    def matrix(self, height: int, width: int) -> np.ndarray:
        """(3, 3) float64 K in pixels for an image of `height` x `width`."""
        if self.fov_degrees is not None:
            focal = width / (2.0 * math.tan(math.radians(self.fov_degrees) / 2.0))
            return np.array([[focal, 0, width / 2.0], [0, focal, height / 2.0], [0, 0, 1]], dtype=np.float64)
        K = np.array(self.normalised, dtype=np.float64).copy()
        K[0] *= width
        K[1] *= height
        return K


def from_file(path: str | Path) -> Intrinsics:
    """JSON with fx, fy, cx, cy in pixels plus width and height, or a normalised `intrinsic_mat` (3x3 or 4x4)."""
    path = Path(path).expanduser()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"--intrinsics {path} does not exist.") from None
    except (OSError, ValueError) as err:
        raise ConfigError(f"--intrinsics {path} is not readable JSON ({err}).") from None
    if not isinstance(data, dict):
        raise ConfigError(f"--intrinsics {path} must hold a JSON object.")
    if "intrinsic_mat" in data:
        try:
            matrix = np.asarray(data["intrinsic_mat"], dtype=np.float64)
        except (TypeError, ValueError):
            matrix = np.zeros(0)
        if matrix.shape not in ((3, 3), (4, 4)) or not np.isfinite(matrix).all():
            raise ConfigError(f"--intrinsics {path}: intrinsic_mat must be a 3x3 or 4x4 matrix of numbers.")
        matrix = matrix[:3, :3]
        if matrix[0, 0] > 10 or matrix[0, 2] > 2:
            raise ConfigError(
                f"--intrinsics {path}: intrinsic_mat must be normalised by the image size (fx / width, cx / width, "
                "fy / height, cy / height); for pixels give fx, fy, cx, cy, width and height instead."
            )
        return Intrinsics(source=str(path), normalised=matrix)
    keys = ("fx", "fy", "cx", "cy", "width", "height")
    missing = [k for k in keys if k not in data]
    if missing:
        raise ConfigError(
            f"--intrinsics {path} lacks {', '.join(missing)}: give fx, fy, cx, cy in pixels with the width and "
            "height they refer to, or a normalised 3x3 intrinsic_mat."
        )
    try:
        fx, fy, cx, cy, width, height = (float(data[k]) for k in keys)
    except (TypeError, ValueError):
        raise ConfigError(f"--intrinsics {path}: fx, fy, cx, cy, width and height must be numbers.") from None
    if min(fx, fy, width, height) <= 0:
        raise ConfigError(f"--intrinsics {path}: fx, fy, width and height must be positive.")
    matrix = np.array([[fx / width, 0, cx / width], [0, fy / height, cy / height], [0, 0, 1]], dtype=np.float64)
    return Intrinsics(source=str(path), normalised=matrix)


def from_fov(degrees: float) -> Intrinsics:
    if not 1.0 <= degrees < 179.0:
        raise ConfigError(f"--fov must be a horizontal field of view in degrees between 1 and 179, got {degrees}.")
    return Intrinsics(source=f"--fov {degrees:g}", fov_degrees=float(degrees))


def from_checkpoint(folder: str | Path) -> Intrinsics | None:
    """The training dataset's K when the run's config.json (beside `models/`) names a dataset with one K."""
    folder = Path(folder).expanduser().resolve()
    for candidate in (folder / "config.json", folder.parent.parent / "config.json"):
        if not candidate.is_file():
            continue
        try:
            data = json.loads(candidate.read_text())
            dataset = data["data"]["dataset"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if dataset == "kitti":
            return Intrinsics(source=f"the KITTI K recorded by {candidate}", normalised=KITTI_NORMALISED)
        log.info("%s records dataset %s, whose K differs per sequence; not used for intrinsics", candidate, dataset)
    return None


def resolve(intrinsics_file: str | Path | None = None, fov: float | None = None,
            checkpoint: str | Path | None = None, warn: bool = True) -> Intrinsics:
    """The intrinsics to use, in the documented order; warns when falling back to KITTI's."""
    if intrinsics_file is not None:
        return from_file(intrinsics_file)
    if fov is not None:
        return from_fov(fov)
    if checkpoint is not None:
        recorded = from_checkpoint(checkpoint)
        if recorded is not None:
            return recorded
    if warn:
        log.warning(
            "no --intrinsics or --fov given: using KITTI's normalised K (fx=0.58 W, fy=1.92 H, centre). "
            "Depth does not depend on it; ego-motion scale, flows and point clouds do."
        )
    return Intrinsics(source="KITTI default", normalised=KITTI_NORMALISED)
