"""`dynamo prepare nuscenes` on a tiny dataroot built from JSON tables, without the devkit."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation
from typer.testing import CliRunner

from dynamo_cli.main import app
from raw_nuscenes import (
    CAR, EGO, PEDESTRIAN, REFERENCE, build_nuscenes, expected_frame, frame_tokens, matrix,
)
from raw_waymo import tree

pytestmark = pytest.mark.sample_data  # built from, or compared with, the released sample frames

runner = CliRunner()


def prepare(raw: Path, out: Path, *options: str):
    return runner.invoke(app, ["prepare", "nuscenes", str(raw), str(out), *options])


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("nuscenes")
    built = build_nuscenes(root, "v1.0-mini")
    out = root / "out"
    result = prepare(built.raw, out, "--version", "v1.0-mini", "--json")
    assert result.exit_code == 0, result.output
    return built, out / "scenes" / "scene-0001" / "FRONT", json.loads(result.stdout)


def test_frames_are_the_camera_chain_from_the_first_keyframe(prepared):
    built, folder, summary = prepared
    assert summary["segments"][0]["frames"] == 5 and summary["segments"][0]["labelled_frames"] == 2
    names = sorted(p.name for p in (folder / "rgb" / "original").iterdir())
    assert names == [f"{i:06d}.jpg" for i in range(5)]
    first = folder / "rgb" / "original" / "000000.jpg"
    assert first.is_symlink() and Path(os.readlink(first)) == (built.raw / "samples/CAM_FRONT/scene-0001_CAM_FRONT_1.jpg").resolve()
    from PIL import Image

    assert Image.open(folder / "rgb" / "downsample" / "000002.jpg").size == (512, 288)


def test_camera_file_equals_the_released_format(prepared):
    _, folder, _ = prepared
    assert (folder / "rgb" / "cam.json").read_text() == (REFERENCE / "rgb" / "cam.json").read_text()


def test_time_steps_are_true_milliseconds_even_over_255(prepared):
    _, folder, _ = prepared
    assert json.loads((folder / "rgb" / "ts.json").read_text()) == [100, 300, 100, 83]


def test_odometry_is_the_ego_pose_at_camera_time(prepared):
    built, folder, _ = prepared
    lines = (folder / "odometry.txt").read_text().splitlines()
    assert len(lines) == 5
    for line, (camera, _, _) in zip(lines, frame_tokens("scene-0001")):
        np.testing.assert_allclose(np.array(line.split(), dtype=float).reshape(4, 4), matrix(*built.ego_poses[camera]),
                                   atol=1e-9)


def test_depth_uses_the_nearest_scan_and_keeps_points_strictly_inside(prepared):
    built, folder, _ = prepared
    for position in range(5):
        depth = np.load(folder / "depth" / f"{position:06d}.npy")
        expected, keep = expected_frame(built, "scene-0001", position)
        assert depth.dtype == np.float64 and 80 < len(depth) < keep.size
        np.testing.assert_allclose(depth, expected, atol=1e-6)


def test_masks_on_keyframes_label_each_depth_point(prepared):
    built, folder, _ = prepared
    assert sorted(p.name for p in (folder / "mask").iterdir()) == ["000000.npz", "000003.npz"]
    for position in (0, 3):
        with np.load(folder / "mask" / f"{position:06d}.npz", allow_pickle=False) as masks:
            assert masks.files == ["panoptic_label", "motion_label"]
            panoptic, motion = masks["panoptic_label"], masks["motion_label"]
        _, keep = expected_frame(built, "scene-0001", position)
        assert panoptic.dtype == np.uint16 and motion.dtype == np.uint8
        assert np.array_equal(panoptic, built.cloud.panoptic[keep])
        expected = np.zeros_like(motion)
        expected[panoptic == CAR * 1000 + 1] = 1  # inside a moving car box
        expected[panoptic == PEDESTRIAN * 1000 + 2] = 2  # its own box is standing; a car box around it does not count
        expected[panoptic == CAR * 1000 + 3] = 3  # no box
        assert {1, 2, 3} <= set(np.unique(motion))
        assert np.array_equal(motion, expected)
        assert not (panoptic // 1000 == EGO).any() or (motion[panoptic // 1000 == EGO] == 0).all()


def test_a_category_table_without_index_names_the_file_to_extract(tmp_path):
    built = build_nuscenes(tmp_path, "v1.0-trainval", with_index=False)
    result = prepare(built.raw, tmp_path / "out")
    assert result.exit_code == 1
    message = " ".join(result.output.split())
    assert "v1.0-trainval/category.json has no 'index' field" in message and "Panoptic nuScenes" in message
    assert "KeyError" not in result.output


def test_without_the_panoptic_release_no_masks_are_written(tmp_path):
    built = build_nuscenes(tmp_path, "v1.0-trainval", with_index=False, panoptic=False)
    result = prepare(built.raw, tmp_path / "out", "--json")
    assert result.exit_code == 0, result.output
    folder = tmp_path / "out" / "scenes" / "scene-0001" / "FRONT"
    assert not (folder / "mask").exists() and len(list((folder / "depth").iterdir())) == 5


def test_a_wrong_version_says_which_one_is_there(prepared, tmp_path):
    built, _, _ = prepared
    result = prepare(built.raw, tmp_path / "out")
    assert result.exit_code == 1 and "--version v1.0-mini" in " ".join(result.output.split())


def test_rerun_after_interruption_and_two_workers_give_identical_files(tmp_path):
    built = build_nuscenes(tmp_path, "v1.0-mini", scenes=2)
    one, two = tmp_path / "one", tmp_path / "two"
    assert prepare(built.raw, one, "--version", "v1.0-mini", "--copy").exit_code == 0
    reference = tree(one)
    result = prepare(built.raw, two, "--version", "v1.0-mini", "--copy", "--workers", "2", "--json")
    assert result.exit_code == 0, result.output
    assert tree(two) == reference
    folder = one / "scenes" / "scene-0002" / "FRONT"
    (folder / ".prepared").unlink()
    (folder / "depth" / "000004.npy").unlink()
    (folder / "rgb" / "ts.json").write_text("[44]")
    again = prepare(built.raw, one, "--version", "v1.0-mini", "--copy", "--json")
    statuses = [s["status"] for s in json.loads(again.stdout)["segments"]]
    assert statuses == ["skipped", "prepared"]
    assert tree(one) == reference


def test_a_bad_scene_fails_alone(tmp_path):
    built = build_nuscenes(tmp_path, "v1.0-mini", scenes=2)
    (built.raw / "sweeps" / "LIDAR_TOP" / "scene-0002_LIDAR_TOP_3.pcd.bin").write_bytes(b"\x00" * 7)
    result = prepare(built.raw, tmp_path / "out", "--version", "v1.0-mini")
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert "1 of 2 scenes failed: scenes/scene-0002" in text and "scene-0002_LIDAR_TOP_3.pcd.bin is truncated" in text
    assert (tmp_path / "out" / "scenes" / "scene-0001" / "FRONT" / ".prepared").is_file()


def test_the_loader_unwraps_implausibly_small_released_steps_with_a_warning(caplog, tmp_path, monkeypatch):
    import logging

    from dynamo_core.data.nuscenes import unwrap_time_steps

    monkeypatch.setattr(logging.getLogger("dynamo_core"), "propagate", True)  # the CLI may have detached it

    path = tmp_path / "ts.json"
    released = [100, 100, 50] * 4
    assert unwrap_time_steps(released + [300], path) == released + [300]  # true values: as they are
    assert unwrap_time_steps(released + [52, 98], path) == released + [52, 98]  # a short real gap stays
    with caplog.at_level("WARNING"):
        assert unwrap_time_steps(released + [44, 100], path) == released + [300, 100]
    assert "implausibly small" in caplog.text and str(path) in caplog.text and "frames 12" in caplog.text


def test_inconsistent_tables_are_a_clear_error_not_a_traceback(tmp_path):
    built = build_nuscenes(tmp_path, "v1.0-mini")
    table = built.raw / "v1.0-mini" / "ego_pose.json"
    table.write_text(json.dumps(json.loads(table.read_text())[:3]))
    result = prepare(built.raw, tmp_path / "out", "--version", "v1.0-mini")
    assert result.exit_code == 1
    assert "inconsistent or incomplete" in " ".join(result.output.split()) and "Traceback" not in result.output
