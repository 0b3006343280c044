"""Raw KITTI release -> the processed layout the KITTI loader reads.

Raw input::

    RAW/<date>/calib_cam_to_cam.txt, calib_velo_to_cam.txt, calib_imu_to_velo.txt
    RAW/<date>/<date>_drive_XXXX_sync/image_0{2,3}/data/<frame>.png
    RAW/<date>/<date>_drive_XXXX_sync/velodyne_points/data/<frame>.bin
    RAW/<date>/<date>_drive_XXXX_sync/oxts/data/<frame>.txt            optional: GPS/IMU packets

Processed output::

    OUT/<date>/<drive>/calib_*.txt
    OUT/<date>/<drive>/image_0{2,3}/rgb/original/<frame>.png     link to (or copy of) the raw frame
    OUT/<date>/<drive>/image_0{2,3}/rgb/downsample/<frame>.jpg   640x192, bicubic, JPEG quality 75
    OUT/<date>/<drive>/image_0{2,3}/depth/<frame>.npy            (M, 3) float64 rows [row, col, depth]
    OUT/<date>/<drive>/image_0{2,3}/odometry.txt                 vehicle pose per frame from OXTS, 16 numbers a line

Runs can be interrupted and repeated: outputs that exist whole are skipped.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
from PIL import Image, UnidentifiedImageError

from dynamo_core.errors import ConfigError, DataError

from .files import (
    atomic_output,
    copy_atomic,
    is_complete_jpeg,
    is_complete_npy,
    is_link_to,
    is_same_size_file,
    remove_stray_temp_files,
    save_npy_atomic,
    symlink_atomic,
    write_text_atomic,
)

logger = logging.getLogger(__name__)

CAMERAS = ("image_02", "image_03")
CALIBRATION_FILES = ("calib_cam_to_cam.txt", "calib_velo_to_cam.txt", "calib_imu_to_velo.txt")
DOWNSAMPLE_SIZE = (640, 192)
"""(width, height) of `rgb/downsample`, the size the KITTI models train at."""
JPEG_QUALITY = 75
DEPTH_DTYPE = np.dtype(np.float64)


# --------------------------------------------------------------------------- calibration


def read_calibration(path: Path) -> dict[str, np.ndarray | str]:
    """Parse a KITTI `key: values` calibration file; numeric values become float64 arrays."""
    try:
        lines = path.read_text().splitlines()
    except OSError as err:
        raise DataError(
            f"cannot read calibration file {path}: {err.strerror}. Re-extract the KITTI calibration archive."
        ) from None
    entries: dict[str, np.ndarray | str] = {}
    for line in lines:
        if ":" not in line:
            continue
        key, value = line.split(":", 1)
        value = value.strip()
        try:
            entries[key.strip()] = np.array([float(v) for v in value.split()], dtype=np.float64)
        except ValueError:
            entries[key.strip()] = value  # e.g. calib_time
    return entries


def _matrix(entries: dict, key: str, shape: tuple[int, ...], path: Path) -> np.ndarray:
    value = entries.get(key)
    if not isinstance(value, np.ndarray) or value.size != int(np.prod(shape)):
        raise DataError(
            f"calibration file {path} has no valid `{key}` entry of {int(np.prod(shape))} numbers. "
            "Re-extract the KITTI calibration archive."
        )
    return value.reshape(shape)


@dataclass(frozen=True)
class CameraProjection:
    """Maps homogeneous velodyne points to pixels of one rectified camera."""

    camera: str
    matrix: np.ndarray
    """(3, 4) float64: P_rect @ R_rect @ T_cam_velo."""
    height: int
    width: int


def camera_projections(calib_dir: Path) -> dict[str, CameraProjection]:
    """Projections velodyne -> rectified image for both colour cameras, from a date's calibration files."""
    cam_path = calib_dir / "calib_cam_to_cam.txt"
    velo_path = calib_dir / "calib_velo_to_cam.txt"
    cam_to_cam = read_calibration(cam_path)
    velo_to_cam = read_calibration(velo_path)

    cam_from_velo = np.eye(4)
    cam_from_velo[:3, :3] = _matrix(velo_to_cam, "R", (3, 3), velo_path)
    cam_from_velo[:3, 3] = _matrix(velo_to_cam, "T", (3,), velo_path)
    rectify = np.eye(4)
    rectify[:3, :3] = _matrix(cam_to_cam, "R_rect_00", (3, 3), cam_path)

    projections = {}
    for camera in CAMERAS:
        index = camera[-2:]
        width, height = _matrix(cam_to_cam, f"S_rect_{index}", (2,), cam_path).astype(np.int64)
        p_rect = _matrix(cam_to_cam, f"P_rect_{index}", (3, 4), cam_path)
        # The product is grouped as (P_rect @ R_rect) @ T so pixel rounding matches the devkit bit for bit.
        matrix = np.dot(np.dot(p_rect, rectify), cam_from_velo)
        projections[camera] = CameraProjection(camera, matrix, int(height), int(width))
    return projections


