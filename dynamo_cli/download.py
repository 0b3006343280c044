"""`dynamo download`: released checkpoints, ImageNet weights and split lists."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn
from rich.table import Table

from dynamo_core.download import (
    PUBLIC_MODELS,
    RELEASED_MODELS,
    SPLIT_FILES,
    SPLITS_URL_ENV,
    DownloadResult,
    download_checkpoints,
    download_pretrained,
    download_splits,
    install_checkpoint_zip,
    resolve_checkpoint,
)
from dynamo_core.download.results import collect
from dynamo_core.errors import DynamoError

from .output import err_console, handle_errors, out_console, print_json

app = typer.Typer(help="Fetch released checkpoints, pretrained encoders and standard split lists.", no_args_is_help=True)

_PRIVATE = [name for name in RELEASED_MODELS if name not in PUBLIC_MODELS]


class TransferBars:
    """A rich progress bar per transfer on stderr, started at the first byte (so prompts come first)."""

    def __init__(self) -> None:
        self._progress: Progress | None = None
        self._tasks: dict[str, int] = {}

    def __call__(self, label: str, done: int, total: int | None) -> None:
        if self._progress is None:
            self._progress = Progress(
                TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                TimeRemainingColumn(), console=err_console,
            )
            self._progress.start()
        if label not in self._tasks:
            self._tasks[label] = self._progress.add_task(label, total=total)
        self._progress.update(self._tasks[label], completed=done, total=total)

    def __enter__(self) -> "TransferBars":
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()


def confirm_download(question: str) -> bool:
    """Ask on the terminal (stderr); without one, as in scripts and CI, the answer is no."""
    if not sys.stdin.isatty():
        return False
    return typer.confirm(question, default=False, err=True)


def checkpoint_folder(path_or_name: str, *, yes: bool = False, ckpt_dir: str | Path = "ckpt") -> Path:
    """For commands that take a checkpoint: a folder, or a released name fetched after asking (or with --yes)."""
    with TransferBars() as bars:
        return resolve_checkpoint(path_or_name, ckpt_dir, assume_yes=yes, confirm=confirm_download, progress=bars)


def _size(count: int) -> str:
    if not count:
        return ""
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return ""


def _report(results: list[DownloadResult], as_json: bool) -> None:
    """The table (or one JSON document) on stdout; any failure becomes exit code 1 with its message."""
    failures = [r for r in results if not r.ok]
    if as_json:
        print_json({"ok": not failures, "results": [r.to_dict() for r in results]})
    else:
        table = Table("item", "status", "path", "size", "note", title="dynamo download")
        for r in results:
            note = "see the error below" if not r.ok else r.message
            style = "red" if not r.ok else ("dim" if r.status == "skipped" else "green")
            table.add_row(r.name, f"[{style}]{r.status}[/]", r.path, _size(r.bytes), note)
        out_console.print(table)
    if len(failures) == 1:
        raise DynamoError(failures[0].message)
    if failures:
        for r in failures:
            err_console.print(f"[red]failed:[/] {r.message}", highlight=False, soft_wrap=True)
        raise DynamoError(f"{len(failures)} of {len(results)} downloads failed: {', '.join(r.name for r in failures)}.")


_JSON = typer.Option(False, "--json", help="Print one JSON document instead of the table.")
_FORCE = typer.Option(False, "--force", help="Replace files and folders that already exist (default: keep and skip them).")
_CKPT_DIR = typer.Option(Path("ckpt"), "--ckpt-dir", help="Folder that holds checkpoint folders and the Lite-Mono weights.")


@app.command("checkpoints")
@handle_errors
def checkpoints(
    names: Optional[List[str]] = typer.Argument(
        None, metavar="NAME", help=f"Released models: {', '.join(RELEASED_MODELS)}. Default: all public ones."
    ),
    ckpt_dir: Path = _CKPT_DIR,
    from_file: Optional[Path] = typer.Option(
        None, "--from-file", metavar="ZIP",
        help="Install from a zip you already have (e.g. a Waymo model received from the authors) instead of downloading.",
    ),
    force: bool = _FORCE,
    json_output: bool = _JSON,
) -> None:
    """Fetch released Dynamo-Depth checkpoints into CKPT_DIR/NAME/.

    Each arrives as a zip (through gdown, from Google Drive), is checked (whole archive, one folder with the seven module files, every .pth loadable with weights_only) and only then moved into place.

    The Waymo models (W_Dynamo-Depth, W_Dynamo-Depth_MD2) are not public: the command says how to request them; install the zip you receive with --from-file.
    """
    names = list(names or [])
    if from_file is not None:
        if len(names) > 1:
            raise typer.BadParameter("--from-file installs one model; give at most one NAME.", param_hint="NAME")
        label = names[0] if names else from_file.name
        where = str(ckpt_dir / names[0]) if names else str(ckpt_dir)
        results = collect("checkpoint", label, where, lambda: install_checkpoint_zip(from_file, names[0] if names else None, ckpt_dir, force=force))
    else:
        if not names:
            err_console.print(
                f"Fetching the public models; {' and '.join(_PRIVATE)} are available on request "
                f"(`dynamo download checkpoints {_PRIVATE[0]}` says how).",
                style="dim", highlight=False,
            )
        with TransferBars() as bars:
            results = download_checkpoints(names, ckpt_dir, force=force, progress=bars)
    _report(results, json_output)


@app.command("pretrained")
@handle_errors
def pretrained(
    resnet: List[str] = typer.Option(
        ["18"], "--resnet", metavar="DEPTH",
        help="ResNet depths whose ImageNet weights to fetch: 18, 34, 50; repeat the option or separate with commas (--resnet 18,34,50).",
    ),
    litemono: bool = typer.Option(True, "--litemono/--no-litemono", help="Also fetch the Lite-Mono-8M ImageNet weights."),
    ckpt_dir: Path = _CKPT_DIR,
    force: bool = _FORCE,
    json_output: bool = _JSON,
) -> None:
    """Fetch the ImageNet weights of the ResNet and Lite-Mono encoders.

    ResNets go to the torch hub cache ($TORCH_HOME/hub/checkpoints/, by default ~/.cache/torch/hub/checkpoints/); Lite-Mono-8M goes to CKPT_DIR/lite-mono-8m-pretrain.pth. These are the places `--weights-init pretrained` reads.
    """
    depths = []
    for value in ",".join(resnet).split(","):
        value = value.strip()
        if not value.isdigit():
            raise typer.BadParameter(f"{value!r} is not a ResNet depth (18, 34 or 50).", param_hint="--resnet")
        depths.append(int(value))
    with TransferBars() as bars:
        results = download_pretrained(depths, ckpt_dir, litemono=litemono, force=force, progress=bars)
    _report(results, json_output)


@app.command("splits")
@handle_errors
def splits(
    names: Optional[List[str]] = typer.Argument(
        None, metavar="NAME", help=f"Splits: {', '.join(SPLIT_FILES)}. Default: all."
    ),
    splits_dir: Path = typer.Option(Path("splits"), "--splits-dir", help="Folder that receives NAME/<file>.txt."),
    base_url: Optional[str] = typer.Option(
        None, "--base-url", envvar=SPLITS_URL_ENV, metavar="URL",
        help="Where to fetch from: URL/NAME/<file>.txt. Default: the lists published with Dynamo-Depth on GitHub.",
    ),
    force: bool = _FORCE,
    json_output: bool = _JSON,
) -> None:
    """Fetch the standard split lists (eigen_zhou, waymo, nuscenes, nuscenes_dayclear).

    Each list is checked (non-empty UTF-8 text whose lines hold a folder, a frame index and, for KITTI, the side l or r) before it is moved into place. The Waymo training list is not public.
    """
    with TransferBars() as bars:
        results = download_splits(names or [], splits_dir, base_url=base_url, force=force, progress=bars)
    _report(results, json_output)
