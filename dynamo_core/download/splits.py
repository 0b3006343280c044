"""The standard split lists (eigen_zhou, waymo, nuscenes, nuscenes_dayclear) into `<splits_dir>/<name>/`."""

from __future__ import annotations

import os
from collections.abc import Iterable
from contextlib import ExitStack
from pathlib import Path

from . import transport
from .catalog import SPLIT_FILES, split_files, splits_base_url
from .checks import RejectedContent, check_split_text
from .results import DOWNLOADED, SKIPPED, DownloadResult, TransferProgress, collect, labelled
from .staging import target_folder, temp_file
from .transport import DownloadError


def download_split(
    name: str,
    splits_dir: str | Path = "splits",
    *,
    base_url: str | None = None,
    force: bool = False,
    progress: TransferProgress | None = None,
) -> DownloadResult:
    """Fetch the published files of split `name` from `<base_url>/<name>/<file>`.

    `base_url` defaults to $DYNAMO_SPLITS_URL, then to the public location. Files already
    present are kept unless `force`. Either every missing file passes its check and is
    moved into place, or none is.
    """
    files = split_files(name)
    source = f"{splits_base_url(base_url)}/{name}"
    folder = Path(splits_dir).expanduser() / name
    wanted = [f for f in files if force or not (folder / f).exists()]
    kept = [f for f in files if f not in wanted]
    if not wanted:
        return DownloadResult("split", name, str(folder), SKIPPED, source, message=f"{', '.join(kept)} already present; --force replaces them")
    fetched: dict[str, Path] = {}
    line_counts: dict[str, int] = {}
    size = 0
    with target_folder(folder), ExitStack() as parts:
        for file_name in wanted:
            url = f"{source}/{file_name}"
            part = parts.enter_context(temp_file(folder, file_name))
            try:
                size += transport.fetch(url, part, labelled(progress, f"{name}/{file_name}"))
            except DownloadError as err:
                raise DownloadError(
                    f"split {name}: {err} To fetch it by hand, download {url} and save it as {folder / file_name}."
                ) from None
            try:
                line_counts[file_name] = check_split_text(part, file_name)
            except RejectedContent as err:
                raise RejectedContent(f"{url} was refused: {err}; no file of split {name} was written.") from None
            fetched[file_name] = part
        for file_name, part in fetched.items():
            os.replace(part, folder / file_name)
    summary = f"{len(line_counts)} file{'s' * (len(line_counts) > 1)}, {sum(line_counts.values())} lines"
    if kept:
        summary += f"; kept {', '.join(kept)}"
    return DownloadResult("split", name, str(folder), DOWNLOADED, source, size, summary)


def download_splits(
    names: Iterable[str] = (),
    splits_dir: str | Path = "splits",
    *,
    base_url: str | None = None,
    force: bool = False,
    progress: TransferProgress | None = None,
) -> list[DownloadResult]:
    """Fetch several splits (all known ones when `names` is empty); unknown names raise ConfigError first."""
    names = list(dict.fromkeys(names)) or list(SPLIT_FILES)
    for name in names:
        split_files(name)
    results = []
    for name in names:
        folder = str(Path(splits_dir).expanduser() / name)
        results += collect(
            "split", name, folder,
            lambda name=name: download_split(name, splits_dir, base_url=base_url, force=force, progress=progress),
        )
    return results
