"""Per-layout rules on small hand-made scenes: motion labels, time steps, synthetic masks, defaults."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import SHARED
from data_scenes import write_scene
from dynamo_core.data import DATASET_DEFAULTS, build_dataset
from dynamo_core.errors import ConfigError, DataError


def _square(x0: int, y0: int, side: int = 100) -> np.ndarray:
    corners = [(x0, y0), (x0 + side - 1, y0), (x0 + side - 1, y0 + side - 1), (x0, y0 + side - 1)]
    return np.array(corners, dtype=np.int32).reshape(-1, 1, 2)


def test_waymo_motion_labels(tmp_path):
    camera = write_scene(tmp_path, full_size=(1280, 1920))
    semantic = np.full((1280, 1920, 1), 7, np.uint8)
    np.savez(camera / "mask" / "000001.npz", semantic=semantic, instance=semantic)
    objects = [
        {"mask": (_square(100, 100),), "box_label": None, "speed": [None, None, None]},  # no box: unlabelled
        {"mask": (_square(300, 100),), "box_label": 1, "speed": [3.0, 4.0, 0.0]},  # 5 m/s: moving
        {"mask": (_square(500, 100),), "box_label": 1, "speed": [0.6, 0.6, 0.0]},  # 0.85 m/s: static
        {"mask": (_square(350, 100),), "box_label": 2, "speed": [0.0, 0.0, 0.0]},  # drawn last, covers
        {"mask": (), "box_label": None, "speed": [None, None, None]},  # nothing to draw
    ]
    (camera / "mask" / "000001.pickle").write_bytes(pickle.dumps(objects, protocol=3))
    item = build_dataset("waymo", tmp_path, ["seq-a 1"], frame_ids=[0], load_mask=True)[0]
    motion, sem = item["mot_mask"].numpy(), item["sem_mask"].numpy()
    assert motion.shape == sem.shape == (1280, 1920) and motion.dtype == np.uint8
    assert (sem == 7).all()
    assert motion[150, 150] == 3 and motion[100, 100] == 3 and motion[199, 199] == 3
    assert motion[150, 320] == 1
    assert motion[150, 375] == 2 and motion[150, 550] == 2
    assert motion[50, 50] == 0 and motion[150, 1000] == 0 and motion[99, 150] == 0
    assert set(np.unique(motion)) == {0, 1, 2, 3}


def test_nuscenes_time_steps(tmp_path):
    camera = write_scene(tmp_path, frames=(0, 1, 2, 3), full_size=(900, 1600))
    (camera / "rgb" / "ts.json").write_text(json.dumps([100, 50, 150, 100]))
    item = build_dataset("nuscenes", tmp_path, ["seq-a 1"], frame_ids=[0, -1, 1, 2])[0]
    # The time from frame 1 to frame 1 + f, summed over the steps between, over the usual step (100).
    assert item[("ts", 0)] == 0.0
    assert item[("ts", -1)] == 1.0
    assert item[("ts", 1)] == 0.5
    assert item[("ts", 2)] == 2.0
    (camera / "rgb" / "ts.json").write_text(json.dumps([100]))
    with pytest.raises(DataError, match="ts.json has 1 steps"):
        build_dataset("nuscenes", tmp_path, ["seq-a 1"], frame_ids=[0, 1])[0]


def test_nuscenes_motion_labels_spread_over_point_cells(tmp_path):
    points = np.array(
        [
            [33.2, 12.7, 10.0],  # cell (2, 6)
            [-3.0, 4.0, 10.0],  # negative: clipped into cell (0, 0)
            [1700.0, 950.0, 10.0],  # beyond the image: clipped into the last cell
            [31.0, 14.0, 10.0],  # cell (2, 6) again; the later point wins
            [100.9, 50.1, 10.0],  # cell (10, 20)
        ]
    )
    camera = write_scene(tmp_path, full_size=(900, 1600), points=points)
    (camera / "rgb" / "ts.json").write_text("[100, 100, 100]")
    np.savez(camera / "mask" / "000001.npz", motion_label=np.array([1, 2, 0, 2, 1], np.uint8))
    item = build_dataset("nuscenes", tmp_path, ["seq-a 1"], frame_ids=[0], load_mask=True)[0]
    motion = item["mot_mask"].numpy()
    expected = np.full((900, 1600), 3, np.uint8)
    expected[10:15, 30:35] = 2
    expected[0:5, 0:5] = 2
    expected[895:900, 1595:1600] = 0
    expected[50:55, 100:105] = 1
    assert np.array_equal(motion, expected)
    assert (item["sem_mask"].numpy() == 1).all()

    np.savez(camera / "mask" / "000001.npz", motion_label=np.array([1, 2], np.uint8))
    with pytest.raises(DataError, match="2 motion labels but"):
        build_dataset("nuscenes", tmp_path, ["seq-a 1"], frame_ids=[0], load_mask=True)[0]


def test_synthetic_masks_and_ground_truth_size(tmp_path):
    camera = write_scene(tmp_path, full_size=(96, 128))
    semantic = np.random.default_rng(0).integers(0, 5, (96, 128)).astype(np.uint8)
    motion = np.zeros((96, 128), np.uint8)
    motion[:, 60:] = 2
    motion[40:50, 70:90] = 1
    np.savez(camera / "mask" / "000001.npz", semantic=semantic, motion=motion)
    dataset = build_dataset("synthetic", tmp_path, ["seq-a 1"], height=48, width=64, load_mask=True, load_depth=True)
    item = dataset[0]
    assert item["gt_dim"].tolist() == [96, 128]
    assert np.array_equal(item["sem_mask"].numpy(), semantic)
    assert np.array_equal(item["mot_mask"].numpy(), motion)
    assert item[("color", 0, 0)].shape == (3, 48, 64)

    # Without 'dim' in cam.json the original image gives the size.
    cam = json.loads((camera / "rgb" / "cam.json").read_text())
    del cam["dim"]
    (camera / "rgb" / "cam.json").write_text(json.dumps(cam))
    assert build_dataset("synthetic", tmp_path, ["seq-a 1"])[0]["gt_dim"].tolist() == [96, 128]

    np.savez(camera / "mask" / "000001.npz", semantic=semantic[:10], motion=motion)
    with pytest.raises(DataError, match="'semantic' has shape"):
        dataset[0]


def test_images_are_resized_only_when_their_size_differs(tmp_path):
    write_scene(tmp_path, size=(48, 64), full_size=(96, 128))
    same = build_dataset("waymo", tmp_path, ["seq-a 1"], height=48, width=64, frame_ids=[0])[0]
    pixels = np.asarray(Image.open(tmp_path / "seq-a/FRONT/rgb/downsample/000001.jpg").convert("RGB"))
    assert np.array_equal((same[("color", 0, 0)] * 255).round().byte().permute(1, 2, 0).numpy(), pixels)
    resized = build_dataset("waymo", tmp_path, ["seq-a 1"], height=32, width=96, frame_ids=[0], img_type="original")
    assert resized[0][("color", 0, 0)].shape == (3, 32, 96)


def test_intrinsics_are_scaled_to_each_level(tmp_path):
    write_scene(tmp_path)
    item = build_dataset("waymo", tmp_path, ["seq-a 1"], height=64, width=96, num_scales=4, frame_ids=[0])[0]
    for scale in range(4):
        K, inv_K = item[("K", scale)], item[("inv_K", scale)]
        assert K.dtype == inv_K.dtype == torch.float32
        assert K[0, 0].item() == pytest.approx(0.6 * 96 / 2**scale)
        assert K[1, 2].item() == pytest.approx(0.5 * 64 / 2**scale)
        assert np.allclose((K @ inv_K).numpy(), np.eye(4), atol=1e-5)


def test_kitti_layout_rules(tiny_kitti):
    data = tiny_kitti
    line = "2011_09_26/2011_09_26_drive_0001_sync 1 r"
    with pytest.raises(ConfigError, match="no motion masks"):
        build_dataset("kitti", data, [line], load_mask=True)
    dataset = build_dataset("kitti", data, [line], img_type="original")
    path = dataset.image_path("2011_09_26/2011_09_26_drive_0001_sync", 1, "r")
    assert path == data / "2011_09_26/2011_09_26_drive_0001_sync/image_03/rgb/original/0000000001.png"
    # The frame before the first one of a drive is the first one.
    assert dataset.image_path("d", -1, "l").name == "0000000000.png"
    item = dataset[0]
    assert item[("color", 0, 0)].shape == (3, DATASET_DEFAULTS["kitti"].height, DATASET_DEFAULTS["kitti"].width)


def test_unknown_dataset_and_bad_options(tmp_path):
    write_scene(tmp_path)
    with pytest.raises(ConfigError, match="--dataset"):
        build_dataset("cityscapes", tmp_path, ["seq-a 1"])
    with pytest.raises(ConfigError, match="--img-type"):
        build_dataset("waymo", tmp_path, ["seq-a 1"], img_type="tiny")
    with pytest.raises(ConfigError, match="frame ids"):
        build_dataset("waymo", tmp_path, ["seq-a 1"], frame_ids=[0, "s"])
