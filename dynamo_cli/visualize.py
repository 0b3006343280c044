"""`dynamo visualize`: videos and panels of depth, flows and the motion mask."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from .evaluate import (
    BATCH_SIZE, DATA_PATH, DATASET, DEPTH_MODEL, DEVICE, EVAL_DIR, HEIGHT, JSON, LOAD, NUM_WORKERS, SPLIT, WIDTH, YES,
    StageProgress, eval_options,
)
from .options import str_list
from .output import handle_errors, out_console, print_json

PANEL_HELP = (
    "Panels left to right, from image, disp, ego_flow, ind_flow, mask, complete_flow, total_flow "
    "(comma separated)."
)


@handle_errors
def visualize(
    load: str = LOAD, yes: bool = YES, dataset: str = DATASET, data_path: Path = DATA_PATH,
    split: Optional[str] = SPLIT, depth_model: Optional[str] = DEPTH_MODEL, height: Optional[int] = HEIGHT,
    width: Optional[int] = WIDTH, eval_dir: Path = EVAL_DIR, batch_size: int = BATCH_SIZE,
    num_workers: int = NUM_WORKERS, device: str = DEVICE, json_output: bool = JSON,
    frames: Optional[List[str]] = typer.Option(
        None, "--frames", metavar="LINE",
        help="A split line such as 'val/segment-... 1' to render instead of the test segments; repeat for more. "
             "Lines of one segment make one video, in the order given."),
    panels: str = typer.Option("image,disp,ego_flow,ind_flow,mask", "--panels", help=PANEL_HELP),
    fps: Optional[float] = typer.Option(None, "--fps", help="Video frame rate. Default: 13 for nuScenes, else 10."),
) -> None:
    """Render image, disparity, ego flow, independent flow and motion mask per frame.

    Writes EVAL_DIR/<model>_<dataset>/visualize/<segment>.mp4 and a PNG per frame in .../visualize/<segment>/. Flows point towards the previous frame and are colour wheels (hue: direction, strength: magnitude, white: still) on one magnitude scale per video; independent flow is mask x (complete flow - ego flow).
    """
    from dynamo_core.evaluation.visualize_runner import run_visualize

    options = eval_options(load, yes, dataset, data_path, split, depth_model, height, width, eval_dir, batch_size,
                           num_workers, device)
    with StageProgress() as progress:
        result = run_visualize(options, frames=list(frames or []), panels=str_list(panels), fps=fps, progress=progress)
    if json_output:
        print_json(result.to_dict())
        return
    table = Table("video", "frames", "flow scale (px)", title=f"visualize: {result.summary['model']} on {dataset}")
    for video in result.videos:
        table.add_row(video.video.name, str(len(video.frames)), f"{video.max_flow:.2f}")
    out_console.print(table)
    out_console.print(f"videos and frame panels (<video>/<frame>.png) in {result.videos[0].video.parent}",
                      highlight=False, soft_wrap=True)
