"""`dynamo prepare nuscenes`."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from .output import handle_errors
from .prepare_waymo import report, run_with_progress


@handle_errors
def nuscenes(
    raw: Path = typer.Argument(..., help="The nuScenes dataroot: the folder holding v1.0-trainval/ (or v1.0-mini/), samples/, sweeps/ and optionally panoptic/."),
    out: Path = typer.Argument(..., help="Output folder for the processed layout (created if needed)."),
    version: str = typer.Option("v1.0-trainval", "--version", help="v1.0-trainval or v1.0-mini."),
    workers: int = typer.Option(1, "--workers", "-w", min=1, help="Scenes converted in parallel."),
    copy: bool = typer.Option(False, "--copy", help="Copy the original JPEGs instead of linking to them."),
    scene: Optional[List[str]] = typer.Option(None, "--scene", help="Prepare only this scene (repeatable), e.g. scene-0061."),
    json_output: bool = typer.Option(False, "--json", help="Print the summary as one JSON document."),
) -> None:
    """Convert nuScenes into the processed layout, reading its JSON tables directly (no devkit).

    Writes, per scene, [bold]scenes/<scene>/FRONT/[/]: the CAM_FRONT frames (keyframes and sweeps) as [bold]rgb/original[/] (links, or copies with --copy) and [bold]rgb/downsample[/] (512x288), [bold]rgb/cam.json[/], [bold]rgb/ts.json[/] (milliseconds between frames), [bold]depth/[/] (LIDAR_TOP points as \\[u, v, z] rows), [bold]mask/[/] on keyframes (panoptic and motion labels per depth point; needs the Panoptic nuScenes release under panoptic/) and [bold]odometry.txt[/].

    A scene counts as done once its marker is written, so an interrupted run is simply started again; one bad scene does not stop the others, and the exit code is 1 when any failed.
    """
    from dynamo_core.preparation.nuscenes import prepare_nuscenes

    result = run_with_progress(lambda show: prepare_nuscenes(
        raw, out, version=version, workers=workers, copy_images=copy, scenes=scene or None, progress=show))
    report(result, "scene", json_output)
