"""Released Dynamo-Depth checkpoints: download, install from a local zip, resolve a name to a folder."""

from __future__ import annotations

import logging
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path

from ..errors import CheckpointError, DynamoError
from . import transport
from .catalog import MODULE_FILES, PUBLIC_MODELS, RELEASED_MODELS, WAYMO_REQUEST, ReleasedModel, drive_url, released_model
from .checks import RejectedContent, check_module_state, is_os_metadata, unpack_checkpoint_zip
from .results import DOWNLOADED, INSTALLED, SKIPPED, DownloadResult, TransferProgress, collect, labelled
from .staging import swap_in, target_folder, temp_file, temp_folder
from .transport import DownloadError, NotPublicError

log = logging.getLogger(__name__)

_DEPTH_LABEL = {"litemono": "Lite-Mono", "monodepthv2": "Monodepth2 ResNet"}


def download_checkpoint(
    name: str,
    ckpt_dir: str | Path = "ckpt",
    *,
    force: bool = False,
    from_file: str | Path | None = None,
    progress: TransferProgress | None = None,
) -> DownloadResult:
    """Fetch the released checkpoint `name` into `<ckpt_dir>/<name>/`, or install it from the zip `from_file`.

    An existing folder is kept (status "skipped") unless `force`. Raises NotPublicError for
    the Waymo models without `from_file`, DownloadError when the transfer or a check fails.
    """
    if from_file is not None:
        return install_checkpoint_zip(from_file, name, ckpt_dir, force=force)
    model = released_model(name)
    ckpt_dir = Path(ckpt_dir).expanduser()
    target = ckpt_dir / name
    kept = _kept(target, force)
    if kept is not None:
        return kept
    if not model.public:
        raise NotPublicError(WAYMO_REQUEST.format(name=name))
    url = drive_url(model.drive_id)
    with target_folder(ckpt_dir), temp_file(ckpt_dir, f"{name}.zip") as zip_path:
        label = f"{name}.zip"
        try:
            size = transport.fetch(model.drive_id, zip_path, labelled(progress, label))
        except DownloadError as err:
            raise DownloadError(
                f"{name}: {err} To fetch it by hand, open {url} in a browser, save the zip, and run "
                f"`dynamo download checkpoints {name} --from-file ZIP`."
            ) from None
        summary = _install(zip_path, model, target, f"the download of {name} (Google Drive file {model.drive_id}, {url})")
    return DownloadResult("checkpoint", name, str(target), DOWNLOADED, url, size, summary)


def install_checkpoint_zip(
    zip_path: str | Path, name: str | None = None, ckpt_dir: str | Path = "ckpt", *, force: bool = False
) -> DownloadResult:
    """Install a released checkpoint from a local zip; `name` defaults to the zip's top folder."""
    zip_path = Path(zip_path).expanduser()
    if not zip_path.is_file():
        raise DownloadError(f"--from-file {zip_path} does not exist or is not a file.")
    if name is None:
        name = _top_folder(zip_path)
    model = released_model(name)
    ckpt_dir = Path(ckpt_dir).expanduser()
    target = ckpt_dir / name
    kept = _kept(target, force)
    if kept is not None:
        return kept
    with target_folder(ckpt_dir):
        summary = _install(zip_path, model, target, str(zip_path))
    return DownloadResult("checkpoint", name, str(target), INSTALLED, str(zip_path), zip_path.stat().st_size, summary)


def download_checkpoints(
    names: Iterable[str] = (),
    ckpt_dir: str | Path = "ckpt",
    *,
    force: bool = False,
    progress: TransferProgress | None = None,
) -> list[DownloadResult]:
    """Fetch several released checkpoints (all public ones when `names` is empty).

    Unknown names raise ConfigError before anything is fetched; a failure of one model
    becomes a failed result and the others still run.
    """
    names = list(dict.fromkeys(names)) or list(PUBLIC_MODELS)
    for name in names:
        released_model(name)
    results = []
    for name in names:
        target = str(Path(ckpt_dir).expanduser() / name)
        results += collect(
            "checkpoint", name, target, lambda name=name: download_checkpoint(name, ckpt_dir, force=force, progress=progress)
        )
    return results


