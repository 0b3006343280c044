"""`dynamo prepare synthetic`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from dynamo_core.synthetic import generate_dataset

from .output import err_console, handle_errors, out_console, print_json


@handle_errors
def synthetic(
    out: Path = typer.Option(..., "--out", help="Folder to write the dataset into (created if missing)."),
    sequences: int = typer.Option(10, help="Number of sequences to render."),
    frames: int = typer.Option(50, help="Frames per sequence (at least 3)."),
    height: int = typer.Option(192, help="Image height in pixels, a multiple of 32."),
    width: int = typer.Option(640, help="Image width in pixels, a multiple of 32."),
    seed: int = typer.Option(0, help="Random seed; the same seed gives byte-identical files."),
    test_sequences: int = typer.Option(2, help="How many of the sequences go to the test split."),
    workers: Optional[int] = typer.Option(
        None, help="Processes rendering in parallel (default: every available core, or one for small jobs)."
    ),
    force: bool = typer.Option(False, "--force", help="Render again even where complete sequences exist."),
    json_output: bool = typer.Option(False, "--json", help="Print the summary as one JSON document."),
) -> None:
    """Render procedural driving sequences with exact depth, ego-motion and object motion.

    Writes the Waymo-style layout with masks, scene flow, odometry and OUT/splits; train with --dataset synthetic.
    """
    bar = Progress(
        TextColumn("[bold]rendering"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("frames"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=err_console,
    )
    task = None

    def progress(done: int, total: int) -> None:
        nonlocal task
        if task is None:  # started on the first report, so that a rejected option shows no bar
            bar.start()
            task = bar.add_task("rendering", total=total)
        bar.update(task, completed=done, total=total)

    try:
        summary = generate_dataset(
            out,
            sequences=sequences,
            frames=frames,
            height=height,
            width=width,
            seed=seed,
            test_sequences=test_sequences,
            progress=progress,
            workers=workers,
            force=force,
        )
    finally:
        if task is not None:
            bar.stop()

    if json_output:
        print_json(summary.to_dict())
        return
    table = Table(title="synthetic dataset", show_header=False)
    table.add_row("folder", str(summary.out))
    table.add_row("sequences", f"{len(summary.train_sequences)} train, {len(summary.test_sequences)} test")
    table.add_row("frames per sequence", str(summary.frames))
    table.add_row("image size", f"{summary.height}x{summary.width}")
    table.add_row("seed", str(summary.seed))
    table.add_row("rendered / skipped", f"{summary.rendered_sequences} / {summary.skipped_sequences}")
    table.add_row("seconds", f"{summary.seconds:.1f}")
    table.add_row("splits", str(summary.out / "splits"))
    out_console.print(table)
