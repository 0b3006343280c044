"""Waymo Open Dataset v1 (TFRecords of `Frame` messages) or v2 (parquet components) -> the processed
layout the Waymo loader reads.

No TensorFlow and no `waymo-open-dataset`: v1 records are read by `tfrecord`, messages decoded by
`protobuf` with the field numbers of the published `dataset.proto` / `label.proto`; v2 components
are read by `waymo_v2` (pyarrow) into the same `Frame`s, so both releases share every later step
and give the same files.

Raw input, the release told apart by its layout::

    RAW/{train,val}/segment-<name>_with_camera_labels.tfrecord       v1
    RAW/{training,validation}/<component>/<name>.parquet             v2 (see `waymo_v2`)

Processed output, per segment (`<segment>` is `segment-<name>`, as the v1 file name up to `_with_camera_labels`)::

    OUT/<train|val>/<segment>/FRONT/rgb/original/%06d.jpg    1920x1280, undistorted (k1 k2 p1 p2 k3), same K, quality 95
    OUT/<train|val>/<segment>/FRONT/rgb/downsample/%06d.jpg  480x320, area interpolation, quality 95
    OUT/<train|val>/<segment>/FRONT/rgb/cam.json             intrinsic, dim, extrinsic, intrinsic_mat (frame 0)
    OUT/<train|val>/<segment>/FRONT/depth/%06d.npy           float64 rows [u, v, z], first lidar returns
    OUT/<train|val>/<segment>/FRONT/mask/%06d.npz            semantic, instance (H, W, 1), labelled frames only
    OUT/<train|val>/<segment>/FRONT/mask/%06d.json           object annotations for motion masks (no pickle)
    OUT/<train|val>/<segment>/FRONT/odometry.txt             the FRONT image's vehicle pose per frame, 16 numbers

A segment is complete once `FRONT/.prepared` is written; a rerun skips it.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional

import cv2
import numpy as np

from dynamo_core.errors import ConfigError, DataError

from .files import atomic_output, remove_stray_temp_files, save_npy_atomic, write_text_atomic
from .sequences import SequenceJob, SequenceResult, mark_complete, run_sequences
from .tfrecord import count_records, read_records
from .waymo_frame import CAMERA_FRONT, LASER_TOP, BoxLabel, CameraCalibration, Frame, RangeImages, parse_frame
from .waymo_v2 import SPLIT_FOLDERS, ParquetSegment, count_front_images, find_parquet_segments, import_pyarrow

logger = logging.getLogger(__name__)

SEGMENT_FILE = re.compile(r"^(segment-.+?)_with_camera_labels\.tfrecord$")
SPLITS = ("train", "val")
RELEASE_SEGMENTS = {"train": 798, "val": 202}
"""Segments in the full v1.4 release with camera labels; fewer only earns a warning."""
CAMERA = "FRONT"
DOWNSAMPLE_SIZE = (480, 320)
JPEG_QUALITY = 95
MOVABLE_CLASSES = (2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 16, 27)
"""Panoptic classes whose instances get an object annotation (vehicles, people, cyclists, ...)."""
OPTICAL_TO_CAMERA = np.array([[0, 0, 1, 0], [-1, 0, 0, 0], [0, -1, 0, 0], [0, 0, 0, 1]], dtype=np.float64)
"""Optical axes (x right, y down, z forward) -> Waymo camera axes (x forward, y left, z up)."""


# --------------------------------------------------------------------------- lidar


def beam_inclinations(calibration, height: int) -> np.ndarray:
    """Inclination of each range-image row, row 0 the highest."""
    values = calibration.beam_inclinations
    if values.size == 0:
        ratios = (np.arange(height, dtype=np.float64) + 0.5) / height
        values = calibration.inclination_min + ratios * (calibration.inclination_max - calibration.inclination_min)
    if values.size != height:
        raise DataError(f"a laser has {values.size} beam inclinations for a range image of {height} rows")
    return values[::-1]


def column_azimuths(extrinsic: np.ndarray, width: int) -> np.ndarray:
    """Azimuth of each range-image column in the laser frame."""
    correction = np.arctan2(extrinsic[1, 0], extrinsic[0, 0])
    ratios = (width - np.arange(width, dtype=np.float64) - 0.5) / width
    return (ratios * 2 - 1) * np.pi - correction


def pose_matrices(pose_image: np.ndarray) -> np.ndarray:
    """(N, 6) roll, pitch, yaw, x, y, z -> (N, 4, 4) transforms Rz(yaw) Ry(pitch) Rx(roll) + t."""
    roll, pitch, yaw = pose_image[:, 0], pose_image[:, 1], pose_image[:, 2]
    cr, sr, cp, sp, cy, sy = np.cos(roll), np.sin(roll), np.cos(pitch), np.sin(pitch), np.cos(yaw), np.sin(yaw)
    matrices = np.zeros((pose_image.shape[0], 4, 4))
    matrices[:, 0, 0] = cy * cp
    matrices[:, 0, 1] = cy * sp * sr - sy * cr
    matrices[:, 0, 2] = cy * sp * cr + sy * sr
    matrices[:, 1, 0] = sy * cp
    matrices[:, 1, 1] = sy * sp * sr + cy * cr
    matrices[:, 1, 2] = sy * sp * cr - cy * sr
    matrices[:, 2, 0] = -sp
    matrices[:, 2, 1] = cp * sr
    matrices[:, 2, 2] = cp * cr
    matrices[:, :3, 3] = pose_image[:, 3:6]
    matrices[:, 3, 3] = 1
    return matrices


def laser_points(laser: RangeImages, calibration, frame_pose: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vehicle-frame points (N, 3) of the pixels with range > 0, row-major, and their flat pixel indices."""
    image = laser.range_image
    height, width = image.shape[:2]
    ranges = image[..., 0]
    rows, cols = np.nonzero(ranges > 0)
    r = ranges[rows, cols]
    inclination = beam_inclinations(calibration, height)[rows]
    azimuth = column_azimuths(calibration.extrinsic, width)[cols]
    sensor = np.stack(
        [np.cos(azimuth) * np.cos(inclination) * r, np.sin(azimuth) * np.cos(inclination) * r, np.sin(inclination) * r],
        axis=1,
    )
    points = sensor @ calibration.extrinsic[:3, :3].T + calibration.extrinsic[:3, 3]
    if laser.name == LASER_TOP and laser.pose is not None:
        if laser.pose.shape[:2] != (height, width):
            raise DataError(f"the TOP pose image has shape {laser.pose.shape}, its range image {image.shape}")
        pixel_pose = pose_matrices(laser.pose[rows, cols].reshape(-1, 6))
        world = np.einsum("nij,nj->ni", pixel_pose[:, :3, :3], points) + pixel_pose[:, :3, 3]
        to_vehicle = np.linalg.inv(frame_pose)
        points = world @ to_vehicle[:3, :3].T + to_vehicle[:3, 3]
    return points, rows * width + cols


