"""`dynamo prepare kitti` writes odometry.txt from the OXTS packets, as the raw devkit computes poses."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from dynamo_cli.main import app
from dynamo_core.evaluation.odometry_metrics import evaluate_odometry, gt_relative_poses
from dynamo_core.evaluation.odometry_runner import read_global_poses
from dynamo_core.preparation.kitti import oxts_poses
from raw_kitti import CAMERAS, build_raw_kitti, kitti_fixture

pytestmark = pytest.mark.sample_data  # built from, or compared with, the released sample frames

runner = CliRunner()
R = 6378137.0
LAT0, LON0, ALT = 49.011, 8.422, 112.5
HEADING, STEP = 0.7, 1.1  # radians from east; metres per frame


def straight_drive(count: int) -> np.ndarray:
    """Packets of a drive at constant speed along HEADING, built by inverting the Mercator projection."""
    scale = np.cos(np.radians(LAT0))
    east0 = scale * R * np.radians(LON0)
    north0 = scale * R * np.log(np.tan(np.radians(90 + LAT0) / 2))
    packets = np.zeros((count, 30))
    for i in range(count):
        east = east0 + i * STEP * np.cos(HEADING)
        north = north0 + i * STEP * np.sin(HEADING)
        packets[i, 0] = np.degrees(2 * np.arctan(np.exp(north / (scale * R)))) - 90
        packets[i, 1] = np.degrees(east / (scale * R))
        packets[i, 2] = ALT
        packets[i, 5] = HEADING
        packets[i, 8] = STEP * 10  # forward velocity, unused
    return packets


def write_oxts(drive_dir: Path, packets: np.ndarray) -> None:
    folder = drive_dir / "oxts" / "data"
    folder.mkdir(parents=True)
    for i, packet in enumerate(packets):
        (folder / f"{i:010d}.txt").write_text(" ".join(repr(float(v)) for v in packet) + "\n")


def test_forward_motion_is_plus_x_in_the_vehicle_axes():
    poses = oxts_poses(straight_drive(4))
    relative = np.linalg.inv(poses[:-1]) @ poses[1:]
    np.testing.assert_allclose(relative[:, :3, 3], [[STEP, 0, 0]] * 3, atol=1e-6)
    np.testing.assert_allclose(relative[:, :3, :3], np.broadcast_to(np.eye(3), (3, 3, 3)), atol=1e-12)
    # A left turn (yaw growing) ends up to the left: +y.
    turning = straight_drive(2)
    turning[1, 5] += 0.1
    moved = np.linalg.inv(oxts_poses(turning)[0]) @ oxts_poses(turning)[1]
    assert moved[1, 0] > 0


def test_prepare_kitti_writes_odometry_that_scores_zero_against_itself(tmp_path):
    fixture = kitti_fixture()
    raw, drive_dir = build_raw_kitti(tmp_path / "raw", fixture, frames=8)
    write_oxts(drive_dir, straight_drive(8))
    out = tmp_path / "out"
    result = runner.invoke(app, ["prepare", "kitti", str(raw), str(out), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["drives_without_oxts"] == []
    relative_drive = drive_dir.relative_to(raw)
    texts = {(out / relative_drive / cam / "odometry.txt").read_text() for cam in CAMERAS}
    assert len(texts) == 1
    poses = read_global_poses(out / relative_drive / CAMERAS[0] / "odometry.txt")
    assert poses.shape == (8, 4, 4)
    # The pose network's sense: the camera looks along +z, so the vehicle's forward x becomes z.
    gt = gt_relative_poses(poses)
    predicted = np.tile(np.eye(4), (len(gt), 1, 1))
    predicted[:, 2, 3] = -gt[:, 0, 3]
    scored = evaluate_odometry(predicted, poses, track_length=5)
    assert len(scored.ates) > 0 and scored.ates.max() < 1e-6
    np.testing.assert_allclose(scored.speeds, STEP, atol=1e-6)
    again = runner.invoke(app, ["prepare", "kitti", str(raw), str(out), "--json"])
    assert again.exit_code == 0 and {(out / relative_drive / c / "odometry.txt").read_text() for c in CAMERAS} == texts


def test_a_drive_without_oxts_is_reported_not_fatal(tmp_path):
    raw, drive_dir = build_raw_kitti(tmp_path / "raw", kitti_fixture(), frames=3)
    result = runner.invoke(app, ["prepare", "kitti", str(raw), str(tmp_path / "out"), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["drives_without_oxts"] == [drive_dir.relative_to(raw).as_posix()]
