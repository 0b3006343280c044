"""nuScenes (v1.0-trainval or v1.0-mini) -> the processed layout the nuScenes loader reads, without the devkit.

The JSON tables are read directly. Raw input::

    RAW/<version>/{scene,sample,sample_data,calibrated_sensor,sensor,ego_pose,
                   sample_annotation,instance,category,attribute}.json
    RAW/samples/..., RAW/sweeps/...                      the files that sample_data names
    RAW/panoptic/<version>/<lidar token>_panoptic.npz    optional: the Panoptic nuScenes release

Processed output, per scene::

    OUT/scenes/<scene>/FRONT/rgb/original/%06d.jpg     link to the raw CAM_FRONT image (or a copy)
    OUT/scenes/<scene>/FRONT/rgb/downsample/%06d.jpg   512x288, area interpolation, quality 95
    OUT/scenes/<scene>/FRONT/rgb/cam.json              camera_intrinsic, translation, rotation, dim, intrinsic_mat
    OUT/scenes/<scene>/FRONT/rgb/ts.json               milliseconds between consecutive frames
    OUT/scenes/<scene>/FRONT/depth/%06d.npy            float64 rows [u, v, z]
    OUT/scenes/<scene>/FRONT/mask/%06d.npz             keyframes: panoptic_label (uint16), motion_label (uint8) per depth point
    OUT/scenes/<scene>/FRONT/odometry.txt              ego pose at camera time, 16 numbers per frame

Frames are the CAM_FRONT chain from the first sample's keyframe to the end, sweeps included.
A frame's lidar is the LIDAR_TOP sample_data nearest in time (a keyframe's own sample's).
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import cv2
import numpy as np

from dynamo_core.errors import ConfigError, DataError

from .files import atomic_output, copy_atomic, remove_stray_temp_files, save_npy_atomic, symlink_atomic, write_text_atomic
from .sequences import SequenceJob, SequenceResult, mark_complete, run_sequences

logger = logging.getLogger(__name__)

VERSIONS = ("v1.0-trainval", "v1.0-mini")
TABLES = ("scene", "sample", "sample_data", "calibrated_sensor", "sensor", "ego_pose",
          "sample_annotation", "instance", "category", "attribute")
CAMERA_CHANNEL, LIDAR_CHANNEL = "CAM_FRONT", "LIDAR_TOP"
CAMERA = "FRONT"
DOWNSAMPLE_SIZE = (512, 288)
JPEG_QUALITY = 95
MIN_DEPTH = 1.0
BORDER = 1
"""Points are kept strictly inside the image by this many pixels."""
POINT_FIELDS = 5
"""A `.pcd.bin` holds float32 rows x, y, z, intensity, ring."""
PANOPTIC_DIVISOR = 1000
NOT_MOVABLE, MOVING, NOT_MOVING, NO_BOX = 0, 1, 2, 3


# --------------------------------------------------------------------------- geometry


def quaternion_matrix(quaternion) -> np.ndarray:
    """(w, x, y, z) -> 3x3 rotation matrix (the quaternion is normalised first)."""
    w, x, y, z = np.asarray(quaternion, dtype=np.float64) / np.linalg.norm(quaternion)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


def pose_matrix(translation, rotation) -> np.ndarray:
    matrix = np.eye(4)
    matrix[:3, :3] = quaternion_matrix(rotation)
    matrix[:3, 3] = translation
    return matrix


def apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:3, :3].T + matrix[:3, 3]


def read_lidar(path: Path) -> np.ndarray:
    """(N, 3) float64 x, y, z of a `.pcd.bin` scan."""
    try:
        raw = np.fromfile(path, dtype="<f4")
    except OSError as err:
        raise DataError(f"cannot read lidar scan {path}: {err.strerror}; re-extract the nuScenes archive.") from None
    if raw.size % POINT_FIELDS:
        raise DataError(f"lidar scan {path} is truncated ({raw.size * 4} bytes is not whole points); re-extract it.")
    return raw.reshape(-1, POINT_FIELDS)[:, :3].astype(np.float64)


def project(camera_points: np.ndarray, intrinsic: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """[u, v, z] rows of the points in view, and which points those are (a boolean mask)."""
    z = camera_points[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        u = (intrinsic[0, 0] * camera_points[:, 0] + intrinsic[0, 1] * camera_points[:, 1]) / z + intrinsic[0, 2]
        v = intrinsic[1, 1] * camera_points[:, 1] / z + intrinsic[1, 2]
    keep = (z > MIN_DEPTH) & (u > BORDER) & (u < width - BORDER) & (v > BORDER) & (v < height - BORDER)
    return np.stack([u[keep], v[keep], z[keep]], axis=1).astype(np.float64), keep


def inside_box(points: np.ndarray, box: "Box") -> np.ndarray:
    """Which points lie strictly inside the box (size = width, length, height; x along the length)."""
    local = (points - np.asarray(box.center)) @ quaternion_matrix(box.rotation)
    width, length, height = box.size
    return (np.abs(local[:, 0]) < length / 2) & (np.abs(local[:, 1]) < width / 2) & (np.abs(local[:, 2]) < height / 2)


def is_movable(category: str) -> bool:
    return category != "vehicle.ego" and any(word in category for word in ("animal", "human", "vehicle"))


def motion_labels(panoptic: np.ndarray, points: np.ndarray, categories: dict[int, str], boxes: list["Box"]) -> np.ndarray:
    """One label per point: 0 not movable, 1 moving, 2 not moving, 3 no box holds the instance.

    `points` are in the global frame, like the boxes. Each instance takes the box of its category
    holding the largest fraction of its points (the first on a tie); its attribute says moving or not.
    """
    labels = np.zeros(panoptic.shape[0], dtype=np.uint8)
    for value in np.unique(panoptic):
        category = categories.get(int(value) // PANOPTIC_DIVISOR)
        if category is None or not is_movable(category):
            continue
        members = panoptic == value
        candidates = [box for box in boxes if box.category == category]
        fractions = [float(inside_box(points[members], box).mean()) for box in candidates]
        if not fractions or max(fractions) <= 0:
            labels[members] = NO_BOX
        else:
            labels[members] = MOVING if candidates[int(np.argmax(fractions))].moving else NOT_MOVING
    return labels


# --------------------------------------------------------------------------- tables -> jobs


@dataclass
class Box:
    category: str
    center: tuple[float, float, float]
    size: tuple[float, float, float]
    """width, length, height."""
    rotation: tuple[float, float, float, float]
    moving: bool


@dataclass
class Frame:
    image: str
    """Path relative to RAW."""
    timestamp: int
    ego_pose: np.ndarray
    """4x4 ego -> global at camera time."""
    lidar: str
    lidar_token: str
    lidar_ego_pose: np.ndarray
    lidar_calibration: np.ndarray
    """4x4 lidar -> ego."""
    keyframe: bool
    boxes: list[Box] = field(default_factory=list)


@dataclass
class Scene:
    raw: Path
    version: str
    camera: dict
    """cam.json without intrinsic_mat: camera_intrinsic, translation, rotation, dim."""
    frames: list[Frame]
    categories: Optional[dict[int, str]]
    """Panoptic category index -> name; None when the panoptic release is absent (no masks)."""
    copy_images: bool


def _read_table(folder: Path, name: str) -> list[dict]:
    path = folder / f"{name}.json"
    try:
        with open(path, encoding="utf-8") as handle:
            table = json.load(handle)
    except FileNotFoundError:
        raise DataError(f"nuScenes table {path} is missing; extract the metadata archive of {folder.name} into {folder.parent}.") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"nuScenes table {path} is not readable JSON ({err}); re-extract the metadata archive.") from None
    if not isinstance(table, list):
        raise DataError(f"nuScenes table {path} should hold a list of records.")
    return table


def panoptic_categories(category_table: list[dict], path: Path, version: str) -> dict[int, str]:
    """Panoptic category index -> name; the `index` field exists only in the panoptic release's category.json."""
    if not all("index" in c for c in category_table):
        raise DataError(
            f"{path} has no 'index' field: it is the category.json of the plain nuScenes metadata, but the "
            f"panoptic labels need the one from the Panoptic nuScenes archive ({version}). Extract that archive "
            f"into {path.parent.parent} again, so that its {version}/category.json replaces {path} "
            "(or move panoptic/ away to prepare without masks)."
        )
    return {int(c["index"]): c["name"] for c in category_table}


