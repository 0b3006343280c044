"""`dynamo eval`: depth, motion segmentation and odometry metrics."""

import typer

from .output import handle_errors
from .pending import not_available

app = typer.Typer(help="Score a checkpoint: depth, motion segmentation or odometry.", no_args_is_help=True)


@app.command("depth")
@handle_errors
def depth() -> None:
    """Depth metrics overall and on background, static and moving objects."""
    not_available("eval depth")


@app.command("motseg")
@handle_errors
def motseg() -> None:
    """Motion-segmentation precision/recall curve, best F1 and average precision."""
    not_available("eval motseg")


@app.command("odometry")
@handle_errors
def odometry() -> None:
    """Absolute trajectory error of 5-frame tracks."""
    not_available("eval odometry")
