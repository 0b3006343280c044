"""The timing scripts run at a tiny size and print the JSON their documentation promises."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def run_script(name: str, *options: str) -> dict:
    done = subprocess.run([sys.executable, str(BENCHMARKS / name), *options], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.slow
def test_train_step_reports_every_asked_phase_and_the_reference_ratio():
    report = run_script("train_step.py", "--depth-model", "monodepthv2", "--height", "64", "--width", "192",
                        "--steps", "1", "--phases", "disp_init,fine_tune", "--work", "both", "--precision", "fp32")
    assert set(report["phases"]) == {"disp_init", "fine_tune"}
    for phase in report["phases"].values():
        assert phase["ours"]["median_s"] > 0 and phase["reference"]["median_s"] > 0
        assert phase["ratio_ours_over_reference"] == pytest.approx(phase["ours"]["median_s"] / phase["reference"]["median_s"])
    assert report["peak_rss_mb"] > 0
    # The floor a step is compared against, and where the figures came from.
    for phase in report["phases"].values():
        for mode in ("ours", "reference"):
            assert phase[mode]["gflop"] > 0
            assert phase[mode]["gflop_per_s"] == pytest.approx(phase[mode]["gflop"] / phase[mode]["median_s"])
        # Ours skips depth for the two neighbours and gradients through frozen networks: less work.
        assert phase["ours"]["gflop"] < phase["reference"]["gflop"]
    assert report["conv_forward"]["gflop_per_s"] > 0
    assert report["machine"]["cpu"] and report["machine"]["torch"] == torch.__version__
    assert isinstance(report["machine"]["flags"], list)


@pytest.mark.slow
def test_predict_reports_ours_against_the_reference_pattern():
    report = run_script("predict.py", "--height", "64", "--width", "192", "--repeats", "1", "--models", "litemono",
                        "--no-onnx")
    timings = report["models"]["litemono"]
    for batch in (1, 8):
        for kind in ("depth", "motion"):
            ours, reference = timings[f"torch_{kind}_fps_b{batch}"], timings[f"reference_{kind}_fps_b{batch}"]
            assert ours > 0 and reference > 0
            assert timings[f"ratio_{kind}_b{batch}"] == pytest.approx(reference / ours, rel=1e-2)
        assert timings[f"ratio_mlp_blocks_b{batch}"] > 0
    assert report["machine"]["threads"] == 2


@pytest.mark.slow
def test_loss_ops_reports_every_phase_and_operation():
    report = run_script("loss_ops.py", "--depth-model", "litemono", "--height", "64", "--width", "192", "--repeats", "1")
    assert set(report["loss"]) == {"disp_init", "motion_init", "mask_init", "fine_tune"}
    assert all(t["forward"] > 0 and t["backward"] > 0 for t in report["loss"].values())
    assert report["photometric"]["ours_ms"] > 0 and report["photometric"]["autograd_ms"] > 0
    assert set(report["upsample"]) == {"x2", "x4", "x8"}
    assert report["ground_fit_ms"] > 0


@pytest.mark.slow
def test_weight_grad_kernel_reports_steps_with_and_without_im2col():
    report = run_script("weight_grad_kernel.py", "--depth-model", "monodepthv2", "-b", "2", "--height", "64",
                        "--width", "192", "--steps", "1", "--phases", "disp_init")
    timing = report["phases"]["disp_init"]
    assert timing["with_im2col_s"] > 0 and timing["layouts_only_s"] > 0
    assert timing["ratio"] == pytest.approx(timing["with_im2col_s"] / timing["layouts_only_s"])
    # Every training convolution shape was measured in this run; im2col won some share of them.
    assert report["measured_shapes"] > 0 and 0 <= report["im2col_shapes"] <= report["measured_shapes"]
    assert report["machine"]["cpu"] and report["machine"]["torch"] == torch.__version__