def _pose(record: dict) -> np.ndarray:
    return pose_matrix(record["translation"], record["rotation"])


def _nearest(timestamps: np.ndarray, time_us: int) -> int:
    return int(np.argmin(np.abs(timestamps - time_us)))


def load_scenes(raw: Path, version: str, copy_images: bool) -> list[tuple[str, Scene]]:
    """Read the tables once and describe every scene's frames."""
    try:
        return _load_scenes(raw, version, copy_images)
    except (KeyError, TypeError, ValueError) as err:
        raise DataError(
            f"the nuScenes tables in {raw / version} are inconsistent or incomplete ({type(err).__name__}: {err}); "
            "re-extract the metadata archive."
        ) from None


def _load_scenes(raw: Path, version: str, copy_images: bool) -> list[tuple[str, Scene]]:
    folder = raw / version
    if not folder.is_dir():
        found = [v for v in VERSIONS if (raw / v).is_dir()]
        hint = f" (found {', '.join(found)}: pass --version {found[0]})" if found else ""
        raise DataError(f"nuScenes metadata folder {folder} does not exist{hint}; pass the dataroot that holds {version}/.")
    tables = {name: _read_table(folder, name) for name in TABLES}
    by_token = {name: {r["token"]: r for r in tables[name]} for name in TABLES if name != "sample_data"}
    channel_of = {c["token"]: by_token["sensor"][c["sensor_token"]]["channel"] for c in tables["calibrated_sensor"]}
    sample_data = {}
    for record in tables["sample_data"]:
        channel = channel_of.get(record["calibrated_sensor_token"])
        if channel in (CAMERA_CHANNEL, LIDAR_CHANNEL):
            sample_data[record["token"]] = dict(record, channel=channel)
    keyframe_of = {(r["sample_token"], r["channel"]): r for r in sample_data.values() if r["is_key_frame"]}

    panoptic_dir = raw / "panoptic" / version
    categories = None
    if panoptic_dir.is_dir():
        categories = panoptic_categories(tables["category"], folder / "category.json", version)
    else:
        logger.warning("%s does not exist: no masks are written (they need the Panoptic nuScenes release)", panoptic_dir)

    instance_category = {
        r["token"]: by_token["category"][r["category_token"]]["name"] for r in tables["instance"]
    }
    attribute_name = {r["token"]: r["name"] for r in tables["attribute"]}
    boxes_of: dict[str, list[Box]] = {}
    for ann in tables["sample_annotation"]:
        moving = any("moving" in attribute_name.get(t, "") for t in ann.get("attribute_tokens", []))
        boxes_of.setdefault(ann["sample_token"], []).append(Box(
            instance_category[ann["instance_token"]], tuple(ann["translation"]), tuple(ann["size"]),
            tuple(ann["rotation"]), moving,
        ))

    scenes = []
    for scene in tables["scene"]:
        name = scene["name"]
        first_camera = keyframe_of.get((scene["first_sample_token"], CAMERA_CHANNEL))
        first_lidar = keyframe_of.get((scene["first_sample_token"], LIDAR_CHANNEL))
        if first_camera is None or first_lidar is None:
            raise DataError(f"scene {name}: its first sample has no {CAMERA_CHANNEL} or {LIDAR_CHANNEL} record in {folder}.")
        lidars = []
        record = first_lidar
        while record is not None:
            lidars.append(record)
            record = sample_data.get(record["next"]) if record["next"] else None
        lidar_times = np.array([r["timestamp"] for r in lidars], dtype=np.int64)
        frames = []
        record = first_camera
        while record is not None:
            if record["is_key_frame"]:
                lidar = keyframe_of[(record["sample_token"], LIDAR_CHANNEL)]
            else:
                lidar = lidars[_nearest(lidar_times, record["timestamp"])]
            frames.append(Frame(
                image=record["filename"],
                timestamp=int(record["timestamp"]),
                ego_pose=_pose(by_token["ego_pose"][record["ego_pose_token"]]),
                lidar=lidar["filename"],
                lidar_token=lidar["token"],
                lidar_ego_pose=_pose(by_token["ego_pose"][lidar["ego_pose_token"]]),
                lidar_calibration=_pose(by_token["calibrated_sensor"][lidar["calibrated_sensor_token"]]),
                keyframe=bool(record["is_key_frame"]),
                boxes=boxes_of.get(record["sample_token"], []) if record["is_key_frame"] else [],
            ))
            record = sample_data.get(record["next"]) if record["next"] else None
        sensor = by_token["calibrated_sensor"][first_camera["calibrated_sensor_token"]]
        camera = {
            "camera_intrinsic": sensor["camera_intrinsic"],
            "translation": sensor["translation"],
            "rotation": sensor["rotation"],
            "dim": [int(first_camera["height"]), int(first_camera["width"])],
        }
        scenes.append((name, Scene(raw, version, camera, frames, categories, copy_images)))
    return scenes


