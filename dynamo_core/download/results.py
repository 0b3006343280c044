"""What each download did, for the summary table and `--json`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

from ..errors import DynamoError
from .transport import NotPublicError

TransferProgress = Callable[[str, int, "int | None"], None]
"""progress(label, bytes_done, bytes_total_or_None) for each transfer, label naming the file."""

DOWNLOADED, INSTALLED, SKIPPED, FAILED, UNAVAILABLE = "downloaded", "installed", "skipped", "failed", "unavailable"


@dataclass
class DownloadResult:
    """One item: a checkpoint folder, a weights file or a split folder."""

    kind: str  # "checkpoint", "pretrained" or "split"
    name: str
    path: str
    status: str  # downloaded, installed (from a local file), skipped, failed, unavailable
    source: str = ""
    bytes: int = 0
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.status not in (FAILED, UNAVAILABLE)

    def to_dict(self) -> dict:
        return asdict(self)


def collect(kind: str, name: str, path: str, job: Callable[[], DownloadResult | list[DownloadResult]]) -> list[DownloadResult]:
    """Run one job; a DynamoError becomes a failed result instead of stopping the others."""
    try:
        result = job()
    except NotPublicError as err:
        return [DownloadResult(kind, name, path, UNAVAILABLE, message=str(err))]
    except DynamoError as err:
        return [DownloadResult(kind, name, path, FAILED, message=str(err))]
    return result if isinstance(result, list) else [result]


def labelled(progress: TransferProgress | None, label: str) -> Callable[[int, "int | None"], None] | None:
    """The per-transfer callback of `progress` for the file called `label`."""
    if progress is None:
        return None
    return lambda done, total: progress(label, done, total)
