"""`dynamo demo`: the whole method on built-in synthetic data."""

from .output import handle_errors
from .pending import not_available


@handle_errors
def demo() -> None:
    """Generate synthetic scenes, train, evaluate against the static-world baseline, and report."""
    not_available("demo")
