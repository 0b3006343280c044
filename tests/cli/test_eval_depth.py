"""`dynamo eval depth` from the command line: the tiny KITTI and Waymo data end to end, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dynamo_cli.main import app
from dynamo_core.evaluation import DEPTH_METRIC_NAMES

from cli_helpers import DRIVE, SEGMENT, TINY_WAYMO, checkpoints, runner  # noqa: F401  (fixture)


def split_folder(tmp_path: Path, test: str, mask: str | None = None) -> Path:
    folder = tmp_path / "split"
    folder.mkdir(exist_ok=True)
    (folder / "test_files.txt").write_text(test)
    if mask is not None:
        (folder / "test_mask_files.txt").write_text(mask)
    return folder


def args(checkpoint, dataset, data_path, split, tmp_path, *extra) -> list[str]:
    return ["eval", "depth", "-l", str(checkpoint), "-d", dataset, "--data-path", str(data_path), "--split", str(split),
            "--eval-dir", str(tmp_path / "outputs"), "--num-workers", "0", "--device", "cpu", *extra]


def text_rows(report: str) -> dict[str, list[float]]:
    """{region: seven values} from the rows of depth.txt."""
    rows = {}
    for line in report.splitlines():
        fields = line.split()
        if len(fields) == 8 and fields[0] in ("overall", "background", "moving", "static"):
            rows[fields[0]] = [None if v == "n/a" else float(v) for v in fields[1:]]
    return rows


def test_kitti_end_to_end(tiny_kitti, checkpoints, tmp_path):
    split = split_folder(tmp_path, f"{DRIVE} 1 l\n{DRIVE} 1 r\n")
    result = runner.invoke(app, args(checkpoints["kitti"], "kitti", tiny_kitti, split, tmp_path))
    assert result.exit_code == 0, result.output
    folder = tmp_path / "outputs" / "scratch_kitti_kitti" / "depth"
    report = (folder / "depth.txt").read_text()
    document = json.loads((folder / "depth.json").read_text())
    assert document["images"] == 2 and document["regions"] is None
    assert document["crop"] == pytest.approx([0.40810811, 0.99189189, 0.03594771, 0.96405229])
    assert document["max_depth"] == 80.0
    assert text_rows(report)["overall"] == [round(document["overall"][m], 3) for m in DEPTH_METRIC_NAMES]
    assert "overall" in result.stdout and "abs_rel" in result.stdout
    assert "kitti dataset has no motion labels" in report


@pytest.mark.sample_data
def test_waymo_regions_as_json(checkpoints, tmp_path):
    split = split_folder(tmp_path, f"{SEGMENT} 1\n", mask=f"{SEGMENT} 1\n")
    result = runner.invoke(app, args(checkpoints["waymo"], "waymo", TINY_WAYMO, split, tmp_path, "--json"))
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)  # the whole of stdout is one JSON document
    assert document["max_depth"] == 75.0 and document["crop"] == [0.0, 1.0, 0.0, 1.0]
    assert set(document["regions"]) == {"background", "moving", "static"}
    rows = text_rows((tmp_path / "outputs" / "scratch_waymo_waymo" / "depth" / "depth.txt").read_text())
    for region, values in rows.items():
        errors = document["overall"] if region == "overall" else document["regions"][region]
        assert values == [None if errors[m] is None else round(errors[m], 3) for m in DEPTH_METRIC_NAMES], region
    assert (document["height"], document["width"]) == (128, 192)


def test_missing_checkpoint(tiny_kitti, tmp_path):
    split = split_folder(tmp_path, f"{DRIVE} 1 l\n")
    result = runner.invoke(app, args(tmp_path / "no_such_ckpt", "kitti", tiny_kitti, split, tmp_path))
    assert result.exit_code == 1
    assert f"checkpoint folder {tmp_path / 'no_such_ckpt'} does not exist" in result.stderr
    assert "Traceback" not in result.output


def test_released_name_is_not_downloaded_without_asking(tiny_kitti, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    split = split_folder(tmp_path, f"{DRIVE} 1 l\n")
    result = runner.invoke(app, args("K_Dynamo-Depth", "kitti", tiny_kitti, split, tmp_path))
    assert result.exit_code == 1
    assert "pass --yes to download it" in result.stderr
    assert not (tmp_path / "ckpt").exists()


@pytest.mark.sample_data
def test_data_without_depth_files(checkpoints, tmp_path):
    """The images are there, the lidar folder is not: the first missing file is named, with a count."""
    data = tmp_path / "waymo"
    camera = data / SEGMENT / "FRONT"
    camera.mkdir(parents=True)
    (camera / "rgb").symlink_to(TINY_WAYMO / SEGMENT / "FRONT" / "rgb")
    split = split_folder(tmp_path, f"{SEGMENT} 1\n{SEGMENT} 2\n")
    result = runner.invoke(app, args(checkpoints["waymo"], "waymo", data, split, tmp_path))
    assert result.exit_code == 1
    assert f"2 file(s) the split needs are missing: {camera / 'depth' / '000001.npy'}" in result.stderr
    assert not (tmp_path / "outputs").exists()


def test_empty_split(tiny_kitti, checkpoints, tmp_path):
    split = split_folder(tmp_path, "\n")
    result = runner.invoke(app, args(checkpoints["kitti"], "kitti", tiny_kitti, split, tmp_path))
    assert result.exit_code == 1
    assert "test_files.txt lists no frames" in result.stderr


def test_cuda_asked_for_without_one(tiny_kitti, checkpoints, tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    split = split_folder(tmp_path, f"{DRIVE} 1 l\n")
    result = runner.invoke(app, args(checkpoints["kitti"], "kitti", tiny_kitti, split, tmp_path)[:-2] + ["--device", "cuda"])
    assert result.exit_code == 1
    assert "--device cuda was asked for but no CUDA device is visible" in result.stderr


def test_height_not_multiple_of_32(tiny_kitti, checkpoints, tmp_path):
    split = split_folder(tmp_path, f"{DRIVE} 1 l\n")
    result = runner.invoke(app, args(checkpoints["kitti"], "kitti", tiny_kitti, split, tmp_path, "--height", "100"))
    assert result.exit_code == 1
    assert "--height must be a positive multiple of 32, got 100" in result.stderr
