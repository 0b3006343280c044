"""Temporary files and folders inside the target folder, so that a failure leaves nothing behind."""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def target_folder(folder: Path) -> Iterator[Path]:
    """Create `folder` (and missing parents); on an exception, remove the ones created here if still empty."""
    created = []
    for path in (folder, *folder.parents):
        if path.exists():
            break
        created.append(path)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        yield folder
    except BaseException:
        for path in created:  # deepest first
            try:
                path.rmdir()
            except OSError:
                break
        raise


@contextmanager
def temp_file(folder: Path, name: str) -> Iterator[Path]:
    """A fresh hidden file `.<name>.<random>.part` in `folder`, removed on exit unless moved away.

    Created with the usual permissions (unlike mkstemp's owner-only ones), since it becomes the final file.
    """
    while True:
        path = folder / f".{name}.{secrets.token_hex(4)}.part"
        try:
            open(path, "xb").close()
            break
        except FileExistsError:
            continue
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


@contextmanager
def temp_folder(folder: Path, name: str) -> Iterator[Path]:
    """A fresh hidden folder `.<name>.*.partial` in `folder`, removed with its contents on exit."""
    path = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".partial", dir=folder))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def swap_in(new: Path, target: Path) -> None:
    """Move the finished file or folder `new` to `target`, replacing a previous one.

    A folder cannot be replaced by `os.replace` while it holds files, so the old one is first
    moved aside and put back if the swap fails.
    """
    if not target.is_dir() or target.is_symlink():
        os.replace(new, target)
        return
    retired = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
    os.replace(target, retired / target.name)
    try:
        os.replace(new, target)
    except BaseException:
        os.replace(retired / target.name, target)
        retired.rmdir()
        raise
    shutil.rmtree(retired, ignore_errors=True)
