"""`dynamo export onnx`: the depth, pose or motion networks as ONNX, checked against PyTorch."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from .output import err_console, handle_errors, print_json

app = typer.Typer(help="Export networks for deployment without PyTorch.", no_args_is_help=True)


@app.command("onnx")
@handle_errors
def onnx(
    load: str = typer.Option(..., "-l", "--load", metavar="CKPT", help="Checkpoint folder, or a released name."),
    out: Path = typer.Option(..., "--out", "-o", help="The .onnx file to write."),
    part: str = typer.Option("depth", "--part", help="depth (image -> disparity at scale 0), pose (source, target "
                                                     "-> axis-angle, translation) or motion (three frames -> poses, "
                                                     "complete flow, motion mask)."),
    height: Optional[int] = typer.Option(None, "--height", help="Input height, a multiple of 32. Default: the checkpoint's."),
    width: Optional[int] = typer.Option(None, "--width", help="Input width, a multiple of 32. Default: the checkpoint's."),
    dynamic_batch: bool = typer.Option(False, "--dynamic-batch", help="Let the batch size vary at run time."),
    check_images: Optional[List[Path]] = typer.Option(
        None, "--check-image", help="Frames for the parity check (repeatable, consecutive for pose/motion). "
                                    "Default: rendered synthetic road frames."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing file."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Download a released checkpoint named by --load without asking."),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
) -> None:
    """Export one part of the model to ONNX (opset 17).

    onnxruntime's outputs must equal PyTorch's within 1e-4 on real frames, or nothing is written and the command exits 1. Run the depth file with `dynamo predict --onnx FILE` (needs the \\[onnx] extra).
    """
    from dynamo_core.prediction.export import MODULES, check_frames, export_onnx
    from dynamo_core.prediction.inputs import read_rgb
    from dynamo_core.prediction.predictor import Predictor

    from .download import checkpoint_folder

    if part not in MODULES:
        from dynamo_core.errors import ConfigError

        raise ConfigError(f"--part must be depth, pose or motion, got {part!r}.")
    predictor = Predictor.from_checkpoint(checkpoint_folder(load, yes=yes), device="cpu",
                                          motion=part != "depth", height=height, width=width)
    frames = None
    if check_images:
        frames = check_frames(predictor.height, predictor.width, [read_rgb(p) for p in check_images])
    result = export_onnx(predictor.model, out, part, height=predictor.height, width=predictor.width,
                         dynamic_batch=dynamic_batch, frames=frames, force=force)
    if json_output:
        print_json(result.to_dict())
    else:
        typer.echo(f"{result.path}: {part} network at {result.height}x{result.width}, onnxruntime within "
                   f"{result.max_abs_error:.2g} of PyTorch on {result.frames} frames")
    err_console.print(f"wrote {result.path}", style="dim", highlight=False)
