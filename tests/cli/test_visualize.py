"""`dynamo visualize` from the command line: the tiny KITTI and Waymo data end to end, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image

from dynamo_cli.main import app

from cli_helpers import DRIVE, SEGMENT, TINY_WAYMO, checkpoints, runner  # noqa: F401  (fixture)


def args(checkpoint, dataset, data_path, tmp_path, *extra) -> list[str]:
    return ["visualize", "-l", str(checkpoint), "-d", dataset, "--data-path", str(data_path),
            "--eval-dir", str(tmp_path / "outputs"), "--num-workers", "0", *extra]


def test_kitti_test_segments(tiny_kitti, checkpoints, tmp_path):
    split = tmp_path / "split"
    split.mkdir()
    (split / "test_files.txt").write_text(f"{DRIVE} 1 l\n{DRIVE} 1 r\n")
    result = runner.invoke(app, args(checkpoints["kitti"], "kitti", tiny_kitti, tmp_path, "--split", str(split)))
    assert result.exit_code == 0, result.output
    folder = tmp_path / "outputs" / "scratch_kitti_kitti" / "visualize"
    video = folder / "2011_09_26_drive_0001_sync.mp4"
    # Frames 0..2 exist; only frame 1 has both neighbours.
    assert sorted(p.name for p in (folder / "2011_09_26_drive_0001_sync").iterdir()) == ["000001.png"]
    frames = np.stack(list(iio.imiter(video)))
    assert frames.shape == (1, 96, 5 * 320, 3)
    assert "2011_09_26_drive_0001_sync.mp4" in result.stdout and str(folder) in result.stdout


@pytest.mark.sample_data
def test_waymo_chosen_frame_with_every_panel(checkpoints, tmp_path):
    panels = "image,disp,ego_flow,ind_flow,mask,complete_flow,total_flow"
    result = runner.invoke(app, args(checkpoints["waymo"], "waymo", TINY_WAYMO, tmp_path, "--frames", f"{SEGMENT} 1",
                                     "--panels", panels, "--json"))
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    (video,) = document["videos"]
    assert video["frames"] == [1] and document["fps"] == 10.0 and document["panels"] == panels.split(",")
    png = Path(video["frames_folder"]) / "000001.png"
    panel = np.array(Image.open(png))
    assert panel.shape == (128, 7 * 192, 3)
    # The image panel is the frame itself, at the model's size.
    assert np.abs(panel[:, :192].astype(int) - np.array(Image.open(
        TINY_WAYMO / SEGMENT / "FRONT" / "rgb" / "downsample" / "000001.jpg").resize((192, 128), Image.BICUBIC)).astype(int)).max() <= 1
    assert Path(video["video"]).is_file()


@pytest.mark.sample_data
def test_frame_without_neighbours(checkpoints, tmp_path):
    result = runner.invoke(app, args(checkpoints["waymo"], "waymo", TINY_WAYMO, tmp_path, "--frames", f"{SEGMENT} 2"))
    assert result.exit_code == 1
    assert "frames 1 and 3 must both exist" in result.stderr


@pytest.mark.sample_data
def test_unknown_panel(checkpoints, tmp_path):
    result = runner.invoke(app, args(checkpoints["waymo"], "waymo", TINY_WAYMO, tmp_path, "--frames", f"{SEGMENT} 1",
                                     "--panels", "image,depth"))
    assert result.exit_code == 1
    assert "--panels takes names from image, disp, ego_flow" in result.stderr


@pytest.mark.sample_data
def test_missing_checkpoint(tmp_path):
    result = runner.invoke(app, args(tmp_path / "gone", "waymo", TINY_WAYMO, tmp_path, "--frames", f"{SEGMENT} 1"))
    assert result.exit_code == 1
    assert f"checkpoint folder {tmp_path / 'gone'} does not exist" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.sample_data
def test_empty_split(checkpoints, tmp_path):
    split = tmp_path / "split"
    split.mkdir()
    (split / "test_files.txt").write_text("\n")
    result = runner.invoke(app, args(checkpoints["waymo"], "waymo", TINY_WAYMO, tmp_path, "--split", str(split)))
    assert result.exit_code == 1
    assert "test_files.txt lists no frames" in result.stderr
