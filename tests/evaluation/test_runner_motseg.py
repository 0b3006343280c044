"""Motion-segmentation runner: the true mask scores perfectly, the per-class false-positive sweep
agrees with `false_positives_by_class`, items without neighbours are skipped, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from dynamo_core.errors import DataError
from dynamo_core.evaluation import false_positives_by_class, motseg_runner
from dynamo_core.evaluation.motseg_metrics import default_thresholds
from dynamo_core.synthetic import SEMANTIC_CODES, generate_dataset

from runner_helpers import HEIGHT, WIDTH, checkpoint, options  # noqa: F401  (fixture)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("motseg") / "synthetic"
    generate_dataset(out, sequences=1, frames=4, height=HEIGHT, width=WIDTH, seed=2, test_sequences=1)
    return out


def true_mask(scenes: Path, corrupt: bool = False):
    """A stand-in for the mask network: the labelled moving pixels of each item of test_mask_files.txt."""
    lines = (scenes / "splits" / "test_mask_files.txt").read_text().split("\n")

    def predict(context, batch):
        masks = []
        for index in batch["index"].tolist():
            folder, frame = lines[index].split()
            motion = np.load(scenes / folder / "FRONT" / "mask" / f"{int(frame):06d}.npz")["motion"]
            mask = (motion == 1).astype(np.float32)
            if corrupt:  # also claim the road, all of it
                semantic = np.load(scenes / folder / "FRONT" / "mask" / f"{int(frame):06d}.npz")["semantic"]
                mask[semantic == SEMANTIC_CODES["road"]] = 1.0
            masks.append(torch.from_numpy(mask)[None, None])
        return torch.cat(masks)

    return predict


def test_true_mask_scores_perfectly(monkeypatch, checkpoint, scenes, tmp_path):
    monkeypatch.setattr(motseg_runner, "predict_motion_mask", true_mask(scenes))
    result = motseg_runner.run_motseg(options(checkpoint, scenes, tmp_path))
    assert result.sweep.best_f1 == pytest.approx(1.0, abs=1e-9)
    assert result.sweep.average_precision == pytest.approx(1.0, abs=1e-9)
    assert result.false_positives == {}
    assert result.image_count == 2 and result.skipped_count == 0


def test_false_positives_are_named_by_class(monkeypatch, checkpoint, scenes, tmp_path):
    monkeypatch.setattr(motseg_runner, "predict_motion_mask", true_mask(scenes, corrupt=True))
    result = motseg_runner.run_motseg(options(checkpoint, scenes, tmp_path))
    assert list(result.false_positives) == ["road"]
    # Every road pixel of the scored frames is a false positive at any threshold below 1.
    road = sum(int((np.load(scenes / "test" / "seq-0000" / "FRONT" / "mask" / f"{k:06d}.npz")["semantic"]
                    == SEMANTIC_CODES["road"]).sum()) for k in (1, 2))
    assert result.false_positives["road"] == road


def test_outputs_are_written_and_agree(monkeypatch, checkpoint, scenes, tmp_path):
    monkeypatch.setattr(motseg_runner, "predict_motion_mask", true_mask(scenes, corrupt=True))
    result = motseg_runner.run_motseg(options(checkpoint, scenes, tmp_path))
    folder = tmp_path / "outputs" / "scratch_synthetic" / "motseg"
    names = {p.name for p in folder.iterdir()}
    assert names == {"pr_record.npz", "pr_curve.pdf", "pr_curve.png", "false_positives.pdf", "false_positives.png",
                     "motseg.txt", "motseg.json"}
    with np.load(folder / "pr_record.npz", allow_pickle=False) as record:
        assert set(record.files) == {"precision", "recall", "f1", "thresholds"}
        assert len(record["thresholds"]) == 150
        assert float(record["f1"].max()) == pytest.approx(result.sweep.best_f1)
    document = json.loads((folder / "motseg.json").read_text())
    assert document["best_f1"] == pytest.approx(result.sweep.best_f1)
    assert document["false_positives_by_class"] == result.false_positives
    assert f"best F1:            {result.sweep.best_f1:.4f}" in (folder / "motseg.txt").read_text()


def test_class_sweep_agrees_with_the_metric_at_every_threshold():
    generator = torch.Generator().manual_seed(0)
    prob = torch.rand(2, 1, 20, 30, generator=generator)
    prob[0, 0, :2] = torch.tensor([0.0, 1.0]).repeat_interleave(15).reshape(1, 30)  # the sweep's extremes
    labels = torch.randint(0, 4, (2, 20, 30), generator=generator).to(torch.uint8)
    semantic = torch.randint(0, 29, (2, 20, 30), generator=generator).to(torch.uint8)
    thresholds = default_thresholds()
    sweep = motseg_runner.ClassFalsePositiveSweep(thresholds)
    sweep.update(prob[:1], labels[:1], semantic[:1])
    sweep.update(prob[1:], labels[1:], semantic[1:])
    for index, threshold in enumerate(thresholds.tolist()):
        assert sweep.counts_at(index) == false_positives_by_class(prob, labels, semantic, threshold)


def test_items_without_neighbours_are_skipped(monkeypatch, checkpoint, scenes, tmp_path):
    split = tmp_path / "split"
    split.mkdir()
    (split / "test_files.txt").write_text("test/seq-0000 1\n")
    (split / "test_mask_files.txt").write_text("test/seq-0000 0\ntest/seq-0000 1\ntest/seq-0000 3\n")
    monkeypatch.setattr(motseg_runner, "predict_motion_mask",
                        lambda context, batch: torch.zeros(len(batch["index"]), 1, HEIGHT, WIDTH))
    result = motseg_runner.run_motseg(options(checkpoint, scenes, tmp_path, split=str(split)))
    assert (result.image_count, result.skipped_count) == (1, 2)


def test_no_item_with_neighbours(checkpoint, scenes, tmp_path):
    split = tmp_path / "split"
    split.mkdir()
    (split / "test_mask_files.txt").write_text("test/seq-0000 0\n")
    with pytest.raises(DataError, match="has both neighbouring frames"):
        motseg_runner.run_motseg(options(checkpoint, scenes, tmp_path, split=str(split)))


def test_split_without_motion_labels(checkpoint, scenes, tmp_path):
    split = tmp_path / "split"
    split.mkdir()
    (split / "test_files.txt").write_text("test/seq-0000 1\n")
    with pytest.raises(DataError, match="has no motion labels"):
        motseg_runner.run_motseg(options(checkpoint, scenes, tmp_path, split=str(split)))
