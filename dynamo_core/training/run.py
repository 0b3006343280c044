"""Pre-flight for a training run: resolve the split, build the dataset, check every frame exists."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..config import RunConfig
from ..data.factory import build_dataset, dataset_defaults
from ..data.splits import read_split, resolve_split, validate_items
from ..errors import DataError

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def split_folder(config: RunConfig) -> Path:
    """The split folder of a config; synthetic data carries its own under DATA_PATH/splits."""
    split = config.data.split or dataset_defaults(config.data.dataset).split
    if not split:
        split = str(Path(config.data.data_path) / "splits")
    return resolve_split(split, PROJECT_ROOT)


def build_training_dataset(config: RunConfig, progress: Callable[[int, int], None] | None = None, rank: int = 0):
    """The augmented training dataset of `config`, after checking that every frame it reads exists."""
    data_path = Path(config.data.data_path).expanduser()
    if not data_path.is_dir():
        raise DataError(f"--data-path {data_path} does not exist or is not a folder; point it at the processed dataset.")
    lines = read_split(split_folder(config), "train")
    dataset = build_dataset(
        config.data.dataset,
        data_path,
        lines,
        height=config.model.height,
        width=config.model.width,
        frame_ids=config.model.frame_ids,
        num_scales=max(config.model.scales) + 1,
        is_train=True,
        img_type=config.data.img_type or None,
        cam_name=config.data.cam_name or None,
        seed=config.train.seed * 1000 + rank,
    )
    validate_items(dataset, progress)
    return dataset
