"""The parts of a Waymo Open Dataset v1 `Frame` that preparation reads, decoded from protobuf.

Field numbers are those of the published `dataset.proto` and `label.proto`; they are an
interface, not code. Everything is read in float64.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from dynamo_core.errors import DataError

from .protobuf import DecodeError, Message

# Frame
FRAME_CONTEXT, FRAME_TIMESTAMP, FRAME_POSE, FRAME_IMAGES, FRAME_LASERS, FRAME_LABELS = 1, 2, 3, 4, 5, 6
# Context
CONTEXT_NAME, CONTEXT_CAMERAS, CONTEXT_LASERS = 1, 2, 3
# CameraCalibration
CAMCAL_NAME, CAMCAL_INTRINSIC, CAMCAL_EXTRINSIC, CAMCAL_WIDTH, CAMCAL_HEIGHT = 1, 2, 3, 4, 5
# LaserCalibration
LASCAL_NAME, LASCAL_INCLINATIONS, LASCAL_INCLINATION_MIN, LASCAL_INCLINATION_MAX, LASCAL_EXTRINSIC = 1, 2, 3, 4, 5
# Transform
TRANSFORM_VALUES = 1
# CameraImage
IMAGE_NAME, IMAGE_DATA, IMAGE_POSE, IMAGE_SEGMENTATION = 1, 2, 3, 10
# CameraSegmentationLabel
SEGMENTATION_DIVISOR, SEGMENTATION_PANOPTIC = 1, 2
# Laser
LASER_NAME, LASER_RETURN1, LASER_RETURN2 = 1, 2, 3
# RangeImage
RANGE_IMAGE, RANGE_CAMERA_PROJECTION, RANGE_POSE = 2, 3, 4
# MatrixFloat / MatrixInt32 / MatrixShape
MATRIX_DATA, MATRIX_SHAPE, SHAPE_DIMS = 1, 2, 1
# Label
LABEL_BOX, LABEL_METADATA, LABEL_TYPE, LABEL_ID, LABEL_CAMERA_SYNCED_BOX = 1, 2, 3, 4, 12
# Box
BOX_CENTER_X, BOX_CENTER_Y, BOX_CENTER_Z, BOX_WIDTH, BOX_LENGTH, BOX_HEIGHT, BOX_HEADING = 1, 2, 3, 4, 5, 6, 7
# Label.Metadata
META_SPEED_X, META_SPEED_Y, META_ACCEL_X, META_ACCEL_Y, META_SPEED_Z, META_ACCEL_Z = 1, 2, 3, 4, 5, 6

CAMERA_FRONT = 1
LASER_TOP = 1
LASER_NAMES = {1: "TOP", 2: "FRONT", 3: "SIDE_LEFT", 4: "SIDE_RIGHT", 5: "REAR"}


def transform(message: Optional[Message], what: str) -> np.ndarray:
    """A `Transform` message as a 4x4 float64 matrix (row-major in the file)."""
    values = message.doubles(TRANSFORM_VALUES) if message is not None else np.zeros(0)
    if values.size != 16:
        raise DecodeError(f"{what} has {values.size} transform values, expected 16")
    return values.reshape(4, 4)


def matrix(compressed: bytes | memoryview, dtype: str, what: str) -> np.ndarray:
    """A zlib-compressed `MatrixFloat` (dtype float32) or `MatrixInt32` (int32), reshaped."""
    try:
        message = Message(zlib.decompress(compressed))
    except zlib.error as err:
        raise DecodeError(f"{what} is not zlib data ({err})") from None
    shape_message = message.message(MATRIX_SHAPE)
    dims = tuple(int(d) for d in shape_message.ints(SHAPE_DIMS)) if shape_message is not None else ()
    values = message.floats(MATRIX_DATA) if dtype == "float32" else message.ints(MATRIX_DATA)
    if not dims or int(np.prod(dims)) != values.size:
        raise DecodeError(f"{what} holds {values.size} values, which do not fill its shape {dims}")
    return values.astype(np.float64 if dtype == "float32" else np.int32).reshape(dims)


@dataclass
class CameraCalibration:
    name: int
    intrinsic: np.ndarray
    """f_u, f_v, c_u, c_v, k1, k2, p1, p2, k3."""
    extrinsic: np.ndarray
    """4x4 camera -> vehicle."""
    width: int
    height: int


@dataclass
class LaserCalibration:
    name: int
    extrinsic: np.ndarray
    beam_inclinations: np.ndarray
    inclination_min: float
    inclination_max: float


@dataclass
class RangeImages:
    """The first return of one laser."""

    name: int
    range_image: np.ndarray
    """(H, W, 4): range, intensity, elongation, no-label-zone."""
    camera_projection: Optional[np.ndarray]
    """(H, W, 6) int32: camera name, x, y, and a second camera, x, y."""
    pose: Optional[np.ndarray]
    """(H, W, 6) roll, pitch, yaw, x, y, z per pixel; only the TOP laser has one."""


@dataclass
class BoxLabel:
    type: int
    center: tuple[float, float, float]
    length: float
    width: float
    height: float
    heading: float
    speed: tuple[float, float, float]
    accel: tuple[float, float, float]


@dataclass
class FrontImage:
    jpeg: bytes
    pose: np.ndarray
    panoptic_png: Optional[bytes] = None
    panoptic_divisor: int = 0


@dataclass
class Frame:
    timestamp: int
    pose: np.ndarray
    front: FrontImage
    front_calibration: CameraCalibration
    laser_calibrations: dict[int, LaserCalibration]
    lasers: list[RangeImages] = field(default_factory=list)
    labels: list[BoxLabel] = field(default_factory=list)


def _camera_calibration(message: Message) -> CameraCalibration:
    name = message.int(CAMCAL_NAME)
    intrinsic = message.doubles(CAMCAL_INTRINSIC)
    if intrinsic.size != 9:
        raise DecodeError(f"camera {name} has {intrinsic.size} intrinsic values, expected 9")
    return CameraCalibration(
        name, intrinsic, transform(message.message(CAMCAL_EXTRINSIC), f"camera {name} extrinsic"),
        message.int(CAMCAL_WIDTH), message.int(CAMCAL_HEIGHT),
    )


def _laser_calibration(message: Message) -> LaserCalibration:
    name = message.int(LASCAL_NAME)
    return LaserCalibration(
        name,
        transform(message.message(LASCAL_EXTRINSIC), f"laser {LASER_NAMES.get(name, name)} extrinsic"),
        message.doubles(LASCAL_INCLINATIONS),
        message.double(LASCAL_INCLINATION_MIN),
        message.double(LASCAL_INCLINATION_MAX),
    )


def _range_images(message: Message, with_labels: bool) -> Optional[RangeImages]:
    name = message.int(LASER_NAME)
    label = LASER_NAMES.get(name, str(name))
    first = message.message(LASER_RETURN1)
    if first is None or not first.has(RANGE_IMAGE):
        return None
    range_image = matrix(first.bytes(RANGE_IMAGE), "float32", f"laser {label} range image")
    projection = None
    if with_labels and first.has(RANGE_CAMERA_PROJECTION):
        projection = matrix(first.bytes(RANGE_CAMERA_PROJECTION), "int32", f"laser {label} camera projection")
    pose = None
    if name == LASER_TOP and first.has(RANGE_POSE):
        pose = matrix(first.bytes(RANGE_POSE), "float32", f"laser {label} pose image")
    return RangeImages(name, range_image, projection, pose)


def _box_label(message: Message) -> BoxLabel:
    box = message.message(LABEL_CAMERA_SYNCED_BOX) or Message(b"")
    meta = message.message(LABEL_METADATA) or Message(b"")
    return BoxLabel(
        type=message.int(LABEL_TYPE),
        center=(box.double(BOX_CENTER_X), box.double(BOX_CENTER_Y), box.double(BOX_CENTER_Z)),
        length=box.double(BOX_LENGTH),
        width=box.double(BOX_WIDTH),
        height=box.double(BOX_HEIGHT),
        heading=box.double(BOX_HEADING),
        speed=(meta.double(META_SPEED_X), meta.double(META_SPEED_Y), meta.double(META_SPEED_Z)),
        accel=(meta.double(META_ACCEL_X), meta.double(META_ACCEL_Y), meta.double(META_ACCEL_Z)),
    )


def parse_frame(data: bytes) -> Frame:
    """Decode the FRONT camera, all lidars' first returns and, for a labelled frame, the labels."""
    frame = Message(data)
    context = frame.message(FRAME_CONTEXT)
    if context is None:
        raise DecodeError("the frame has no context (calibrations)")
    cameras = [_camera_calibration(m) for m in context.messages(CONTEXT_CAMERAS)]
    front_calibration = next((c for c in cameras if c.name == CAMERA_FRONT), None)
    if front_calibration is None:
        raise DecodeError("the frame has no FRONT camera calibration")
    lasers = {c.name: c for c in map(_laser_calibration, context.messages(CONTEXT_LASERS))}

    front = None
    for image in frame.messages(FRAME_IMAGES):
        if image.int(IMAGE_NAME) != CAMERA_FRONT:
            continue
        front = FrontImage(bytes(image.bytes(IMAGE_DATA)), transform(image.message(IMAGE_POSE), "FRONT image pose"))
        segmentation = image.message(IMAGE_SEGMENTATION)
        if segmentation is not None and segmentation.has(SEGMENTATION_PANOPTIC):
            front.panoptic_png = bytes(segmentation.bytes(SEGMENTATION_PANOPTIC))
            front.panoptic_divisor = segmentation.int(SEGMENTATION_DIVISOR)
    if front is None:
        raise DecodeError("the frame has no FRONT camera image")

    labelled = front.panoptic_png is not None
    ranges = [r for r in (_range_images(m, labelled) for m in frame.messages(FRAME_LASERS)) if r is not None]
    missing = [LASER_NAMES.get(r.name, str(r.name)) for r in ranges if r.name not in lasers]
    if missing:
        raise DecodeError(f"lasers {missing} have range images but no calibration")
    return Frame(
        timestamp=frame.int(FRAME_TIMESTAMP),
        pose=transform(frame.message(FRAME_POSE), "frame pose"),
        front=front,
        front_calibration=front_calibration,
        laser_calibrations=lasers,
        lasers=sorted(ranges, key=lambda r: r.name),
        labels=[_box_label(m) for m in frame.messages(FRAME_LABELS)] if labelled else [],
    )

