"""Dataset defaults and `build_dataset`, the one entry point that chooses a layout by name."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..config import DATASET_SIZES
from ..errors import ConfigError
from .base import MAX_DEPTH_POINTS, FrameDataset
from .kitti import KITTIDataset
from .nuscenes import NuScenesDataset
from .synthetic import SyntheticDataset
from .waymo import WaymoDataset

DATASETS: dict[str, type[FrameDataset]] = {
    "kitti": KITTIDataset,
    "waymo": WaymoDataset,
    "nuscenes": NuScenesDataset,
    "synthetic": SyntheticDataset,
}


@dataclass(frozen=True)
class DatasetDefaults:
    height: int
    width: int
    cam_name: str
    """Camera folder; KITTI picks its camera from each split line's side instead."""
    split: str | None
    """Split name used when none is given."""
    train_img_type: str = "downsample"
    eval_img_type: str = "downsample"
    img_ext: dict[str, str] = field(default_factory=lambda: {"downsample": ".jpg", "original": ".jpg"})
    """Image extension for each image type."""


DATASET_DEFAULTS: dict[str, DatasetDefaults] = {
    "kitti": DatasetDefaults(
        *DATASET_SIZES["kitti"], cam_name="image_02", split="eigen_zhou", eval_img_type="original",
        img_ext={"downsample": ".jpg", "original": ".png"},
    ),
    "waymo": DatasetDefaults(*DATASET_SIZES["waymo"], cam_name="FRONT", split="waymo"),
    "nuscenes": DatasetDefaults(*DATASET_SIZES["nuscenes"], cam_name="FRONT", split="nuscenes"),
    # Synthetic scenes are rendered at the input size: `original` needs no resizing.
    "synthetic": DatasetDefaults(
        *DATASET_SIZES["synthetic"], cam_name="FRONT", split=None, train_img_type="original", eval_img_type="original"
    ),
}


def dataset_defaults(name: str) -> DatasetDefaults:
    try:
        return DATASET_DEFAULTS[name]
    except KeyError:
        raise ConfigError(f"--dataset must be one of {', '.join(DATASETS)}, got {name!r}.") from None


def build_dataset(
    name: str,
    data_path: str | Path,
    filenames: list[str],
    *,
    height: int | None = None,
    width: int | None = None,
    frame_ids: list[int] | tuple[int, ...] = (0, -1, 1),
    num_scales: int = 3,
    is_train: bool = False,
    load_depth: bool = False,
    load_mask: bool = False,
    img_type: str | None = None,
    img_ext: str | None = None,
    cam_name: str | None = None,
    seed: int = 0,
    max_depth_points: int = MAX_DEPTH_POINTS,
) -> FrameDataset:
    """The dataset `name` over split lines `filenames`; None picks the dataset's default.

    `img_type` defaults to the training image type (`downsample`); evaluation passes
    `dataset_defaults(name).eval_img_type`. `img_ext` defaults to the extension stored for that type.
    """
    defaults = dataset_defaults(name)
    img_type = img_type or defaults.train_img_type
    if img_ext is None:
        if img_type not in defaults.img_ext:
            raise ConfigError(f"--img-type must be one of {', '.join(defaults.img_ext)}, got {img_type!r}.")
        img_ext = defaults.img_ext[img_type]
    return DATASETS[name](
        data_path,
        filenames,
        height if height is not None else defaults.height,
        width if width is not None else defaults.width,
        frame_ids,
        num_scales,
        is_train=is_train,
        load_depth=load_depth,
        load_mask=load_mask,
        img_type=img_type,
        img_ext=img_ext,
        cam_name=cam_name or defaults.cam_name,
        seed=seed,
        max_depth_points=max_depth_points,
    )
