"""Waymo Open Dataset v2 (parquet components) read as the same `Frame`s that the v1 decoder gives.

Raw input, one parquet file per component and segment, where `<context>` is the segment's context
name (the v1 file name without `segment-` and `_with_camera_labels.tfrecord`)::

    RAW/{training,validation}/<component>/<context>.parquet      (train/ and val/ are accepted too)

Components read: camera_image, camera_calibration, lidar, lidar_calibration, lidar_pose and
vehicle_pose; for a segment with panoptic labels also camera_segmentation, lidar_camera_projection,
lidar_box and lidar_camera_synced_box. A segment without a camera_segmentation file has no
labelled frames, as a v1 segment whose images carry no panoptic label.

Columns are named as the published v2 schema flattens its dataclasses: keys such as
`key.frame_timestamp_micros`, `key.camera_name`, `key.laser_name`, `key.laser_object_id`, and values
such as `[LiDARComponent].range_image_return1.values`. They hold the v1 values, except that a
missing speed or acceleration is null where v1 decoded 0; it is read as 0, so both releases give
the same outputs.

Rows of different components need not come in the same order, and a file may be one row group,
so rows are matched by their keys and read a few frames at a time: memory holds those frames only.
pyarrow is imported only here and only when a v2 release is read (the `[waymo]` extra).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable, Iterator, Optional

import numpy as np

from dynamo_core.errors import ConfigError, DataError

from .waymo_frame import (
    CAMERA_FRONT, LASER_NAMES, LASER_TOP, BoxLabel, CameraCalibration, Frame, FrontImage, LaserCalibration,
    RangeImages,
)

SPLIT_FOLDERS = {"train": ("training", "train"), "val": ("validation", "val")}
"""Output split -> the raw folder names it is read from, the release's own name first."""
FRAMES_PER_READ = 10
"""Frames read in one pass over a file: fewer passes against less memory (a frame's lidar rows are ~30 MB)."""
ROWS_PER_BATCH = 4
"""Rows decoded at a time while a file is scanned, so a large row group is never decoded whole."""

TIMESTAMP = "key.frame_timestamp_micros"
CAMERA = "key.camera_name"
LASER = "key.laser_name"
OBJECT = "key.laser_object_id"
INTRINSIC = ("f_u", "f_v", "c_u", "c_v", "k1", "k2", "p1", "p2", "k3")
"""The v1 intrinsic order."""
BOX3D = ("center.x", "center.y", "center.z", "size.x", "size.y", "size.z", "heading")
"""size is (length, width, height)."""
VEC3 = ("x", "y", "z")


def import_pyarrow():
    """`pyarrow` and `pyarrow.parquet`, or an error that says how to install them."""
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise ConfigError(
            "reading the Waymo v2 (parquet) release needs pyarrow: pip install 'dynamo[waymo]'."
        ) from None
    return pyarrow, pyarrow.parquet


@dataclass(frozen=True)
class Component:
    folder: str
    prefix: str
    """The column prefix of its values, e.g. `[LiDARComponent]`."""
    keys: tuple[str, ...]
    values: tuple[str, ...]
    """Value columns without the prefix."""

    @property
    def columns(self) -> list[str]:
        return [*self.keys, *(f"{self.prefix}.{v}" for v in self.values)]


RANGE_IMAGE = ("range_image_return1.values", "range_image_return1.shape")
CAMERA_IMAGE = Component("camera_image", "[CameraImageComponent]", (TIMESTAMP, CAMERA), ("image", "pose.transform"))
CAMERA_CALIBRATION = Component(
    "camera_calibration", "[CameraCalibrationComponent]", (CAMERA,),
    (*(f"intrinsic.{n}" for n in INTRINSIC), "extrinsic.transform", "width", "height"),
)
LIDAR_CALIBRATION = Component(
    "lidar_calibration", "[LiDARCalibrationComponent]", (LASER,),
    ("extrinsic.transform", "beam_inclination.min", "beam_inclination.max", "beam_inclination.values"),
)
VEHICLE_POSE = Component("vehicle_pose", "[VehiclePoseComponent]", (TIMESTAMP,), ("world_from_vehicle.transform",))
LIDAR = Component("lidar", "[LiDARComponent]", (TIMESTAMP, LASER), RANGE_IMAGE)
LIDAR_POSE = Component("lidar_pose", "[LiDARPoseComponent]", (TIMESTAMP, LASER), RANGE_IMAGE)
CAMERA_PROJECTION = Component(
    "lidar_camera_projection", "[LiDARCameraProjectionComponent]", (TIMESTAMP, LASER), RANGE_IMAGE
)
SEGMENTATION = Component(
    "camera_segmentation", "[CameraSegmentationLabelComponent]", (TIMESTAMP, CAMERA),
    ("panoptic_label_divisor", "panoptic_label"),
)
BOX = Component(
    "lidar_box", "[LiDARBoxComponent]", (TIMESTAMP, OBJECT),
    ("type", *(f"speed.{v}" for v in VEC3), *(f"acceleration.{v}" for v in VEC3)),
)
SYNCED_BOX = Component(
    "lidar_camera_synced_box", "[LiDARCameraSyncedBoxComponent]", (TIMESTAMP, OBJECT),
    tuple(f"camera_synced_box.{v}" for v in BOX3D),
)