def frame_points(frame: Frame) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """All lasers' first-return points in the vehicle frame (lasers by name) and, when every
    laser carries one, their camera projections (N, 6)."""
    points, projections = [], []
    for laser in frame.lasers:
        laser_pts, pixels = laser_points(laser, frame.laser_calibrations[laser.name], frame.pose)
        points.append(laser_pts)
        if laser.camera_projection is not None:
            projections.append(laser.camera_projection.reshape(-1, laser.camera_projection.shape[-1])[pixels])
    all_points = np.concatenate(points) if points else np.zeros((0, 3))
    all_projections = np.concatenate(projections) if projections and len(projections) == len(points) else None
    return all_points, all_projections


def intrinsic_matrix(calibration: CameraCalibration) -> np.ndarray:
    f_u, f_v, c_u, c_v = calibration.intrinsic[:4]
    return np.array([[f_u, 0, c_u], [0, f_v, c_v], [0, 0, 1]], dtype=np.float64)


def depth_points(points: np.ndarray, calibration: CameraCalibration) -> np.ndarray:
    """(M, 3) float64 rows [u, v, z] of the vehicle-frame points that fall inside the image, in order."""
    to_optical = np.linalg.inv(calibration.extrinsic @ OPTICAL_TO_CAMERA)
    camera = points @ to_optical[:3, :3].T + to_optical[:3, 3]
    z = camera[:, 2]
    front = z > 0
    camera, z = camera[front], z[front]
    k = intrinsic_matrix(calibration)
    u = k[0, 0] * camera[:, 0] / z + k[0, 2]
    v = k[1, 1] * camera[:, 1] / z + k[1, 2]
    inside = (u >= 0) & (u < calibration.width) & (v >= 0) & (v < calibration.height)
    return np.stack([u[inside], v[inside], z[inside]], axis=1).astype(np.float64)


