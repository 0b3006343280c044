"""`dynamo visualize`: videos and panels of depth, flows and the motion mask."""

from .output import handle_errors
from .pending import not_available


@handle_errors
def visualize() -> None:
    """Render image, disparity, ego flow, independent flow and motion mask per frame."""
    not_available("visualize")
