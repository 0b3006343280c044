"""Commands whose implementation has not landed yet fail loudly instead of pretending to work."""

from dynamo_core.errors import NotImplementedYet


def not_available(command: str) -> None:
    raise NotImplementedYet(
        f"`dynamo {command}` is not available in this version yet. "
        "See the README for the commands that are."
    )