# --------------------------------------------------------------------------- camera


def camera_json(calibration: CameraCalibration) -> dict:
    """The released `cam.json`: the same keys in the same order."""
    k = intrinsic_matrix(calibration)
    k[0] /= calibration.width
    k[1] /= calibration.height
    return {
        "intrinsic": [float(v) for v in calibration.intrinsic],
        "dim": [int(calibration.height), int(calibration.width)],
        "extrinsic": [float(v) for v in calibration.extrinsic.reshape(-1)],
        "intrinsic_mat": k.tolist(),
    }


def decode_jpeg(data: bytes, what: str) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise DataError(f"{what} is not a decodable JPEG")
    return image


class Undistorter:
    """Removes lens distortion (k1, k2, p1, p2, k3) keeping the same K; the pixel maps are built
    once per calibration, as `cv2.undistort` would build them on every call."""

    def __init__(self) -> None:
        self._maps: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}

    def __call__(self, image: np.ndarray, calibration: CameraCalibration) -> np.ndarray:
        key = calibration.intrinsic.tobytes() + np.array(image.shape[:2]).tobytes()
        if key not in self._maps:
            k = intrinsic_matrix(calibration)
            self._maps[key] = cv2.initUndistortRectifyMap(
                k, calibration.intrinsic[4:9], None, k, (image.shape[1], image.shape[0]), cv2.CV_16SC2
            )
        first, second = self._maps[key]
        return cv2.remap(image, first, second, cv2.INTER_LINEAR)


def encode_jpeg(image: np.ndarray) -> bytes:
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise DataError("could not encode a JPEG")
    return buffer.tobytes()


def pose_line(pose: np.ndarray) -> str:
    return " ".join(str(float(v)) for v in pose.reshape(-1))


# --------------------------------------------------------------------------- labels


