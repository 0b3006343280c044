"""Moving bytes: http(s) URLs through urllib, Google Drive file ids through gdown.

`fetch` is the only function that touches the network; tests replace it.
"""

from __future__ import annotations

import http.client
import inspect
import logging
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from .. import __version__
from ..errors import DynamoError
from .catalog import drive_url

log = logging.getLogger(__name__)

Progress = Callable[[int, "int | None"], None]
"""progress(bytes_done, bytes_total_or_None), called as bytes arrive."""

DEFAULT_TIMEOUT = 60.0
CHUNK_BYTES = 1 << 20
OFFLINE_HINT = "This machine may be offline, or the server unreachable."


class DownloadError(DynamoError):
    """A transfer failed, or what arrived is not what was expected."""


class NotPublicError(DownloadError):
    """The asked-for file is not publicly downloadable."""


def is_url(source: str) -> bool:
    return "://" in source


def fetch(source: str, dest: str | Path, progress: Progress | None = None, timeout: float = DEFAULT_TIMEOUT) -> int:
    """Write the bytes of `source` into the file `dest` (created or truncated); return their count.

    `source` is an http(s) URL or a Google Drive file id. `timeout` is the longest wait, in
    seconds, for the server to connect or send more bytes. Raises DownloadError; removing a
    partial `dest` is the caller's job.
    """
    if is_url(source):
        return _fetch_url(source, Path(dest), progress, timeout)
    return _fetch_drive(source, Path(dest), progress, timeout)


def _fetch_url(url: str, dest: Path, progress: Progress | None, timeout: float) -> int:
    request = urllib.request.Request(url, headers={"User-Agent": f"dynamo/{__version__}"})
    done, total = 0, None
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response, open(dest, "wb") as out:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            while chunk := response.read(CHUNK_BYTES):
                out.write(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
    except urllib.error.HTTPError as err:
        raise DownloadError(f"{url} answered HTTP {err.code} ({err.reason}).") from None
    except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError) as err:
        reason = getattr(err, "reason", None) or err
        received = f" after {done} bytes" if done else ""
        raise DownloadError(f"could not download {url} ({type(err).__name__}: {reason}){received}. {OFFLINE_HINT}") from None
    except OSError as err:
        raise DownloadError(f"could not write {dest} while downloading {url}: {err}.") from None
    if total is not None and done != total:
        raise DownloadError(
            f"the transfer of {url} stopped after {done} of {total} bytes. {OFFLINE_HINT}"
        )
    return done


def _fetch_drive(file_id: str, dest: Path, progress: Progress | None, timeout: float) -> int:
    import gdown

    options = {"id": file_id, "quiet": False}
    accepted = inspect.signature(gdown.download).parameters
    if "timeout" in accepted:
        options["timeout"] = timeout
    if progress is not None and "progress" in accepted:
        # Our own progress bar replaces gdown's.
        options.update(quiet=True, progress=progress)
    try:
        out = open(dest, "wb")
    except OSError as err:
        raise DownloadError(f"could not write {dest}: {err}.") from None
    try:
        with out:
            gdown.download(output=out, **options)
    except Exception as err:  # gdown and requests raise many types; each means the transfer failed
        detail = str(err).strip().splitlines()[0] if str(err).strip() else "no detail"
        raise DownloadError(
            f"could not download Google Drive file {file_id} ({drive_url(file_id)}): "
            f"{type(err).__name__}: {detail}. {OFFLINE_HINT}"
        ) from None
    size = dest.stat().st_size
    if size == 0:
        raise DownloadError(f"Google Drive file {file_id} ({drive_url(file_id)}) arrived empty.")
    return size