def resolve_checkpoint(
    path_or_name: str | Path,
    ckpt_dir: str | Path = "ckpt",
    *,
    assume_yes: bool = False,
    confirm: Callable[[str], bool] | None = None,
    progress: TransferProgress | None = None,
) -> Path:
    """The checkpoint folder meant by `path_or_name`, downloading a released model if allowed.

    `path_or_name` is a folder, a released name (`K_Dynamo-Depth`, looked up in `ckpt_dir`)
    or a path ending in one (`ckpt/K_Dynamo-Depth`, fetched into its parent folder). When
    the folder is missing and the name is a public released model, it is downloaded if
    `assume_yes` or `confirm(question)` returns True. Otherwise raises CheckpointError
    naming the folder.
    """
    path = Path(path_or_name).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise CheckpointError(f"{path} is a file; a checkpoint is a folder holding depth_enc.pth and the other module files.")
    bare_name = len(path.parts) == 1
    folder = Path(ckpt_dir).expanduser() / path.name if bare_name else path
    if folder.is_dir():
        return folder
    model = RELEASED_MODELS.get(path.name)
    if model is None:
        raise CheckpointError(
            f"checkpoint folder {folder} does not exist. Pass a folder holding depth_enc.pth and the other module "
            f"files, or a released name ({', '.join(RELEASED_MODELS)})."
        )
    if not model.public:
        raise CheckpointError(f"checkpoint folder {folder} does not exist. {WAYMO_REQUEST.format(name=model.name)}")
    question = f"Checkpoint folder {folder} does not exist. Download the released {model.name} into {folder.parent}?"
    if not (assume_yes or (confirm is not None and confirm(question))):
        raise CheckpointError(
            f"checkpoint folder {folder} does not exist. Fetch it with "
            f"`dynamo download checkpoints {model.name} --ckpt-dir {folder.parent}`, or pass --yes to download it."
        )
    download_checkpoint(model.name, folder.parent, progress=progress)
    return folder


# ---------------------------------------------------------------- helpers


def _kept(target: Path, force: bool) -> DownloadResult | None:
    """The result for an existing folder that is kept, or None when it is to be (re)placed."""
    if not target.exists() or force:
        return None
    missing = [f for f in MODULE_FILES if not (target / f).is_file()]
    note = "already present; --force replaces it"
    if missing:
        note = f"already present but lacks {', '.join(missing)}; --force replaces it"
    return DownloadResult("checkpoint", target.name, str(target), SKIPPED, message=note)


def _top_folder(zip_path: Path) -> str:
    try:
        with zipfile.ZipFile(zip_path) as archive:
            tops = {n.split("/", 1)[0] for n in archive.namelist() if not is_os_metadata(n)}
    except (zipfile.BadZipFile, OSError) as err:
        raise RejectedContent(f"{zip_path} is not a zip archive ({err}).") from None
    if len(tops) != 1:
        raise RejectedContent(
            f"{zip_path} must hold exactly one folder named after a released model; name the model explicitly."
        )
    return tops.pop()


def _install(zip_path: Path, model: ReleasedModel, target: Path, what: str) -> str:
    """Unpack and check in a hidden folder beside `target`, then swap it in; return a summary."""
    with temp_folder(target.parent, model.name) as staging:
        try:
            unpacked = unpack_checkpoint_zip(zip_path, staging, MODULE_FILES)
            for weights in sorted(unpacked.rglob("*.pth")):
                check_module_state(weights)
            summary = _describe(unpacked, model)
        except RejectedContent as err:
            kept = "the existing folder was kept" if target.exists() else "nothing was written"
            raise RejectedContent(f"{what} was refused: {err}; {kept} ({target}).") from None
        if unpacked.name != model.name:
            log.info("the zip's folder %s is installed as %s", unpacked.name, target)
        swap_in(unpacked, target)
    return summary


def _describe(folder: Path, model: ReleasedModel) -> str:
    """Check the depth network against the model's; return e.g. 'Lite-Mono depth, trained at 192x640'."""
    from ..checkpoints import inspect_checkpoint

    try:
        info = inspect_checkpoint(folder)
    except DynamoError as err:
        raise RejectedContent(str(err)) from None
    if info.depth_model != model.depth_model:
        raise RejectedContent(
            f"it holds a {_DEPTH_LABEL.get(info.depth_model, info.depth_model)} depth network, but {model.name} "
            f"is a {_DEPTH_LABEL[model.depth_model]} model"
        )
    size = f", trained at {info.height}x{info.width}" if info.height and info.width else ""
    return f"{_DEPTH_LABEL[model.depth_model]} depth{size}"