def panoptic_masks(png: bytes, divisor: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    """`semantic` and `instance` (H, W, 1) = divmod(panoptic, divisor), uint8 where they fit."""
    panoptic = cv2.imdecode(np.frombuffer(png, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if panoptic is None or panoptic.ndim != 2:
        raise DataError(f"{what}: the panoptic label is not a one-channel PNG")
    if divisor <= 0:
        raise DataError(f"{what}: the panoptic label divisor is {divisor}")
    semantic, instance = np.divmod(panoptic.astype(np.int64), divisor)

    def narrow(values: np.ndarray) -> np.ndarray:
        dtype = np.uint8 if values.max(initial=0) < 256 else np.uint16
        return values.astype(dtype)[..., None]

    return narrow(semantic), narrow(instance)


def inside_box(points: np.ndarray, label: BoxLabel) -> np.ndarray:
    """Which points lie strictly inside the upright box."""
    offset = points - np.asarray(label.center)
    cos, sin = np.cos(label.heading), np.sin(label.heading)
    along = cos * offset[:, 0] + sin * offset[:, 1]
    across = -sin * offset[:, 0] + cos * offset[:, 1]
    return (
        (np.abs(along) < label.length / 2) & (np.abs(across) < label.width / 2) & (np.abs(offset[:, 2]) < label.height / 2)
    )


def _contours(mask: np.ndarray, offset: tuple[int, int] = (0, 0)) -> list[list[list[int]]]:
    found = cv2.findContours(mask.astype(np.uint8), cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE, offset=offset)[-2]
    return [contour.reshape(-1, 2).tolist() for contour in found]


def object_annotations(
    semantic: np.ndarray,
    instance: np.ndarray,
    points: np.ndarray,
    projections: Optional[np.ndarray],
    labels: list[BoxLabel],
) -> list[dict]:
    """One entry per movable class and instance id (0 up to the class's largest), in that order.

    Each holds the instance's mask contours, its class and, when a 3D box holds some of the
    lidar points seen on the mask, that box (the first with the highest fraction): type, speed,
    acceleration, centre, size [length, width, height], heading and the fraction as `match`.
    Contours are traced in a crop around the instance (one pixel of margin), which gives the
    same points as tracing the whole image.
    """
    semantic, instance = semantic[..., 0], instance[..., 0]
    height, width = semantic.shape
    pixel_point = np.full((height, width), -1, dtype=np.int64)
    if projections is not None and points.shape[0]:
        seen = projections[:, 0] == CAMERA_FRONT
        x, y = projections[:, 1], projections[:, 2]
        seen &= (x >= 0) & (x < width) & (y >= 0) & (y < height)
        index = np.flatnonzero(seen)
        pixel_point[y[index], x[index]] = index  # the last point wins a pixel
    insides = [inside_box(points, label) for label in labels]
    annotations = []
    movable_rows, movable_cols = np.nonzero(np.isin(semantic, MOVABLE_CLASSES))  # one pass over the image
    movable_classes = semantic[movable_rows, movable_cols]
    for cls in MOVABLE_CLASSES:
        of_class = movable_classes == cls
        if not of_class.any():
            continue
        rows, cols = movable_rows[of_class], movable_cols[of_class]
        ids = instance[rows, cols]
        for instance_id in range(int(ids.max()) + 1):
            entry = {
                "mask": [], "mask_label": cls,
                "speed": [None] * 3, "accel": [None] * 3, "center": [None] * 3, "dim": [None] * 3,
                "heading": None, "box_label": None, "match": 0,
            }
            member = ids == instance_id
            if member.any():
                r, c = rows[member], cols[member]
                top, left = max(int(r.min()) - 1, 0), max(int(c.min()) - 1, 0)
                bottom, right = min(int(r.max()) + 2, height), min(int(c.max()) + 2, width)
                crop = np.zeros((bottom - top, right - left), dtype=np.uint8)
                crop[r - top, c - left] = 1
                entry["mask"] = _contours(crop, (left, top))
                hit = pixel_point[r, c]
                hit = np.unique(hit[hit >= 0])
                if hit.size and insides:
                    fractions = [float(inside[hit].sum()) / hit.size for inside in insides]
                    best = int(np.argmax(fractions))
                    if fractions[best] > 0:
                        label = labels[best]
                        entry.update(
                            speed=list(label.speed), accel=list(label.accel), center=list(label.center),
                            dim=[label.length, label.width, label.height], heading=label.heading,
                            box_label=label.type, match=fractions[best],
                        )
            annotations.append(entry)
    return annotations


# --------------------------------------------------------------------------- one segment


def segment_name(path: Path) -> Optional[str]:
    match = SEGMENT_FILE.match(path.name)
    return match.group(1) if match else None


def _write_bytes(path: Path, data: bytes) -> None:
    with atomic_output(path) as stream:
        stream.write(data)


def _write_npz(path: Path, **arrays: np.ndarray) -> None:
    with atomic_output(path) as stream:
        np.savez_compressed(stream, **arrays)


def write_frame(frame: Frame, index: int, out_dir: Path, what: str, undistort: Optional[Undistorter] = None) -> bool:
    """Write one frame's images, depth and (when labelled) masks; True when it was labelled."""
    calibration = frame.front_calibration
    undistort = undistort or Undistorter()
    original = undistort(decode_jpeg(frame.front.jpeg, f"{what}: the FRONT image"), calibration)
    downsample = cv2.resize(original, DOWNSAMPLE_SIZE, interpolation=cv2.INTER_AREA)
    _write_bytes(out_dir / "rgb" / "original" / f"{index:06d}.jpg", encode_jpeg(original))
    _write_bytes(out_dir / "rgb" / "downsample" / f"{index:06d}.jpg", encode_jpeg(downsample))
    points, projections = frame_points(frame)
    save_npy_atomic(out_dir / "depth" / f"{index:06d}.npy", depth_points(points, calibration))
    if frame.front.panoptic_png is None:
        return False
    semantic, instance = panoptic_masks(frame.front.panoptic_png, frame.front.panoptic_divisor, what)
    annotations = object_annotations(semantic, instance, points, projections, frame.labels)
    _write_npz(out_dir / "mask" / f"{index:06d}.npz", semantic=semantic, instance=instance)
    write_text_atomic(out_dir / "mask" / f"{index:06d}.json", json.dumps(annotations, separators=(",", ":")) + "\n")
    return True


def write_segment(frames: Iterable[tuple[str, Callable[[], Frame]]], source: str, job: SequenceJob,
                  tick: Callable[[], None]) -> tuple[int, int]:
    """Write a segment's frames, then `cam.json`, `odometry.txt` and the marker; returns (frames, labelled frames).

    `frames` yields, in time order, where each frame comes from (for error messages) and a function
    that decodes it; `source` names the segment's input for the error when there is no frame.
    """
    out_dir = job.out_dir
    for folder in ("", "rgb", "rgb/original", "rgb/downsample", "depth", "mask"):
        remove_stray_temp_files(out_dir / folder)
    poses, labelled, cam = [], 0, None
    undistort = Undistorter()
    for index, (what, decode) in enumerate(frames):
        try:
            frame = decode()
            if cam is None:
                cam = camera_json(frame.front_calibration)
            labelled += write_frame(frame, index, out_dir, what, undistort)
        except DataError as err:
            message = str(err) if str(err).startswith(what) else f"{what}: {err}"
            raise DataError(f"{message}; re-download the file if it persists.") from None
        except (ValueError, IndexError, KeyError, cv2.error) as err:  # malformed values in a readable record or row
            raise DataError(f"{what} is not a readable Frame ({type(err).__name__}: {err}); re-download the file.") from None
        poses.append(pose_line(frame.front.pose))
        tick()
    if not poses:
        raise DataError(f"{source} holds no frames; re-download it.")
    write_text_atomic(out_dir / "rgb" / "cam.json", json.dumps(cam))  # as released: no final newline
    write_text_atomic(out_dir / "odometry.txt", "".join(f"{line}\n" for line in poses))
    mark_complete(out_dir, len(poses), labelled)
    return len(poses), labelled


def tfrecord_frames(path: Path, source: str) -> Iterator[tuple[str, Callable[[], Frame]]]:
    for record in read_records(path, name=source):
        yield f"{source}: the record at byte {record.offset}", partial(parse_frame, record.data)


def prepare_tfrecord_segment(job: SequenceJob, tick: Callable[[], None]) -> tuple[int, int]:
    """Convert one v1 segment (`job.payload`: its TFRecord file); returns (frames, labelled frames)."""
    path: Path = job.payload
    source = f"{job.group}/{path.name}"
    return write_segment(tfrecord_frames(path, source), source, job, tick)


def parquet_frames(segment: ParquetSegment, name: str) -> Iterator[tuple[str, Callable[[], Frame]]]:
    for timestamp, build in segment.frames():
        yield f"{name}: the frame at {timestamp} µs", build


def prepare_parquet_segment(job: SequenceJob, tick: Callable[[], None]) -> tuple[int, int]:
    """Convert one v2 segment (`job.payload`: its split folder and context name); returns (frames, labelled frames)."""
    folder, context = job.payload
    segment = ParquetSegment(folder, context)
    name = f"{folder.name}/{context} (v2)"
    return write_segment(parquet_frames(segment, name), str(segment.images.path), job, tick)


# --------------------------------------------------------------------------- whole dataset


@dataclass
class WaymoPreparation:
    """What a `prepare_waymo` run did."""

    segments: list[SequenceResult] = field(default_factory=list)
    frames: int = 0
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[SequenceResult]:
        return [s for s in self.segments if s.status == "failed"]


def find_segments(raw: Path, splits: tuple[str, ...]) -> dict[str, list[Path]]:
    """Output split -> its v1 TFRecord files (none when RAW is not a v1 release)."""
    found = {}
    for split in splits:
        folder = raw / split
        found[split] = sorted(p for p in folder.glob("*.tfrecord") if segment_name(p)) if folder.is_dir() else []
    return found


def segment_jobs(raw: Path, out: Path, splits: tuple[str, ...]) -> tuple[dict[str, list[SequenceJob]], Callable]:
    """The jobs of every segment by output split, and the function that converts one, for the
    release that RAW's layout shows: v1 TFRecords or v2 parquet component folders."""
    if not raw.is_dir():
        raise DataError(f"raw Waymo folder {raw} does not exist; pass the folder that holds the release's splits.")
    tfrecords = find_segments(raw, splits)
    parquet = find_parquet_segments(raw, splits)
    if any(tfrecords.values()) and any(parquet.values()):
        raise DataError(f"{raw} holds both v1 TFRecords and v2 parquet components; pass a folder with one release.")
    if any(tfrecords.values()):
        jobs = {split: [] for split in splits}
        for split, paths in tfrecords.items():
            for path in paths:
                name = segment_name(path)
                jobs[split].append(SequenceJob(name, split, out / split / name / CAMERA, count_records(path), path))
        return jobs, prepare_tfrecord_segment
    if any(parquet.values()):
        import_pyarrow()  # fail here, once, when pyarrow is missing
        jobs = {split: [] for split in splits}
        for split, segments in parquet.items():
            for folder, context in segments:
                name = f"segment-{context}"  # the v1 name, so both releases give the same layout
                frames = count_front_images(folder, context)
                jobs[split].append(SequenceJob(name, split, out / split / name / CAMERA, frames, (folder, context)))
        return jobs, prepare_parquet_segment
    v2_folders = [str(raw / name) for split in splits for name in SPLIT_FOLDERS[split]]
    raise DataError(
        f"no Waymo segments in {raw}: found neither v1 segment-*_with_camera_labels.tfrecord files in "
        f"{', '.join(str(raw / s) for s in splits)} nor v2 camera_image/*.parquet components in "
        f"{', '.join(v2_folders)}; "
        "pass the folder of the release that holds these splits."
    )


def prepare_waymo(
    raw: Path | str,
    out: Path | str,
    workers: int = 1,
    split: str = "all",
    progress: Optional[Callable[[int, int], None]] = None,
) -> WaymoPreparation:
    """Convert the v1 TFRecords under `raw/{train,val}`, or the v2 components under
    `raw/{training,validation}`, into the processed layout under `out`."""
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}.")
    if split not in (*SPLITS, "all"):
        raise ConfigError(f"--split must be train, val or all, got {split!r}.")
    started = time.perf_counter()
    raw, out = Path(raw).expanduser(), Path(out).expanduser()
    splits = SPLITS if split == "all" else (split,)
    result = WaymoPreparation()
    jobs_by_split, prepare_segment = segment_jobs(raw, out, splits)
    jobs = []
    for name, split_jobs in jobs_by_split.items():
        if split_jobs and len(split_jobs) != RELEASE_SEGMENTS[name]:
            message = (
                f"the {name} split of {raw} holds {len(split_jobs)} segments; the full release has "
                f"{RELEASE_SEGMENTS[name]} (preparing the {len(split_jobs)} found)"
            )
            logger.warning(message)
            result.warnings.append(message)
        jobs.extend(split_jobs)
    result.segments = run_sequences(jobs, prepare_segment, workers, progress)
    result.frames = sum(s.frames for s in result.segments)
    result.seconds = time.perf_counter() - started
    return result
