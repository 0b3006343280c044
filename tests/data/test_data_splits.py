"""Split folders by name and by path, split files, and the check that every file of an epoch exists."""

from __future__ import annotations

import time

import pytest

from conftest import write_split_lists
from data_scenes import write_scene
from dynamo_core.data import build_dataset, read_split, read_split_file, resolve_split, validate_items
from dynamo_core.errors import DataError


def test_split_by_name_reads_the_project_splits_folder(tmp_path):
    folder = tmp_path / "splits" / "tiny"
    folder.mkdir(parents=True)
    (folder / "train_files.txt").write_text("seq-a 1\n\nseq-a 2\n")
    assert resolve_split("tiny", tmp_path) == folder
    assert read_split(resolve_split("tiny", tmp_path), "train") == ["seq-a 1", "seq-a 2"]


def test_split_by_folder_path_reads_any_folder(tmp_path):
    folder = write_split_lists(tmp_path / "lists") / "eigen_zhou"
    resolved = resolve_split(str(folder), tmp_path)
    assert resolved == folder
    lines = read_split(resolved, "test")
    assert lines == (folder / "test_files.txt").read_text().split("\n")[: len(lines)]
    assert all(len(line.split()) == 3 for line in lines)


def test_published_split_names_resolve_without_a_project_splits_folder(tmp_path):
    folder = resolve_split("eigen_zhou", tmp_path)
    assert len(read_split(folder, "test")) == 697
    with pytest.raises(DataError, match="no such split") as err:
        resolve_split("no_such_split", tmp_path)
    assert "--split" in str(err.value) and "shared" not in str(err.value)


def test_unknown_split_name_lists_the_known_ones(tmp_path):
    (tmp_path / "splits" / "waymo").mkdir(parents=True)
    with pytest.raises(DataError, match="known: eigen_zhou, nuscenes, nuscenes_dayclear, waymo"):
        resolve_split("kitti", tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        resolve_split(str(tmp_path / "elsewhere"), tmp_path)


def test_empty_or_missing_split_file_is_an_error(tmp_path):
    empty = tmp_path / "train_files.txt"
    empty.write_text("\n  \n")
    with pytest.raises(DataError, match=f"{empty} lists no frames"):
        read_split_file(empty)
    with pytest.raises(DataError, match="test_files.txt is missing"):
        read_split(tmp_path, "test")


def test_validate_items_passes_when_everything_exists(tmp_path):
    write_scene(tmp_path)
    dataset = build_dataset("waymo", tmp_path, ["seq-a 1"], load_depth=True)
    calls = []
    checked = validate_items(dataset, progress=lambda done, total: calls.append((done, total)))
    assert checked == 4  # three frames and one depth file
    assert calls[-1] == (1, 1)


def test_validate_items_lists_ten_missing_files_and_the_total(tmp_path):
    write_scene(tmp_path, frames=(0, 1, 2))
    # Frames 1..3000 with neighbours: 0..3001 are read, of which 0..2 exist.
    lines = [f"seq-a {i}" for i in range(1, 3001)]
    dataset = build_dataset("waymo", tmp_path, lines)
    calls = []
    start = time.perf_counter()
    with pytest.raises(DataError) as err:
        validate_items(dataset, progress=lambda done, total: calls.append(done))
    elapsed = time.perf_counter() - start
    message = str(err.value)
    assert message.startswith("2999 file(s)")
    assert message.count(".jpg") == 10 and "and 2989 more" in message
    assert "000003.jpg" in message and "000002.jpg" not in message
    assert calls[-1] == 3000 and calls == sorted(calls)
    assert elapsed < 2.0
