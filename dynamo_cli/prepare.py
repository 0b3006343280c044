"""`dynamo prepare`: turn raw datasets into the processed layout the loaders read."""

import typer

from .output import handle_errors
from .pending import not_available

app = typer.Typer(help="Build datasets in the processed layout: raw KITTI, synthetic scenes, split files.", no_args_is_help=True)


@app.command("kitti")
@handle_errors
def kitti() -> None:
    """Convert the raw KITTI release into the processed layout (images, lidar depth)."""
    not_available("prepare kitti")


@app.command("synthetic")
@handle_errors
def synthetic() -> None:
    """Render procedural driving sequences with exact depth, ego-motion and object motion."""
    not_available("prepare synthetic")


@app.command("splits")
@handle_errors
def splits() -> None:
    """Write train/test split files for any processed dataset folder."""
    not_available("prepare splits")
