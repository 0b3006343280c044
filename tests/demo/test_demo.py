"""`dynamo demo --smoke`: the whole pipeline end to end, and a rerun that continues instead of starting over."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from dynamo_cli.main import app

runner = CliRunner()


@pytest.mark.slow
def test_smoke_demo_writes_report_figures_and_metrics_then_resumes(tmp_path):
    out = tmp_path / "demo"
    result = runner.invoke(app, ["demo", "--out", str(out), "--smoke", "--budget-minutes", "2"])
    assert result.exit_code == 0, result.output
    for name in ("report.md", "report.html", "metrics.json"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("baseline/depth", "dynamo/depth", "dynamo/motseg", "baseline/odometry", "dynamo/odometry"):
        assert key in metrics["metrics"], key
    regions = metrics["metrics"]["dynamo/depth"]["regions"]
    assert set(regions) == {"background", "moving", "static"}
    measures = [row[0] for row in metrics["summary"]]
    assert "abs_rel, moving" in measures and "motion mask best F1" in measures
    report = (out / "report.md").read_text()
    images = [line.split("(", 1)[1].rstrip(")") for line in report.splitlines() if line.startswith("![")]
    assert any(path.endswith(".png") and "motseg" in path for path in images)
    assert len(images) >= 2
    for path in images:
        assert (out / path).is_file(), path
    assert "<table>" in (out / "report.html").read_text()
    assert "abs_rel, moving" in result.stdout

    # The baseline trained exactly as many steps as the whole Dynamo schedule, as the checkpoints record them.
    plan = metrics["plan"]
    planned = sum(plan["epoch_size"][name] * plan["epochs"] for name in plan["epoch_size"])
    steps = metrics["metrics"]["steps"]
    assert steps["baseline"] == steps["dynamo"] == planned
    baseline_marker = json.loads((out / "baseline" / "models" / "disp_init_03" / "COMPLETE").read_text())
    assert baseline_marker["global_step"] == steps["baseline"] and baseline_marker["phase"] == "disp_init"

    # Learning curves of both models, and the mask diagnostics while the mask head trains.
    curves = metrics["curves"]
    mask_keys = {"mask_f1", "mask_ap", "mask_moving", "mask_static", "moving_labelled_static",
                 "photo_ego_moving", "photo_flow_moving", "photo_ego_static", "photo_flow_static"}
    for phase in ("mask_init", "fine_tune"):
        entries = [e for e in curves["dynamo"] if e["phase"] == phase]
        assert entries and all(mask_keys <= set(e) for e in entries), phase
    assert {e["phase"] for e in curves["baseline"]} == {"disp_init"}
    assert max(e["step"] for e in curves["baseline"]) > plan["epoch_size"]["disp_init"] * plan["epochs"]
    assert all(0.0 <= e["moving_labelled_static"] <= 1.0 for e in curves["dynamo"] if "moving_labelled_static" in e)
    assert all(e[k] >= 0.0 for e in curves["dynamo"] for k in mask_keys if k.startswith("photo_") and k in e)
    scalars = _tensorboard_tags(out / "run" / "tensorboard")
    assert all(e["disp_spread"] >= 0.0 for model in ("dynamo", "baseline") for e in curves[model])
    assert {f"monitor/{key}" for key in mask_keys | {"abs_rel", "abs_rel_moving", "disp_spread"}} <= scalars
    assert "![baseline and Dynamo](figures/baseline_vs_dynamo.png)" in report
    assert "![learning curves](figures/learning_curves.png)" in report

    final = out / "run" / "models" / "fine_tune_01" / "depth_enc.pth"
    stamp = final.stat().st_mtime_ns
    again = runner.invoke(app, ["demo", "--out", str(out), "--smoke", "--json"])
    assert again.exit_code == 0, again.output
    assert final.stat().st_mtime_ns == stamp  # nothing was retrained
    assert json.loads(again.stdout)["summary"] == metrics["summary"]


def _tensorboard_tags(folder) -> set[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = set()
    for events in folder.glob("events.out.tfevents.*"):
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        tags |= set(accumulator.Tags()["scalars"])
    return tags


def test_bad_budget_and_model(tmp_path):
    result = runner.invoke(app, ["demo", "--out", str(tmp_path / "d"), "--budget-minutes", "0"])
    assert result.exit_code == 1 and "--budget-minutes must be positive" in result.stderr
    result = runner.invoke(app, ["demo", "--out", str(tmp_path / "d"), "--depth-model", "vit"])
    assert result.exit_code == 1 and "--depth-model must be one of" in result.stderr
    result = runner.invoke(app, ["demo", "--out", str(tmp_path / "d"), "--device", "tpu"])
    assert result.exit_code == 1 and "--device must be cpu, cuda or auto" in result.stderr
    result = runner.invoke(app, ["demo", "--out", str(tmp_path / "d"), "--precision", "fp8"])
    assert result.exit_code == 1 and "--precision must be" in result.stderr
    result = runner.invoke(app, ["demo", "--out", str(tmp_path / "d"), "--flow-start", "zeros"])
    assert result.exit_code == 1 and "--flow-start must be one of random, ego" in result.stderr
    assert not (tmp_path / "d").exists()


def test_a_demo_folder_from_other_scenes_is_refused_and_kept(tmp_path):
    """Scenes of an earlier generator version: the runs there were trained on them, so the demo stops
    before any work and says what to do, and deletes nothing."""
    from dynamo_core.demo import SMOKE_SIZE
    from dynamo_core.synthetic import FORMAT_VERSION, generate_dataset

    out = tmp_path / "demo"
    size = SMOKE_SIZE
    generate_dataset(out / "data", sequences=size.sequences, frames=size.frames, height=size.render_height,
                     width=size.render_width, seed=0, test_sequences=size.test_sequences)
    manifest = out / "data" / "synthetic.json"
    earlier = {**json.loads(manifest.read_text()), "version": FORMAT_VERSION - 1}
    manifest.write_text(json.dumps(earlier))
    trained = out / "run" / "models" / "disp_init_00" / "depth_enc.pth"
    trained.parent.mkdir(parents=True)
    trained.write_bytes(b"weights")

    result = runner.invoke(app, ["demo", "--smoke", "--out", str(out)])
    assert result.exit_code == 1
    message = " ".join(result.stderr.split())
    for part in (str(out), f"version {FORMAT_VERSION - 1} (now {FORMAT_VERSION})", "another --out"):
        assert part in message, (part, message)
    assert "--force" not in message  # the demo has no such option
    assert json.loads(manifest.read_text()) == earlier
    assert trained.read_bytes() == b"weights"
    assert not (out / "demo_plan.json").exists()


def _planned_seconds(epoch_size: dict, epochs: int, seconds: dict) -> float:
    """Dynamo's steps plus the baseline's extra disp_init steps, one per step of Dynamo's last three phases."""
    from dynamo_core.demo import LOOP_OVERHEAD

    steps = {n: epoch_size[n] * epochs for n in epoch_size}
    extra = sum(v for n, v in steps.items() if n != "disp_init")
    return (sum(steps[n] * seconds[n] for n in steps) + extra * seconds["disp_init"]) * LOOP_OVERHEAD


