"""`dynamo download`: released checkpoints, ImageNet weights and split lists."""

import typer

from .output import handle_errors
from .pending import not_available

app = typer.Typer(help="Fetch released checkpoints, pretrained encoders and standard split lists.", no_args_is_help=True)


@app.command("checkpoints")
@handle_errors
def checkpoints() -> None:
    """Fetch released Dynamo-Depth checkpoints into ckpt/<NAME>/."""
    not_available("download checkpoints")


@app.command("pretrained")
@handle_errors
def pretrained() -> None:
    """Fetch the ImageNet weights of the ResNet and Lite-Mono encoders."""
    not_available("download pretrained")


@app.command("splits")
@handle_errors
def splits() -> None:
    """Fetch the standard split lists (eigen_zhou, waymo, nuscenes, nuscenes_dayclear)."""
    not_available("download splits")
