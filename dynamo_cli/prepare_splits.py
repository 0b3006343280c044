"""`dynamo prepare splits`."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional

import typer

from .output import handle_errors, out_console, print_json


@handle_errors
def splits(
    data_dir: Path = typer.Argument(..., help="Root of a dataset in the processed layout (with --dayclear: the nuScenes dataroot or its scene.json)."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write train_files.txt and test_files.txt into."),
    test_fraction: float = typer.Option(0.2, "--test-fraction", help="Share of sequences that go to the test split."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random choice of test sequences."),
    cam: Optional[str] = typer.Option(
        None, "--cam", help="Camera folder: image_02 or image_03 (KITTI; default both), FRONT, ... (default FRONT)."
    ),
    dayclear: bool = typer.Option(
        False, "--dayclear", help="Regenerate nuscenes_dayclear: the nuscenes test scenes whose scene.json description mentions neither night nor rain."
    ),
    json_output: bool = typer.Option(False, "--json", help="Print the summary as one JSON document."),
) -> None:
    """Write train/test split files for any processed dataset folder.

    Lists every frame whose previous and next frames exist, and puts whole sequences in either split. Lines follow the loaders' format: [bold]<sequence folder> <frame index>[/], plus [bold]l[/] or [bold]r[/] for the KITTI cameras.

    Recognises the KITTI layout (image_02/rgb/..., 10-digit frame names) and the Waymo, nuScenes and synthetic layout (<cam>/rgb/..., 6-digit frame names).
    """
    if dayclear:
        from dynamo_core.preparation.dayclear import write_dayclear

        found = write_dayclear(data_dir, out)
        if json_output:
            print_json(dataclasses.asdict(found))
        else:
            counts = ", ".join(f"{name}: {count} frames" for name, count in found.lines.items())
            out_console.print(f"{found.out}: {len(found.scenes_kept)} day-clear scenes kept, "
                              f"{len(found.scenes_dropped)} night or rain scenes left out ({counts})",
                              highlight=False, soft_wrap=True)
        return
    from dynamo_core.preparation.splits import write_splits

    result = write_splits(data_dir, out, test_fraction=test_fraction, seed=seed, cam=cam)
    if json_output:
        print_json(dataclasses.asdict(result))
        return
    out_console.print(
        f"{result.train_file}: {result.train_lines} frames from {len(result.train_sequences)} sequences\n"
        f"{result.test_file}: {result.test_lines} frames from {len(result.test_sequences)} sequences",
        highlight=False, soft_wrap=True,
    )
