"""Train/test split files for any dataset folder in the processed layout.

Two layouts are recognised by their camera folders:

- KITTI: `<date>/<drive>/image_02|image_03/rgb/<img_type>/<10-digit>.png|jpg`;
  lines read `<date>/<drive> <index> l|r`.
- Waymo, nuScenes, synthetic: `<sequence>/<cam>/rgb/<img_type>/<6-digit>.jpg|png`;
  lines read `<sequence> <index>` and the camera is chosen by the loader's `cam_name`.

A frame is listed only when the frames before and after it exist too, since training reads
frames (-1, 0, +1). Whole sequences go to either train or test, so no scene is in both.
"""

from __future__ import annotations

import logging
import os
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from dynamo_core.errors import ConfigError, DataError

from .files import write_text_atomic

logger = logging.getLogger(__name__)

KITTI_SIDES = {"image_02": "l", "image_03": "r"}
KITTI_FRAME = re.compile(r"^(\d{10})\.(?:png|jpg)$")
GENERIC_FRAME = re.compile(r"^(\d{6})\.(?:png|jpg)$")
IMAGE_FOLDERS = ("downsample", "original")
DEFAULT_CAMERA = "FRONT"
TRAIN_FILE, TEST_FILE = "train_files.txt", "test_files.txt"


@dataclass(frozen=True)
class CameraFrames:
    """The frame indices of one camera folder of one sequence."""

    sequence: str
    """Folder relative to the dataset root, with `/` separators."""
    camera: str
    indices: frozenset[int]


@dataclass
class SplitFiles:
    """What `write_splits` wrote."""

    layout: str
    """`kitti` or `generic`."""
    cameras: list[str]
    train_file: str
    test_file: str
    train_lines: int = 0
    test_lines: int = 0
    train_sequences: list[str] = field(default_factory=list)
    test_sequences: list[str] = field(default_factory=list)


def _frame_indices(camera_dir: Path, pattern: re.Pattern) -> frozenset[int]:
    """Indices present in every image folder (`rgb/downsample`, `rgb/original`) that exists."""
    found = []
    for name in IMAGE_FOLDERS:
        folder = camera_dir / "rgb" / name
        if folder.is_dir():
            found.append({int(m.group(1)) for m in map(pattern.match, os.listdir(folder)) if m})
    return frozenset(set.intersection(*found)) if found else frozenset()


def find_camera_folders(data_dir: Path) -> list[tuple[str, Path]]:
    """(sequence relative path, camera folder) for every folder that holds an `rgb/` image folder."""
    found = []
    visited = set()
    for root, dirs, _files in os.walk(data_dir, followlinks=True):
        real = os.path.realpath(root)
        if real in visited:  # a symbolic link loop
            dirs[:] = []
            continue
        visited.add(real)
        camera_dir = Path(root)
        if "rgb" in dirs and any((camera_dir / "rgb" / name).is_dir() for name in IMAGE_FOLDERS):
            if camera_dir == data_dir or camera_dir.parent == data_dir:
                raise DataError(
                    f"{camera_dir} is a camera folder directly under the dataset root; pass the folder that "
                    "holds the sequence folders, so that split lines name a sequence."
                )
            found.append((camera_dir.parent.relative_to(data_dir).as_posix(), camera_dir))
            dirs[:] = []  # frames live below; nothing else to find there
        else:
            dirs.sort()
    return found


