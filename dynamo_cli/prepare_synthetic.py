"""`dynamo prepare synthetic`."""

from .output import handle_errors
from .pending import not_available


@handle_errors
def synthetic() -> None:
    """Render procedural driving sequences with exact depth, ego-motion and object motion."""
    not_available("prepare synthetic")