def test_schedule_fills_the_budget_with_both_branches():
    from dynamo_core.demo import EPOCHS_PER_PHASE, PHASE_SHARES, schedule

    seconds = {"disp_init": 0.26, "motion_init": 0.22, "mask_init": 0.39, "fine_tune": 0.50}
    epoch_size = schedule(700.0, seconds, min_steps=20)
    planned = _planned_seconds(epoch_size, EPOCHS_PER_PHASE, seconds)
    one_epoch_each = _planned_seconds({n: 1 for n in seconds}, EPOCHS_PER_PHASE, seconds)
    assert 0.97 * 700 <= planned <= 700 + one_epoch_each
    total = sum(epoch_size.values())
    for name in seconds:  # PHASE_SHARES are shares of Dynamo's steps
        assert epoch_size[name] / total == pytest.approx(PHASE_SHARES[name], abs=0.01)
    # An exhausted budget still trains every phase a little.
    assert schedule(-5.0, seconds, min_steps=20) == {n: 20 // EPOCHS_PER_PHASE for n in seconds}


def test_timed_plan_sizes_every_phase_from_measured_steps(tmp_path, monkeypatch):
    import time

    from dynamo_core import demo

    # The full-size plan path, on the smoke demo's tiny data so that it runs in seconds.
    monkeypatch.setattr(demo, "DEFAULT_SIZE", demo.DemoSize(2, 8, 1, 64, 192, 64, 192, "original", 2, 5.0, min_steps=2))
    settings = demo.DemoSettings(out=tmp_path / "demo", budget_minutes=1.0)
    demo.make_data(settings, demo.DemoProgress())
    started = time.perf_counter()
    plan = demo.make_plan(settings, started, demo.DemoProgress())
    assert set(plan.step_seconds) == set(demo.PHASE_SHARES) and all(t > 0 for t in plan.step_seconds.values())
    assert plan.epochs == demo.EPOCHS_PER_PHASE and not plan.smoke
    spent = time.perf_counter() - started
    planned = _planned_seconds(plan.epoch_size, plan.epochs, plan.step_seconds)
    rounding = _planned_seconds({n: 1 for n in plan.epoch_size}, plan.epochs, plan.step_seconds)
    # The training time fills what the budget leaves after timing and the evaluation reserve, and no more.
    assert 0.95 * (60.0 - 5.0 - spent) <= planned <= 60.0 - 5.0 + rounding
    assert json.loads((settings.out / "demo_plan.json").read_text())["epoch_size"] == plan.epoch_size
