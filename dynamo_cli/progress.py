"""Rich progress displays on stderr."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn



class TrainingProgress:
    """One bar per phase: epoch, loss, examples/s and ETA (the trainer's Callbacks interface)."""

    def __init__(self, console: Console):
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self.task = None

    def __enter__(self) -> "TrainingProgress":
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)

    def checking_files(self, done: int, total: int) -> None:
        """Progress of the pre-flight check that every frame exists."""
        if self.task is None:
            self.task = self.progress.add_task("checking frames", total=total, status="")
        self.progress.update(self.task, completed=done, total=total)

    def phase_started(self, phase: str, epochs: int, batches_per_epoch: int, start_epoch: int) -> None:
        if self.task is not None:
            self.progress.update(self.task, visible=False)
        total = (epochs - start_epoch) * batches_per_epoch
        self.task = self.progress.add_task(phase, total=total, status="")

    def step_finished(self, info) -> None:
        status = f"epoch {info.epoch + 1}/{info.epochs}  loss {info.loss:.4f}  {info.examples_per_second:.1f} ex/s"
        if info.skipped:
            status += "  [yellow]skipped non-finite[/]"
        self.progress.update(self.task, advance=1, status=status)

    def checkpoint_saved(self, folder) -> None:
        pass