# --------------------------------------------------------------------------- lidar depth


def read_velodyne(path: Path) -> np.ndarray:
    """A raw scan as (N, 4) float32 rows: forward, left, up, reflectance."""
    raw = np.fromfile(path, dtype=np.float32)
    if raw.size % 4:
        raise DataError(
            f"velodyne scan {path} is truncated ({raw.size * 4} bytes, not a multiple of 16). Re-extract it."
        )
    return raw.reshape(-1, 4)


def lidar_depth_points(scan: np.ndarray, projection: CameraProjection) -> np.ndarray:
    """Project a scan into one camera as sparse depth points.

    scan: (N, 4) float32 velodyne rows (forward, left, up, reflectance).
    Returns (M, 3) float64 rows [row, col, depth] in row-major pixel order, where depth is the
    point's forward distance in the lidar frame. Pixels follow the KITTI devkit: `round(u) - 1`,
    `round(v) - 1`; points outside the image are dropped; the nearest point wins a pixel.
    """
    ahead = scan[scan[:, 0] >= 0]
    forward, left, up = (ahead[:, i].astype(np.float64) for i in range(3))
    # Plain float64 arithmetic instead of a BLAS product: identical on every machine and thread
    # count, and this thin (3, 4) x (4, N) product only slows down with BLAS threads.
    u_z, v_z, z = (m[0] * forward + m[1] * left + m[2] * up + m[3] for m in projection.matrix)
    with np.errstate(divide="ignore", invalid="ignore"):
        cols = np.round(u_z / z) - 1
        rows = np.round(v_z / z) - 1
    depth = forward

    inside = (cols >= 0) & (rows >= 0) & (cols < projection.width) & (rows < projection.height)
    rows, cols, depth = rows[inside].astype(np.int64), cols[inside].astype(np.int64), depth[inside]

    depth_map = np.zeros((projection.height, projection.width), dtype=np.float64)
    depth_map[rows, cols] = depth  # where points share a pixel, numpy keeps the last one

    # Then each group of points that share a key puts its nearest depth on one pixel.
    # Compatibility quirk: the released KITTI data keys pixels by `row * (width - 1) + col - 1`,
    # not `row * width + col`, so the last column of a row and the first column of the next row
    # fall into one group, whose minimum lands on the pixel of the group's first point.
    # Reproduced as is so that depth files match the released ones exactly.
    keys = rows * (projection.width - 1) + cols - 1
    _, first, group_of, counts = np.unique(keys, return_index=True, return_inverse=True, return_counts=True)
    nearest = np.full(len(counts), np.inf)
    np.minimum.at(nearest, group_of, depth)
    shared = counts > 1
    depth_map[rows[first[shared]], cols[first[shared]]] = nearest[shared]

    hit_rows, hit_cols = np.nonzero(depth_map > 0)
    return np.stack([hit_rows, hit_cols, depth_map[hit_rows, hit_cols]], axis=1).astype(DEPTH_DTYPE)


# --------------------------------------------------------------------------- discovery


@dataclass(frozen=True)
class Drive:
    date: str
    name: str
    raw_dir: Path

    @property
    def relative(self) -> Path:
        return Path(self.date) / self.name