def collect_frames(data_dir: Path, cam: Optional[str] = None) -> tuple[str, list[CameraFrames]]:
    """Detect the layout and list the frames of the chosen cameras.

    Returns the layout (`kitti` or `generic`) and one `CameraFrames` per sequence and camera.
    """
    if not data_dir.is_dir():
        raise DataError(f"dataset folder {data_dir} does not exist or is not a folder.")
    folders = find_camera_folders(data_dir)
    names = sorted({camera_dir.name for _, camera_dir in folders})
    if not folders:
        raise DataError(
            f"no camera folders with rgb/downsample or rgb/original found under {data_dir}. "
            "Pass the root of a dataset in the processed layout (e.g. the output of `dynamo prepare kitti`)."
        )
    kitti_names = [n for n in names if n in KITTI_SIDES]
    if cam is not None:
        if cam not in names:
            raise ConfigError(f"--cam {cam} matches no camera folder under {data_dir}; found: {', '.join(names)}.")
        chosen = [cam]
    elif kitti_names:
        chosen = kitti_names
    elif DEFAULT_CAMERA in names:
        chosen = [DEFAULT_CAMERA]
    elif len(names) == 1:
        chosen = names
    else:
        raise ConfigError(f"{data_dir} has several camera folders ({', '.join(names)}); choose one with --cam.")

    layout = "kitti" if all(c in KITTI_SIDES for c in chosen) else "generic"
    pattern = KITTI_FRAME if layout == "kitti" else GENERIC_FRAME
    frames = [
        CameraFrames(sequence, camera_dir.name, _frame_indices(camera_dir, pattern))
        for sequence, camera_dir in folders
        if camera_dir.name in chosen
    ]
    if not any(f.indices for f in frames):
        digits = 10 if layout == "kitti" else 6
        raise DataError(
            f"no frames named with {digits} digits (e.g. {'0' * digits}.jpg) in the {', '.join(chosen)} "
            f"camera folders under {data_dir}."
        )
    return layout, frames


def with_both_neighbours(indices: frozenset[int]) -> list[int]:
    """Indices whose previous and next frame both exist, sorted."""
    return sorted(i for i in indices if i - 1 in indices and i + 1 in indices)


def choose_test_sequences(sequences: list[str], test_fraction: float, seed: int) -> set[str]:
    """A seeded random choice of round(fraction * count) sequences, leaving both sides non-empty
    whenever the fraction is strictly between 0 and 1 and there are at least two sequences."""
    count = len(sequences)
    wanted = round(test_fraction * count)
    if 0 < test_fraction and count >= 2:
        wanted = max(wanted, 1)
    if test_fraction < 1:
        wanted = min(wanted, count - 1)
    shuffled = sorted(sequences)
    random.Random(seed).shuffle(shuffled)
    return set(shuffled[: max(wanted, 0)])


def split_lines(layout: str, frames: list[CameraFrames], test_sequences: set[str]) -> tuple[list[str], list[str]]:
    train, test = [], []
    for entry in sorted(frames, key=lambda f: (f.sequence, f.camera)):
        side = f" {KITTI_SIDES[entry.camera]}" if layout == "kitti" else ""
        for index in with_both_neighbours(entry.indices):
            (test if entry.sequence in test_sequences else train).append(f"{entry.sequence} {index}{side}")
    return train, test


def write_splits(
    data_dir: Path | str,
    out_dir: Path | str,
    test_fraction: float = 0.2,
    seed: int = 0,
    cam: Optional[str] = None,
) -> SplitFiles:
    """Write `train_files.txt` and `test_files.txt` for the dataset in `data_dir` into `out_dir`.

    `cam` picks one camera folder (`image_02`, `FRONT`, ...); by default KITTI uses both colour
    cameras and other layouts use `FRONT` (or their only camera).
    """
    if not 0 <= test_fraction <= 1:
        raise ConfigError(f"--test-fraction must lie in [0, 1], got {test_fraction}.")
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    layout, frames = collect_frames(data_dir, cam)
    usable = sorted({f.sequence for f in frames if with_both_neighbours(f.indices)})
    if not usable:
        raise DataError(
            f"no frame under {data_dir} has both neighbours; each sequence needs at least three consecutive frames."
        )
    skipped = sorted({f.sequence for f in frames} - set(usable))
    if skipped:
        logger.warning(
            "%d sequences have no frame with both neighbours and are left out, e.g. %s", len(skipped), skipped[0]
        )

    test_sequences = choose_test_sequences(usable, test_fraction, seed)
    train, test = split_lines(layout, frames, test_sequences)
    if not test and test_fraction > 0:
        logger.warning("only one usable sequence, so %s is empty", TEST_FILE)

    train_path, test_path = out_dir / TRAIN_FILE, out_dir / TEST_FILE
    write_text_atomic(train_path, "".join(f"{line}\n" for line in train))
    write_text_atomic(test_path, "".join(f"{line}\n" for line in test))
    return SplitFiles(
        layout=layout,
        cameras=sorted({f.camera for f in frames}),
        train_file=str(train_path),
        test_file=str(test_path),
        train_lines=len(train),
        test_lines=len(test),
        train_sequences=[s for s in usable if s not in test_sequences],
        test_sequences=sorted(test_sequences),
    )