def component_path(folder: Path, component: Component, context: str) -> Path:
    return folder / component.folder / f"{context}.parquet"


class ComponentFile:
    """One segment's file of one component: its key columns up front, any rows on demand."""

    def __init__(self, folder: Path, context: str, component: Component):
        self.pyarrow, parquet = import_pyarrow()
        self.component = component
        self.path = component_path(folder, component, context)
        if not self.path.is_file():
            raise DataError(
                f"{self.path} is missing: segment {context} needs its `{component.folder}` component; download it."
            )
        try:
            self.file = parquet.ParquetFile(self.path)
            names = set(self.file.schema_arrow.names)
            missing = [c for c in component.columns if c not in names]
            if missing:
                raise DataError(
                    f"{self.path} has no column {', '.join(missing)}; it is not a whole v2 `{component.folder}` "
                    "file: re-download it."
                )
            table = self.file.read(columns=list(component.keys))
        except (OSError, ValueError, self.pyarrow.ArrowException) as err:
            raise DataError(f"{self.path} is not a readable parquet file ({err}); re-download it.") from None
        self.keys = {key: table.column(key).to_numpy(zero_copy_only=False) for key in component.keys}
        """Key column -> (rows,) values."""

    def rows(self, wanted: np.ndarray) -> list[dict]:
        """The rows where `wanted` (rows,) is true, in file order, as dicts keyed by the key columns
        and the value columns without prefix; list values are numpy arrays, nulls None."""
        if not wanted.any():
            return []
        metadata = self.file.metadata
        starts = np.cumsum([0] + [metadata.row_group(g).num_rows for g in range(metadata.num_row_groups)])
        batches = []
        try:
            for group in range(metadata.num_row_groups):
                chosen = np.flatnonzero(wanted[starts[group]:starts[group + 1]])
                if not chosen.size:
                    continue  # a row group without wanted rows is never decoded
                offset = 0
                for batch in self.file.iter_batches(ROWS_PER_BATCH, row_groups=[group], columns=self.component.columns):
                    local = chosen[(chosen >= offset) & (chosen < offset + batch.num_rows)] - offset
                    if local.size:
                        batches.append(batch.take(self.pyarrow.array(local)))
                    offset += batch.num_rows
        except (OSError, ValueError, self.pyarrow.ArrowException) as err:
            raise DataError(f"{self.path} is not a readable parquet file ({err}); re-download it.") from None
        table = self.pyarrow.Table.from_batches(batches)
        columns = {}
        for name in table.column_names:
            column = table.column(name)
            kind = column.type
            types = self.pyarrow.types
            is_list = types.is_list(kind) or types.is_large_list(kind) or types.is_fixed_size_list(kind)
            columns[name.removeprefix(f"{self.component.prefix}.")] = (
                column.to_numpy(zero_copy_only=False) if is_list else column.to_pylist()
            )
        return [dict(zip(columns, values)) for values in zip(*columns.values())]

    def rows_at(self, timestamps: np.ndarray, **keys: int) -> dict[int, list[dict]]:
        """Rows of the given frames (and key values, e.g. `camera_name=1`), grouped by timestamp."""
        wanted = np.isin(self.keys[TIMESTAMP], timestamps)
        for key, value in keys.items():
            wanted &= self.keys[f"key.{key}"] == value
        grouped = defaultdict(list)
        for row in self.rows(wanted):
            grouped[row[TIMESTAMP]].append(row)
        return grouped

    def one(self, rows: list[dict], what: str) -> dict:
        if len(rows) != 1:
            raise DataError(f"{self.path} has {len(rows)} rows for {what}, expected 1")
        return rows[0]


# --------------------------------------------------------------------------- values


def transform(values: Optional[np.ndarray], what: str) -> np.ndarray:
    """16 row-major values -> (4, 4) float64."""
    size = 0 if values is None else values.size
    if size != 16:
        raise DataError(f"{what} has {size} transform values, expected 16")
    return np.asarray(values, dtype=np.float64).reshape(4, 4)


