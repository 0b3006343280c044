"""Root of the `dynamo` command line."""

from __future__ import annotations

from typing import Optional

import typer

from dynamo_core import __version__

from . import demo, download, evaluate, export, predict, prepare, train, visualize

app = typer.Typer(
    name="dynamo",
    help="Dynamo-Depth: unsupervised monocular depth, ego-motion and independent motion from driving video.",
    rich_markup_mode="rich",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"dynamo {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Optional[bool] = typer.Option(
        None, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Train, evaluate and visualise Dynamo-Depth. Progress goes to stderr, results to stdout."""


app.add_typer(prepare.app, name="prepare")
app.command("train")(train.train)
app.add_typer(evaluate.app, name="eval")
app.command("visualize")(visualize.visualize)
app.add_typer(download.app, name="download")
app.command("demo")(demo.demo)
app.command("predict")(predict.predict)
app.add_typer(export.app, name="export")


if __name__ == "__main__":
    app()
