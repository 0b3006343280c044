"""Datasets in the processed layouts (KITTI, Waymo, nuScenes, synthetic), splits and file checks."""

from .augment import Augmentation, ColorJitter, item_generator, sample_augmentation
from .base import MAX_DEPTH_POINTS, FrameDataset, SplitLine, parse_split_line
from .factory import DATASET_DEFAULTS, DATASETS, DatasetDefaults, build_dataset, dataset_defaults
from .files import read_safe_pickle
from .kitti import KITTIDataset
from .nuscenes import NuScenesDataset
from .splits import SPLIT_FILES, read_split, read_split_file, resolve_split, validate_items
from .synthetic import SyntheticDataset
from .waymo import WaymoDataset

__all__ = [
    "Augmentation",
    "ColorJitter",
    "DATASETS",
    "DATASET_DEFAULTS",
    "DatasetDefaults",
    "FrameDataset",
    "KITTIDataset",
    "MAX_DEPTH_POINTS",
    "NuScenesDataset",
    "SPLIT_FILES",
    "SplitLine",
    "SyntheticDataset",
    "WaymoDataset",
    "build_dataset",
    "dataset_defaults",
    "item_generator",
    "parse_split_line",
    "read_safe_pickle",
    "read_split",
    "read_split_file",
    "resolve_split",
    "sample_augmentation",
    "validate_items",
]
