"""`dynamo prepare kitti`."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from .output import err_console, handle_errors, out_console, print_json


@handle_errors
def kitti(
    raw: Path = typer.Argument(..., help="Raw KITTI release: the folder holding 2011_09_26/ and the other dates."),
    out: Path = typer.Argument(..., help="Output folder for the processed layout (created if needed)."),
    workers: int = typer.Option(1, "--workers", "-w", min=1, help="Processes converting frames in parallel."),
    copy: bool = typer.Option(False, "--copy", help="Copy the original PNGs instead of linking to them."),
    json_output: bool = typer.Option(False, "--json", help="Print the summary as one JSON document."),
) -> None:
    """Convert the raw KITTI release into the processed layout (images, lidar depth).

    Writes, per drive and colour camera, [bold]rgb/original[/] (links to the raw PNGs, or copies), [bold]rgb/downsample[/] (640x192 JPEG), [bold]depth[/] (lidar points as \\[row, col, depth] rows) and, when the drive has oxts/data packets, [bold]odometry.txt[/] (the vehicle pose per frame, for `dynamo eval odometry`), plus the date's calibration files.

    Rerunning skips files that are already complete, so an interrupted run can simply be started again. Frames without a velodyne scan get no depth file and are reported at the end.
    """
    from dynamo_core.preparation.kitti import prepare_kitti

    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    bar = Progress(*columns, console=err_console)
    task = bar.add_task("frames", total=None)

    def show(done: int, total: int) -> None:
        bar.start()  # only once the input is validated, so an error is not drawn under a bar
        bar.update(task, completed=done, total=total)

    try:
        result = prepare_kitti(raw, out, workers=workers, copy_images=copy, progress=show)
    finally:
        bar.stop()

    if json_output:
        print_json(dataclasses.asdict(result))
        return
    per_frame = result.seconds / result.frames if result.frames else 0.0
    out_console.print(
        f"{result.frames} frames from {result.drives} drives prepared in {out} "
        f"({result.files_written} files written, {result.files_skipped} already complete; "
        f"{result.seconds:.1f} s, {per_frame * 1000:.0f} ms per frame).",
        highlight=False, soft_wrap=True,
    )
    if result.drives_without_oxts:
        out_console.print(
            f"{len(result.drives_without_oxts)} drives have no oxts/data packets and no odometry.txt, "
            f"e.g. {result.drives_without_oxts[0]}.",
            highlight=False, soft_wrap=True,
        )
    if result.missing_scans:
        out_console.print(
            f"{len(result.missing_scans)} frames have no velodyne scan and no depth file, "
            f"e.g. {result.missing_scans[0]}.",
            highlight=False, soft_wrap=True,
        )
