"""Depth runner: a prediction equal to the true depth scores perfectly, overall and per region;
output names and folders; bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from dynamo_core.errors import CheckpointError, DataError
from dynamo_core.evaluation import depth_runner
from dynamo_core.evaluation.inference import model_name, output_folder
from dynamo_core.synthetic import generate_dataset

from runner_helpers import HEIGHT, WIDTH, checkpoint, options, scratch_checkpoint  # noqa: F401  (fixture)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> Path:
    """Synthetic scenes whose lidar points sit on pixel corners and carry the dense depth there,
    so that a prediction equal to the dense depth is exact at every scored point."""
    out = tmp_path_factory.mktemp("depth") / "synthetic"
    generate_dataset(out, sequences=1, frames=4, height=HEIGHT, width=WIDTH, seed=5, test_sequences=1)
    camera = out / "test" / "seq-0000" / "FRONT"
    for dense_file in sorted((camera / "depth_dense").glob("*.npy")):
        dense = np.load(dense_file).astype(np.float32)
        rows, cols = np.nonzero((dense > 0) & (dense < 70))
        rows, cols = rows[::3], cols[::3]
        np.save(camera / "depth" / dense_file.name, np.stack([cols, rows, dense[rows, cols]], 1).astype(np.float32))
    return out


def true_disparity(scenes: Path, factor: float = 1.0):
    """A stand-in for the depth network: factor / (true dense depth) of each item of the test split."""
    lines = (scenes / "splits" / "test_files.txt").read_text().split("\n")

    def predict(context, batch):
        maps = []
        for index in batch["index"].tolist():
            folder, frame = lines[index].split()
            dense = np.load(scenes / folder / "FRONT" / "depth_dense" / f"{int(frame):06d}.npy").astype(np.float32)
            dense[dense <= 0] = 1000.0  # sky: no lidar point lands there
            maps.append(torch.from_numpy(factor / dense)[None, None])
        return torch.cat(maps)

    return predict


def test_true_depth_scores_perfectly_overall_and_per_region(monkeypatch, checkpoint, scenes, tmp_path):
    monkeypatch.setattr(depth_runner, "predict_scaled_disparity", true_disparity(scenes))
    result = depth_runner.run_depth(options(checkpoint, scenes, tmp_path))
    expected_images = len((scenes / "splits" / "test_files.txt").read_text().split())  // 2
    assert result.image_count == expected_images
    assert result.overall.abs_rel < 1e-6 and result.overall.rmse < 1e-4
    assert (result.overall.a1, result.overall.a2, result.overall.a3) == (1.0, 1.0, 1.0)
    assert set(result.regions) == {"background", "moving", "static"}
    for region, errors in result.regions.items():
        assert errors.abs_rel < 1e-6 and errors.a1 == 1.0, region


def test_depth_is_scored_up_to_scale(monkeypatch, checkpoint, scenes, tmp_path):
    monkeypatch.setattr(depth_runner, "predict_scaled_disparity", true_disparity(scenes, factor=7.5))
    result = depth_runner.run_depth(options(checkpoint, scenes, tmp_path))
    assert result.overall.abs_rel < 1e-6 and result.overall.a1 == 1.0


def test_wrong_depth_is_scored_as_wrong(monkeypatch, checkpoint, scenes, tmp_path):
    """A flat prediction (one depth everywhere) leaves the spread of the true depths as error."""
    monkeypatch.setattr(depth_runner, "predict_scaled_disparity", lambda context, batch: torch.full(
        (len(batch["index"]), 1, HEIGHT, WIDTH), 0.1))
    result = depth_runner.run_depth(options(checkpoint, scenes, tmp_path))
    assert result.overall.abs_rel > 0.1 and result.overall.a1 < 0.9


def test_reports_are_written_and_agree(monkeypatch, checkpoint, scenes, tmp_path):
    monkeypatch.setattr(depth_runner, "predict_scaled_disparity", true_disparity(scenes, factor=2.0))
    result = depth_runner.run_depth(options(checkpoint, scenes, tmp_path))
    folder = tmp_path / "outputs" / "scratch_synthetic" / "depth"
    assert result.files == [folder / "depth.txt", folder / "depth.json"]
    document = json.loads((folder / "depth.json").read_text())
    assert document["overall"] == pytest.approx(result.overall.as_dict())
    assert document["images"] == result.image_count
    text = (folder / "depth.txt").read_text()
    overall_row = next(line for line in text.splitlines() if line.startswith("overall"))
    assert [float(v) for v in overall_row.split()[1:]] == [round(v, 3) for v in result.overall]
    assert not list(folder.glob(".*")), "no temporary files are left behind"


def test_model_name_and_output_folder(tmp_path):
    run_checkpoint = tmp_path / "logs" / "night" / "models" / "fine_tune_04"
    assert model_name(run_checkpoint) == "night_fine_tune_04"
    assert model_name(tmp_path / "ckpt" / "K_Dynamo-Depth") == "K_Dynamo-Depth"
    assert output_folder("outputs", run_checkpoint, "waymo", "depth") == Path("outputs/night_fine_tune_04_waymo/depth")


def test_missing_checkpoint(scenes, tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        depth_runner.run_depth(options(tmp_path / "nowhere", scenes, tmp_path))


def test_checkpoint_without_depth_modules(scenes, tmp_path):
    folder = scratch_checkpoint(tmp_path / "pose_only", modules=("pose_enc", "pose_dec"))
    with pytest.raises(CheckpointError, match="lacks depth_enc.pth, depth_dec.pth"):
        depth_runner.run_depth(options(folder, scenes, tmp_path))


def test_split_without_test_files(checkpoint, scenes, tmp_path):
    (tmp_path / "split").mkdir()
    with pytest.raises(DataError, match="test_files.txt is missing"):
        depth_runner.run_depth(options(checkpoint, scenes, tmp_path, split=str(tmp_path / "split")))


@pytest.mark.slow
def test_evaluation_does_not_load_the_trainer():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import dynamo_core.evaluation.depth_runner, dynamo_core.evaluation.motseg_runner\n"
        "import dynamo_core.evaluation.odometry_runner, dynamo_core.evaluation.visualize_runner\n"
        "print(sorted(m for m in sys.modules if m.startswith(('dynamo_core.training.', 'dynamo_core.losses'))))\n"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"  # checkpoints are read by dynamo_core.checkpoints, beside the model
