"""The dataset item shared by every processed layout.

An item is a dict with tuple keys, the batch format the model and the trainer read:

- `("color", f, 0)`, `("color_aug", f, 0)`: (3, H, W) float32 in [0, 1] for each frame id f,
  at the input size only (the trainer builds the lower pyramid levels itself);
- `("K", s)`, `("inv_K", s)`: (4, 4) float32 intrinsics for an input scaled by 1 / 2**s;
- `("ts", f)`: time from the target frame to frame f, in units of the dataset's usual frame step;
- `"gt_dim"`: (2,) int32, height and width of the ground-truth (original) image;
- `"depth_gt"`: (max_depth_points, 3) float32 rows of [row, col, depth] at ground-truth size,
  zero-padded so that items batch together, and `"depth_valid"`: the number of real rows;
- `"sem_mask"`, `"mot_mask"`: (H_gt, W_gt) uint8; motion labels are 0 background, 1 moving,
  2 static object, 3 unlabelled;
- `"index"`: the item's position in the split.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from ..errors import ConfigError, DataError
from .augment import NO_AUGMENTATION, Augmentation, item_generator, sample_augmentation
from .files import read_image, read_json, read_points

logger = logging.getLogger(__name__)

MAX_DEPTH_POINTS = 25000
"""Rows `depth_gt` is padded to, as in the released evaluation."""


@dataclass(frozen=True)
class SplitLine:
    """One line of a split file: `<folder> <frame_index> [side]`."""

    folder: str
    frame_index: int
    side: str = "l"


def parse_split_line(line: str, number: int) -> SplitLine:
    fields = line.split()
    if len(fields) not in (2, 3):
        raise DataError(f"split line {number} {line!r} must read '<folder> <frame_index> [l|r]'.")
    try:
        frame_index = int(fields[1])
    except ValueError:
        raise DataError(f"split line {number} {line!r}: frame index {fields[1]!r} is not an integer.") from None
    side = fields[2] if len(fields) == 3 else "l"
    if side not in ("l", "r", "2", "3"):
        raise DataError(f"split line {number} {line!r}: side {side!r} must be l, r, 2 or 3.")
    return SplitLine(fields[0], frame_index, side)


def to_tensor(image: Image.Image) -> torch.Tensor:
    """RGB PIL image -> (3, H, W) float32 in [0, 1]."""
    pixels = torch.from_numpy(np.array(image, dtype=np.uint8))
    return pixels.permute(2, 0, 1).contiguous().to(torch.float32).div_(255)


def scaled_intrinsics(K: np.ndarray, height: int, width: int, num_scales: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Normalised (4, 4) float32 intrinsics -> [(K, inv_K)] in pixels for each scale 1 / 2**s."""
    result = []
    for scale in range(num_scales):
        K_s = K.copy()
        K_s[0, :] *= width // 2**scale
        K_s[1, :] *= height // 2**scale
        result.append((K_s, np.linalg.pinv(K_s)))
    return result


def camera_matrix(cam_json: Path) -> np.ndarray:
    """Normalised (4, 4) float32 intrinsics from the `intrinsic_mat` entry of a `cam.json`."""
    data = read_json(cam_json, "camera file")
    try:
        matrix = np.asarray(data["intrinsic_mat"], dtype=np.float64)
    except (KeyError, TypeError, ValueError):
        matrix = None
    if matrix is None or matrix.shape != (3, 3) or not np.isfinite(matrix).all():
        raise DataError(
            f"camera file {cam_json} needs 'intrinsic_mat', a 3x3 matrix of numbers normalised by the "
            "image size; re-create it with `dynamo prepare`."
        )
    K = np.eye(4, dtype=np.float32)
    K[:3, :3] = matrix
    return K


