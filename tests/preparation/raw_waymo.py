"""Build a small Waymo v1 TFRecord from the released `tiny_waymo` files, with a tiny protobuf encoder.

The encoder here is test-side and independent of the decoder under test. The segment has three
frames: calibration from the released `cam.json`, images from its originals, poses from its
`odometry.txt`, a panoptic label on frame 1 from its mask, and two lidars (TOP with a per-pixel
pose image, FRONT without) whose range images decode to points the test computes itself.
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from conftest import SHARED
from dynamo_core.preparation.tfrecord import encode_record

SEGMENT = "segment-1024360143612057520_3580_000_3600_000"
RELEASED = SHARED / "data" / "tiny_waymo" / "val" / SEGMENT / "FRONT"
FRAMES = 3
LABELLED_FRAME = 1
DIVISOR = 1000
VEHICLE_PIXELS = [(1, 26), (1, 27), (2, 26), (4, 34)]
"""TOP pixels whose camera projection lands on instance 4 of class 3; a box holds the first three."""

# --------------------------------------------------------------------------- a tiny encoder


def varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def tag(number: int, wire: int) -> bytes:
    return varint(number << 3 | wire)


def f_int(number: int, value: int) -> bytes:
    return tag(number, 0) + varint(value)


def f_bytes(number: int, data: bytes) -> bytes:
    return tag(number, 2) + varint(len(data)) + data


def f_double(number: int, value: float) -> bytes:
    return tag(number, 1) + struct.pack("<d", value)


def f_doubles(number: int, values, packed: bool = True) -> bytes:
    values = [float(v) for v in values]
    if packed:
        return f_bytes(number, struct.pack(f"<{len(values)}d", *values))
    return b"".join(f_double(number, v) for v in values)


def f_floats_packed(number: int, values: np.ndarray) -> bytes:
    return f_bytes(number, np.asarray(values, dtype="<f4").tobytes())


def f_ints_packed(number: int, values: np.ndarray) -> bytes:
    return f_bytes(number, b"".join(varint(int(v)) for v in np.asarray(values).reshape(-1)))


def transform(matrix: np.ndarray, packed: bool = True) -> bytes:
    return f_doubles(1, np.asarray(matrix, dtype=np.float64).reshape(-1), packed)


def matrix_float(values: np.ndarray) -> bytes:
    shape = f_ints_packed(1, np.array(values.shape))
    return zlib.compress(f_floats_packed(1, values.reshape(-1)) + f_bytes(2, shape))


def matrix_int32(values: np.ndarray) -> bytes:
    shape = f_ints_packed(1, np.array(values.shape))
    return zlib.compress(f_ints_packed(1, values.reshape(-1)) + f_bytes(2, shape))


# --------------------------------------------------------------------------- the scene


def rotation_z(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def rigid(rotation: np.ndarray, translation) -> np.ndarray:
    matrix = np.eye(4)
    matrix[:3, :3] = rotation
    matrix[:3, 3] = translation
    return matrix


def euler_pose(roll: float, pitch: float, yaw: float, xyz) -> np.ndarray:
    cr, sr, cp, sp, cy, sy = np.cos(roll), np.sin(roll), np.cos(pitch), np.sin(pitch), np.cos(yaw), np.sin(yaw)
    rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    return rigid(rz @ ry @ rx, xyz)


@dataclass
class Laser:
    name: int
    extrinsic: np.ndarray
    height: int
    width: int
    inclinations: np.ndarray | None  # None: min/max only
    inclination_range: tuple[float, float]
    ranges: np.ndarray  # (H, W) float32, 0 = no return
    projection: np.ndarray | None = None  # (H, W, 6) int32
    pose: np.ndarray | None = None  # (H, W, 6) float32

    def row_inclinations(self) -> np.ndarray:
        if self.inclinations is not None:
            values = self.inclinations
        else:
            low, high = self.inclination_range
            values = low + (np.arange(self.height) + 0.5) / self.height * (high - low)
        return values[::-1]


@dataclass
class Scene:
    calibration: dict
    poses: list[np.ndarray]
    jpegs: list[bytes]
    semantic: np.ndarray
    instance: np.ndarray
    lasers: list[Laser]
    frame_pose: np.ndarray
    boxes: list[dict] = field(default_factory=list)


def released_calibration() -> dict:
    return json.loads((RELEASED / "rgb" / "cam.json").read_text())


def released_poses() -> list[np.ndarray]:
    lines = (RELEASED / "odometry.txt").read_text().splitlines()[:FRAMES]
    return [np.array([float(v) for v in line.split()]).reshape(4, 4) for line in lines]


def make_scene() -> Scene:
    calibration = released_calibration()
    masks = np.load(RELEASED / "mask" / "000001.npz")
    semantic, instance = masks["semantic"][..., 0], masks["instance"][..., 0]
    # The frame pose, as float32 values, so that the TOP pose image (float32) can equal it exactly.
    roll, pitch, yaw = np.float32([0.01, -0.02, 0.76])
    xyz = np.float32([-25211.259, 42391.081, -160.618])
    frame_pose = euler_pose(float(roll), float(pitch), float(yaw), xyz.astype(np.float64))

    top_height, top_width = 6, 64
    top_ranges = np.zeros((top_height, top_width), dtype=np.float32)
    top_ranges[1:5, 26:38] = np.float32(20.5)  # ahead of the car
    top_ranges[2, 0:4] = np.float32(9.25)  # behind: no depth point
    top_ranges[3, 30] = np.float32(0.0)
    top_pose = np.zeros((top_height, top_width, 6), dtype=np.float32)
    top_pose[..., :3] = [roll, pitch, yaw]
    top_pose[..., 3:] = xyz
    top_pose[1, 27, 3] += np.float32(1.0)  # this pixel's capture time saw the car 1 m further in world x
    projection = np.zeros((top_height, top_width, 6), dtype=np.int32)
    # Four TOP points land on instance 4 of class 3 (a vehicle in the released mask).
    rows, cols = np.nonzero((semantic == 3) & (instance == 4))
    for k, (r, c) in enumerate(VEHICLE_PIXELS):
        projection[r, c] = [1, cols[k * 7], rows[k * 7], 2, 5, 5]
    projection[3, 26] = [2, cols[0], rows[0], 0, 0, 0]  # another camera: ignored
    top = Laser(
        1, rigid(rotation_z(0.05), [1.43, 0.0, 2.18]), top_height, top_width,
        np.linspace(-0.3, 0.05, top_height), (0.0, 0.0), top_ranges, projection, top_pose,
    )
    front_ranges = np.zeros((4, 32), dtype=np.float32)
    front_ranges[:, 12:20] = np.float32(12.75)
    front = Laser(2, rigid(rotation_z(-0.02), [4.07, 0.0, 0.69]), 4, 32, None, (-1.2, 0.3), front_ranges)
    front.projection = np.zeros((4, 32, 6), dtype=np.int32)

    scene = Scene(
        calibration, released_poses(),
        [(RELEASED / "rgb" / "original" / f"{i:06d}.jpg").read_bytes() for i in range(FRAMES)],
        semantic, instance, [top, front], frame_pose,
    )
    # A box around three of the four points on that vehicle (known from the expected points).
    points = expected_laser_points(top, frame_pose)
    centre = np.mean([points[pixel] for pixel in VEHICLE_PIXELS[:3]], axis=0)
    scene.boxes = [
        dict(type=1, center=centre + [40, 0, 0], length=1.0, width=1.0, height=1.0, heading=0.0,
             speed=(1.0, 0.0, 0.0), accel=(0.0, 0.0, 0.0)),  # holds none of them
        dict(type=1, center=centre, length=6.0, width=5.0, height=4.0, heading=0.3,
             speed=(3.5, -0.5, 0.25), accel=(0.125, 0.0, -0.5)),
    ]
    return scene


def laser_ray(laser: Laser, row: int, col: int) -> np.ndarray:
    """The unit direction of a range-image pixel in the laser frame."""
    inclination = laser.row_inclinations()[row]
    correction = np.arctan2(laser.extrinsic[1, 0], laser.extrinsic[0, 0])
    azimuth = ((laser.width - col - 0.5) / laser.width * 2 - 1) * np.pi - correction
    return np.array([np.cos(azimuth) * np.cos(inclination), np.sin(azimuth) * np.cos(inclination), np.sin(inclination)])


def expected_laser_points(laser: Laser, frame_pose: np.ndarray) -> dict[tuple[int, int], np.ndarray]:
    """Vehicle-frame point of every pixel with a return, computed pixel by pixel."""
    points = {}
    for row in range(laser.height):
        for col in range(laser.width):
            r = float(laser.ranges[row, col])
            if r <= 0:
                continue
            point = laser.extrinsic @ np.append(r * laser_ray(laser, row, col), 1.0)
            if laser.pose is not None:
                pixel = euler_pose(*laser.pose[row, col, :3].astype(np.float64), laser.pose[row, col, 3:].astype(np.float64))
                point = np.linalg.solve(frame_pose, pixel @ point)
            points[(row, col)] = point[:3]
    return points


def expected_depth(scene: Scene) -> np.ndarray:
    """[u, v, z] of every point in front of the FRONT camera and inside the image, lasers in name order."""
    k = scene.calibration["intrinsic"]
    extrinsic = np.array(scene.calibration["extrinsic"]).reshape(4, 4)
    height, width = scene.calibration["dim"]
    rows = []
    for laser in sorted(scene.lasers, key=lambda laser: laser.name):
        for point in expected_laser_points(laser, scene.frame_pose).values():
            in_camera = np.linalg.solve(extrinsic, np.append(point, 1.0))[:3]  # x forward, y left, z up
            z = in_camera[0]
            if z <= 0:
                continue
            u = k[0] * -in_camera[1] / z + k[2]
            v = k[1] * -in_camera[2] / z + k[3]
            if 0 <= u < width and 0 <= v < height:
                rows.append([u, v, z])
    return np.array(rows)


def panoptic_png(scene: Scene) -> bytes:
    panoptic = scene.semantic.astype(np.uint16) * DIVISOR + scene.instance.astype(np.uint16)
    ok, buffer = cv2.imencode(".png", panoptic)
    assert ok
    return buffer.tobytes()


def encode_laser(laser: Laser, labelled: bool) -> bytes:
    image = np.zeros((laser.height, laser.width, 4), dtype=np.float32)
    image[..., 0] = laser.ranges
    image[..., 1] = 0.5
    ri = f_bytes(2, matrix_float(image))
    if labelled and laser.projection is not None:
        ri += f_bytes(3, matrix_int32(laser.projection))
    if laser.pose is not None:
        ri += f_bytes(4, matrix_float(laser.pose))
    return f_int(1, laser.name) + f_bytes(2, ri) + f_bytes(3, f_bytes(2, matrix_float(np.zeros((1, 1, 4), np.float32))))


def encode_laser_calibration(laser: Laser) -> bytes:
    body = f_int(1, laser.name)
    if laser.inclinations is not None:
        body += f_doubles(2, laser.inclinations, packed=False)  # unpacked, as in real files
    body += f_double(3, laser.inclination_range[0]) + f_double(4, laser.inclination_range[1])
    return body + f_bytes(5, transform(laser.extrinsic))


def encode_box_label(box: dict) -> bytes:
    centre = box["center"]
    body = b"".join(f_double(n, float(v)) for n, v in zip((1, 2, 3), centre))
    body += f_double(4, box["width"]) + f_double(5, box["length"]) + f_double(6, box["height"]) + f_double(7, box["heading"])
    sx, sy, sz = box["speed"]
    ax, ay, az = box["accel"]
    metadata = f_double(1, sx) + f_double(2, sy) + f_double(3, ax) + f_double(4, ay) + f_double(5, sz) + f_double(6, az)
    decoy = b"".join(f_double(n, 0.0) for n in (1, 2, 3)) + f_double(4, 100.0) + f_double(5, 100.0) + f_double(6, 100.0)
    return f_bytes(1, decoy) + f_bytes(2, metadata) + f_int(3, box["type"]) + f_bytes(4, b"label-id") + f_bytes(12, body)


def encode_frame(scene: Scene, index: int) -> bytes:
    cal = scene.calibration
    height, width = cal["dim"]
    front_cal = f_int(1, 1) + f_doubles(2, cal["intrinsic"]) + f_bytes(3, transform(np.array(cal["extrinsic"])))
    front_cal += f_int(4, width) + f_int(5, height)
    side_cal = f_int(1, 4) + f_doubles(2, np.arange(9)) + f_bytes(3, transform(np.eye(4))) + f_int(4, 1920) + f_int(5, 886)
    context = f_bytes(1, SEGMENT.encode()) + f_bytes(2, side_cal) + f_bytes(2, front_cal)
    context += b"".join(f_bytes(3, encode_laser_calibration(laser)) for laser in reversed(scene.lasers))
    labelled = index == LABELLED_FRAME
    image = f_int(1, 1) + f_bytes(2, scene.jpegs[index]) + f_bytes(3, transform(scene.poses[index], packed=index != 2))
    if labelled:
        image += f_bytes(10, f_int(1, DIVISOR) + f_bytes(2, panoptic_png(scene)))
    side_image = f_int(1, 4) + f_bytes(2, b"not a jpeg") + f_bytes(3, transform(np.eye(4)))
    frame = f_bytes(1, context) + f_int(2, 1_550_000_000_000_000 + index * 100_000)
    frame += f_bytes(3, transform(scene.frame_pose)) + f_bytes(4, side_image) + f_bytes(4, image)
    frame += b"".join(f_bytes(5, encode_laser(laser, labelled)) for laser in scene.lasers)
    if labelled:
        frame += b"".join(f_bytes(6, encode_box_label(box)) for box in scene.boxes)
    return frame


def write_segment(raw: Path, scene: Scene, split: str = "val", name: str = SEGMENT) -> Path:
    path = raw / split / f"{name}_with_camera_labels.tfrecord"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(encode_record(encode_frame(scene, i)) for i in range(FRAMES)))
    return path


def tree(folder: Path) -> dict[str, bytes]:
    """Every file below `folder` by relative path, with its bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
