"""Model weights in the original per-module folder layout.

A checkpoint folder holds one `<module>.pth` per module (`depth_enc.pth` ... `motion_mask.pth`),
each a plain state dict; the encoder files also hold the `height` and `width` they were
trained at. Folders written here load into the original code and the reverse.

Every file is read with `weights_only=True`: a file that tries to run code is refused.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .errors import CheckpointError
from .model import MODULE_NAMES

log = logging.getLogger(__name__)

ENCODERS = ("depth_enc", "pose_enc", "motion_enc")

# What a user loses when a module file is absent.
_CAPABILITY = {
    "depth_enc": "depth",
    "depth_dec": "depth",
    "pose_enc": "ego-motion (and the motion heads, which are conditioned on it)",
    "pose_dec": "ego-motion (and the motion heads, which are conditioned on it)",
    "motion_enc": "complete flow and the motion mask",
    "motion_dec": "complete flow",
    "motion_mask": "the motion mask",
}


@dataclass(frozen=True)
class CheckpointInfo:
    """What a checkpoint folder holds, read without building a model."""

    folder: Path
    modules: tuple[str, ...]
    depth_model: str | None
    height: int | None
    width: int | None
    scales: tuple[int, ...] | None
    num_layers: int | None


def _read_state(path: Path) -> dict:
    """Load one module file safely and check that it is a state dict."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint file {path} does not exist.") from None
    except Exception as err:  # torch raises several types for corrupt or unsafe files
        reason = f"it could not be read ({type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else 'no detail'})"
        if "weights_only" in str(err) or "Unsupported global" in str(err):
            reason = "it contains pickled code or objects, which are refused for safety"
        raise CheckpointError(
            f"{path} is not a usable PyTorch checkpoint: {reason}. "
            "Re-download or re-export it; only plain tensor state dicts are accepted."
        ) from None
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise CheckpointError(f"{path} does not hold a state dict (a mapping of parameter names to tensors).")
    return state


def _split_size(state: dict, path: Path) -> tuple[dict, int | None, int | None]:
    state = dict(state)
    height, width = state.pop("height", None), state.pop("width", None)
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{path}: entries {bad[:5]} are not tensors; this is not a module state dict.")
    return state, (int(height) if height is not None else None), (int(width) if width is not None else None)