def find_drives(raw: Path) -> list[Drive]:
    """Every `<date>/<date>_drive_*` folder under `raw`, sorted."""
    if not raw.is_dir():
        raise DataError(
            f"raw KITTI folder {raw} does not exist or is not a folder. "
            "Pass the folder holding the date folders (e.g. 2011_09_26/)."
        )
    drives = []
    for date_dir in sorted(p for p in raw.iterdir() if p.is_dir()):
        for drive_dir in sorted(p for p in date_dir.iterdir() if p.is_dir()):
            if drive_dir.name.startswith(f"{date_dir.name}_drive_"):
                drives.append(Drive(date_dir.name, drive_dir.name, drive_dir))
    if not drives:
        raise DataError(
            f"no drives found in {raw}: expected folders like 2011_09_26/2011_09_26_drive_0001_sync/. "
            "Pass the folder holding the extracted date folders."
        )
    return drives


def check_calibration(date_dir: Path) -> None:
    for name in CALIBRATION_FILES:
        path = date_dir / name
        if not path.is_file():
            raise DataError(
                f"missing calibration file {path}. "
                f"Extract the KITTI calibration archive of {date_dir.name} into {date_dir}."
            )


def drive_frames(drive_dir: Path) -> dict[str, list[str]]:
    """Frame names (file stems) per camera that has a `data/` folder of PNG images."""
    frames = {}
    for camera in CAMERAS:
        data = drive_dir / camera / "data"
        if data.is_dir():
            frames[camera] = sorted(p.stem for p in data.iterdir() if p.suffix == ".png")
    if not any(frames.values()):
        raise DataError(
            f"drive {drive_dir} has no PNG frames in image_02/data or image_03/data. Re-extract this drive."
        )
    return frames


# --------------------------------------------------------------------------- one frame


@dataclass(frozen=True)
class FrameJob:
    """Everything a worker needs to write one frame's outputs for its cameras."""

    raw_dir: Path
    out_dir: Path
    frame: str
    projections: tuple[CameraProjection, ...]
    copy_images: bool


@dataclass(frozen=True)
class FrameResult:
    written: int
    skipped: int
    missing_scan: Optional[Path]


def _write_original(source: Path, path: Path, copy_images: bool) -> bool:
    if copy_images:
        if is_same_size_file(path, source):
            return False
        copy_atomic(source, path)
    else:
        target = source.resolve()
        if is_link_to(path, target):
            return False
        symlink_atomic(target, path)
    return True


def _write_downsample(source: Path, path: Path) -> bool:
    if is_complete_jpeg(path):
        return False
    try:
        with Image.open(source) as image:
            small = image.convert("RGB").resize(DOWNSAMPLE_SIZE, Image.Resampling.BICUBIC)
    except (OSError, UnidentifiedImageError) as err:
        raise DataError(f"cannot read image {source}: {err}. Re-extract this drive.") from None
    with atomic_output(path) as stream:
        small.save(stream, format="JPEG", quality=JPEG_QUALITY)
    return True


def prepare_frame(job: FrameJob) -> FrameResult:
    """Write the original link, the downsampled JPEG and the lidar depth of one frame."""
    written = skipped = 0
    scan_path = job.raw_dir / "velodyne_points" / "data" / f"{job.frame}.bin"
    scan = None
    missing_scan = None
    for projection in job.projections:
        source = job.raw_dir / projection.camera / "data" / f"{job.frame}.png"
        rgb = job.out_dir / projection.camera / "rgb"
        done = [
            _write_original(source, rgb / "original" / source.name, job.copy_images),
            _write_downsample(source, rgb / "downsample" / f"{job.frame}.jpg"),
        ]
        depth_path = job.out_dir / projection.camera / "depth" / f"{job.frame}.npy"
        if is_complete_npy(depth_path, DEPTH_DTYPE, 3):
            done.append(False)
        elif scan is None and not scan_path.is_file():
            missing_scan = scan_path
        else:
            if scan is None:
                scan = read_velodyne(scan_path)
            save_npy_atomic(depth_path, lidar_depth_points(scan, projection))
            done.append(True)
        written += sum(done)
        skipped += len(done) - sum(done)
    return FrameResult(written, skipped, missing_scan)