def range_image(row: dict, dtype: type, what: str) -> Optional[np.ndarray]:
    """A flattened range image and its shape -> (H, W, C) in `dtype`; None when the row has none."""
    values, shape = row["range_image_return1.values"], row["range_image_return1.shape"]
    if values is None or shape is None:
        return None
    dims = tuple(int(d) for d in shape)
    if len(dims) != 3 or int(np.prod(dims)) != values.size:
        raise DataError(f"{what} holds {values.size} values, which do not fill its shape {dims}")
    return values.astype(dtype).reshape(dims)


def number(value, default: float = 0.0) -> float:
    """A nullable number: null reads as the v1 default."""
    return default if value is None else float(value)


def camera_calibration(row: dict, what: str) -> CameraCalibration:
    intrinsic = [row[f"intrinsic.{n}"] for n in INTRINSIC]
    if any(v is None for v in intrinsic):
        raise DataError(f"{what} lacks intrinsic values")
    return CameraCalibration(
        CAMERA_FRONT, np.array(intrinsic, dtype=np.float64), transform(row["extrinsic.transform"], f"{what} extrinsic"),
        int(number(row["width"])), int(number(row["height"])),
    )


def laser_calibration(row: dict, what: str) -> LaserCalibration:
    values = row["beam_inclination.values"]
    return LaserCalibration(
        int(row[LASER]), transform(row["extrinsic.transform"], f"{what} extrinsic"),
        np.zeros(0) if values is None else values.astype(np.float64),
        number(row["beam_inclination.min"]), number(row["beam_inclination.max"]),
    )


def box_label(box: dict, synced: Optional[dict]) -> BoxLabel:
    """A lidar box's type, speed and acceleration with its camera-synced box (zeros without one, as v1)."""
    center_x, center_y, center_z, length, width, height, heading = (
        number(synced[f"camera_synced_box.{v}"]) if synced else 0.0 for v in BOX3D
    )
    return BoxLabel(
        type=int(number(box["type"])),
        center=(center_x, center_y, center_z), length=length, width=width, height=height, heading=heading,
        speed=tuple(number(box[f"speed.{v}"]) for v in VEC3),
        accel=tuple(number(box[f"acceleration.{v}"]) for v in VEC3),
    )


# --------------------------------------------------------------------------- a segment


def count_front_images(folder: Path, context: str) -> int:
    """The segment's frames, for progress; 0 when the file cannot be read (its job then says why)."""
    try:
        keys = ComponentFile(folder, context, CAMERA_IMAGE).keys
        return int(np.unique(keys[TIMESTAMP][keys[CAMERA] == CAMERA_FRONT]).size)
    except DataError:
        return 0


@dataclass
class FrameRows:
    """One frame's rows of each per-frame component (lists, as a file may hold none or several)."""

    image: list[dict]
    vehicle_pose: list[dict]
    lidar: list[dict]
    lidar_pose: list[dict]
    label: list[dict]
    projections: list[dict]
    boxes: list[dict]
    synced: list[dict]


