"""`dynamo prepare kitti`."""

from .output import handle_errors
from .pending import not_available


@handle_errors
def kitti() -> None:
    """Convert the raw KITTI release into the processed layout (images, lidar depth)."""
    not_available("prepare kitti")
