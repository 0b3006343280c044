"""One stderr console for progress and logs; stdout for results.

Expected failures (`DynamoError`) become one red line on stderr and exit code 1.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from typing import Any, Callable

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape as rich_escape

from dynamo_core.errors import DynamoError

err_console = Console(stderr=True)
out_console = Console()


def setup_logging(verbose: bool = False) -> None:
    """Route dynamo_core's logger to the stderr console."""
    logger = logging.getLogger("dynamo_core")
    logger.handlers[:] = [RichHandler(console=err_console, show_time=False, show_path=False, markup=False)]
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    logger.propagate = False


def handle_errors(command: Callable) -> Callable:
    """Turn a DynamoError into a clear message and exit code 1, with no traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        setup_logging()
        try:
            return command(*args, **kwargs)
        except DynamoError as err:
            err_console.print(f"[bold red]error:[/] {user_message(err)}", highlight=False, soft_wrap=True, markup=True)
            raise typer.Exit(1) from None

    return wrapper


def user_message(err: DynamoError) -> str:
    """The error's message; for errors re-raised from a DataLoader worker, without the worker's traceback."""
    text = str(err)
    if "Original Traceback" in text:
        last = [line for line in text.splitlines() if line.strip()][-1]
        text = last.split(": ", 1)[1] if ": " in last else last
    return rich_escape(text)


def print_json(document: Any) -> None:
    """Exactly one JSON document on stdout."""
    sys.stdout.write(json.dumps(document, indent=2, sort_keys=False) + "\n")
    sys.stdout.flush()
