"""Split folders (`train_files.txt`, `test_files.txt`, `test_mask_files.txt`) and a file check.

`--split NAME` reads `<project>/splits/NAME/`; `--split DIR` reads any folder holding the same files.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from ..errors import DataError

SPLIT_FILES = {
    "train": "train_files.txt",
    "val": "val_files.txt",
    "test": "test_files.txt",
    "test_mask": "test_mask_files.txt",
}
MAX_LISTED_MISSING = 10


def _looks_like_path(split: str) -> bool:
    return os.sep in split or "/" in split or split.startswith((".", "~"))


def resolve_split(split: str, project_root: str | Path) -> Path:
    """The folder of split `split`: a name under `<project_root>/splits`, or a folder path."""
    if not split:
        raise DataError("--split is empty; give a split name (e.g. eigen_zhou) or a folder of split files.")
    if _looks_like_path(split):
        folder = Path(split).expanduser()
        if not folder.is_dir():
            raise DataError(
                f"split folder {folder} does not exist; give a folder holding train_files.txt / test_files.txt."
            )
        return folder
    splits_root = Path(project_root) / "splits"
    if not splits_root.is_dir():
        raise DataError(
            f"--split {split}: there is no splits folder at {splits_root}; run `dynamo prepare splits`, "
            "or pass --split with the path of a folder of split files (e.g. one written by `dynamo download splits`)."
        )
    folder = splits_root / split
    if not folder.is_dir():
        known = sorted(p.name for p in splits_root.iterdir() if p.is_dir())
        raise DataError(
            f"--split {split}: no such split in {splits_root} (known: {', '.join(known) or 'none'}); "
            "pass a known name or the path of a folder of split files."
        )
    return folder


def read_split_file(path: str | Path) -> list[str]:
    """The non-blank lines of a split file; a missing or empty file is an error."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"split file {path} is missing; create it or choose another --split.") from None
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"split file {path} is unreadable ({err}).") from None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise DataError(f"split file {path} lists no frames; fill it or choose another --split.")
    return lines


def read_split(split_folder: str | Path, which: str) -> list[str]:
    """Lines of `train`, `val`, `test` or `test_mask` files in a split folder."""
    if which not in SPLIT_FILES:
        raise ValueError(f"which must be one of {sorted(SPLIT_FILES)}, got {which!r}")
    return read_split_file(Path(split_folder) / SPLIT_FILES[which])


def validate_items(dataset, progress: Callable[[int, int], None] | None = None) -> int:
    """Check that every file an epoch over `dataset` reads exists; returns the number of files checked.

    `dataset` needs `__len__` and `item_files(index)`. Folder listings are cached, so a split of
    tens of thousands of frames is checked in about a second. `progress(done, total)` is
    called as items are checked.
    """
    listings: dict[Path, frozenset[str]] = {}
    seen: set[Path] = set()
    missing: list[Path] = []
    total = len(dataset)
    for index in range(total):
        for path in dataset.item_files(index):
            if path in seen:
                continue
            seen.add(path)
            folder = path.parent
            if folder not in listings:
                try:
                    listings[folder] = frozenset(os.listdir(folder))
                except OSError:
                    listings[folder] = frozenset()
            if path.name not in listings[folder]:
                missing.append(path)
        if progress is not None and (index + 1 == total or index % 256 == 0):
            progress(index + 1, total)
    if missing:
        shown = ", ".join(str(p) for p in missing[:MAX_LISTED_MISSING])
        more = f" and {len(missing) - MAX_LISTED_MISSING} more" if len(missing) > MAX_LISTED_MISSING else ""
        raise DataError(
            f"{len(missing)} file(s) the split needs are missing: {shown}{more}. "
            "Check --data-path, the image type and the split, or re-create the data with `dynamo prepare`."
        )
    return len(seen)