def inspect_checkpoint(folder: str | Path) -> CheckpointInfo:
    """Describe a checkpoint folder: present modules, depth model, stored size and scales."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise CheckpointError(
            f"checkpoint folder {folder} does not exist. Pass a folder holding depth_enc.pth and the other "
            "module files, or fetch a released model with `dynamo download checkpoints`."
        )
    present = tuple(m for m in MODULE_NAMES if (folder / f"{m}.pth").is_file())
    if not present:
        raise CheckpointError(
            f"{folder} holds none of the module files {', '.join(f'{m}.pth' for m in MODULE_NAMES)}; "
            "it is not a dynamo checkpoint folder."
        )
    depth_model = height = width = scales = num_layers = None
    if "depth_enc" in present:
        state, height, width = _split_size(_read_state(folder / "depth_enc.pth"), folder / "depth_enc.pth")
        depth_model = "litemono" if any(k.startswith("stages.") for k in state) else "monodepthv2"
        if depth_model == "monodepthv2":
            num_layers = _resnet_depth(state)
    for encoder in ("pose_enc", "motion_enc"):
        if num_layers is None and encoder in present:
            state, h, w = _split_size(_read_state(folder / f"{encoder}.pth"), folder / f"{encoder}.pth")
            num_layers = _resnet_depth(state)
            height, width = height or h, width or w
    if "depth_dec" in present and depth_model is not None:
        keys = _read_state(folder / "depth_dec.pth").keys()
        if depth_model == "monodepthv2":
            scales = tuple(sorted(int(k.split(".")[0].split("_")[1]) for k in keys if k.startswith("dispconv_") and k.endswith("weight")))
        else:
            count = len({k.split(".")[1] for k in keys if k.startswith("decoder.")})
            scales = tuple(range(count - 6))
    return CheckpointInfo(folder, present, depth_model, height, width, scales, num_layers)


def _resnet_depth(state: dict) -> int:
    blocks = {k.split(".")[2] for k in state if k.startswith("encoder.layer3.")}
    if any(k.startswith("encoder.layer1.0.conv3") for k in state):
        return 50
    return 34 if len(blocks) == 6 else 18


def load_weights(
    model: nn.Module,
    folder: str | Path,
    modules: tuple[str, ...] | None = None,
    *,
    height: int | None = None,
    width: int | None = None,
) -> tuple[str, ...]:
    """Load module files from `folder` into `model`.

    Args:
        modules: the modules the caller needs; each must be present. None means every
            module file that is present, with at least one required.
        height, width: the resolution the model will run at; a stored size that differs
            gives a warning naming both.
    Returns:
        The names of the modules loaded.
    """
    folder = Path(folder).expanduser()
    info = inspect_checkpoint(folder)
    wanted = tuple(modules) if modules is not None else info.modules
    missing = [m for m in wanted if m not in info.modules]
    if missing:
        lost = sorted({_CAPABILITY[m] for m in missing})
        raise CheckpointError(
            f"{folder} lacks {', '.join(f'{m}.pth' for m in missing)}, so it cannot predict {'; '.join(lost)}. "
            f"Present: {', '.join(info.modules)}. Use a complete checkpoint folder."
        )
    for name in wanted:
        path = folder / f"{name}.pth"
        state, stored_h, stored_w = _split_size(_read_state(path), path)
        if height is not None and stored_h is not None and (stored_h, stored_w) != (height, width):
            log.warning(
                "%s was trained at %dx%d (HxW) but the model runs at %dx%d; results may differ from the paper's.",
                path, stored_h, stored_w, height, width,
            )
        _load_module(getattr(model, name), state, path)
    return wanted


def _load_module(module: nn.Module, state: dict, path: Path) -> None:
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys {missing[:5]}{' ...' if len(missing) > 5 else ''} ({len(missing)} in all)")
        if unexpected:
            parts.append(f"unexpected keys {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''} ({len(unexpected)} in all)")
        raise CheckpointError(
            f"{path} does not fit this model's {path.stem}: {'; '.join(parts)}. "
            "Check --depth-model, --num-layers and --scales against the checkpoint."
        )
    for key, value in state.items():
        if tuple(value.shape) != tuple(own[key].shape):
            raise CheckpointError(
                f"{path}: {key} has shape {tuple(value.shape)} but the model expects {tuple(own[key].shape)}. "
                "Check --depth-model, --num-layers and --scales against the checkpoint."
            )
    module.load_state_dict(state)


def save_weights(model: nn.Module, folder: str | Path, height: int, width: int, modules: tuple[str, ...] = MODULE_NAMES) -> Path:
    """Write the per-module layout to `folder`, atomically.

    The files are written into a temporary sibling folder that then replaces `folder`,
    so a crash leaves either the old folder or the new one, never a mix.
    """
    folder = Path(folder).expanduser()
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".partial", dir=folder.parent))
    try:
        write_modules(model, staging, height, width, modules)
        replace_folder(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return folder


def write_modules(model: nn.Module, folder: Path, height: int, width: int, modules: tuple[str, ...] = MODULE_NAMES) -> None:
    """One `<module>.pth` per module in `folder`; encoders also record the size they run at."""
    for name in modules:
        state = {k: v.detach().cpu() for k, v in getattr(model, name).state_dict().items()}
        if name in ENCODERS:
            state["height"], state["width"] = int(height), int(width)
        torch.save(state, folder / f"{name}.pth")


def replace_folder(staging: Path, folder: Path) -> None:
    """Move a fully written `staging` folder into place as `folder`."""
    if folder.exists():
        retired = folder.parent / f".{folder.name}.old-{os.getpid()}"
        os.replace(folder, retired)
        os.replace(staging, folder)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        os.replace(staging, folder)