class FrameDataset(Dataset):
    """Frames named by split lines, with intrinsics, optional lidar depth and motion masks.

    Subclasses describe one processed layout: where files live and how they are decoded.
    Training items are augmented (one flip per item, a colour jitter per frame) from a generator
    seeded by (`seed`, epoch, index); call `set_epoch` before each epoch so that it draws anew.
    """

    name = "base"
    continuous_columns = True
    """Whether depth columns are continuous image coordinates (True) or pixel indices (False)."""
    has_masks = True

    def __init__(
        self,
        data_path: str | Path,
        filenames: list[str],
        height: int,
        width: int,
        frame_ids: list[int] | tuple[int, ...],
        num_scales: int,
        *,
        is_train: bool = False,
        load_depth: bool = False,
        load_mask: bool = False,
        img_type: str = "downsample",
        img_ext: str = ".jpg",
        cam_name: str = "FRONT",
        seed: int = 0,
        max_depth_points: int = MAX_DEPTH_POINTS,
    ):
        super().__init__()
        self.data_path = Path(data_path)
        if not self.data_path.is_dir():
            raise DataError(
                f"data folder {self.data_path} does not exist; pass the processed dataset with --data-path."
            )
        if height <= 0 or width <= 0:
            raise ConfigError(f"--height and --width must be positive, got {height}x{width}.")
        if not frame_ids or any(not isinstance(f, (int, np.integer)) or isinstance(f, bool) for f in frame_ids):
            raise ConfigError(f"frame ids must be integers such as 0 -1 1, got {list(frame_ids)}.")
        if num_scales < 1:
            raise ConfigError(f"the number of scales must be at least 1, got {num_scales}.")
        if img_type not in ("downsample", "original"):
            raise ConfigError(f"--img-type must be 'downsample' or 'original', got {img_type!r}.")
        if img_ext not in (".jpg", ".png"):
            raise ConfigError(f"--img-ext must be '.jpg' or '.png', got {img_ext!r}.")
        if load_mask and not self.has_masks:
            raise ConfigError(f"the {self.name} layout has no motion masks; load it without masks.")
        self.lines = [parse_split_line(line, number) for number, line in enumerate(filenames, start=1)]
        if not self.lines:
            raise DataError(f"the {self.name} split given for {self.data_path} lists no frames.")
        self.height, self.width = int(height), int(width)
        self.frame_ids = [int(f) for f in frame_ids]
        self.num_scales = int(num_scales)
        self.is_train = is_train
        self.load_depth = load_depth
        self.load_mask = load_mask
        self.img_type = img_type
        self.img_ext = img_ext
        self.cam_name = cam_name
        self.seed = int(seed)
        self.max_depth_points = int(max_depth_points)
        self.epoch = 0
        self._intrinsics_cache: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {}
        self.folders = sorted({line.folder for line in self.lines})
        self.prepare()

    # ---- layout hooks ----------------------------------------------------------------

    def prepare(self) -> None:
        """Read per-folder metadata once, so that a bad folder fails before training starts."""

    def image_path(self, folder: str, frame_index: int, side: str) -> Path:
        raise NotImplementedError

    def intrinsics(self, folder: str) -> np.ndarray:
        """(4, 4) float32 intrinsics normalised by the image width (row 0) and height (row 1)."""
        raise NotImplementedError

    def gt_dim(self, folder: str, frame_index: int, side: str) -> tuple[int, int]:
        """(height, width) of the ground-truth image."""
        raise NotImplementedError

    def timestep(self, folder: str, frame_index: int, offset: int) -> float:
        """Time from frame `frame_index` to `frame_index + offset`, in usual frame steps."""
        return 1.0

    def depth_path(self, folder: str, frame_index: int, side: str) -> Path:
        raise NotImplementedError

    def depth_points(self, folder: str, frame_index: int, side: str) -> np.ndarray:
        """(N, 3) float64 rows of [row, col, depth] at ground-truth size, unflipped."""
        raise NotImplementedError

    def mask_paths(self, folder: str, frame_index: int, side: str) -> list[Path]:
        raise NotImplementedError(f"the {self.name} layout has no motion masks")

    def masks(self, folder: str, frame_index: int, side: str) -> tuple[np.ndarray, np.ndarray]:
        """(semantic, motion) uint8 arrays at ground-truth size, unflipped."""
        raise NotImplementedError(f"the {self.name} layout has no motion masks")

    # ---- item ------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.lines)

    def set_epoch(self, epoch: int) -> None:
        """Choose the augmentation stream; DataLoader workers see it when they start."""
        self.epoch = int(epoch)

    def augmentation(self, index: int) -> Augmentation:
        if not self.is_train:
            return NO_AUGMENTATION
        return sample_augmentation(item_generator(self.seed, self.epoch, index), len(self.frame_ids))

    def item_files(self, index: int) -> list[Path]:
        """Every file `__getitem__(index)` reads."""
        line = self.lines[index]
        files = [self.image_path(line.folder, line.frame_index + f, line.side) for f in self.frame_ids]
        if self.load_depth:
            files.append(self.depth_path(line.folder, line.frame_index, line.side))
        if self.load_mask:
            files.extend(self.mask_paths(line.folder, line.frame_index, line.side))
        return files

    def __getitem__(self, index: int) -> dict:
        line = self.lines[index]
        augment = self.augmentation(index)
        item: dict = {}
        for f in self.frame_ids:
            item[("color", f, 0)] = self.load_color(line.folder, line.frame_index + f, line.side, augment.flip)
            item[("ts", f)] = float(self.timestep(line.folder, line.frame_index, f))
        gt_height, gt_width = self.gt_dim(line.folder, line.frame_index, line.side)
        item["gt_dim"] = torch.tensor([gt_height, gt_width], dtype=torch.int32)

        for scale, (K, inv_K) in enumerate(self.scaled_intrinsics(line.folder)):
            item[("K", scale)] = K
            item[("inv_K", scale)] = inv_K

        colors = [item[("color", f, 0)] for f in self.frame_ids]
        if augment.jitters is not None:
            # A new jitter for each frame, as the published models were trained.
            colors = [jitter(color) for jitter, color in zip(augment.jitters, colors)]
        for f, color in zip(self.frame_ids, colors):
            item[("color_aug", f, 0)] = color

        if self.load_depth:
            item["depth_gt"], item["depth_valid"] = self.padded_depth(line, gt_width, augment.flip)
        if self.load_mask:
            semantic, motion = self.masks(line.folder, line.frame_index, line.side)
            if augment.flip:
                semantic, motion = semantic[:, ::-1], motion[:, ::-1]
            item["sem_mask"] = torch.from_numpy(np.ascontiguousarray(semantic, dtype=np.uint8))
            item["mot_mask"] = torch.from_numpy(np.ascontiguousarray(motion, dtype=np.uint8))
        item["index"] = index
        return item

    def load_color(self, folder: str, frame_index: int, side: str, flip: bool) -> torch.Tensor:
        """(3, H, W) float32: the frame, flipped if asked, resized (bicubic) only if its size differs."""
        image = read_image(self.image_path(folder, frame_index, side))
        if flip:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        if image.size != (self.width, self.height):
            image = image.resize((self.width, self.height), Image.Resampling.BICUBIC)
        return to_tensor(image)

    def scaled_intrinsics(self, folder: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
        if folder not in self._intrinsics_cache:
            pairs = scaled_intrinsics(self.intrinsics(folder), self.height, self.width, self.num_scales)
            self._intrinsics_cache[folder] = [(torch.from_numpy(K), torch.from_numpy(inv)) for K, inv in pairs]
        # Clones, so that a consumer writing into a batch never alters the cache.
        return [(K.clone(), inv.clone()) for K, inv in self._intrinsics_cache[folder]]

    def padded_depth(self, line: SplitLine, gt_width: int, flip: bool) -> tuple[torch.Tensor, int]:
        """(max_depth_points, 3) float32 zero-padded [row, col, depth] and the number of real rows."""
        points = self.depth_points(line.folder, line.frame_index, line.side)
        count = points.shape[0]
        if count > self.max_depth_points:
            raise DataError(
                f"depth file {self.depth_path(line.folder, line.frame_index, line.side)} holds {count} points, "
                f"more than the {self.max_depth_points} an item can carry; raise max_depth_points."
            )
        points = points.astype(np.float32)
        if flip:
            points[:, 1] = self.mirror_columns(points[:, 1], gt_width)
        padded = torch.zeros(self.max_depth_points, 3, dtype=torch.float32)
        padded[:count] = torch.from_numpy(points)
        return padded, count

    def mirror_columns(self, cols: np.ndarray, width: int) -> np.ndarray:
        """Float32 column coordinates of a horizontally flipped image."""
        width = np.float32(width)
        if self.continuous_columns:
            # Column c covers [c, c + 1); keep the mirror of column 0 inside the image.
            return np.minimum(width - cols, np.nextafter(width, np.float32(0)))
        return width - np.float32(1) - cols


class CameraFolderDataset(FrameDataset):
    """Layouts with `<folder>/<cam>/{rgb/<type>/%06d<ext>, rgb/cam.json, depth/%06d.npy, mask/...}`.

    Depth files hold rows of [col, row, depth] (x, y, z) at the original image size.
    """

    def prepare(self) -> None:
        self._K = {folder: camera_matrix(self.camera_folder(folder) / "rgb" / "cam.json") for folder in self.folders}

    def camera_folder(self, folder: str) -> Path:
        return self.data_path / folder / self.cam_name

    def image_path(self, folder: str, frame_index: int, side: str) -> Path:
        return self.camera_folder(folder) / "rgb" / self.img_type / f"{frame_index:06d}{self.img_ext}"

    def intrinsics(self, folder: str) -> np.ndarray:
        return self._K[folder]

    def depth_path(self, folder: str, frame_index: int, side: str) -> Path:
        return self.camera_folder(folder) / "depth" / f"{frame_index:06d}.npy"

    def depth_points(self, folder: str, frame_index: int, side: str) -> np.ndarray:
        xyz = read_points(self.depth_path(folder, frame_index, side))
        return xyz[:, [1, 0, 2]]
