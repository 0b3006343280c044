"""`dynamo prepare waymo`, and the progress bar and summary that sequence-by-sequence prepares share."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from dynamo_core.errors import DataError

from .output import err_console, handle_errors, out_console, print_json


def run_with_progress(call: Callable[[Callable[[int, int], None]], object]) -> object:
    """Run `call(progress)` under a frame-counting bar on stderr."""
    bar = Progress(
        TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TimeRemainingColumn(), console=err_console,
    )
    task = bar.add_task("frames", total=None)

    def show(done: int, total: int) -> None:
        bar.start()  # only once the input is validated, so an error is not drawn under a bar
        bar.update(task, completed=done, total=total)

    try:
        return call(show)
    finally:
        bar.stop()


def report(result, kind: str, json_output: bool) -> None:
    """Print the summary (a table, or one JSON document) and fail when any sequence failed."""
    failed = [s for s in result.segments if s.status == "failed"] if hasattr(result, "segments") else []
    sequences = result.segments
    if json_output:
        document = dataclasses.asdict(result)
        document["failed"] = [s.name for s in failed]
        print_json(document)
    else:
        table = Table(title=f"{kind} prepared in {result.seconds:.1f} s", title_justify="left")
        for column in ("split" if kind == "segment" else "folder", kind, "status", "frames", "labelled", "seconds", "frames/s"):
            numeric = column in ("frames", "labelled", "seconds", "frames/s")
            table.add_column(column, justify="right" if numeric else "left", overflow="fold")
        for s in sequences:
            rate = f"{s.frames / s.seconds:.2f}" if s.status == "prepared" and s.seconds > 0 else ""
            status = s.status if s.status != "failed" else f"failed: {s.error}"
            table.add_row(s.group, s.name, status, str(s.frames), str(s.labelled_frames),
                          f"{s.seconds:.1f}" if s.status != "skipped" else "", rate)
        out_console.print(table, soft_wrap=True)
    if failed:
        names = ", ".join(f"{s.group}/{s.name}" for s in failed)
        raise DataError(f"{len(failed)} of {len(sequences)} {kind}s failed: {names}. The others are complete; "
                        "fix or re-download the failed ones and run the same command again.")


@handle_errors
def waymo(
    raw: Path = typer.Argument(..., help="The release: v1, the folder holding train/ and val/ with segment-*_with_camera_labels.tfrecord; or v2, the folder holding training/ and validation/ with one folder of <segment>.parquet files per component."),
    out: Path = typer.Argument(..., help="Output folder for the processed layout (created if needed)."),
    workers: int = typer.Option(1, "--workers", "-w", min=1, help="Segments converted in parallel."),
    split: str = typer.Option("all", "--split", help="train, val or all."),
    json_output: bool = typer.Option(False, "--json", help="Print the summary as one JSON document."),
) -> None:
    """Convert Waymo Open Dataset v1 TFRecords or v2 parquet components into the processed layout, without TensorFlow.

    The release is told from RAW's layout. v2 input needs pyarrow: [bold]pip install 'dynamo\\[waymo]'[/]. It reads the components camera_image, camera_calibration, lidar, lidar_calibration, lidar_pose, vehicle_pose and, for labelled segments, camera_segmentation, lidar_camera_projection, lidar_box and lidar_camera_synced_box; both releases give the same files.

    Writes, per segment, [bold]<split>/<segment>/FRONT/[/]: [bold]rgb/original[/] (undistorted, 1920x1280), [bold]rgb/downsample[/] (480x320), [bold]rgb/cam.json[/], [bold]depth/[/] (first lidar returns as \\[u, v, z] rows), [bold]mask/[/] (panoptic masks and object annotations as JSON, on labelled frames) and [bold]odometry.txt[/].

    Every v1 record's CRC-32C is checked. A segment counts as done once its marker is written, so an interrupted run is simply started again; one bad segment does not stop the others, and the exit code is 1 when any failed.
    """
    from dynamo_core.preparation.waymo import prepare_waymo

    result = run_with_progress(lambda show: prepare_waymo(raw, out, workers=workers, split=split, progress=show))
    report(result, "segment", json_output)
