"""Output files, the point cloud, metric scale from the road plane and trajectories, on synthetic truth."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from dynamo_core.prediction import geometry, intrinsics, writers
from predict_helpers import camera_matrix, camera_poses, render_sequence


@pytest.fixture(scope="module")
def sequence(tmp_path_factory):
    return render_sequence(tmp_path_factory.mktemp("synthetic") / "data", frames=4)


def test_depth_png_round_trips_within_one_256th(tmp_path):
    rng = np.random.default_rng(0)
    depth = rng.uniform(0.5, 200.0, (30, 40)).astype(np.float32)
    depth[0, 0] = np.nan
    depth[0, 1] = 0
    depth[0, 2] = 1000.0  # beyond 16 bits: clipped to the largest value
    path = writers.write_depth_png(tmp_path / "d.png", depth)
    with Image.open(path) as image:
        pixels = np.asarray(image)
    assert pixels.dtype in (np.uint16, np.int32) and image.mode.startswith("I")
    back = writers.png16_to_depth(pixels.astype(np.uint16))
    assert np.isnan(back[0, 0]) and np.isnan(back[0, 1])
    assert back[0, 2] == pytest.approx(writers.PNG_DEPTH_MAX)
    ok = np.isfinite(depth) & (depth > 0) & (depth < writers.PNG_DEPTH_MAX)
    assert np.abs(back[ok] - depth[ok]).max() <= 1 / 256


def test_point_cloud_backprojects_exactly_to_the_depth(tmp_path):
    rng = np.random.default_rng(1)
    depth = rng.uniform(1, 50, (12, 20)).astype(np.float32)
    colours = rng.integers(0, 256, (12, 20, 3), dtype=np.uint8)
    K = np.array([[15.0, 0, 9.5], [0, 14.0, 5.5], [0, 0, 1]])
    path = writers.write_ply(tmp_path / "p.ply", geometry.backproject_depth(depth, K).reshape(-1, 3), colours)
    points, read_colours = writers.read_ply(path)
    assert points.shape == (240, 3)
    np.testing.assert_array_equal(read_colours, colours.reshape(-1, 3))
    u = K[0, 0] * points[:, 0] / points[:, 2] + K[0, 2]
    v = K[1, 1] * points[:, 1] / points[:, 2] + K[1, 2]
    rows, cols = np.divmod(np.arange(240), 20)
    np.testing.assert_allclose(points[:, 2], depth.reshape(-1), rtol=1e-6)
    np.testing.assert_allclose(u, cols, atol=1e-4)
    np.testing.assert_allclose(v, rows, atol=1e-4)


@pytest.mark.parametrize("factor", [0.037, 1.0, 23.0])
def test_ground_plane_scale_recovers_an_unknown_factor(sequence, factor):
    depth = np.load(sequence / "depth_dense" / "000001.npy").astype(np.float64)
    camera_height = float(camera_poses(sequence)[1][2, 3])  # the camera's height above the road (z = 0)
    assert 1.0 < camera_height < 2.0
    scale = geometry.ground_plane_scale(depth * factor, camera_matrix(sequence), camera_height)
    assert scale == pytest.approx(1 / factor, rel=0.02)


def test_poses_chain_to_the_true_trajectory(sequence, tmp_path):
    from dynamo_core.prediction import SequencePrediction

    C = camera_poses(sequence)  # camera-to-world
    relative = [np.linalg.inv(C[k]) @ C[k + 1] for k in range(len(C) - 1)]  # T_k_(k+1)
    expected = np.stack([np.linalg.inv(C[0]) @ c for c in C])
    trajectory = SequencePrediction(depth=[], relative_poses=relative).trajectory
    np.testing.assert_allclose(trajectory, expected, atol=1e-9)
    files = writers.write_poses(tmp_path, trajectory, [float(i) for i in range(len(C))])
    np.testing.assert_allclose(writers.read_poses(files[0]), expected, atol=1e-6)
    tum = np.loadtxt(files[1], ndmin=2)
    np.testing.assert_allclose(tum[:, 1:4], expected[:, :3, 3], atol=1e-6)
    # The quaternions give back the rotations.
    for row, pose in zip(tum, expected):
        x, y, z, w = row[4:]
        R = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                      [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                      [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
        np.testing.assert_allclose(R, pose[:3, :3], atol=1e-6)


def test_writers_never_overwrite_without_force(tmp_path):
    path = writers.write_npy(tmp_path / "a.npy", np.zeros(3, np.float32))
    with pytest.raises(writers.OutputExists, match="--force"):
        writers.write_npy(path, np.ones(3, np.float32))
    writers.write_npy(path, np.ones(3, np.float32), force=True)
    assert np.load(path).sum() == 3
    assert [p.name for p in tmp_path.iterdir()] == ["a.npy"]  # no temporary files left


def test_intrinsics_sources(tmp_path):
    pixels = tmp_path / "k.json"
    pixels.write_text(json.dumps({"fx": 720.0, "fy": 700.0, "cx": 620.0, "cy": 180.0, "width": 1240, "height": 370}))
    K = intrinsics.resolve(pixels).matrix(185, 620)  # half the size: everything halves
    np.testing.assert_allclose(K, [[360, 0, 310], [0, 350, 90], [0, 0, 1]])
    normalised = tmp_path / "cam.json"
    normalised.write_text(json.dumps({"intrinsic_mat": [[0.5, 0, 0.5, 0], [0, 1.0, 0.5, 0], [0, 0, 1, 0], [0, 0, 0, 1]]}))
    np.testing.assert_allclose(intrinsics.resolve(normalised).matrix(100, 200), [[100, 0, 100], [0, 100, 50], [0, 0, 1]])
    fov = intrinsics.resolve(None, 90.0).matrix(100, 200)
    assert fov[0, 0] == pytest.approx(100) and fov[1, 1] == pytest.approx(100)
    assert intrinsics.resolve(None, None, None, warn=False).source == "KITTI default"
    run = tmp_path / "run"
    (run / "models" / "weights_1").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"data": {"dataset": "kitti"}}))
    assert "KITTI" in intrinsics.resolve(checkpoint=run / "models" / "weights_1", warn=False).source
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"fx": 1}))
    from dynamo_core.errors import ConfigError

    with pytest.raises(ConfigError, match="lacks"):
        intrinsics.resolve(bad)
