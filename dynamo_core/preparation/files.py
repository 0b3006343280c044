"""Atomic output files and checks that an existing output was written whole.

Every output is first written to a hidden temporary file in its target folder and then moved
into place with `os.replace`, so an interrupted run leaves either the old file, the new file,
or a stray temporary file that the next run removes.
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

import numpy as np

from .. import atomic_files

TEMP_SUFFIX = ".partial"


def temp_name(path: Path) -> Path:
    """A fresh hidden name next to `path` that `remove_stray_temp_files` recognises."""
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}")


def atomic_output(path: Path):
    """A binary file that replaces `path` only if the block finishes without error (a context manager)."""
    return atomic_files.atomic_output(path, "wb", suffix=TEMP_SUFFIX)


def write_text_atomic(path: Path, text: str) -> None:
    with atomic_output(path) as stream:
        stream.write(text.encode("utf-8"))


def save_npy_atomic(path: Path, array: np.ndarray) -> None:
    with atomic_output(path) as stream:
        np.save(stream, array)


def copy_atomic(source: Path, path: Path) -> None:
    with atomic_output(path) as stream, open(source, "rb") as original:
        shutil.copyfileobj(original, stream)


def symlink_atomic(target: Path, path: Path) -> None:
    """Make `path` a symbolic link to `target`, replacing whatever was there."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = temp_name(path)
    os.symlink(target, temp)
    try:
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def remove_stray_temp_files(folder: Path) -> int:
    """Delete temporary files that an interrupted run left in `folder`; return how many."""
    removed = 0
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        if entry.name.startswith(".") and entry.name.endswith(TEMP_SUFFIX):
            entry.unlink(missing_ok=True)
            removed += 1
    return removed


def is_link_to(path: Path, target: Path) -> bool:
    return path.is_symlink() and os.readlink(path) == str(target)


def is_same_size_file(path: Path, source: Path) -> bool:
    """A regular file (not a link) with the size of `source`: a finished copy."""
    return path.is_file() and not path.is_symlink() and path.stat().st_size == source.stat().st_size


def is_complete_jpeg(path: Path) -> bool:
    """Starts with the JPEG start-of-image marker and ends with the end-of-image marker."""
    try:
        with open(path, "rb") as stream:
            head = stream.read(2)
            stream.seek(-2, os.SEEK_END)
            tail = stream.read(2)
    except OSError:
        return False
    return head == b"\xff\xd8" and tail == b"\xff\xd9"


def is_complete_npy(path: Path, dtype: np.dtype, columns: int) -> bool:
    """An .npy file of a 2-D `dtype` array with `columns` columns whose data is all there."""
    try:
        with open(path, "rb") as stream:
            version = np.lib.format.read_magic(stream)
            if version == (1, 0):
                header = np.lib.format.read_array_header_1_0(stream)
            elif version == (2, 0):
                header = np.lib.format.read_array_header_2_0(stream)
            else:
                return False
            shape, fortran_order, stored_dtype = header
            data_start = stream.tell()
    except (OSError, ValueError):
        return False
    if fortran_order or stored_dtype != dtype or len(shape) != 2 or shape[1] != columns:
        return False
    expected = data_start + int(np.prod(shape)) * stored_dtype.itemsize
    return path.stat().st_size == expected