class ParquetSegment:
    """A v2 segment's components, read as v1 `Frame`s in time order."""

    def __init__(self, folder: Path, context: str):
        self.images = ComponentFile(folder, context, CAMERA_IMAGE)
        self.vehicle_poses = ComponentFile(folder, context, VEHICLE_POSE)
        self.lidar = ComponentFile(folder, context, LIDAR)
        self.lidar_poses = ComponentFile(folder, context, LIDAR_POSE)
        front = self.images.keys[CAMERA] == CAMERA_FRONT
        self.timestamps = np.unique(self.images.keys[TIMESTAMP][front])
        """(frames,) sorted: the frames are those with a FRONT image."""

        cameras = ComponentFile(folder, context, CAMERA_CALIBRATION)
        rows = cameras.rows(cameras.keys[CAMERA] == CAMERA_FRONT)
        front_row = cameras.one(rows, "the FRONT camera")
        self.front_calibration = camera_calibration(front_row, f"{cameras.path}: the FRONT camera")
        lasers = ComponentFile(folder, context, LIDAR_CALIBRATION)
        self.laser_calibrations = {}
        for row in lasers.rows(np.ones(len(lasers.keys[LASER]), dtype=bool)):
            name = int(row[LASER])
            what = f"{lasers.path}: laser {LASER_NAMES.get(name, name)}"
            self.laser_calibrations[name] = laser_calibration(row, what)

        self.segmentation = None
        if component_path(folder, SEGMENTATION, context).is_file():
            self.segmentation = ComponentFile(folder, context, SEGMENTATION)
            self.projections = ComponentFile(folder, context, CAMERA_PROJECTION)
            self.boxes = ComponentFile(folder, context, BOX)
            self.synced_boxes = ComponentFile(folder, context, SYNCED_BOX)

    def frames(self) -> Iterator[tuple[int, Callable[[], Frame]]]:
        """(timestamp, a function that builds its `Frame`) per frame, in time order."""
        for start in range(0, self.timestamps.size, FRAMES_PER_READ):
            chunk = self.timestamps[start:start + FRAMES_PER_READ]
            images = self.images.rows_at(chunk, camera_name=CAMERA_FRONT)
            poses = self.vehicle_poses.rows_at(chunk)
            lidar = self.lidar.rows_at(chunk)
            lidar_poses = self.lidar_poses.rows_at(chunk, laser_name=LASER_TOP)
            labels = self.segmentation.rows_at(chunk, camera_name=CAMERA_FRONT) if self.segmentation else {}
            labelled = np.array([t for t in chunk.tolist() if labels.get(t)], dtype=np.int64)
            projections = boxes = synced = {}
            if labelled.size:  # as in v1, only labelled frames need projections and boxes
                projections = self.projections.rows_at(labelled)
                boxes = self.boxes.rows_at(labelled)
                synced = self.synced_boxes.rows_at(labelled)
            for t in chunk.tolist():
                rows = FrameRows(
                    images[t], poses[t], lidar[t], lidar_poses[t], labels.get(t, []),
                    projections.get(t, []), boxes.get(t, []), synced.get(t, []),
                )
                yield t, partial(self.frame, t, rows)

    def frame(self, t: int, rows: FrameRows) -> Frame:
        """One frame from its rows of each component."""
        image = self.images.one(rows.image, "the FRONT image")
        if image["image"] is None:
            raise DataError(f"{self.images.path} has no FRONT image data")
        image_pose = transform(image["pose.transform"], f"{self.images.path}: the FRONT image pose")
        front = FrontImage(image["image"], image_pose)
        if rows.label:
            label = self.segmentation.one(rows.label, "the FRONT panoptic label")
            if label["panoptic_label"] is not None:
                front.panoptic_png = label["panoptic_label"]
                front.panoptic_divisor = int(number(label["panoptic_label_divisor"]))
        labelled = front.panoptic_png is not None
        vehicle_pose = self.vehicle_poses.one(rows.vehicle_pose, "the frame")["world_from_vehicle.transform"]

        if not rows.lidar:
            raise DataError(f"{self.lidar.path} has no rows for the frame")
        projection_of = {int(row[LASER]): row for row in rows.projections}
        lasers = []
        for row in rows.lidar:
            name = int(row[LASER])
            label_text = LASER_NAMES.get(name, str(name))
            ranges = range_image(row, np.float64, f"{self.lidar.path}: the laser {label_text} range image")
            if ranges is None:
                continue
            projection = None
            if labelled and name in projection_of:
                what = f"{self.projections.path}: the laser {label_text} camera projection"
                projection = range_image(projection_of[name], np.int32, what)
            pixel_poses = None
            if name == LASER_TOP:  # its points are motion-compensated with a pose per pixel
                what = f"{self.lidar_poses.path}: the TOP pose image"
                pixel_poses = range_image(self.lidar_poses.one(rows.lidar_pose, "the TOP laser"), np.float64, what)
            lasers.append(RangeImages(name, ranges, projection, pixel_poses))
        missing = [LASER_NAMES.get(r.name, str(r.name)) for r in lasers if r.name not in self.laser_calibrations]
        if missing:
            raise DataError(f"lasers {missing} have range images in {self.lidar.path} but no lidar_calibration row")

        synced_of = {row[OBJECT]: row for row in rows.synced}
        return Frame(
            timestamp=t,
            pose=transform(vehicle_pose, f"{self.vehicle_poses.path}: the vehicle pose"),
            front=front,
            front_calibration=self.front_calibration,
            laser_calibrations=self.laser_calibrations,
            lasers=sorted(lasers, key=lambda r: r.name),
            labels=[box_label(row, synced_of.get(row[OBJECT])) for row in rows.boxes] if labelled else [],
        )


# --------------------------------------------------------------------------- the release


def split_folder(raw: Path, split: str) -> Optional[Path]:
    """The raw folder of an output split that holds v2 components, if any."""
    for name in SPLIT_FOLDERS[split]:
        if (raw / name / CAMERA_IMAGE.folder).is_dir():
            return raw / name
    return None


def find_parquet_segments(raw: Path, splits: tuple[str, ...]) -> dict[str, list[tuple[Path, str]]]:
    """Output split -> (its raw folder, segment context name) for every camera_image file."""
    found = {}
    for split in splits:
        folder = split_folder(raw, split)
        paths = sorted((folder / CAMERA_IMAGE.folder).glob("*.parquet")) if folder else []
        found[split] = [(folder, path.stem) for path in paths]
    return found
