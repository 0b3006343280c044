"""Build datasets in the processed layout the loaders read, and split files for them."""

from .kitti import KittiPreparation, lidar_depth_points, prepare_kitti
from .splits import SplitFiles, write_splits

__all__ = ["KittiPreparation", "SplitFiles", "lidar_depth_points", "prepare_kitti", "write_splits"]
