"""`dynamo prepare splits`: loader line format, neighbours, whole sequences per split, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import SHARED
from dynamo_cli.main import app

runner = CliRunner()
SIDE_CAMERA = {"l": "image_02", "r": "image_03"}


def make_splits(data: Path, out: Path, *options: str):
    return runner.invoke(app, ["prepare", "splits", str(data), "--out", str(out), *options])


def read_lines(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines()]


def frame_path(data: Path, words: list[str], offset: int, cam: str = "FRONT") -> Path:
    """The image the loaders open for a split line and a frame offset."""
    folder, index = words[0], int(words[1]) + offset
    if len(words) == 3:
        return data / folder / SIDE_CAMERA[words[2]] / "rgb" / "downsample" / f"{index:010}.jpg"
    return data / folder / cam / "rgb" / "downsample" / f"{index:06d}.jpg"


def fake_sequence(root: Path, sequence: str, indices, cam: str = "FRONT") -> None:
    folder = root / sequence / cam / "rgb" / "downsample"
    folder.mkdir(parents=True, exist_ok=True)
    for index in indices:
        (folder / f"{index:06d}.jpg").write_bytes(b"")


def assert_clean_failure(result, *texts: str) -> None:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    for text in texts:
        assert text in result.stderr


@pytest.mark.sample_data
@pytest.mark.parametrize("dataset", ["tiny_waymo", "tiny_nuscenes"])
def test_generic_layout_lists_frames_with_both_neighbours(tmp_path, dataset):
    data = SHARED / "data" / dataset
    result = make_splits(data, tmp_path, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["layout"] == "generic"

    train, test = read_lines(tmp_path / "train_files.txt"), read_lines(tmp_path / "test_files.txt")
    for words in train + test:
        assert len(words) == 2
        for offset in (-1, 0, 1):
            assert frame_path(data, words, offset).is_file(), words

    # Every shared sequence holds three consecutive frames, so exactly its middle one is listed.
    sequences = sorted(p.parent.relative_to(data).as_posix() for p in data.glob("*/*/FRONT"))
    listed = sorted(words[0] for words in train + test)
    assert listed == sequences
    for words in train + test:
        names = sorted((data / words[0] / "FRONT" / "rgb" / "downsample").iterdir())
        assert int(words[1]) == int(names[1].stem)

    # Whole sequences per split, round(0.2 * count) of them (at least one) in test.
    train_seqs, test_seqs = {w[0] for w in train}, {w[0] for w in test}
    assert not train_seqs & test_seqs
    assert len(test_seqs) == max(1, round(0.2 * len(sequences)))


def test_kitti_layout_lists_both_cameras_with_sides(tiny_kitti, tmp_path):
    data = tiny_kitti
    result = make_splits(data, tmp_path)
    assert result.exit_code == 0, result.output
    train = read_lines(tmp_path / "train_files.txt")
    drives = sorted(p.relative_to(data).as_posix() for p in data.glob("*/*_drive_*"))
    assert {(w[0], w[2]) for w in train} == {(drive, side) for drive in drives for side in SIDE_CAMERA}
    for words in train:
        assert len(words) == 3 and words[2] in SIDE_CAMERA
        for offset in (-1, 0, 1):
            assert frame_path(data, words, offset).is_file(), words
    # One drive cannot be split: everything trains and the test file is empty.
    assert (tmp_path / "test_files.txt").read_text() == ""


def test_kitti_single_camera(tiny_kitti, tmp_path):
    result = make_splits(tiny_kitti, tmp_path, "--cam", "image_03")
    assert result.exit_code == 0, result.output
    assert {w[2] for w in read_lines(tmp_path / "train_files.txt")} == {"r"}


def test_gaps_break_neighbourhoods(tmp_path):
    data = tmp_path / "data"
    fake_sequence(data, "seq_a", [0, 1, 2, 4, 5, 6, 7])
    fake_sequence(data, "seq_b", [10, 12, 14])  # no frame with both neighbours
    out = tmp_path / "splits"
    result = make_splits(data, out, "--test-fraction", "0")
    assert result.exit_code == 0, result.output
    assert (out / "train_files.txt").read_text() == "seq_a 1\nseq_a 5\nseq_a 6\n"
    assert (out / "test_files.txt").read_text() == ""


def test_camera_choice(tmp_path):
    data = tmp_path / "data"
    fake_sequence(data, "run/seq", [0, 1, 2], cam="FRONT")
    fake_sequence(data, "run/seq", [3, 4, 5], cam="SIDE_LEFT")
    result = make_splits(data, tmp_path / "front", "--test-fraction", "0")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "front" / "train_files.txt").read_text() == "run/seq 1\n"
    result = make_splits(data, tmp_path / "side", "--test-fraction", "0", "--cam", "SIDE_LEFT")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "side" / "train_files.txt").read_text() == "run/seq 4\n"


def test_sequences_are_split_whole_and_reproducibly(tmp_path):
    data = tmp_path / "data"
    for number in range(10):
        fake_sequence(data, f"scene-{number:02d}", range(5))
    first = json.loads(make_splits(data, tmp_path / "a", "--test-fraction", "0.3", "--seed", "7", "--json").stdout)
    again = json.loads(make_splits(data, tmp_path / "b", "--test-fraction", "0.3", "--seed", "7", "--json").stdout)
    assert first["test_sequences"] == again["test_sequences"] and len(first["test_sequences"]) == 3
    assert (tmp_path / "a" / "test_files.txt").read_bytes() == (tmp_path / "b" / "test_files.txt").read_bytes()
    train, test = read_lines(tmp_path / "a" / "train_files.txt"), read_lines(tmp_path / "a" / "test_files.txt")
    assert len(train) == 7 * 3 and len(test) == 3 * 3
    assert {w[0] for w in test} == set(first["test_sequences"])
    assert not {w[0] for w in train} & {w[0] for w in test}


def test_missing_data_dir(tmp_path):
    missing = tmp_path / "nowhere"
    assert_clean_failure(make_splits(missing, tmp_path / "out"), str(missing))


def test_folder_without_frames(tmp_path):
    (tmp_path / "data" / "stuff").mkdir(parents=True)
    assert_clean_failure(make_splits(tmp_path / "data", tmp_path / "out"), str(tmp_path / "data"))


def test_no_frame_with_both_neighbours(tmp_path):
    fake_sequence(tmp_path / "data", "seq", [0, 2, 4])
    assert_clean_failure(make_splits(tmp_path / "data", tmp_path / "out"), "both neighbours")
    assert not (tmp_path / "out" / "train_files.txt").exists()


def test_several_cameras_need_cam(tmp_path):
    fake_sequence(tmp_path / "data", "seq", [0, 1, 2], cam="LEFT")
    fake_sequence(tmp_path / "data", "seq", [0, 1, 2], cam="RIGHT")
    assert_clean_failure(make_splits(tmp_path / "data", tmp_path / "out"), "--cam")


@pytest.mark.sample_data
def test_unknown_camera(tmp_path):
    assert_clean_failure(make_splits(SHARED / "data" / "tiny_waymo", tmp_path, "--cam", "BACK"), "--cam BACK", "FRONT")


@pytest.mark.sample_data
@pytest.mark.parametrize("fraction", ["-0.1", "1.5"])
def test_bad_test_fraction(tmp_path, fraction):
    result = make_splits(SHARED / "data" / "tiny_waymo", tmp_path, "--test-fraction", fraction)
    assert_clean_failure(result, "--test-fraction")