# --------------------------------------------------------------------------- odometry from OXTS

EARTH_RADIUS = 6378137.0
"""Metres; the raw devkit's Mercator radius."""
OXTS_VALUES = 30
ODOMETRY_FILE = "odometry.txt"


def read_oxts(path: Path) -> np.ndarray:
    """The 30 values of one OXTS packet: lat, lon, alt, roll, pitch, yaw, then velocities etc."""
    try:
        values = np.array([float(v) for v in path.read_text().split()], dtype=np.float64)
    except (OSError, ValueError) as err:
        raise DataError(f"OXTS packet {path} is unreadable ({err}); re-extract the drive's oxts folder.") from None
    if values.size != OXTS_VALUES or not np.isfinite(values[:6]).all():
        raise DataError(f"OXTS packet {path} holds {values.size} values, expected {OXTS_VALUES}; re-extract it.")
    return values


def oxts_poses(packets: np.ndarray) -> np.ndarray:
    """(N, 30) packets -> (N, 4, 4) vehicle-to-world poses, as the KITTI raw devkit computes them.

    Position: Mercator with the scale of the first packet's latitude; orientation Rz(yaw) Ry(pitch)
    Rx(roll). The IMU axes are x forward, y left, z up, the convention of the Waymo odometry files.
    """
    lat, lon, alt, roll, pitch, yaw = (packets[:, i] for i in range(6))
    scale = np.cos(lat[0] * np.pi / 180.0)
    poses = np.zeros((len(packets), 4, 4))
    poses[:, 0, 3] = scale * EARTH_RADIUS * np.pi * lon / 180.0
    poses[:, 1, 3] = scale * EARTH_RADIUS * np.log(np.tan((90.0 + lat) * np.pi / 360.0))
    poses[:, 2, 3] = alt
    cr, sr, cp, sp, cy, sy = np.cos(roll), np.sin(roll), np.cos(pitch), np.sin(pitch), np.cos(yaw), np.sin(yaw)
    poses[:, 0, 0], poses[:, 0, 1], poses[:, 0, 2] = cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr
    poses[:, 1, 0], poses[:, 1, 1], poses[:, 1, 2] = sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr
    poses[:, 2, 0], poses[:, 2, 1], poses[:, 2, 2] = -sp, cp * sr, cp * cr
    poses[:, 3, 3] = 1.0
    return poses


def drive_odometry(drive_dir: Path) -> Optional[str]:
    """The odometry.txt text of a drive, one pose per OXTS packet; None when the drive has no packets."""
    folder = drive_dir / "oxts" / "data"
    paths = sorted(folder.glob("*.txt")) if folder.is_dir() else []
    if not paths:
        return None
    poses = oxts_poses(np.stack([read_oxts(path) for path in paths]))
    return "".join(" ".join(str(float(v)) for v in pose.reshape(-1)) + "\n" for pose in poses)


def _write_odometry(drive_dir: Path, out_dir: Path, cameras) -> tuple[int, int, bool]:
    """odometry.txt in each camera folder; (written, skipped, whether the drive had packets)."""
    text = drive_odometry(drive_dir)
    if text is None:
        return 0, 0, False
    written = skipped = 0
    for camera in cameras:
        path = out_dir / camera / ODOMETRY_FILE
        if path.is_file() and path.read_text() == text:
            skipped += 1
        else:
            write_text_atomic(path, text)
            written += 1
    return written, skipped, True


# --------------------------------------------------------------------------- whole dataset


@dataclass
class KittiPreparation:
    """What a `prepare_kitti` run did."""

    drives: int = 0
    frames: int = 0
    files_written: int = 0
    files_skipped: int = 0
    missing_scans: list[str] = field(default_factory=list)
    """Velodyne files that were expected but absent; those frames have no depth file."""
    drives_without_oxts: list[str] = field(default_factory=list)
    """Drives with no oxts/data packets, hence no odometry.txt."""
    seconds: float = 0.0


