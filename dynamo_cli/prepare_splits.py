"""`dynamo prepare splits`."""

from .output import handle_errors
from .pending import not_available


@handle_errors
def splits() -> None:
    """Write train/test split files for any processed dataset folder."""
    not_available("prepare splits")
