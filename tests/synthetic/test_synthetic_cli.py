"""`dynamo prepare synthetic` from the command line."""

from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from dynamo_cli.main import app

runner = CliRunner()
SMALL_ARGS = ["--sequences", "2", "--frames", "4", "--height", "64", "--width", "192"]


def test_prepare_synthetic_writes_the_dataset(tmp_path):
    out = tmp_path / "tmp"
    result = runner.invoke(app, ["prepare", "synthetic", "--out", str(out), *SMALL_ARGS])
    assert result.exit_code == 0, result.stderr
    fronts = sorted(out.glob("*/seq-*/FRONT"))
    assert len(fronts) == 2
    for front in fronts:
        assert len(list((front / "rgb" / "original").glob("*.jpg"))) == 4
        assert len(list((front / "rgb" / "downsample").glob("*.jpg"))) == 4
        for folder in ("depth", "depth_dense", "scene_flow"):
            assert len(list((front / folder).glob("*.npy"))) == 4
        assert len(list((front / "mask").glob("*.npz"))) == 4
        assert (front / "rgb" / "cam.json").is_file()
        assert np.loadtxt(front / "odometry.txt").shape == (4, 16)
    # Both sequences are test sequences by default (--test-sequences 2): frames 1 and 2 of each.
    assert len((out / "splits" / "test_files.txt").read_text().splitlines()) == 4
    assert (out / "splits" / "train_files.txt").read_text() == ""
    assert "synthetic dataset" in result.stdout
    assert "rendering" in result.stderr


def test_json_summary_is_the_only_stdout(tmp_path):
    out = tmp_path / "data"
    args = ["prepare", "synthetic", "--out", str(out), *SMALL_ARGS, "--test-sequences", "1", "--seed", "5", "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["train_sequences"] == ["train/seq-0000"]
    assert summary["test_sequences"] == ["test/seq-0001"]
    assert summary["seed"] == 5 and summary["rendered_sequences"] == 2

    again = json.loads(runner.invoke(app, args).stdout)
    assert (again["rendered_sequences"], again["skipped_sequences"]) == (0, 2)
    forced = json.loads(runner.invoke(app, [*args, "--force"]).stdout)
    assert forced["rendered_sequences"] == 2


def test_bad_options_exit_1_with_a_clear_message(tmp_path):
    out = tmp_path / "data"
    cases = [
        (["--height", "100"], "--height must be a positive multiple of 32"),
        (["--frames", "2"], "--frames must be at least 3"),
        (["--sequences", "2", "--test-sequences", "3"], "--test-sequences must be between 0 and --sequences"),
    ]
    for extra, message in cases:
        result = runner.invoke(app, ["prepare", "synthetic", "--out", str(out), *extra])
        assert result.exit_code == 1
        assert message in result.stderr
        assert "Traceback" not in result.stderr + result.stdout
        assert result.stdout == ""
    assert not out.exists()


def test_missing_out_is_a_usage_error():
    assert runner.invoke(app, ["prepare", "synthetic"]).exit_code == 2
