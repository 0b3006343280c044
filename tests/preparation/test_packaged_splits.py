"""The published split lists ship inside the package, so `--split NAME` works after any install."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from dynamo_core.data.splits import PACKAGED_SPLITS, known_splits, read_split, resolve_split
from dynamo_core.errors import DataError

ROOT = Path(__file__).resolve().parents[2]
PUBLISHED = {
    "eigen_zhou": {"train": 39810, "test": 697},
    "waymo": {"test": 2216, "test_mask": 1881},
    "nuscenes": {"train": 79760, "test": 6019, "test_mask": 6019},
    "nuscenes_dayclear": {"test": 4449, "test_mask": 4449},
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_published_splits_resolve_by_name_from_anywhere(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no ./splits here
    folder = resolve_split(name)
    assert folder == PACKAGED_SPLITS / name
    for which, count in PUBLISHED[name].items():
        assert len(read_split(folder, which)) == count


def test_a_local_splits_folder_comes_first(tmp_path, monkeypatch):
    (tmp_path / "splits" / "waymo").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert resolve_split("waymo") == tmp_path / "splits" / "waymo"
    assert "eigen_zhou" in known_splits()


def test_unknown_split_error_names_the_known_ones_and_no_development_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError) as err:
        resolve_split("kitti_odometry")
    message = str(err.value)
    assert "eigen_zhou, nuscenes, nuscenes_dayclear, waymo" in message
    assert "shared" not in message and "dynamo prepare splits" in message


@pytest.mark.slow
def test_a_built_wheel_carries_the_split_lists(tmp_path):
    """A non-editable install reads the lists from the wheel's dynamo_core/splits/."""
    wheel_dir = tmp_path / "wheel"
    run = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheel_dir), str(ROOT)],
        capture_output=True, text=True, timeout=300,
    )
    if run.returncode != 0:
        pytest.skip(f"cannot build a wheel here: {run.stderr[-300:]}")
    (wheel,) = wheel_dir.glob("dynamo-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name, files in PUBLISHED.items():
        for which in files:
            assert f"dynamo_core/splits/{name}/{which}_files.txt" in names


def test_dayclear_regenerates_the_published_filter_from_scene_descriptions(tmp_path):
    import json

    from typer.testing import CliRunner

    from dynamo_cli.main import app

    published = PACKAGED_SPLITS / "nuscenes_dayclear"
    kept = {line.split()[0].rsplit("/", 1)[1] for line in read_split(published, "test")}
    scenes = {line.split()[0].rsplit("/", 1)[1] for line in read_split(PACKAGED_SPLITS / "nuscenes", "test")}
    records = [
        {"name": name, "description": "Parked cars, ped crossing" if name in kept
         else ("Night, big street" if i % 2 else "Heavy RAIN, bus")}
        for i, name in enumerate(sorted(scenes))
    ]
    records.append({"name": "scene-0001", "description": "train scene"})
    root = tmp_path / "nuscenes" / "v1.0-trainval"
    root.mkdir(parents=True)
    (root / "scene.json").write_text(json.dumps(records))
    out = tmp_path / "splits" / "nuscenes_dayclear"
    result = CliRunner().invoke(app, ["prepare", "splits", str(tmp_path / "nuscenes"), "--out", str(out), "--dayclear", "--json"])
    assert result.exit_code == 0, result.output
    for which in ("test", "test_mask"):
        assert read_split(out, which) == read_split(published, which)
    assert len(json.loads(result.stdout)["scenes_kept"]) == 111
