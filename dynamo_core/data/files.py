"""Safe readers for dataset files: images, point arrays, npz archives, JSON and motion-label pickles.

Every reader raises `DataError` naming the file and saying what to do; none runs code from a file.
"""

from __future__ import annotations

import builtins
import codecs
import json
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import DataError

_REPAIR = "re-create it with `dynamo prepare` or fix --data-path"


def read_image(path: Path) -> Image.Image:
    """Decode an image file into an RGB PIL image (fully loaded, file closed)."""
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except FileNotFoundError:
        raise DataError(f"image {path} is missing; {_REPAIR}, or drop the frame from the split.") from None
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError) as err:
        raise DataError(f"image {path} is corrupt or unreadable ({err}); {_REPAIR}.") from None


def read_image_size(path: Path) -> tuple[int, int]:
    """(height, width) of an image, reading only its header."""
    try:
        with Image.open(path) as image:
            width, height = image.size
    except FileNotFoundError:
        raise DataError(f"image {path} is missing; {_REPAIR}.") from None
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError) as err:
        raise DataError(f"image {path} is corrupt or unreadable ({err}); {_REPAIR}.") from None
    return height, width


def read_points(path: Path) -> np.ndarray:
    """A `.npy` array of lidar points, (N, 3) float64; never unpickles."""
    try:
        points = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"depth file {path} is missing; {_REPAIR}, or run without ground-truth depth.") from None
    except (ValueError, OSError, EOFError) as err:
        raise DataError(f"depth file {path} is corrupt or unreadable ({err}); {_REPAIR}.") from None
    if points.ndim != 2 or points.shape[1] != 3 or not np.issubdtype(points.dtype, np.number):
        raise DataError(
            f"depth file {path} holds a {points.dtype} array of shape {points.shape}; "
            f"expected (N, 3) numbers; {_REPAIR}."
        )
    return points.astype(np.float64, copy=False)


def read_npz_arrays(path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Read only `keys` from an `.npz` archive, without unpickling anything."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [key for key in keys if key not in archive.files]
            if missing:
                raise DataError(
                    f"mask file {path} lacks the arrays {missing} (it has {archive.files}); {_REPAIR}."
                )
            return {key: archive[key] for key in keys}
    except FileNotFoundError:
        raise DataError(f"mask file {path} is missing; {_REPAIR}, or remove the frame from the mask split.") from None
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as err:
        raise DataError(f"mask file {path} is corrupt or unreadable ({err}); {_REPAIR}.") from None


def read_json(path: Path, what: str) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise DataError(f"{what} {path} is missing; {_REPAIR}.") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"{what} {path} is not readable JSON ({err}); {_REPAIR}.") from None


def _array_globals() -> dict[tuple[str, str], Any]:
    """The callables a numpy array pickle needs, under both the numpy 1 and numpy 2 module names."""
    try:
        from numpy._core import multiarray, numeric
    except ImportError:  # numpy < 2
        from numpy.core import multiarray, numeric
    allowed = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): codecs.encode,  # protocol 2 stores array bytes as latin-1 text
    }
    for package in ("numpy.core", "numpy._core"):
        allowed[(f"{package}.multiarray", "_reconstruct")] = multiarray._reconstruct
        allowed[(f"{package}.multiarray", "scalar")] = multiarray.scalar
        allowed[(f"{package}.numeric", "_frombuffer")] = numeric._frombuffer  # protocol 5
    return allowed


_BUILTIN_NAMES = ("dict", "list", "tuple", "set", "frozenset", "str", "bytes", "bytearray",
                  "int", "float", "complex", "bool")
_ALLOWED_GLOBALS = {
    (module, name): getattr(builtins, name)
    for module in ("builtins", "__builtin__")  # protocol 2 files name the Python 2 module
    for name in _BUILTIN_NAMES
} | _array_globals()


class _RestrictedUnpickler(pickle.Unpickler):
    """Admits only plain builtins and numpy arrays; any other global is refused."""

    def __init__(self, file, path: Path):
        super().__init__(file)
        self.path = path

    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise DataError(
                f"pickle {self.path} refers to {module}.{name}, which a motion-label file never holds; "
                "it was refused unread. Replace the file with one from a trusted source."
            ) from None


def read_safe_pickle(path: Path) -> Any:
    """Unpickle a file that may hold only builtins and numpy arrays."""
    try:
        with open(path, "rb") as handle:
            return _RestrictedUnpickler(handle, path).load()
    except FileNotFoundError:
        raise DataError(f"motion-label file {path} is missing; {_REPAIR}.") from None
    except DataError:
        raise
    except Exception as err:  # a corrupt pickle can raise almost anything
        raise DataError(f"motion-label file {path} is corrupt or unreadable ({err!r}); {_REPAIR}.") from None
