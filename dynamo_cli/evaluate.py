"""`dynamo eval`: depth, motion segmentation and odometry metrics."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from .output import err_console, handle_errors, out_console, print_json

app = typer.Typer(help="Score a checkpoint: depth, motion segmentation or odometry.", no_args_is_help=True)

DATASETS = "kitti, waymo, nuscenes or synthetic"


class StageProgress:
    """One rich bar per stage on stderr; called as progress(stage, done, total)."""

    def __init__(self) -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TextColumn("eta"), TimeRemainingColumn(), console=err_console,
        )
        self.tasks: dict[str, int] = {}

    def __enter__(self) -> "StageProgress":
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage not in self.tasks:
            self.tasks[stage] = self.progress.add_task(stage, total=total)
        self.progress.update(self.tasks[stage], completed=done, total=total)


# Options every evaluation command takes.
LOAD = typer.Option(..., "-l", "--load", metavar="CKPT",
                    help="Checkpoint folder (per-module layout), or a released name such as K_Dynamo-Depth.")
YES = typer.Option(False, "--yes", "-y", help="Download a released checkpoint named by --load without asking.")
DATASET = typer.Option("kitti", "-d", "--dataset", help=f"Dataset layout: {DATASETS}.")
DATA_PATH = typer.Option(..., "--data-path", help="Root folder of the processed dataset.")
SPLIT = typer.Option(None, "--split", metavar="NAME|DIR",
                     help="Split name under the project's splits/ or a folder with test_files.txt. "
                          "Default: eigen_zhou (KITTI), waymo, nuscenes, or DATA_PATH/splits (synthetic).")
DEPTH_MODEL = typer.Option(None, "--depth-model", help="litemono or monodepthv2. Default: detected from the checkpoint.")
HEIGHT = typer.Option(None, "--height", help="Input height, a multiple of 32. Default: the checkpoint's stored size.")
WIDTH = typer.Option(None, "--width", help="Input width, a multiple of 32. Default: the checkpoint's stored size.")
EVAL_DIR = typer.Option(Path("outputs"), "--eval-dir", help="Results go to EVAL_DIR/<model>_<dataset>/<task>/.")
BATCH_SIZE = typer.Option(4, "-b", "--batch-size", help="Frames per batch.")
NUM_WORKERS = typer.Option(2, "--num-workers", help="Data-loading processes (0: load in the main process).")
DEVICE = typer.Option("auto", "--device", help="cpu, cuda or auto.")
JSON = typer.Option(False, "--json", help="Print one JSON document on stdout instead of the table.")


def eval_options(load: str, yes: bool, dataset: str, data_path: Path, split: Optional[str], depth_model: Optional[str],
                 height: Optional[int], width: Optional[int], eval_dir: Path, batch_size: int, num_workers: int,
                 device: str):
    """The shared options as EvalOptions, with a released checkpoint name resolved (and downloaded if allowed)."""
    from dynamo_core.evaluation.inference import EvalOptions

    from .download import checkpoint_folder

    return EvalOptions(
        checkpoint=checkpoint_folder(load, yes=yes), dataset=dataset, data_path=data_path, split=split,
        depth_model=depth_model, height=height, width=width, eval_dir=eval_dir, batch_size=batch_size,
        num_workers=num_workers, device=device,
    )


def _evaluate(run, json_output: bool):
    """Call `run(progress=...)` under a progress display and say where the files went.

    With --json the result is printed as JSON and None is returned; otherwise the result is returned
    for the command to show as a table.
    """
    with StageProgress() as progress:
        result = run(progress=progress)
    folder = Path(result.files[0]).parent
    err_console.print(f"wrote {len(result.files)} files to {folder}", highlight=False, style="dim")
    if json_output:
        print_json(result.to_dict())
        return None
    return result


@app.command("depth")
@handle_errors
def depth(
    load: str = LOAD, yes: bool = YES, dataset: str = DATASET, data_path: Path = DATA_PATH,
    split: Optional[str] = SPLIT, depth_model: Optional[str] = DEPTH_MODEL, height: Optional[int] = HEIGHT,
    width: Optional[int] = WIDTH, eval_dir: Path = EVAL_DIR, batch_size: int = BATCH_SIZE,
    num_workers: int = NUM_WORKERS, device: str = DEVICE, json_output: bool = JSON,
) -> None:
    """Depth metrics overall and on background, moving and static objects.

    Each disparity is upsampled to the ground-truth size, inverted, median-scaled and clamped, then scored on the lidar points inside the evaluation crop (KITTI: Garg crop, 80 m; Waymo/nuScenes: full image, 75 m). Regions are scored where the split has test_mask_files.txt. Writes depth.txt and depth.json.
    """
    from dynamo_core.evaluation.depth_runner import format_value, run_depth

    options = eval_options(load, yes, dataset, data_path, split, depth_model, height, width, eval_dir, batch_size,
                           num_workers, device)
    result = _evaluate(partial(run_depth, options), json_output)
    if result is None:
        return
    table = Table("", *result.overall._fields, title=f"depth: {result.summary['model']} on {dataset}")
    for region, errors in result.table_rows():
        table.add_row(region, *(format_value(value) for value in errors))
    out_console.print(table)
    regions = (f"regions not scored: {result.region_note}" if result.region_note else
               f"regions over {result.region_image_count} image(s) with motion labels; n/a: no scored point")
    out_console.print(f"{result.image_count} image(s); {regions}", highlight=False)


@app.command("motseg")
@handle_errors
def motseg(
    load: str = LOAD, yes: bool = YES, dataset: str = DATASET, data_path: Path = DATA_PATH,
    split: Optional[str] = SPLIT, depth_model: Optional[str] = DEPTH_MODEL, height: Optional[int] = HEIGHT,
    width: Optional[int] = WIDTH, eval_dir: Path = EVAL_DIR, batch_size: int = BATCH_SIZE,
    num_workers: int = NUM_WORKERS, device: str = DEVICE, json_output: bool = JSON,
) -> None:
    """Motion-segmentation precision/recall curve, best F1 and average precision.

    Scores the items of test_mask_files.txt whose neighbouring frames exist, at 150 thresholds, pooled over all pixels (label 1 moving is positive, label 3 is ignored). Writes pr_curve.pdf/.png, pr_record.npz, motseg.txt, motseg.json and, for Waymo and synthetic data, false_positives.pdf/.png.
    """
    from dynamo_core.evaluation.motseg_runner import run_motseg

    options = eval_options(load, yes, dataset, data_path, split, depth_model, height, width, eval_dir, batch_size,
                           num_workers, device)
    result = _evaluate(partial(run_motseg, options), json_output)
    if result is None:
        return
    data = result.to_dict()
    table = Table("metric", "value", title=f"motion segmentation: {result.summary['model']} on {dataset}")
    for key in ("best_f1", "best_threshold", "precision_at_best", "recall_at_best", "average_precision"):
        table.add_row(key.replace("_", " "), f"{data[key]:.4f}")
    table.add_row("images", str(result.image_count))
    out_console.print(table)
    if result.false_positives:
        fp_table = Table("class", "false-positive pixels", title="false positives at the best-F1 threshold")
        for name, count in result.false_positives.items():
            fp_table.add_row(name, str(count))
        out_console.print(fp_table)


@app.command("odometry")
@handle_errors
def odometry(
    load: str = LOAD, yes: bool = YES, dataset: str = DATASET, data_path: Path = DATA_PATH,
    split: Optional[str] = SPLIT, depth_model: Optional[str] = DEPTH_MODEL, height: Optional[int] = HEIGHT,
    width: Optional[int] = WIDTH, eval_dir: Path = EVAL_DIR, batch_size: int = BATCH_SIZE,
    num_workers: int = NUM_WORKERS, device: str = DEVICE, json_output: bool = JSON,
    max_segments: int = typer.Option(100, "--max-segments", help="Evaluate at most this many test segments (sorted by name)."),
    track_length: int = typer.Option(5, "--track-length", help="Frames per track."),
) -> None:
    """Absolute trajectory error of 5-frame tracks.

    For each test segment, the pose network predicts the motion of every frame pair (frame, frame+1); tracks of TRACK_LENGTH frames are aligned in position and scale to <segment>/<cam>/odometry.txt and scored (SfMLearner ATE). Writes odometry.txt, odometry.json and tracks.npz.
    """
    from dynamo_core.evaluation.odometry_runner import run_odometry

    options = eval_options(load, yes, dataset, data_path, split, depth_model, height, width, eval_dir, batch_size,
                           num_workers, device)
    run = partial(run_odometry, options, max_segments=max_segments, track_length=track_length)
    result = _evaluate(run, json_output)
    if result is None:
        return
    data = result.to_dict()
    table = Table("", "mean", "std", "median", "min", "max",
                  title=f"odometry: {result.summary['model']} on {dataset}, {data['tracks']} tracks of {track_length} frames")
    for key, label in (("ate", "ATE"), ("speed", "speed")):
        table.add_row(label, *(f"{data[key][stat]:.4f}" for stat in ("mean", "std", "median", "min", "max")))
    out_console.print(table)