# --------------------------------------------------------------------------- one scene


def camera_json(camera: dict) -> dict:
    height, width = camera["dim"]
    normalised = np.array(camera["camera_intrinsic"], dtype=np.float64)
    normalised[0] /= width
    normalised[1] /= height
    return dict(camera, intrinsic_mat=normalised.tolist())


def time_steps(frames: list[Frame]) -> list[int]:
    """Milliseconds between consecutive frames, the true values (the original wrapped them at 256)."""
    return [int(np.rint((b.timestamp - a.timestamp) / 1000)) for a, b in zip(frames, frames[1:])]


def _camera_matrix(camera: dict) -> np.ndarray:
    """4x4 camera -> ego."""
    return pose_matrix(camera["translation"], camera["rotation"])


def frame_depth(scene: Scene, frame: Frame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Depth rows, which scan points they are, and those points in the global frame."""
    points = read_lidar(scene.raw / frame.lidar)
    world = apply(frame.lidar_ego_pose @ frame.lidar_calibration, points)
    to_camera = np.linalg.inv(frame.ego_pose @ _camera_matrix(scene.camera))
    height, width = scene.camera["dim"]
    rows, keep = project(apply(to_camera, world), np.array(scene.camera["camera_intrinsic"]), width, height)
    return rows, keep, world[keep]


def read_panoptic(path: Path, points: int) -> np.ndarray:
    try:
        with np.load(path, allow_pickle=False) as archive:
            labels = archive["data"]
    except FileNotFoundError:
        raise DataError(f"panoptic label file {path} is missing; extract the Panoptic nuScenes archive into the dataroot.") from None
    except (KeyError, ValueError, OSError, EOFError) as err:
        raise DataError(f"panoptic label file {path} is corrupt or lacks 'data' ({err}); re-extract it.") from None
    labels = labels.reshape(-1)
    if labels.shape[0] != points:
        raise DataError(f"panoptic label file {path} has {labels.shape[0]} labels for a scan of {points} points.")
    return labels.astype(np.uint16)


def _write_npz(path: Path, **arrays: np.ndarray) -> None:
    with atomic_output(path) as stream:
        np.savez_compressed(stream, **arrays)


def _write_jpeg(path: Path, image: np.ndarray) -> None:
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise DataError(f"could not encode {path}")
    with atomic_output(path) as stream:
        stream.write(buffer.tobytes())


def write_frame(scene: Scene, frame: Frame, index: int, out_dir: Path) -> bool:
    source = scene.raw / frame.image
    image = cv2.imread(str(source), cv2.IMREAD_COLOR)
    if image is None:
        raise DataError(f"camera image {source} is missing or not an image; re-extract the nuScenes archive.")
    original = out_dir / "rgb" / "original" / f"{index:06d}.jpg"
    if scene.copy_images:
        copy_atomic(source, original)
    else:
        symlink_atomic(source.resolve(), original)
    _write_jpeg(out_dir / "rgb" / "downsample" / f"{index:06d}.jpg",
                cv2.resize(image, DOWNSAMPLE_SIZE, interpolation=cv2.INTER_AREA))
    rows, keep, world = frame_depth(scene, frame)
    save_npy_atomic(out_dir / "depth" / f"{index:06d}.npy", rows)
    if not frame.keyframe or scene.categories is None:
        return False
    panoptic_path = scene.raw / "panoptic" / scene.version / f"{frame.lidar_token}_panoptic.npz"
    panoptic = read_panoptic(panoptic_path, keep.shape[0])[keep]
    motion = motion_labels(panoptic, world, scene.categories, frame.boxes)
    _write_npz(out_dir / "mask" / f"{index:06d}.npz", panoptic_label=panoptic, motion_label=motion)
    return True


def prepare_scene(job: SequenceJob, tick: Callable[[], None]) -> tuple[int, int]:
    scene: Scene = job.payload
    out_dir = job.out_dir
    for folder in ("", "rgb", "rgb/original", "rgb/downsample", "depth", "mask"):
        remove_stray_temp_files(out_dir / folder)
    labelled = 0
    for index, frame in enumerate(scene.frames):
        labelled += write_frame(scene, frame, index, out_dir)
        tick()
    write_text_atomic(out_dir / "rgb" / "cam.json", json.dumps(camera_json(scene.camera)))
    write_text_atomic(out_dir / "rgb" / "ts.json", json.dumps(time_steps(scene.frames)))
    write_text_atomic(out_dir / "odometry.txt", "".join(
        " ".join(str(float(v)) for v in frame.ego_pose.reshape(-1)) + "\n" for frame in scene.frames
    ))
    mark_complete(out_dir, len(scene.frames), labelled)
    return len(scene.frames), labelled


# --------------------------------------------------------------------------- whole dataset


@dataclass
class NuScenesPreparation:
    """What a `prepare_nuscenes` run did."""

    segments: list[SequenceResult] = field(default_factory=list)
    """One per scene (named `segments` to share the summary with Waymo)."""
    frames: int = 0
    seconds: float = 0.0
    masks: bool = True


def prepare_nuscenes(
    raw: Path | str,
    out: Path | str,
    version: str = "v1.0-trainval",
    workers: int = 1,
    copy_images: bool = False,
    scenes: Optional[list[str]] = None,
    progress: Optional[Callable[[int, int], None]] = None,
) -> NuScenesPreparation:
    """Convert the nuScenes dataroot `raw` into the processed layout under `out/scenes/`."""
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}.")
    if version not in VERSIONS:
        raise ConfigError(f"--version must be one of {', '.join(VERSIONS)}, got {version!r}.")
    started = time.perf_counter()
    raw, out = Path(raw).expanduser(), Path(out).expanduser()
    if not raw.is_dir():
        raise DataError(f"nuScenes dataroot {raw} does not exist; pass the folder that holds {version}/, samples/ and sweeps/.")
    described = load_scenes(raw, version, copy_images)
    if scenes:
        unknown = sorted(set(scenes) - {name for name, _ in described})
        if unknown:
            raise ConfigError(f"--scene {', '.join(unknown)}: no such scene in {raw / version}.")
        described = [(name, scene) for name, scene in described if name in set(scenes)]
    jobs = [SequenceJob(name, "scenes", out / "scenes" / name / CAMERA, len(scene.frames), scene) for name, scene in described]
    result = NuScenesPreparation(masks=bool(described) and described[0][1].categories is not None)
    result.segments = run_sequences(jobs, prepare_scene, workers, progress)
    result.frames = sum(s.frames for s in result.segments)
    result.seconds = time.perf_counter() - started
    return result
