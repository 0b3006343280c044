"""Option parsing helpers shared by commands."""

from __future__ import annotations

from dynamo_core.errors import ConfigError


def int_list(value: str, option: str) -> list[int]:
    """'0,1,2' or '0 1 2' -> [0, 1, 2], with an error naming the option."""
    try:
        return [int(part) for part in value.replace(",", " ").split()]
    except ValueError:
        raise ConfigError(f"{option} takes integers separated by commas, e.g. 0,1,2; got {value!r}.") from None


def str_list(value: str) -> list[str]:
    return [part for part in value.replace(",", " ").split() if part]
