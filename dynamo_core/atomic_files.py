"""Files that appear whole or not at all.

Every output goes to a hidden temporary file in its target folder and is moved into place with
`os.replace`, so an interrupted run leaves the old file or the new one, never half of one.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Callable, Iterator


def new_file_mode() -> int:
    """Permissions of a new file under the current umask (mkstemp's files start owner-only)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside `path`, for writers that open the file themselves; it replaces
    `path` only if the block finishes without error.

    `suffix` ends the temporary file's name, so that a later run can recognise strays (and a writer
    that picks its format by extension sees the right one).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(handle)
    try:
        yield Path(temp)
        os.chmod(temp, new_file_mode())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_output(path: str | os.PathLike, mode: str = "wb", suffix: str = ".tmp") -> Iterator[IO[Any]]:
    """Yield a file that replaces `path` only if the block finishes without error (see `atomic_path`)."""
    encoding = None if "b" in mode else "utf-8"
    with atomic_path(path, suffix) as temp, open(temp, mode, encoding=encoding) as stream:
        yield stream


def atomic_write(path: str | os.PathLike, write: Callable[[IO[Any]], Any], mode: str = "wb") -> Path:
    """Call `write(stream)` on a temporary file, then move it to `path`; returns `path`."""
    with atomic_output(path, mode) as stream:
        write(stream)
    return Path(path)
