"""`dynamo prepare kitti`: lidar depth parity, image outputs, reruns, missing scans and bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from dynamo_cli.main import app
from dynamo_core.preparation.kitti import CameraProjection, lidar_depth_points
from raw_kitti import CAMERAS, CALIBRATION_FILES, build_raw_kitti, kitti_fixture, source_drive, tree

runner = CliRunner()


@pytest.fixture(scope="module")
def fixture() -> dict:
    return kitti_fixture()


def prepare(raw: Path, out: Path, *options: str):
    return runner.invoke(app, ["prepare", "kitti", str(raw), str(out), *options])


def summary(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def assert_clean_failure(result, *names: str) -> None:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    for name in names:
        assert name in result.stderr


# --------------------------------------------------------------------------- parity


@pytest.mark.sample_data
def test_parity_depth_points_match_reference(tmp_path, fixture):
    raw, drive = build_raw_kitti(tmp_path / "raw", fixture, frames=1)
    out = tmp_path / "out"
    assert summary(prepare(raw, out, "--json"))["missing_scans"] == []

    processed = out / drive.parent.name / drive.name
    for camera in CAMERAS:
        points = np.load(processed / camera / "depth" / "0000000000.npy")
        expected = fixture[camera].numpy()
        assert points.dtype == expected.dtype and points.shape == expected.shape
        np.testing.assert_array_equal(points, expected)


@pytest.mark.sample_data
def test_parity_downsampled_frames_match_released(tmp_path, fixture):
    raw, drive = build_raw_kitti(tmp_path / "raw", fixture)
    out = tmp_path / "out"
    summary(prepare(raw, out, "--json"))
    released = source_drive(fixture)
    for camera in CAMERAS:
        references = sorted((released / camera / "rgb" / "downsample").glob("*.jpg"))
        assert references
        for reference in references:
            ours = out / drive.parent.name / drive.name / camera / "rgb" / "downsample" / reference.name
            with Image.open(ours) as image, Image.open(reference) as expected:
                assert image.size == expected.size
                np.testing.assert_array_equal(np.asarray(image), np.asarray(expected))


# --------------------------------------------------------------------------- projection rules, by hand


def _identity_camera(height: int, width: int) -> CameraProjection:
    # u = left / forward, v = up / forward, z = forward: a point (f, (c + 1) f, (r + 1) f) lands on (r, c).
    matrix = np.array([[0, 1, 0, 0], [0, 0, 1, 0], [1, 0, 0, 0]], dtype=np.float64)
    return CameraProjection("image_02", matrix, height, width)


def _point(row: int, col: int, forward: float) -> list[float]:
    return [forward, (col + 1) * forward, (row + 1) * forward, 0.0]


def test_nearest_point_wins_and_outside_points_are_dropped():
    camera = _identity_camera(height=3, width=4)
    scan = np.array(
        [
            _point(1, 2, 7.0),
            _point(1, 2, 3.0),
            _point(1, 2, 5.0),  # the last write, but not the nearest
            _point(0, 0, 2.0),
            _point(3, 0, 1.0),  # below the image
            _point(0, 4, 1.0),  # right of the image
            [-1.0, -1.0, -1.0, 0.0],  # behind the lidar
        ],
        dtype=np.float32,
    )
    points = lidar_depth_points(scan, camera)
    np.testing.assert_array_equal(points, [[0, 0, 2.0], [1, 2, 3.0]])


def test_row_wrap_quirk_of_released_data():
    # The last column of row 0 and the first column of row 1 share a duplicate key; the group's
    # nearest depth (1.0) lands on its first point's pixel, and row 1 keeps its own value.
    camera = _identity_camera(height=3, width=4)
    scan = np.array([_point(0, 3, 2.0), _point(1, 0, 1.0)], dtype=np.float32)
    points = lidar_depth_points(scan, camera)
    np.testing.assert_array_equal(points, [[0, 3, 1.0], [1, 0, 1.0]])


# --------------------------------------------------------------------------- layout and reruns


@pytest.mark.sample_data
def test_layout_links_and_calibration(tmp_path, fixture):
    raw, drive = build_raw_kitti(tmp_path / "raw", fixture, frames=2)
    out = tmp_path / "out"
    summary(prepare(raw, out, "--json"))
    processed = out / drive.parent.name / drive.name
    for name in CALIBRATION_FILES:
        assert (processed / name).read_bytes() == (drive.parent / name).read_bytes()
    for camera in CAMERAS:
        for frame in ("0000000000", "0000000001"):
            original = processed / camera / "rgb" / "original" / f"{frame}.png"
            assert original.is_symlink()
            assert Path(os.readlink(original)) == (drive / camera / "data" / f"{frame}.png").resolve()
            with Image.open(processed / camera / "rgb" / "downsample" / f"{frame}.jpg") as image:
                assert (image.format, image.size) == ("JPEG", (640, 192))


@pytest.mark.sample_data
def test_copy_writes_real_files(tmp_path, fixture):
    raw, drive = build_raw_kitti(tmp_path / "raw", fixture, frames=1)
    out = tmp_path / "out"
    summary(prepare(raw, out, "--copy", "--json"))
    original = out / drive.parent.name / drive.name / "image_03" / "rgb" / "original" / "0000000000.png"
    assert original.is_file() and not original.is_symlink()
    assert original.read_bytes() == (drive / "image_03" / "data" / "0000000000.png").read_bytes()


@pytest.mark.sample_data
def test_interrupted_run_finishes_like_a_clean_run(tmp_path, fixture):
    raw, drive = build_raw_kitti(tmp_path / "raw", fixture)
    clean, resumed = tmp_path / "clean", tmp_path / "resumed"
    summary(prepare(raw, clean, "--json"))
    summary(prepare(raw, resumed, "--json"))

    # What an interrupted run can leave: missing files, cut files, a stray temporary file, a missing link.
    cam = resumed / drive.parent.name / drive.name / "image_02"
    (cam / "depth" / "0000000001.npy").unlink()
    npy = cam / "depth" / "0000000002.npy"
    npy.write_bytes(npy.read_bytes()[: npy.stat().st_size // 2])
    jpg = cam / "rgb" / "downsample" / "0000000000.jpg"
    jpg.write_bytes(jpg.read_bytes()[:1000])
    (cam / "rgb" / "original" / "0000000001.png").unlink()
    (cam / "depth" / ".0000000000.npy.1a2b3c4d.partial").write_bytes(b"half a file")
    (resumed / drive.parent.name / drive.name / "calib_cam_to_cam.txt").write_text("calib_time: cut")

    rerun = summary(prepare(raw, resumed, "--json"))
    assert rerun["files_written"] == 5
    assert tree(resumed) == tree(clean)

    again = summary(prepare(raw, resumed, "--json"))
    assert again["files_written"] == 0 and again["files_skipped"] == rerun["files_written"] + rerun["files_skipped"]


@pytest.mark.sample_data
def test_two_workers_write_the_same_files(tmp_path, fixture):
    raw, _ = build_raw_kitti(tmp_path / "raw", fixture)
    one, two = tmp_path / "one", tmp_path / "two"
    summary(prepare(raw, one, "--json"))
    result = prepare(raw, two, "--workers", "2")
    assert result.exit_code == 0, result.output
    assert tree(one) == tree(two)


@pytest.mark.sample_data
def test_frame_without_scan_is_reported_not_fatal(tmp_path, fixture):
    raw, drive = build_raw_kitti(tmp_path / "raw", fixture, frames=3)
    missing = drive / "velodyne_points" / "data" / "0000000001.bin"
    missing.unlink()
    out = tmp_path / "out"

    result = prepare(raw, out)
    assert result.exit_code == 0, result.output
    assert "1 frames have no velodyne scan" in result.stdout
    assert str(missing) in result.stdout

    report = summary(prepare(raw, out, "--json"))
    assert report["missing_scans"] == [str(missing)]
    processed = out / drive.parent.name / drive.name
    for camera in CAMERAS:
        assert sorted(p.name for p in (processed / camera / "depth").iterdir()) == ["0000000000.npy", "0000000002.npy"]
        assert (processed / camera / "rgb" / "downsample" / "0000000001.jpg").is_file()


# --------------------------------------------------------------------------- bad input


def test_missing_raw_folder(tmp_path):
    missing = tmp_path / "nowhere"
    assert_clean_failure(prepare(missing, tmp_path / "out"), str(missing))


def test_no_drives(tmp_path):
    (tmp_path / "raw" / "2011_09_26").mkdir(parents=True)
    assert_clean_failure(prepare(tmp_path / "raw", tmp_path / "out"), str(tmp_path / "raw"), "no drives")


@pytest.mark.sample_data
def test_missing_calibration(tmp_path, fixture):
    raw, drive = build_raw_kitti(tmp_path / "raw", fixture, frames=1)
    calib = drive.parent / "calib_velo_to_cam.txt"
    calib.unlink()
    assert_clean_failure(prepare(raw, tmp_path / "out"), str(calib))


@pytest.mark.sample_data
def test_calibration_without_projection(tmp_path, fixture):
    raw, drive = build_raw_kitti(tmp_path / "raw", fixture, frames=1)
    calib = drive.parent / "calib_cam_to_cam.txt"
    calib.write_text("\n".join(line for line in calib.read_text().splitlines() if not line.startswith("P_rect_03")))
    assert_clean_failure(prepare(raw, tmp_path / "out"), str(calib), "P_rect_03")


@pytest.mark.sample_data
def test_truncated_scan(tmp_path, fixture):
    raw, drive = build_raw_kitti(tmp_path / "raw", fixture, frames=1)
    scan = drive / "velodyne_points" / "data" / "0000000000.bin"
    scan.write_bytes(scan.read_bytes()[:-6])
    assert_clean_failure(prepare(raw, tmp_path / "out"), str(scan))
    assert not list((tmp_path / "out").rglob("*.partial"))


@pytest.mark.sample_data
def test_unreadable_image(tmp_path, fixture):
    raw, drive = build_raw_kitti(tmp_path / "raw", fixture, frames=1)
    image = drive / "image_02" / "data" / "0000000000.png"
    image.unlink()
    image.write_bytes(b"not a png")
    assert_clean_failure(prepare(raw, tmp_path / "out"), str(image))
