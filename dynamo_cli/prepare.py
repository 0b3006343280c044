"""`dynamo prepare`: turn raw datasets into the processed layout the loaders read."""

import typer

from . import prepare_kitti, prepare_nuscenes, prepare_splits, prepare_synthetic, prepare_waymo

app = typer.Typer(
    help="Build datasets in the processed layout: raw KITTI, Waymo (v1 or v2), nuScenes, synthetic scenes, split files.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)

app.command("kitti")(prepare_kitti.kitti)
app.command("waymo")(prepare_waymo.waymo)
app.command("nuscenes")(prepare_nuscenes.nuscenes)
app.command("synthetic")(prepare_synthetic.synthetic)
app.command("splits")(prepare_splits.splits)
