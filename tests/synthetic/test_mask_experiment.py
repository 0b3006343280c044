"""experiments/mask_with_true_geometry.py runs on a synthetic folder and reports what it documents."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from synthetic_files import small_dataset  # noqa: F401 (a fixture)

SCRIPT = Path(__file__).resolve().parents[2] / "experiments" / "mask_with_true_geometry.py"
KEYS = {"phase", "step", "seconds", "mask_f1", "mask_ap", "mask_moving", "mask_other", "moving_labelled_static",
        "gap_moving", "gap_other"}


def run(*options: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *options], capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_true_geometry_run_measures_both_phases_at_every_interval(small_dataset):  # noqa: F811
    steps = 2
    done = run("--data", str(small_dataset), "--motion-steps", str(steps), "--mask-steps", str(steps), "--every", "1",
               "--threads", "1", "--flow-start", "ego")
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(r["phase"], r["step"]) for r in records] == [
        (phase, step) for phase in ("motion_init", "mask_init") for step in range(steps + 1)]
    for record in records:
        assert set(record) == KEYS
        for key in ("mask_f1", "mask_ap", "mask_moving", "mask_other", "moving_labelled_static"):
            assert 0.0 <= record[key] <= 1.0, (key, record)
        assert record["gap_moving"] >= 0 and record["gap_other"] >= 0
    # mask_init starts from motion_init's end, and a measurement leaves the model as it found it.
    measured = KEYS - {"phase", "step", "seconds"}
    assert {k: records[steps][k] for k in measured} == {k: records[steps + 1][k] for k in measured}
    assert records[-1]["mask_moving"] != records[steps]["mask_moving"]


@pytest.mark.parametrize("options, named", [
    (("--depth", "learnt"), "--checkpoint"),
    (("--train-pose",), "--pose learnt"),
    (("--network-scales",), "--depth learnt"),
])
def test_options_that_need_learnt_networks_are_refused(small_dataset, options, named):  # noqa: F811
    done = run("--data", str(small_dataset), *options)
    assert done.returncode == 2
    assert named in done.stderr


@pytest.mark.slow
def test_learnt_geometry_trained_as_in_the_trainer_runs_both_phases(small_dataset, tmp_path):  # noqa: F811
    from dynamo_core.checkpoints import save_weights
    from dynamo_core.config import ModelConfig, default_scales
    from dynamo_core.model import DynamoModel

    height, width = 64, 192
    config = ModelConfig(depth_model="monodepthv2", weights_init="scratch", height=height, width=width,
                         scales=default_scales("monodepthv2"))
    checkpoint = save_weights(DynamoModel(config), tmp_path / "disp_init_00", height, width)
    steps = 2
    done = run("--data", str(small_dataset), "--depth", "learnt", "--pose", "learnt", "-l", str(checkpoint),
               "--train-pose", "--jitter", "--network-scales", "--height", str(height), "--width", str(width),
               "--motion-steps", str(steps), "--mask-steps", str(steps), "--every", str(steps),
               "--threads", "1", "--flow-start", "ego")
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(r["phase"], r["step"]) for r in records] == [
        (phase, step) for phase in ("motion_init", "mask_init") for step in (0, steps)]
    assert all(set(r) == KEYS for r in records)
