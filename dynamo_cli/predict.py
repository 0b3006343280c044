"""`dynamo predict`: depth, motion mask and ego-motion on the user's own images, folders and videos."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from dynamo_core.errors import DynamoError

from .options import str_list
from .output import err_console, handle_errors, out_console, user_message

OUTPUT_HELP = "depth_npy, depth_png, disparity_png, mask_png, mask_npy, flow_npy, ply"


@handle_errors
def predict(
    inputs: List[str] = typer.Argument(
        ..., metavar="INPUT...",
        help="Image files (PNG, JPEG, 16-bit PNG), folders (a sequence, sorted by name), glob patterns, videos "
             "(mp4, avi, mov; a sequence), @list.txt (a sequence of the listed paths) or - (paths on stdin).",
    ),
    load: Optional[str] = typer.Option(None, "-l", "--load", metavar="CKPT",
                                       help="Checkpoint folder (per-module layout), or a released name."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: DIR/<stem>_<output>.<ext> for single images, "
                                                       "DIR/<sequence>/... for sequences."),
    save: Optional[str] = typer.Option(
        None, "--save", help=f"Outputs per frame, comma-separated: {OUTPUT_HELP}. "
                             "Default: depth_npy,depth_png,disparity_png (+ mask_png for sequences)."),
    no_motion: bool = typer.Option(False, "--no-motion", help="Sequences: depth only, no motion mask or ego-motion."),
    ext: Optional[str] = typer.Option(None, "--ext", help="Image extensions to take from folders, e.g. png,jpg."),
    every: int = typer.Option(1, "--every", help="Videos: take every N-th frame."),
    max_frames: Optional[int] = typer.Option(None, "--max-frames", help="Videos: at most N frames."),
    camera_height: Optional[float] = typer.Option(
        None, "--camera-height", metavar="METRES",
        help="Metric depth per frame from the fitted road plane: scale = METRES / fitted camera height. "
             "Use it for road scenes with the road visible in the lower image."),
    depth_scale: Optional[float] = typer.Option(
        None, "--depth-scale", metavar="K",
        help="Multiply every depth by K instead (a scale you measured once for this camera and model)."),
    intrinsics: Optional[Path] = typer.Option(
        None, "--intrinsics", help="JSON: fx, fy, cx, cy in pixels with width and height, or a normalised "
                                   "intrinsic_mat. Affects ego-motion, flows and point clouds, not depth."),
    fov: Optional[float] = typer.Option(None, "--fov", metavar="DEGREES", help="Horizontal field of view instead."),
    video: bool = typer.Option(False, "--video", help="Sequences: also write panels.mp4 (image, disparity, mask)."),
    onnx: Optional[Path] = typer.Option(None, "--onnx", help="Run the depth network from this ONNX file (from "
                                                            "`dynamo export onnx`) with onnxruntime instead of a "
                                                            "checkpoint; depth outputs only."),
    force: bool = typer.Option(False, "--force", help="Overwrite existing outputs."),
    batch_size: int = typer.Option(8, "-b", "--batch-size", help="Frames per forward pass (sequence frames, or consecutive single images)."),
    device: str = typer.Option("auto", "--device", help="cpu, cuda or auto."),
    precision: str = typer.Option("fp32", "--precision", help="fp32, bf16 or fp16 (fp16 on CUDA only)."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Download a released checkpoint named by --load without asking."),
    json_output: bool = typer.Option(False, "--json", help="One JSON object per frame on stdout, one per line."),
) -> None:
    """Predict depth (and, for sequences, the motion mask and ego-motion) for your own images and videos.

    A folder, a list or a video is a sequence: every frame with both neighbours gets the motion mask and independent flow, every consecutive pair gets ego-motion (poses.txt, poses_tum.txt). Frames of different sizes are each resized to the model's size and their outputs come back at their own size; motion is computed only between frames of one size. Depth is up to an unknown scale unless --camera-height or --depth-scale is given. Exit code 1 when any input failed; the others still get their outputs.
    """
    from dynamo_core.prediction import intrinsics as intrinsics_module
    from dynamo_core.prediction.inputs import resolve_inputs
    from dynamo_core.prediction.run import PredictOptions, check_output_folder, plan_conflicts, run_predict
    from dynamo_core.errors import ConfigError

    if load is None and onnx is None:
        raise ConfigError("give a checkpoint with -l/--load CKPT (or an ONNX depth model with --onnx FILE).")
    if onnx is not None:
        no_motion = True  # the ONNX path runs the depth network only
    options = PredictOptions(
        out=out, save=tuple(str_list(save)) if save is not None else None, motion=not no_motion, force=force,
        batch_size=batch_size, camera_height=camera_height, depth_scale=depth_scale, video=video,
    )
    options.validate()
    sources, failures = resolve_inputs(inputs, extensions=str_list(ext) if ext else None, every=every,
                                       max_frames=max_frames)
    for failure in failures:
        err_console.print(f"[bold red]error:[/] {user_message(_Msg(failure.message))}", highlight=False,
                          soft_wrap=True)
    options.out = check_output_folder(out)
    plan_conflicts(sources, options)
    if intrinsics is not None or fov is not None or load is None:
        camera = intrinsics_module.resolve(intrinsics, fov, None, warn=_needs_intrinsics(sources, options))
    else:
        camera = None

    if onnx is not None:
        from dynamo_core.prediction.onnx_runtime import OnnxDepthPredictor

        predictor = OnnxDepthPredictor(onnx, intrinsics=camera)
    else:
        from dynamo_core.prediction import Predictor

        from .download import checkpoint_folder

        folder = checkpoint_folder(load, yes=yes)
        if camera is None:
            camera = intrinsics_module.resolve(None, None, folder, warn=_needs_intrinsics(sources, options))
        needs_motion = options.motion and any(s.is_sequence for s in sources)
        predictor = Predictor.from_checkpoint(folder, device=device, precision=precision,
                                              motion=True if needs_motion else False, intrinsics=camera)

    records = []

    def on_frame(record):
        records.append(record)
        if json_output:
            sys.stdout.write(json.dumps(record.to_dict()) + "\n")
            sys.stdout.flush()

    def on_failure(failure):
        err_console.print(f"[bold red]error:[/] {user_message(_Msg(failure.message))}", highlight=False,
                          soft_wrap=True)

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err_console, transient=True) as bars:
        tasks: dict[str, int] = {}

        def progress(name, done, total):
            if name not in tasks:
                tasks[name] = bars.add_task(name, total=total)
            bars.update(tasks[name], completed=done, total=total)

        summary = run_predict(predictor, sources, options, on_frame=on_frame, on_failure=on_failure,
                              progress=progress)
    if not json_output:
        table = Table("input", "frame", "size", "outputs", "scale", "s", title=f"predictions in {options.out}")
        for record in records:
            size = f"{record.height}x{record.width}" if record.height else ""
            scale = f"{record.scale:.3f}" if record.scale is not None else ""
            table.add_row(record.input, record.frame or "(sequence)", size, ", ".join(record.outputs), scale,
                          f"{record.seconds:.3f}")
        out_console.print(table)
    failed = len(failures) + len(summary.failures)
    err_console.print(f"{summary.frames} frame(s), {summary.files} file(s) written to {options.out}"
                      + (f"; {failed} input(s) failed" if failed else ""), style="dim", highlight=False)
    if failed:
        raise typer.Exit(1)


class _Msg(DynamoError):
    pass


def _needs_intrinsics(sources, options) -> bool:
    """Warn about the KITTI fallback only when something that uses intrinsics is asked for."""
    if options.save is not None and "ply" in options.save:
        return True
    return options.motion and any(s.is_sequence for s in sources)
