"""ImageNet weights for the encoders, put where the model code looks for them.

ResNet-18/34/50 (torchvision) go to `<torch hub dir>/checkpoints/<file name of the weights URL>`;
Lite-Mono-8M goes to `<ckpt_dir>/lite-mono-8m-pretrain.pth`, its weights under `model`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

from ..errors import ConfigError
from . import transport
from .catalog import LITEMONO_DRIVE_ID, RESNET_DEPTHS, drive_url
from .checks import RejectedContent, check_hash_in_name, check_tensor_dict, load_weights_only
from .results import DOWNLOADED, SKIPPED, DownloadResult, TransferProgress, collect, labelled
from .staging import target_folder, temp_file
from .transport import DownloadError

LITEMONO_FILE = "lite-mono-8m-pretrain.pth"


def resnet_url(num_layers: int) -> str:
    """torchvision's ImageNet (V1) weights URL of ResNet-`num_layers`."""
    from torchvision import models

    weights = {
        18: models.ResNet18_Weights.IMAGENET1K_V1,
        34: models.ResNet34_Weights.IMAGENET1K_V1,
        50: models.ResNet50_Weights.IMAGENET1K_V1,
    }
    if num_layers not in weights:
        raise ConfigError(f"--resnet must be among {', '.join(map(str, RESNET_DEPTHS))}, got {num_layers}.")
    return weights[num_layers].url


def resnet_destination(num_layers: int) -> Path:
    """Where torch hub (and the model code) keeps the ResNet weights."""
    import torch  # deferred: the CLI imports this module at start-up

    return Path(torch.hub.get_dir()) / "checkpoints" / resnet_url(num_layers).rsplit("/", 1)[-1]


def litemono_destination(ckpt_dir: str | Path = "ckpt") -> Path:
    return Path(ckpt_dir).expanduser() / LITEMONO_FILE


def download_resnet(num_layers: int = 18, *, force: bool = False, progress: TransferProgress | None = None) -> DownloadResult:
    """Fetch torchvision's ImageNet ResNet weights into the torch hub cache."""
    url = resnet_url(num_layers)
    dest = resnet_destination(num_layers)

    def check(path: Path) -> str:
        check_hash_in_name(path, dest.name)
        state = check_tensor_dict(load_weights_only(path), dest.name)
        _check_matches(state, _resnet_state(num_layers), dest.name, exact=True)
        return f"ImageNet ResNet-{num_layers}"

    return _fetch_file(f"resnet{num_layers}", url, url, dest, check, force=force, progress=progress)


def download_litemono(
    ckpt_dir: str | Path = "ckpt", *, force: bool = False, progress: TransferProgress | None = None
) -> DownloadResult:
    """Fetch the Lite-Mono-8M ImageNet weights into `<ckpt_dir>/lite-mono-8m-pretrain.pth`."""
    dest = litemono_destination(ckpt_dir)

    def check(path: Path) -> str:
        loaded = load_weights_only(path)
        if not isinstance(loaded, dict) or "model" not in loaded:
            raise RejectedContent(f"{dest.name} has no 'model' entry holding the weights")
        state = check_tensor_dict(loaded["model"], f"{dest.name}['model']")
        _check_matches(state, _litemono_state(), f"{dest.name}['model']", exact=False)
        return "ImageNet Lite-Mono-8M"

    return _fetch_file("lite-mono-8m", LITEMONO_DRIVE_ID, drive_url(LITEMONO_DRIVE_ID), dest, check, force=force, progress=progress)


def download_pretrained(
    resnets: Iterable[int] = (18,),
    ckpt_dir: str | Path = "ckpt",
    *,
    litemono: bool = True,
    force: bool = False,
    progress: TransferProgress | None = None,
) -> list[DownloadResult]:
    """Fetch the asked-for ResNets and (unless `litemono` is False) Lite-Mono-8M; a failure of one
    becomes a failed result and the others still run. A bad depth raises ConfigError first."""
    depths = list(dict.fromkeys(int(n) for n in resnets))
    destinations = {n: resnet_destination(n) for n in depths}
    results = []
    for n in depths:
        results += collect("pretrained", f"resnet{n}", str(destinations[n]), lambda n=n: download_resnet(n, force=force, progress=progress))
    if litemono:
        dest = litemono_destination(ckpt_dir)
        results += collect("pretrained", "lite-mono-8m", str(dest), lambda: download_litemono(ckpt_dir, force=force, progress=progress))
    return results


# ---------------------------------------------------------------- helpers


def _fetch_file(
    name: str,
    source: str,
    shown_source: str,
    dest: Path,
    check: Callable[[Path], str],
    *,
    force: bool,
    progress: TransferProgress | None,
) -> DownloadResult:
    """Fetch into a hidden file beside `dest`, check it, then move it into place."""
    if dest.exists() and not force:
        return DownloadResult("pretrained", name, str(dest), SKIPPED, message="already present; --force replaces it")
    with target_folder(dest.parent), temp_file(dest.parent, dest.name) as part:
        try:
            size = transport.fetch(source, part, labelled(progress, dest.name))
        except DownloadError as err:
            raise DownloadError(f"{dest.name}: {err} To fetch it by hand, download {shown_source} and save it as {dest}.") from None
        try:
            summary = check(part)
        except RejectedContent as err:
            kept = "the existing file was kept" if dest.exists() else "nothing was written"
            raise RejectedContent(f"{dest.name} from {shown_source} was refused: {err}; {kept} ({dest}).") from None
        os.replace(part, dest)
    return DownloadResult("pretrained", name, str(dest), DOWNLOADED, shown_source, size, summary)


def _resnet_state(num_layers: int) -> dict:
    from torchvision import models

    return getattr(models, f"resnet{num_layers}")(weights=None).state_dict()


def _litemono_state() -> dict:
    from ..networks import LiteMonoEncoder

    return LiteMonoEncoder().state_dict()


def _check_matches(state: dict, reference: dict, what: str, *, exact: bool) -> None:
    """Keys and shapes of `state` must fit `reference` (all keys if `exact`, else the shared ones, at least one)."""
    if exact:
        missing = [k for k in reference if k not in state]
        unexpected = [k for k in state if k not in reference]
        if missing or unexpected:
            raise RejectedContent(
                f"{what} does not fit the network: missing {missing[:3]}, unexpected {unexpected[:3]}"
            )
    shared = [k for k in reference if k in state]
    if not shared:
        raise RejectedContent(f"{what} shares no parameter name with the network")
    wrong = [k for k in shared if tuple(state[k].shape) != tuple(reference[k].shape)]
    if wrong:
        k = wrong[0]
        raise RejectedContent(
            f"{what}: {k} has shape {tuple(state[k].shape)}, the network expects {tuple(reference[k].shape)}"
        )
