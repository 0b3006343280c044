"""Training checkpoints: the per-module weights plus the state needed to resume exactly.

A checkpoint folder `<run>/models/<phase>_<epoch:02d>/` holds the seven module files in the
released layout, `training_state.pt` (optimiser, scheduler, counters, RNG states) and, last,
`COMPLETE`. The folder is assembled under a temporary name and renamed into place, so a crash
never leaves a half-written checkpoint where `--resume` would look.

Only the newest checkpoint keeps `training_state.pt` (about twice the weights' size, and read only
by `--resume`); older ones keep their weights. With `keep="phase-end"`, an epoch's folder is also
removed once a later epoch of the same phase is saved.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..config import KEEP_CHECKPOINTS
from ..errors import CheckpointError
from ..checkpoints import replace_folder, write_modules

log = logging.getLogger(__name__)

PHASE_ORDER = ("disp_init", "motion_init", "mask_init", "fine_tune")
MARKER = "COMPLETE"
STATE_FILE = "training_state.pt"


@dataclass
class Progress:
    """Where a run stands after a saved epoch."""

    phase: str
    epoch: int
    """Epoch within the phase, counted from 0."""
    phase_step: int
    """Optimisation steps taken in this phase (drives the weight ramp)."""
    global_step: int
    nonfinite_total: int = 0


def checkpoint_name(phase: str, epoch: int) -> str:
    return f"{phase}_{epoch:02d}"


def save_training_checkpoint(
    folder: Path,
    model: torch.nn.Module,
    height: int,
    width: int,
    progress: Progress,
    optimizer: torch.optim.Optimizer,
    scheduler,
    rng: dict[str, torch.Tensor],
    keep: str = "all",
) -> Path:
    """Write weights, training state and the completion marker into `folder`, atomically, then
    thin out the older checkpoints beside it (see the module docstring)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".partial", dir=folder.parent))
    try:
        write_modules(model, staging, height, width)
        torch.save(
            {
                "progress": asdict(progress),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "rng": rng,
            },
            staging / STATE_FILE,
        )
        (staging / MARKER).write_text(json.dumps(asdict(progress)) + "\n")
        replace_folder(staging, folder)
    except (OSError, RuntimeError) as err:
        shutil.rmtree(staging, ignore_errors=True)
        raise CheckpointError(_write_failure(folder, err)) from err
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    prune_checkpoints(folder, keep)
    return folder


def _write_failure(folder: Path, err: BaseException) -> str:
    free = shutil.disk_usage(folder.parent).free / 2**30
    previous = latest_checkpoint(folder.parent)
    return (
        f"could not write checkpoint {folder} ({type(err).__name__}: {str(err).strip() or 'no detail'}); "
        f"{free:.1f} GiB free on that disk. Free some space or choose a --log-dir on a larger disk, then continue "
        f"with --resume. The previous checkpoint, {previous or 'none yet'}, is intact."
    )


def prune_checkpoints(newest: Path, keep: str = "all") -> None:
    """Drop the resume state of every checkpoint older than `newest`; with `keep="phase-end"`,
    also remove the older epochs of `newest`'s phase."""
    if keep not in KEEP_CHECKPOINTS:
        raise ValueError(f"keep must be one of {KEEP_CHECKPOINTS}, got {keep!r}")
    newest_order = _order(newest)
    for folder in newest.parent.iterdir():
        order = _order(folder) if folder.is_dir() else None
        if order is None or order >= newest_order:
            continue
        if keep == "phase-end" and order[0] == newest_order[0]:
            shutil.rmtree(folder, ignore_errors=True)
            log.debug("removed %s: a later epoch of its phase is saved", folder)
        else:
            (folder / STATE_FILE).unlink(missing_ok=True)


def _order(folder: Path) -> tuple[int, int] | None:
    phase, _, epoch = folder.name.rpartition("_")
    if phase not in PHASE_ORDER or not epoch.isdigit():
        return None
    return PHASE_ORDER.index(phase), int(epoch)


def latest_checkpoint(models_dir: Path) -> Path | None:
    """The most advanced complete checkpoint folder under `models_dir`, or None."""
    if not models_dir.is_dir():
        return None
    complete = [p for p in models_dir.iterdir() if p.is_dir() and _order(p) and (p / MARKER).is_file() and (p / STATE_FILE).is_file()]
    return max(complete, key=_order, default=None)


def load_training_state(folder: Path) -> dict:
    """Read `training_state.pt` safely; returns {'progress': Progress, 'optimizer', 'scheduler', 'rng'}."""
    path = folder / STATE_FILE
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        state["progress"] = Progress(**state["progress"])
    except FileNotFoundError:
        raise CheckpointError(f"{path} is missing; {folder} cannot be resumed (use -l/--load to start from its weights).") from None
    except Exception as err:
        raise CheckpointError(f"{path} is unreadable ({type(err).__name__}: {err}); resume from an earlier checkpoint.") from None
    return state
