"""`dynamo prepare waymo` on the v2 (parquet) release: the same scene as v1 TFRecords and as v2
components gives the same files, byte for byte; missing inputs and a missing pyarrow are clear errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from dynamo_cli.main import app
from dynamo_core.preparation import waymo_v2
from raw_waymo import SEGMENT, make_scene, tree, write_segment
from raw_waymo_v2 import CONTEXT, write_v2_segment

pytestmark = pytest.mark.sample_data  # the scene is built from the released sample frames

runner = CliRunner()


def prepare(raw: Path, out: Path, *options: str):
    return runner.invoke(app, ["prepare", "waymo", str(raw), str(out), *options])


def one_line(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def scene():
    return make_scene()


@pytest.fixture(scope="module")
def prepared(scene, tmp_path_factory) -> tuple[Path, Path, Path]:
    """(v2 raw, v1 output, v2 output), the v2 frames read two at a time so that reads span several passes."""
    root = tmp_path_factory.mktemp("waymo_v2")
    write_segment(root / "v1", scene)
    write_v2_segment(root / "v2", scene)
    v1 = prepare(root / "v1", root / "out_v1", "--json")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(waymo_v2, "FRAMES_PER_READ", 2)
        v2 = prepare(root / "v2", root / "out_v2", "--json")
    assert v1.exit_code == 0, v1.output
    assert v2.exit_code == 0, v2.output
    return root / "v2", root / "out_v1", root / "out_v2"


def test_v1_and_v2_give_identical_files(prepared):
    _, out_v1, out_v2 = prepared
    v1, v2 = tree(out_v1), tree(out_v2)
    assert f"val/{SEGMENT}/FRONT/mask/000001.json" in v1  # the labelled frame, with its annotations
    assert sorted(v2) == sorted(v1)
    for name in v1:
        assert v2[name] == v1[name], name


def test_a_prepared_v2_segment_is_skipped_on_a_rerun(prepared):
    raw, _, out = prepared
    result = prepare(raw, out, "--json")
    assert result.exit_code == 0, result.output
    (segment,) = json.loads(result.stdout)["segments"]
    assert segment["name"] == SEGMENT and segment["group"] == "val" and segment["status"] == "skipped"


def test_v1_folder_names_are_accepted_for_v2(tmp_path):
    (tmp_path / "train" / "camera_image").mkdir(parents=True)
    (tmp_path / "train" / "camera_image" / f"{CONTEXT}.parquet").touch()
    found = waymo_v2.find_parquet_segments(tmp_path, ("train", "val"))
    assert found == {"train": [(tmp_path / "train", CONTEXT)], "val": []}


def test_neither_release_is_an_error_naming_the_folders(tmp_path):
    (tmp_path / "validation").mkdir()
    result = prepare(tmp_path, tmp_path / "out")
    text = one_line(result.output)
    assert result.exit_code == 1
    assert "segment-*_with_camera_labels.tfrecord" in text and "camera_image/*.parquet" in text
    assert str(tmp_path / "validation") in text


def test_a_missing_component_fails_the_segment_naming_the_file(scene, tmp_path):
    folder = write_v2_segment(tmp_path / "raw", scene)
    missing = folder / "lidar_pose" / f"{CONTEXT}.parquet"
    missing.unlink()
    result = prepare(tmp_path / "raw", tmp_path / "out")
    text = one_line(result.output).replace(" ", "")
    assert result.exit_code == 1
    assert str(missing).replace(" ", "") in text and "missing" in text and "1of1segmentsfailed" in text
    assert not (tmp_path / "out" / "val" / SEGMENT / "FRONT" / ".prepared").exists()


def test_a_missing_column_names_the_file_and_the_column(scene, tmp_path):
    column = "[CameraCalibrationComponent].intrinsic.k3"
    folder = write_v2_segment(tmp_path / "raw", scene, drop=(column,))
    assert column not in pq.read_schema(folder / "camera_calibration" / f"{CONTEXT}.parquet").names
    result = prepare(tmp_path / "raw", tmp_path / "out")
    text = one_line(result.output).replace(" ", "")
    assert result.exit_code == 1
    assert f"camera_calibration/{CONTEXT}.parquet" in text and column in text


def test_without_pyarrow_v2_input_says_how_to_install_it(scene, tmp_path, monkeypatch):
    write_v2_segment(tmp_path / "raw", scene)
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # makes `import pyarrow` raise ImportError
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    result = prepare(tmp_path / "raw", tmp_path / "out")
    assert result.exit_code == 1
    assert "pip install 'dynamo[waymo]'" in one_line(result.output)
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_two_workers_prepare_v2_segments_as_one(scene, tmp_path, prepared):
    raw = tmp_path / "raw"
    for split in ("training", "validation"):
        write_v2_segment(raw, scene, split=split)
    one, two = tmp_path / "one", tmp_path / "two"
    first = prepare(raw, one, "--workers", "1", "--json")
    second = prepare(raw, two, "--workers", "2", "--json")
    assert first.exit_code == second.exit_code == 0, second.output
    assert tree(one) == tree(two)
    assert tree(one / "val") == tree(prepared[2] / "val")
    assert [s["group"] for s in json.loads(second.stdout)["segments"]] == ["train", "val"]
