"""Write the scene that `raw_waymo` encodes as v1 TFRecords as Waymo v2 parquet components instead.

Test-side and independent of the reader under test: column names and types follow the published v2
schema. Rows are written out of time order, some files in several row groups, and with columns the
reader does not need, as real files may be.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from raw_waymo import DIVISOR, FRAMES, LABELLED_FRAME, SEGMENT, Scene, panoptic_png

CONTEXT = SEGMENT.removeprefix("segment-")
TIMESTAMPS = [1_550_000_000_000_000 + index * 100_000 for index in range(FRAMES)]
"""As in the v1 records."""
SIDE_CAMERA = 4

TRANSFORM = pa.list_(pa.float64(), 16)
SHAPE = pa.list_(pa.int32(), 3)


def flat(matrix) -> list[float]:
    return [float(v) for v in np.asarray(matrix, dtype=np.float64).reshape(-1)]


def write_component(folder: Path, name: str, columns: dict[str, tuple[pa.DataType, list]], row_group_size=None,
                    drop: tuple[str, ...] = ()) -> Path:
    """One component file; `columns` maps each column name to (arrow type, values), `drop` leaves columns out."""
    path = folder / name / f"{CONTEXT}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {column: pa.array(values, kind) for column, (kind, values) in columns.items() if column not in drop}
    pq.write_table(pa.table(arrays), path, row_group_size=row_group_size)
    return path


def keyed(rows: list[dict], keys: dict[str, pa.DataType], values: dict[str, pa.DataType]) -> dict:
    """Column name -> (type, values) from row dicts, with `key.segment_context_name` first."""
    columns = {"key.segment_context_name": (pa.string(), [CONTEXT] * len(rows))}
    for column, kind in {**keys, **values}.items():
        columns[column] = (kind, [row.get(column) for row in rows])
    return columns


def camera_image(scene: Scene) -> dict:
    image = "[CameraImageComponent]"
    rows = []
    for index in reversed(range(FRAMES)):  # out of time order, cameras interleaved
        rows.append({"key.frame_timestamp_micros": TIMESTAMPS[index], "key.camera_name": SIDE_CAMERA,
                     f"{image}.image": b"not a jpeg", f"{image}.pose.transform": flat(np.eye(4))})
        rows.append({"key.frame_timestamp_micros": TIMESTAMPS[index], "key.camera_name": 1,
                     f"{image}.image": scene.jpegs[index], f"{image}.pose.transform": flat(scene.poses[index]),
                     f"{image}.pose_timestamp": TIMESTAMPS[index] / 1e6})
    keys = {"key.frame_timestamp_micros": pa.int64(), "key.camera_name": pa.int8()}
    values = {f"{image}.image": pa.binary(), f"{image}.pose.transform": TRANSFORM,
              f"{image}.pose_timestamp": pa.float64()}
    return keyed(rows, keys, values)


def camera_calibration(scene: Scene) -> dict:
    calibration = "[CameraCalibrationComponent]"
    names = ("f_u", "f_v", "c_u", "c_v", "k1", "k2", "p1", "p2", "k3")
    height, width = scene.calibration["dim"]
    rows = []
    for camera, intrinsic, extrinsic, size in (
        (SIDE_CAMERA, np.arange(9.0), np.eye(4), (1920, 886)),
        (1, scene.calibration["intrinsic"], scene.calibration["extrinsic"], (width, height)),
    ):
        row = {"key.camera_name": camera, f"{calibration}.extrinsic.transform": flat(extrinsic),
               f"{calibration}.width": size[0], f"{calibration}.height": size[1]}
        row.update({f"{calibration}.intrinsic.{n}": float(v) for n, v in zip(names, intrinsic)})
        rows.append(row)
    values = {f"{calibration}.intrinsic.{n}": pa.float64() for n in names}
    values.update({f"{calibration}.extrinsic.transform": TRANSFORM, f"{calibration}.width": pa.int32(),
                   f"{calibration}.height": pa.int32()})
    return keyed(rows, {"key.camera_name": pa.int8()}, values)


def lidar_calibration(scene: Scene) -> dict:
    calibration = "[LiDARCalibrationComponent]"
    rows = []
    for laser in scene.lasers:
        rows.append({
            "key.laser_name": laser.name, f"{calibration}.extrinsic.transform": flat(laser.extrinsic),
            f"{calibration}.beam_inclination.min": laser.inclination_range[0],
            f"{calibration}.beam_inclination.max": laser.inclination_range[1],
            f"{calibration}.beam_inclination.values": None if laser.inclinations is None else flat(laser.inclinations),
        })
    values = {f"{calibration}.extrinsic.transform": TRANSFORM, f"{calibration}.beam_inclination.min": pa.float64(),
              f"{calibration}.beam_inclination.max": pa.float64(),
              f"{calibration}.beam_inclination.values": pa.list_(pa.float64())}
    return keyed(rows, {"key.laser_name": pa.int8()}, values)


def vehicle_pose(scene: Scene) -> dict:
    pose = "[VehiclePoseComponent].world_from_vehicle.transform"
    rows = [{"key.frame_timestamp_micros": t, pose: flat(scene.frame_pose)} for t in TIMESTAMPS]
    return keyed(rows, {"key.frame_timestamp_micros": pa.int64()}, {pose: TRANSFORM})


def range_images(scene: Scene, component: str, image_of, value_type: pa.DataType) -> dict:
    """A per-laser range-image component: `image_of(laser)` gives the (H, W, C) first return or None."""
    rows = []
    for index in reversed(range(FRAMES)):
        for laser in scene.lasers:
            image = image_of(laser)
            if image is None:
                continue
            rows.append({"key.frame_timestamp_micros": TIMESTAMPS[index], "key.laser_name": laser.name,
                         f"{component}.range_image_return1.values": image.reshape(-1).tolist(),
                         f"{component}.range_image_return1.shape": list(image.shape)})
    keys = {"key.frame_timestamp_micros": pa.int64(), "key.laser_name": pa.int8()}
    values = {f"{component}.range_image_return1.values": pa.list_(value_type),
              f"{component}.range_image_return1.shape": SHAPE}
    return keyed(rows, keys, values)


def lidar_image(laser) -> np.ndarray:
    image = np.zeros((laser.height, laser.width, 4), dtype=np.float32)
    image[..., 0] = laser.ranges
    image[..., 1] = 0.5
    return image


def camera_segmentation(scene: Scene) -> dict:
    label = "[CameraSegmentationLabelComponent]"
    rows = [{"key.frame_timestamp_micros": TIMESTAMPS[LABELLED_FRAME], "key.camera_name": 1,
             f"{label}.panoptic_label_divisor": DIVISOR, f"{label}.panoptic_label": panoptic_png(scene)}]
    keys = {"key.frame_timestamp_micros": pa.int64(), "key.camera_name": pa.int8()}
    return keyed(rows, keys, {f"{label}.panoptic_label_divisor": pa.int32(), f"{label}.panoptic_label": pa.binary()})


def boxes(scene: Scene, synced: bool) -> dict:
    """lidar_box (a decoy box, which must not be used, type, speed, acceleration) or lidar_camera_synced_box."""
    component = "[LiDARCameraSyncedBoxComponent].camera_synced_box" if synced else "[LiDARBoxComponent]"
    rows = []
    for number, box in enumerate(scene.boxes):
        row = {"key.frame_timestamp_micros": TIMESTAMPS[LABELLED_FRAME], "key.laser_object_id": f"box-{number}"}
        if synced:
            center, size = box["center"], (box["length"], box["width"], box["height"])
            row.update({f"{component}.center.{a}": float(v) for a, v in zip("xyz", center)})
            row.update({f"{component}.size.{a}": float(v) for a, v in zip("xyz", size)})
            row[f"{component}.heading"] = box["heading"]
        else:
            row.update({f"{component}.box.center.{a}": 0.0 for a in "xyz"})
            row.update({f"{component}.box.size.{a}": 100.0 for a in "xyz"})
            row[f"{component}.type"] = box["type"]
            row.update({f"{component}.speed.{a}": v for a, v in zip("xyz", box["speed"])})
            row.update({f"{component}.acceleration.{a}": v for a, v in zip("xyz", box["accel"])})
        rows.append(row)
    if synced:
        rows.reverse()  # joined by object id, not by order
        values = {f"{component}.{part}.{a}": pa.float64() for part in ("center", "size") for a in "xyz"}
        values[f"{component}.heading"] = pa.float64()
    else:
        values = {f"{component}.box.{part}.{a}": pa.float64() for part in ("center", "size") for a in "xyz"}
        values[f"{component}.type"] = pa.int8()
        values.update({f"{component}.{part}.{a}": pa.float64() for part in ("speed", "acceleration") for a in "xyz"})
    return keyed(rows, {"key.frame_timestamp_micros": pa.int64(), "key.laser_object_id": pa.string()}, values)


def write_v2_segment(raw: Path, scene: Scene, split: str = "validation", drop: tuple[str, ...] = ()) -> Path:
    """Every component the reader needs under `raw/split/`; returns that folder. `drop` leaves columns out."""
    folder = raw / split
    write_component(folder, "camera_image", camera_image(scene), row_group_size=2, drop=drop)
    write_component(folder, "camera_calibration", camera_calibration(scene), drop=drop)
    write_component(folder, "lidar_calibration", lidar_calibration(scene), drop=drop)
    write_component(folder, "vehicle_pose", vehicle_pose(scene), drop=drop)
    write_component(folder, "lidar", range_images(scene, "[LiDARComponent]", lidar_image, pa.float32()),
                    row_group_size=2, drop=drop)
    write_component(folder, "lidar_pose", range_images(scene, "[LiDARPoseComponent]", lambda laser: laser.pose,
                                                       pa.float32()), drop=drop)
    projection = range_images(scene, "[LiDARCameraProjectionComponent]", lambda laser: laser.projection, pa.float32())
    write_component(folder, "lidar_camera_projection", projection, row_group_size=3, drop=drop)
    write_component(folder, "camera_segmentation", camera_segmentation(scene), drop=drop)
    write_component(folder, "lidar_box", boxes(scene, synced=False), drop=drop)
    write_component(folder, "lidar_camera_synced_box", boxes(scene, synced=True), drop=drop)
    return folder