def _copy_calibration(date_dir: Path, out_dir: Path) -> tuple[int, int]:
    written = skipped = 0
    for name in CALIBRATION_FILES:
        source, path = date_dir / name, out_dir / name
        if path.is_file() and path.read_bytes() == source.read_bytes():
            skipped += 1
        else:
            copy_atomic(source, path)
            written += 1
    return written, skipped


def _plan(raw: Path, out: Path, copy_images: bool, result: KittiPreparation) -> list[FrameJob]:
    """Validate the input, copy calibration, clear stray temporary files; return the frame jobs."""
    drives = find_drives(raw)
    projections: dict[str, dict[str, CameraProjection]] = {}
    jobs = []
    for drive in drives:
        date_dir = drive.raw_dir.parent
        if drive.date not in projections:
            check_calibration(date_dir)
            projections[drive.date] = camera_projections(date_dir)
        out_dir = out / drive.relative
        written, skipped = _copy_calibration(date_dir, out_dir)
        result.files_written += written
        result.files_skipped += skipped
        frames = {camera: set(names) for camera, names in drive_frames(drive.raw_dir).items()}
        written, skipped, has_oxts = _write_odometry(drive.raw_dir, out_dir, sorted(frames))
        result.files_written += written
        result.files_skipped += skipped
        if not has_oxts:
            result.drives_without_oxts.append(str(drive.relative))
        for camera in frames:
            for folder in ("", "rgb/original", "rgb/downsample", "depth"):
                remove_stray_temp_files(out_dir / camera / folder)
        for frame in sorted(set().union(*frames.values())):
            cameras = tuple(projections[drive.date][c] for c in CAMERAS if frame in frames.get(c, ()))
            jobs.append(FrameJob(drive.raw_dir, out_dir, frame, cameras, copy_images))
    result.drives = len(drives)
    return jobs


def _ignore_interrupts() -> None:
    """Pool workers leave Ctrl-C to the parent, which stops them without a traceback each."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _run(jobs: list[FrameJob], workers: int, collect: Callable[[FrameResult], None]) -> None:
    """Prepare every frame, in `workers` processes, and hand each result to `collect`."""
    if workers == 1:
        for job in jobs:
            collect(prepare_frame(job))
        return
    # A Pool's workers are killed outright on an error or Ctrl-C (`terminate` on leaving the
    # block), which is safe: outputs only ever appear through an atomic rename.
    with multiprocessing.get_context("spawn").Pool(workers, initializer=_ignore_interrupts) as pool:
        for result in pool.imap(prepare_frame, jobs, chunksize=4):
            collect(result)
        pool.close()
        pool.join()


def prepare_kitti(
    raw: Path | str,
    out: Path | str,
    workers: int = 1,
    copy_images: bool = False,
    progress: Optional[Callable[[int, int], None]] = None,
) -> KittiPreparation:
    """Convert the raw KITTI release in `raw` into the processed layout in `out`.

    `workers` processes convert frames in parallel; `copy_images` copies the original PNGs
    instead of linking to them; `progress(done, total)` is called after each frame.
    """
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}.")
    started = time.perf_counter()
    raw, out = Path(raw), Path(out)
    result = KittiPreparation()
    jobs = _plan(raw, out, copy_images, result)
    result.frames = len(jobs)
    logger.info("%d frames in %d drives under %s", len(jobs), result.drives, raw)
    done = 0

    def collect(frame: FrameResult) -> None:
        nonlocal done
        done += 1
        result.files_written += frame.written
        result.files_skipped += frame.skipped
        if frame.missing_scan is not None:
            result.missing_scans.append(str(frame.missing_scan))
        if progress:
            progress(done, len(jobs))

    if progress:
        progress(0, len(jobs))
    _run(jobs, workers, collect)
    result.seconds = time.perf_counter() - started
    if result.missing_scans:
        logger.warning(
            "%d frames have no velodyne scan, so no depth file; the first is %s",
            len(result.missing_scans),
            result.missing_scans[0],
        )
    return result
