"""`dynamo predict` and `dynamo export onnx` through the command line, with a scratch checkpoint."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "prediction"))

from dynamo_cli.main import app  # noqa: E402
from predict_helpers import TINY_KITTI, TINY_WAYMO, checkpoint, frames_of, small_image  # noqa: E402,F401

runner = CliRunner()


def predict(*args, input=None):
    return runner.invoke(app, ["predict", *map(str, args)], input=input)


def json_lines(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


@pytest.mark.sample_data
def test_single_images_folder_and_json(checkpoint, tmp_path):
    out = tmp_path / "out"
    frame = frames_of(TINY_WAYMO)[0]
    result = predict("-l", checkpoint, frame, TINY_KITTI, "--out", out, "--json", "--device", "cpu")
    assert result.exit_code == 0, result.output
    records = json_lines(result.stdout)
    single = records[0]
    assert single["input"] == str(frame) and single["frame"] == frame.stem
    assert set(single["outputs"]) == {"depth_npy", "depth_png", "disparity_png"}
    assert "scale" not in single
    depth = np.load(single["outputs"]["depth_npy"])
    assert depth.shape == (single["height"], single["width"]) and depth.dtype == np.float32
    assert Path(single["outputs"]["depth_npy"]) == out / f"{frame.stem}_depth.npy"
    sequence = [r for r in records if r["input"] == str(TINY_KITTI)]
    assert [r["frame"] for r in sequence] == ["0000000000", "0000000001", "0000000002", None]
    assert "mask_png" in sequence[1]["outputs"] and "mask_png" not in sequence[0]["outputs"]
    assert set(sequence[-1]["outputs"]) == {"poses_txt", "poses_tum"}
    assert np.loadtxt(out / "downsample" / "poses.txt").shape == (3, 16)


def test_glob_list_stdin_all_outputs_and_scale(checkpoint, tmp_path):
    for i in range(3):
        small_image(tmp_path / "in" / f"f{i}.png", seed=i)
    listed = tmp_path / "list.txt"
    listed.write_text("\n".join(str(tmp_path / "in" / f"f{i}.png") for i in range(3)) + "\n")
    out = tmp_path / "out"
    result = predict("-l", checkpoint, str(tmp_path / "in" / "f0*.png"), f"@{listed}", "--out", out, "--json",
                     "--device", "cpu", "--save", "depth_npy,depth_png,disparity_png,mask_png,mask_npy,flow_npy,ply",
                     "--depth-scale", "2.5", "--fov", "80")
    assert result.exit_code == 0, result.output
    records = json_lines(result.stdout)
    assert records[0]["scale"] == 2.5 and set(records[0]["outputs"]) == {"depth_npy", "depth_png", "disparity_png", "ply"}
    middle = [r for r in records if r["input"] == f"@{listed}" and r["frame"] == "f1"][0]
    assert set(middle["outputs"]) == {"depth_npy", "depth_png", "disparity_png", "mask_png", "mask_npy", "flow_npy", "ply"}
    assert np.load(middle["outputs"]["flow_npy"]).shape == (40, 96, 3)
    assert np.load(middle["outputs"]["mask_npy"]).shape == (40, 96)
    stdin = predict("-l", checkpoint, "-", "--out", tmp_path / "out2", "--json", "--device", "cpu", "--no-motion",
                    input=f"{tmp_path / 'in' / 'f2.png'}\n{tmp_path / 'in' / 'f1.png'}\n")
    assert stdin.exit_code == 0, stdin.output
    assert [r["frame"] for r in json_lines(stdin.stdout)] == ["f2", "f1"]
    assert (tmp_path / "out2" / "stdin" / "f2_depth.png").is_file()


def test_video_input_and_panels(checkpoint, tmp_path):
    import imageio.v2 as imageio

    video = tmp_path / "drive.mp4"
    writer = imageio.get_writer(str(video), format="FFMPEG", fps=5, macro_block_size=1, ffmpeg_log_level="error")
    rng = np.random.default_rng(0)
    for _ in range(5):
        writer.append_data(rng.integers(0, 256, (48, 96, 3), dtype=np.uint8))
    writer.close()
    result = predict("-l", checkpoint, video, "--out", tmp_path / "out", "--json", "--device", "cpu", "--every", "2",
                     "--video")
    assert result.exit_code == 0, result.output
    records = json_lines(result.stdout)
    assert [r["frame"] for r in records] == ["000000", "000002", "000004", None]
    assert (tmp_path / "out" / "drive" / "panels.mp4").stat().st_size > 0
    assert np.load(tmp_path / "out" / "drive" / "000002_depth.npy").shape == (48, 96)


def test_bad_inputs_fail_alone(checkpoint, tmp_path):
    good = small_image(tmp_path / "good.png")
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"garbage")
    empty_video = tmp_path / "empty.mp4"
    empty_video.write_bytes(b"")
    result = predict("-l", checkpoint, corrupt, tmp_path / "missing.jpg", empty_video, good, "--out", tmp_path / "out",
                     "--device", "cpu")
    assert result.exit_code == 1
    assert "corrupt.png" in result.stderr and "missing.jpg" in result.stderr and "empty.mp4" in result.stderr
    assert "Traceback" not in result.output
    assert (tmp_path / "out" / "good_depth.npy").is_file()


def test_errors_before_any_work(checkpoint, tmp_path):
    (tmp_path / "empty").mkdir()
    result = predict("-l", checkpoint, tmp_path / "empty", "--out", tmp_path / "out", "--device", "cpu")
    assert result.exit_code == 1 and "holds no images" in result.stderr
    blocked = tmp_path / "file"
    blocked.write_text("a file where the output folder should be")
    result = predict("-l", checkpoint, small_image(tmp_path / "a.png"), "--out", blocked, "--device", "cpu")
    assert result.exit_code == 1 and "cannot be written" in result.stderr
    result = predict("-l", checkpoint, tmp_path / "a.png", "--out", tmp_path / "o", "--save", "depth_tiff")
    assert result.exit_code == 1 and "depth_tiff" in result.stderr


def test_nothing_is_overwritten_without_force(checkpoint, tmp_path):
    image = small_image(tmp_path / "a.png")
    out = tmp_path / "out"
    assert predict("-l", checkpoint, image, "--out", out, "--device", "cpu").exit_code == 0
    before = (out / "a_depth.npy").stat().st_mtime_ns
    again = predict("-l", checkpoint, image, "--out", out, "--device", "cpu")
    assert again.exit_code == 1 and "--force" in again.stderr
    assert (out / "a_depth.npy").stat().st_mtime_ns == before
    assert predict("-l", checkpoint, image, "--out", out, "--device", "cpu", "--force").exit_code == 0
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


@pytest.mark.sample_data
def test_camera_height_gives_a_scale_per_frame(checkpoint, tmp_path):
    result = predict("-l", checkpoint, frames_of(TINY_KITTI)[0], "--out", tmp_path / "out", "--json", "--device",
                     "cpu", "--camera-height", "1.65")
    assert result.exit_code == 0, result.output
    record = json_lines(result.stdout)[0]
    assert record["scale"] > 0


@pytest.mark.slow
@pytest.mark.sample_data
def test_export_onnx_and_predict_with_it(checkpoint, tmp_path):
    pytest.importorskip("onnxruntime")
    model = tmp_path / "depth.onnx"
    result = runner.invoke(app, ["export", "onnx", "-l", str(checkpoint), "--out", str(model), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["max_abs_error"] <= 1e-4 and model.is_file()
    image = frames_of(TINY_KITTI)[0]
    via_onnx = predict("--onnx", model, image, "--out", tmp_path / "onnx", "--json")
    assert via_onnx.exit_code == 0, via_onnx.output
    via_torch = predict("-l", checkpoint, image, "--out", tmp_path / "torch", "--json", "--device", "cpu")
    a = np.load(json_lines(via_onnx.stdout)[0]["outputs"]["depth_npy"])
    b = np.load(json_lines(via_torch.stdout)[0]["outputs"]["depth_npy"])
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-3)
