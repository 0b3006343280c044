"""`dynamo train`: the four-phase Dynamo-Depth training."""

from .output import handle_errors
from .pending import not_available


@handle_errors
def train() -> None:
    """Train depth, pose, complete flow and motion mask in four phases."""
    not_available("train")
