"""Time `generate_dataset` on the default synthetic set. Prints one JSON object.

    python benchmarks/synthetic_render.py                      # 10 x 50 frames at 192x640, all cores
    python benchmarks/synthetic_render.py --workers 1 --sequences 2

Reports wall seconds in total and per frame, the CPU seconds of this process and its workers,
and the bytes written. The dataset goes to a temporary folder that is deleted afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

from dynamo_core.synthetic import generate_dataset


def cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sequences", type=int, default=10)
    parser.add_argument("--frames", type=int, default=50)
    parser.add_argument("--height", type=int, default=192)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--workers", type=int, default=None, help="default: every available core")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="dynamo-synthetic-bench-") as folder:
        out = Path(folder) / "data"
        cpu_before, started = cpu_seconds(), time.perf_counter()
        summary = generate_dataset(
            out,
            sequences=args.sequences,
            frames=args.frames,
            height=args.height,
            width=args.width,
            test_sequences=min(2, args.sequences - 1),
            workers=args.workers,
        )
        seconds = time.perf_counter() - started
        cpu = cpu_seconds() - cpu_before
        written = sum(path.stat().st_size for path in out.rglob("*") if path.is_file())

    total_frames = args.sequences * args.frames
    result = {
        "sequences": args.sequences,
        "frames": args.frames,
        "height": args.height,
        "width": args.width,
        "workers": args.workers,  # null: the generator's default (every core, or in-process for small jobs)
        "cores_available": len(os.sched_getaffinity(0)),
        "seconds_total": round(seconds, 3),
        "seconds_per_frame": round(seconds / total_frames, 5),
        "cpu_seconds_total": round(cpu, 3),
        "cpu_seconds_per_frame": round(cpu / total_frames, 5),
        "bytes_written": written,
        "rendered_sequences": summary.rendered_sequences,
        "load_average_1min": round(os.getloadavg()[0], 2),
    }
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
