"""Build a small raw KITTI release from the `prepare_kitti.pt` fixture and the sample frames."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from conftest import REFERENCE, SHARED, load_fixture

CAMERAS = ("image_02", "image_03")
CALIBRATION_FILES = ("calib_cam_to_cam.txt", "calib_velo_to_cam.txt", "calib_imu_to_velo.txt")


def kitti_fixture() -> dict:
    return load_fixture(REFERENCE / "prepare_kitti.pt")


def source_drive(fixture: dict) -> Path:
    """The shared processed drive whose calibration the fixture used (and whose PNG frames we reuse)."""
    return SHARED / "data" / fixture["calib_dir"]


def build_raw_kitti(root: Path, fixture: dict, frames: int | None = None) -> tuple[Path, Path]:
    """Lay out `root/<date>/<drive>` like the raw release; return (raw root, raw drive folder).

    Every frame uses one of the shared 1242x375 PNGs per camera. Frame 0 gets the fixture's scan
    as is; later frames get it moved forward by 0.5 m per frame, so their depth files differ.
    """
    drive_src = source_drive(fixture)
    date, drive = drive_src.parent.name, drive_src.name
    date_dir = root / date
    drive_dir = date_dir / drive
    date_dir.mkdir(parents=True)
    for name in CALIBRATION_FILES:
        shutil.copyfile(drive_src / name, date_dir / name)

    pngs = {cam: sorted((drive_src / cam / "rgb" / "original").glob("*.png")) for cam in CAMERAS}
    count = frames if frames is not None else len(pngs[CAMERAS[0]])
    scan = fixture["velodyne"].numpy().astype(np.float32)
    (drive_dir / "velodyne_points" / "data").mkdir(parents=True)
    for cam in CAMERAS:
        (drive_dir / cam / "data").mkdir(parents=True)
    for index in range(count):
        name = f"{index:010d}"
        for cam in CAMERAS:
            os.symlink(pngs[cam][index % len(pngs[cam])], drive_dir / cam / "data" / f"{name}.png")
        moved = scan.copy()
        moved[:, 0] += np.float32(0.5 * index)
        moved.tofile(drive_dir / "velodyne_points" / "data" / f"{name}.bin")
    return root, drive_dir


def tree(folder: Path) -> dict[str, tuple[str, bytes | str]]:
    """Every entry below `folder`: links by target, files by content."""
    entries = {}
    for path in sorted(folder.rglob("*")):
        key = path.relative_to(folder).as_posix()
        if path.is_symlink():
            entries[key] = ("link", os.readlink(path))
        elif path.is_file():
            entries[key] = ("file", path.read_bytes())
    return entries
