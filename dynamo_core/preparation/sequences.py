"""Preparing a dataset sequence by sequence (Waymo segments, nuScenes scenes), in parallel.

Each sequence is one job: it writes every output atomically and then a completion marker, so
a rerun skips finished sequences and redoes the rest, giving identical files. A sequence that
fails is reported and the others carry on. Progress counts frames, also across processes.
"""

from __future__ import annotations

import logging
import multiprocessing
import queue as queue_module
import signal
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from dynamo_core.errors import DynamoError

from .files import write_text_atomic

logger = logging.getLogger(__name__)

MARKER = ".prepared"
"""Written last into a sequence's camera folder; its presence means the sequence is complete."""
PREPARED, SKIPPED, FAILED = "prepared", "skipped", "failed"


@dataclass
class SequenceJob:
    name: str
    """The sequence as a user knows it (segment or scene name)."""
    group: str
    """`train`/`val` for Waymo, `scenes` for nuScenes."""
    out_dir: Path
    """The sequence's camera folder (`.../FRONT`)."""
    frames: int
    payload: Any = None


@dataclass
class SequenceResult:
    name: str
    group: str
    status: str
    frames: int = 0
    labelled_frames: int = 0
    seconds: float = 0.0
    error: str = ""


def is_complete(out_dir: Path) -> bool:
    return (out_dir / MARKER).is_file()


def mark_complete(out_dir: Path, frames: int, labelled: int) -> None:
    write_text_atomic(out_dir / MARKER, f"frames {frames}\nlabelled {labelled}\n")


class _QueueTick:
    """Counts a finished frame through a queue shared with the parent process."""

    def __init__(self, channel):
        self.channel = channel

    def __call__(self) -> None:
        self.channel.put(1)


def _ignore_interrupts() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _guarded(work: Callable, job: SequenceJob, tick: Callable[[], None]) -> SequenceResult:
    started = time.perf_counter()
    try:
        frames, labelled = work(job, tick)
        return SequenceResult(job.name, job.group, PREPARED, frames, labelled, time.perf_counter() - started)
    except DynamoError as err:
        message = str(err)
    except Exception as err:  # one bad sequence must not stop the others
        message = f"{type(err).__name__}: {err}"
    logger.error("%s %s failed: %s", job.group, job.name, message)
    return SequenceResult(job.name, job.group, FAILED, seconds=time.perf_counter() - started, error=message)


def run_sequences(
    jobs: list[SequenceJob],
    work: Callable[[SequenceJob, Callable[[], None]], tuple[int, int]],
    workers: int = 1,
    progress: Optional[Callable[[int, int], None]] = None,
) -> list[SequenceResult]:
    """Run `work(job, tick)` for each unfinished job; it returns (frames, labelled frames).

    `work` must be a module-level function (it is sent to worker processes). Results come back
    in the order of `jobs`.
    """
    total = sum(job.frames for job in jobs)
    done = 0
    results: dict[int, SequenceResult] = {}
    pending = []
    for index, job in enumerate(jobs):
        if is_complete(job.out_dir):
            results[index] = SequenceResult(job.name, job.group, SKIPPED, job.frames)
            done += job.frames
        else:
            pending.append(index)
    if progress:
        progress(done, total)

    def tick() -> None:
        nonlocal done
        done += 1
        if progress:
            progress(min(done, total), total)

    if workers == 1 or len(pending) <= 1:
        for index in pending:
            results[index] = _guarded(work, jobs[index], tick)
        return [results[i] for i in range(len(jobs))]

    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        channel = manager.Queue()
        with ProcessPoolExecutor(min(workers, len(pending)), mp_context=context, initializer=_ignore_interrupts) as pool:
            futures = {pool.submit(_guarded, work, jobs[i], _QueueTick(channel)): i for i in pending}
            waiting = set(futures)
            while waiting:
                finished, waiting = wait(waiting, timeout=0.2, return_when=FIRST_COMPLETED)
                while True:
                    try:
                        channel.get_nowait()
                    except queue_module.Empty:
                        break
                    tick()
                for future in finished:
                    results[futures[future]] = future.result()
    return [results[i] for i in range(len(jobs))]
