"""Build a tiny nuScenes dataroot: JSON tables, lidar scans, panoptic files and camera JPEGs.

One scene has two keyframes; the CAM_FRONT chain is a sweep before the first keyframe (left
out), keyframe 0, two sweeps (the second after a 300 ms gap), keyframe 1 and a trailing sweep.
LIDAR_TOP runs at 20 Hz from just before the first keyframe. Each scan is the same cloud in the
lidar frame shifted by its index, so the test can tell which scan a frame used. Expected values
are computed here with scipy's rotations, independently of the code under test.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from conftest import SHARED

REFERENCE = SHARED / "data" / "tiny_nuscenes" / "scenes" / "scene-0001" / "FRONT"
T0 = 1_531_883_530_412_470
CAMERA_TIMES = [-83_000, 0, 100_000, 400_000, 500_000, 583_000]  # relative to T0; the first is before keyframe 0
CAMERA_KEYFRAMES = {1: 0, 4: 1}  # chain position -> sample index
LIDAR_TIMES = [-30_000 + 50_000 * i for i in range(14)]  # -30 ms, 20 ms, 70 ms, ...
LIDAR_KEYFRAMES = {1: 0, 11: 1}  # lidar 1 (20 ms) for sample 0, lidar 11 (520 ms) for sample 1
PANOPTIC_CATEGORIES = [
    "noise", "animal", "human.pedestrian.adult", "vehicle.car", "flat.driveable_surface", "vehicle.ego",
]
CAR, PEDESTRIAN, ROAD, EGO = 3, 2, 4, 5  # panoptic category indices above


def quaternion(rotation: Rotation) -> list[float]:
    x, y, z, w = rotation.as_quat()
    return [float(w), float(x), float(y), float(z)]


def matrix(translation, rotation_wxyz) -> np.ndarray:
    w, x, y, z = rotation_wxyz
    out = np.eye(4)
    out[:3, :3] = Rotation.from_quat([x, y, z, w]).as_matrix()
    out[:3, 3] = translation
    return out


def transform(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    return (m[:3, :3] @ points.T).T + m[:3, 3]


@dataclass
class Cloud:
    points: np.ndarray  # (N, 3) in the lidar frame, float32-exact
    panoptic: np.ndarray  # (N,) uint16


def make_cloud() -> Cloud:
    rng = np.random.default_rng(3)
    parts, labels = [], []

    def add(centre, spread, count, label):
        parts.append(np.asarray(centre) + rng.uniform(-spread, spread, (count, 3)))
        labels.append(np.full(count, label))

    add([15, 2, 0], 0.5, 40, CAR * 1000 + 1)  # moving car, boxed
    add([12, -3, 0], 0.3, 25, PEDESTRIAN * 1000 + 2)  # standing pedestrian, boxed
    add([25, 4, 0.5], 0.5, 30, CAR * 1000 + 3)  # car without a box
    add([20, 0, -1.7], 8, 200, ROAD * 1000)  # road: not movable
    add([2, 0, -1], 0.5, 10, EGO * 1000)  # the car itself: not movable
    add([-10, 0, 0], 3, 30, ROAD * 1000)  # behind the camera
    add([0.5, 0, 0], 0.2, 5, ROAD * 1000)  # too close
    add([10, 30, 0], 1, 10, ROAD * 1000)  # outside the image
    points = np.concatenate(parts).astype(np.float32).astype(np.float64)
    return Cloud(points, np.concatenate(labels).astype(np.uint16))


def lidar_points(cloud: Cloud, index: int) -> np.ndarray:
    return cloud.points + np.array([0.0, 0.0, 0.001 * index])  # tells scans apart, stays float32-exact enough


@dataclass
class Built:
    raw: Path
    version: str
    cloud: Cloud
    scenes: list[str]
    cam: dict
    lidar_calibration: dict
    ego_poses: dict = field(default_factory=dict)  # sample_data token -> (translation, rotation)
    boxes: dict = field(default_factory=dict)  # sample index -> list of box dicts (global)


def ego_pose(time_us: int, scene: int) -> tuple[list[float], list[float]]:
    seconds = time_us / 1e6
    translation = [400.0 + 100 * scene + 8.0 * seconds, 1200.0 - 0.5 * seconds, 0.0]
    rotation = quaternion(Rotation.from_euler("z", 0.3 + 0.05 * seconds + scene))
    return translation, rotation


def build_nuscenes(root: Path, version: str = "v1.0-mini", scenes: int = 1, with_index: bool = True,
                   panoptic: bool = True) -> Built:
    raw = root / "nuscenes"
    tables: dict[str, list] = {name: [] for name in (
        "scene", "sample", "sample_data", "calibrated_sensor", "sensor", "ego_pose",
        "sample_annotation", "instance", "category", "attribute", "log", "map", "visibility")}
    reference_cam = json.loads((REFERENCE / "rgb" / "cam.json").read_text())
    tables["sensor"] = [
        {"token": "sensor-cam", "channel": "CAM_FRONT", "modality": "camera"},
        {"token": "sensor-back", "channel": "CAM_BACK", "modality": "camera"},
        {"token": "sensor-lidar", "channel": "LIDAR_TOP", "modality": "lidar"},
    ]
    lidar_calibration = {
        "token": "cs-lidar", "sensor_token": "sensor-lidar", "translation": [0.94, 0.0, 1.84],
        "rotation": quaternion(Rotation.from_euler("z", 0.02)), "camera_intrinsic": [],
    }
    tables["calibrated_sensor"] = [
        {"token": "cs-cam", "sensor_token": "sensor-cam", "translation": reference_cam["translation"],
         "rotation": reference_cam["rotation"], "camera_intrinsic": reference_cam["camera_intrinsic"]},
        {"token": "cs-back", "sensor_token": "sensor-back", "translation": [0, 0, 1], "rotation": [1, 0, 0, 0],
         "camera_intrinsic": reference_cam["camera_intrinsic"]},
        lidar_calibration,
    ]
    names = PANOPTIC_CATEGORIES + ["movable_object.barrier"]
    tables["category"] = [
        {"token": f"cat-{i}", "name": name, "description": name, **({"index": i} if with_index else {})}
        for i, name in enumerate(names)
    ]
    tables["attribute"] = [
        {"token": "attr-moving", "name": "vehicle.moving", "description": ""},
        {"token": "attr-standing", "name": "pedestrian.standing", "description": ""},
        {"token": "attr-parked", "name": "vehicle.parked", "description": ""},
    ]
    cloud = make_cloud()
    built = Built(raw, version, cloud, [], reference_cam, lidar_calibration)
    images = sorted((REFERENCE / "rgb" / "original").glob("*.jpg"))
    for s in range(scenes):
        scene_name = f"scene-{s + 1:04d}"
        built.scenes.append(scene_name)
        samples = [f"{scene_name}-sample-{k}" for k in range(2)]
        tables["scene"].append({"token": f"{scene_name}-token", "name": scene_name, "first_sample_token": samples[0],
                                "last_sample_token": samples[1], "nbr_samples": 2, "description": "day, clear",
                                "log_token": "log"})
        for k, token in enumerate(samples):
            tables["sample"].append({"token": token, "timestamp": T0 + [0, 500_000][k], "scene_token": f"{scene_name}-token",
                                     "prev": samples[k - 1] if k else "", "next": samples[k + 1] if k == 0 else ""})

        def chain(channel: str, times: list[int], keyframes: dict[int, int], folder: str, ext: str, cs: str):
            tokens = [f"{scene_name}-{channel}-{i}" for i in range(len(times))]
            for i, (token, dt) in enumerate(zip(tokens, times)):
                key = i in keyframes
                sample = samples[keyframes[i]] if key else samples[0 if dt < 500_000 else 1]
                filename = f"{'samples' if key else 'sweeps'}/{channel}/{scene_name}_{channel}_{i}.{ext}"
                translation, rotation = ego_pose(dt, s)
                tables["ego_pose"].append({"token": f"ego-{token}", "timestamp": T0 + dt,
                                           "translation": translation, "rotation": rotation})
                built.ego_poses[token] = (translation, rotation)
                tables["sample_data"].append({
                    "token": token, "sample_token": sample, "ego_pose_token": f"ego-{token}",
                    "calibrated_sensor_token": cs, "timestamp": T0 + dt, "fileformat": ext.split(".")[-1],
                    "is_key_frame": key, "height": 900 if channel.startswith("CAM") else 0,
                    "width": 1600 if channel.startswith("CAM") else 0, "filename": filename,
                    "prev": tokens[i - 1] if i else "", "next": tokens[i + 1] if i + 1 < len(tokens) else "",
                })
                path = raw / filename
                path.parent.mkdir(parents=True, exist_ok=True)
                if channel.startswith("CAM"):
                    path.write_bytes(images[i % len(images)].read_bytes())
                else:
                    scan = np.zeros((len(cloud.points), 5), dtype=np.float32)
                    scan[:, :3] = lidar_points(cloud, i)
                    scan[:, 3] = 7.0
                    scan.tofile(path)
                    if key and panoptic:
                        pan = raw / "panoptic" / version / f"{token}_panoptic.npz"
                        pan.parent.mkdir(parents=True, exist_ok=True)
                        np.savez_compressed(pan, data=cloud.panoptic)
            return tokens

        chain("CAM_FRONT", CAMERA_TIMES, CAMERA_KEYFRAMES, "", "jpg", "cs-cam")
        chain("CAM_BACK", [0, 500_000], {0: 0, 1: 1}, "", "jpg", "cs-back")
        lidar_tokens = chain("LIDAR_TOP", LIDAR_TIMES, LIDAR_KEYFRAMES, "", "pcd.bin", "cs-lidar")

        # Boxes in the global frame, around clusters as seen by each keyframe's own scan.
        for lidar_index, sample_index in LIDAR_KEYFRAMES.items():
            to_world = matrix(*built.ego_poses[lidar_tokens[lidar_index]]) @ matrix(
                lidar_calibration["translation"], lidar_calibration["rotation"])
            yaw = Rotation.from_euler("z", 0.4)

            def centre(x, y, z):
                return [float(v) for v in transform(to_world, np.array([[x, y, z + 0.001 * lidar_index]]))[0]]

            boxes = [
                ("vehicle.car", centre(40, -20, 0), [1, 1, 1], ["attr-parked"]),  # holds nothing
                ("vehicle.car", centre(15, 2, 0), [3, 3.5, 2.5], ["attr-moving"]),
                ("vehicle.car", centre(12, -3, 0), [2, 2, 2.5], ["attr-moving"]),  # holds the pedestrian: wrong class
                ("human.pedestrian.adult", centre(12, -3, 0), [1.5, 1.5, 2.5], ["attr-standing"]),
            ]
            for b, (category, center, size, attributes) in enumerate(boxes):
                instance = f"{scene_name}-instance-{b}"
                if sample_index == 0:
                    tables["instance"].append({"token": instance, "category_token": f"cat-{names.index(category)}"})
                tables["sample_annotation"].append({
                    "token": f"{scene_name}-ann-{sample_index}-{b}", "sample_token": samples[sample_index],
                    "instance_token": instance, "attribute_tokens": attributes, "translation": center, "size": size,
                    "rotation": quaternion(yaw * Rotation.from_matrix(to_world[:3, :3])),
                })
    folder = raw / version
    folder.mkdir(parents=True, exist_ok=True)
    for name, records in tables.items():
        (folder / f"{name}.json").write_text(json.dumps(records))
    return built


def frame_tokens(scene: str) -> list[tuple[str, str, bool]]:
    """(camera token, lidar token, keyframe) of the frames prepare must write, in order."""
    frames = []
    lidar_times = np.array(LIDAR_TIMES)
    for i in range(1, len(CAMERA_TIMES)):
        if i in CAMERA_KEYFRAMES:
            lidar = next(k for k, v in LIDAR_KEYFRAMES.items() if v == CAMERA_KEYFRAMES[i])
        else:
            lidar = int(np.argmin(np.abs(lidar_times - CAMERA_TIMES[i])))
        frames.append((f"{scene}-CAM_FRONT-{i}", f"{scene}-LIDAR_TOP-{lidar}", i in CAMERA_KEYFRAMES))
    return frames


def expected_frame(built: Built, scene: str, position: int) -> tuple[np.ndarray, np.ndarray]:
    """[u, v, z] rows and which cloud points they are, for frame `position` of `scene`."""
    camera, lidar, _ = frame_tokens(scene)[position]
    index = int(lidar.rsplit("-", 1)[1])
    points = lidar_points(built.cloud, index).astype(np.float32).astype(np.float64)
    lc = built.lidar_calibration
    world = transform(matrix(*built.ego_poses[lidar]) @ matrix(lc["translation"], lc["rotation"]), points)
    cam_to_world = matrix(*built.ego_poses[camera]) @ matrix(built.cam["translation"], built.cam["rotation"])
    in_camera = transform(np.linalg.inv(cam_to_world), world)
    k = np.array(built.cam["camera_intrinsic"])
    pixels = (k @ in_camera.T).T
    u, v, z = pixels[:, 0] / pixels[:, 2], pixels[:, 1] / pixels[:, 2], in_camera[:, 2]
    keep = (z > 1) & (u > 1) & (u < 1599) & (v > 1) & (v < 899)
    return np.stack([u, v, z], axis=1)[keep], keep
