"""The mask experiments (experiments/mask_with_true_geometry.py and phase_from_checkpoint.py) run on a synthetic
folder and report what they document."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from synthetic_files import small_dataset  # noqa: F401 (a fixture)

from dynamo_core.model import MODULE_NAMES

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
    height, width = 64, 192
    checkpoint = scratch_checkpoint(tmp_path / "disp_init_00", height, width)
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


def scratch_checkpoint(folder: Path, height: int, width: int, **model) -> Path:
    """An untrained Monodepth2 model saved as a checkpoint folder."""
    from dynamo_core.checkpoints import save_weights
    from dynamo_core.config import ModelConfig, default_scales
    from dynamo_core.model import DynamoModel

    config = ModelConfig(depth_model="monodepthv2", weights_init="scratch", height=height, width=width,
                         scales=default_scales("monodepthv2"), **model)
    return save_weights(DynamoModel(config), folder, height, width)


def load_script(path: Path = SCRIPT):
    import importlib.util

    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_learnt_geometry_step_is_the_trainers_step(small_dataset, tmp_path, monkeypatch):  # noqa: F811
    """With learnt geometry, the decoder's coarse scales and the pose network training, one `mask_init` step
    of the script evaluates the trainer's objective and gradients on the same frames and weights, so that
    what the script finds about the mask holds for training."""
    import copy

    import torch

    import dynamo_core.data.augment as augment
    from dynamo_core import losses
    from dynamo_core.config import DataConfig, ModelConfig, OptimConfig, RunConfig, TrainConfig, default_scales
    from dynamo_core.training.run import build_training_dataset
    from dynamo_core.training.state import PHASE_ORDER
    from dynamo_core.training.trainer import Trainer

    script = load_script()
    monkeypatch.setattr(augment, "FLIP_PROBABILITY", 0.0)  # the script feeds the frames as they are
    monkeypatch.setattr(augment, "JITTER_PROBABILITY", 0.0)
    height, width, batch_size, step, steps = 64, 192, 2, 5, 30
    scales = default_scales("monodepthv2")
    config = RunConfig(
        model=ModelConfig(depth_model="monodepthv2", weights_init="scratch", height=height, width=width, scales=scales,
                          flow_start="ego"),
        data=DataConfig(dataset="synthetic", data_path=str(small_dataset), split=str(small_dataset / "splits"),
                        img_type="downsample", num_workers=0),
        optim=OptimConfig(batch_size=batch_size, epoch_schedule=[0, 0, 1, 0], epoch_size=steps),
        train=TrainConfig(log_dir=str(tmp_path), name="run", device="cpu", log_frequency=1000, conv_layout="plain"),
    )
    trainer = Trainer(config, build_training_dataset(config))
    phase = losses.PHASES["mask_init"]
    model = trainer.model
    model.set_heads(phase.complete_flow, phase.motion_mask)
    model.train()
    batch = next(iter(trainer._loader(PHASE_ORDER.index("mask_init"), 0)))
    learnt, motion = copy.deepcopy(model), copy.deepcopy(model)

    # The trainer's own step; a rate of 0 leaves the weights as they were and the gradients to read.
    frozen = torch.optim.SGD(model.parameters_of(list(phase.networks)), lr=0.0)
    expected, skipped = trainer.train_step(model, frozen, phase, dict(batch), step, steps, 1)
    assert not skipped

    geometry = script.Geometry("learnt", "learnt", learnt, scales, network_scales=True)
    geometry.train_pose = True
    index = torch.arange(batch_size)
    K = batch["K", 0][0, :3, :3].double().numpy().copy()
    K[0] /= width
    K[1] /= height
    data = {"colour": torch.stack([batch["color", k, 0] for k in (-1, 0, 1)], 1), "K": K,
            "depth": torch.ones(batch_size, 1, height, width)}
    scripted = script.make_batch(data, index, height, width, scales)
    outputs = geometry.outputs(data, index)
    motion.predict_motion(scripted, outputs)
    got = losses.compute(scripted, outputs, phase, step, steps, scales=scales, generator=torch.Generator().manual_seed(0))
    got.total.backward()

    for term, value in expected.items():
        assert got.as_record()[term] == pytest.approx(value, rel=1e-4, abs=1e-7), term
    # The same gradients reach the motion networks (in `motion`) and the pose network (in `learnt`), compared as
    # the reference gradients are (tests/fixtures/README.md): relative error of each tensor's norm and of one
    # random projection, with that README's bounds: float32 reductions move a gradient by about 1e-3, and a
    # projection that nearly cancels (a few 1e-7 against norms of 1e-3) by up to a few 1e-2.
    generator = torch.Generator().manual_seed(0)
    errors = []
    for name, parameter in model.named_parameters():
        other = dict(trained_by(name, learnt, motion).named_parameters())[name].grad
        assert (parameter.grad is None) == (other is None), name
        if parameter.grad is None:
            continue
        direction = torch.randn(parameter.shape, generator=generator)
        for measure in (torch.linalg.vector_norm, lambda g: (g * direction).sum()):
            a, b = float(measure(parameter.grad)), float(measure(other))
            errors.append(abs(a - b) / max(abs(a), 1e-12) if a or b else 0.0)
    assert errors
    assert sorted(errors)[len(errors) // 2] <= 1e-3
    assert max(errors) <= 5e-2


def trained_by(name: str, learnt, motion):
    """The script trains the pose network in its geometry's model and the motion networks in its own."""
    return learnt if name.startswith("pose_") else motion


PHASE_SCRIPT = SCRIPT.parent / "phase_from_checkpoint.py"


def empty_checkpoint(folder: Path) -> Path:
    """A folder with every module's file, each empty: enough for the phase script's option checks."""
    folder.mkdir()
    for name in MODULE_NAMES:
        (folder / f"{name}.pth").write_bytes(b"")
    return folder


def run_phase(*options: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(PHASE_SCRIPT), *options], capture_output=True, text=True, timeout=600)


def test_phase_script_refuses_what_it_cannot_use(small_dataset, tmp_path):  # noqa: F811
    empty = tmp_path / "empty"
    empty.mkdir()
    done = run_phase("--data", str(small_dataset), "-l", str(empty), "--out", str(tmp_path / "run"))
    assert done.returncode == 2 and str(empty) in done.stderr
    (empty / "depth_enc.pth").write_bytes(b"")
    done = run_phase("--data", str(small_dataset), "-l", str(empty), "--out", str(tmp_path / "run"))
    assert done.returncode == 2 and "pose_enc.pth" in done.stderr  # a checkpoint must hold every network
    checkpoint = empty_checkpoint(tmp_path / "checkpoint")
    used = tmp_path / "used"
    used.mkdir()
    (used / "keep.txt").write_text("earlier results\n")
    for out in (used, used / "keep.txt"):
        done = run_phase("--data", str(small_dataset), "-l", str(checkpoint), "--out", str(out))
        assert done.returncode == 2 and f"{out} is not an empty folder" in done.stderr
    assert (used / "keep.txt").read_text() == "earlier results\n"  # nothing of an earlier run is touched
    assert not (tmp_path / "run").exists()


def test_zero_term_sets_that_weight_alone_to_zero(small_dataset, tmp_path):  # noqa: F811
    from dynamo_core.losses import LossConfig

    script = load_script(PHASE_SCRIPT)
    checkpoint = empty_checkpoint(tmp_path / "checkpoint")
    options = ["--data", str(small_dataset), "-l", str(checkpoint), "--out", str(tmp_path / "run")]
    published = LossConfig().weights
    assert script.run_config(script.parse(options)).loss.weights == published
    config = script.run_config(script.parse([*options, "--zero-term", "m_smooth", "--zero-term", "m_sparsity"]))
    assert config.loss.weights == {**published, "m_smooth": 0.0, "m_sparsity": 0.0}
    with pytest.raises(SystemExit) as refused:
        script.parse([*options, "--zero-term", "m_nothing"])
    assert refused.value.code == 2


def test_oracle_mask_replaces_the_mask_network_in_training(small_dataset, tmp_path, monkeypatch):  # noqa: F811
    """With --oracle-mask the training batches carry the true motion labels, the loss sees at every scale the
    share of each pixel's area that moves (and logits that match it), and the mask network gets no gradient
    while the depth network does."""
    import torch
    from torch.utils.data import default_collate

    from dynamo_core import losses
    from dynamo_core.evaluation.motseg_metrics import MOVING_LABEL
    from dynamo_core.model import DynamoModel
    from dynamo_core.training.trainer import add_color_pyramid

    script = load_script(PHASE_SCRIPT)
    checkpoint = empty_checkpoint(tmp_path / "checkpoint")
    args = script.parse(["--data", str(small_dataset), "-l", str(checkpoint), "--phase", "fine_tune", "--oracle-mask",
                         "--out", str(tmp_path / "run")])
    config = script.run_config(args)
    dataset = script.build_training_dataset(config)
    dataset.load_mask = True
    monkeypatch.setattr(DynamoModel, "predict_motion", DynamoModel.predict_motion)  # undone after the test
    script.use_true_motion_mask()
    torch.manual_seed(0)
    model = DynamoModel(config.model)
    batch = default_collate([dataset[i] for i in range(min(2, len(dataset)))])
    add_color_pyramid(batch, config.model.scales)
    outputs = model(batch)
    moving = (batch["mot_mask"] == MOVING_LABEL).float()
    assert 0.0 < float(moving.mean()) < 1.0, "the fixture's frames should hold moving and other pixels"
    for scale in config.model.scales:
        for frame in (-1, 1):
            mask = outputs["motion_mask", frame, scale]
            assert mask.shape[-2:] == (config.model.height // 2**scale, config.model.width // 2**scale)
            assert float(mask.min()) >= 0.0 and float(mask.max()) <= 1.0
            # Area resampling keeps the moving share, up to the edges of a resize by a non-integer factor.
            assert abs(float(mask.mean()) - float(moving.mean())) <= 2.0 * 2**scale / config.model.height
            assert torch.allclose(torch.sigmoid(outputs["motion_prob", frame, scale]), mask, atol=2e-4)
    result = losses.compute(batch, outputs, losses.PHASES["fine_tune"], 0, 10, config=config.loss,
                            frame_ids=config.model.frame_ids, scales=config.model.scales,
                            min_depth=config.model.min_depth, max_depth=config.model.max_depth,
                            generator=torch.Generator().manual_seed(0))
    result.total.backward()
    assert all(p.grad is None or not bool(p.grad.any()) for p in model.motion_mask.parameters())
    assert any(p.grad is not None and bool(p.grad.any()) for p in model.depth_dec.parameters())


@pytest.mark.slow
def test_phase_script_prints_the_monitor_curve_of_one_phase(small_dataset, tmp_path):  # noqa: F811
    checkpoint = scratch_checkpoint(tmp_path / "motion_init_00", 64, 192, flow_start="ego")
    steps, stop, every = 8, 4, 2
    done = run_phase("--data", str(small_dataset), "-l", str(checkpoint), "--phase", "mask_init", "--steps", str(steps),
                     "--max-steps", str(stop), "--every", str(every), "--batch-size", "2", "--frames", "2",
                     "--threads", "1", "--out", str(tmp_path / "run"))
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    # The first step of the phase and every `every`-th after it, up to --max-steps.
    assert [r["step"] for r in records] == [0] + list(range(every - 1, stop, every))
    for record in records:
        assert record["phase"] == "mask_init"
        assert 0.0 <= record["mask_f1"] <= 1.0 and 0.0 <= record["mask_ap"] <= 1.0
    assert [json.loads(line) for line in (tmp_path / "run" / "monitor.jsonl").read_text().splitlines()] == records
    marker = json.loads((tmp_path / "run" / "models" / "mask_init_00" / "COMPLETE").read_text())
    assert marker["global_step"] == stop


FORCES_SCRIPT = SCRIPT.parent / "mask_forces.py"


def test_mask_forces_account_for_the_whole_gradient_on_the_mask(small_dataset, tmp_path):  # noqa: F811
    """The terms the script names are all that reach the mask's logits: their pushes add up to the
    whole objective's, on moving and on other pixels. The gain curve starts at 0 for m = 0 and moves."""
    import torch

    from dynamo_core.checkpoints import load_weights
    from dynamo_core.config import ModelConfig, default_scales
    from dynamo_core.model import DynamoModel

    script = load_script(FORCES_SCRIPT)
    checkpoint = scratch_checkpoint(tmp_path / "mask_init_00", script.HEIGHT, script.WIDTH, flow_start="ego")
    scales = default_scales("monodepthv2")
    model = DynamoModel(ModelConfig(depth_model="monodepthv2", weights_init="scratch", height=script.HEIGHT,
                                    width=script.WIDTH, scales=scales))
    load_weights(model, checkpoint, height=script.HEIGHT, width=script.WIDTH)
    torch.manual_seed(0)
    report = script.measure(model, script.held_out_frames(small_dataset, 2, scales))
    for region in ("moving", "others"):
        parts = [report[f"push/{term}/{region}"] for term in script.MASK_TERMS]
        # float32 sums of the same per-pixel products in another order
        assert abs(sum(parts) - report[f"push/total/{region}"]) <= 1e-4 * max(abs(p) for p in parts)
        assert any(p != 0.0 for p in parts)
    # The outline and the interior split the moving pixels: their pixel-weighted means give the moving mean.
    counts = {name: report[f"pixels/{name}"] for name in ("moving", "moving_outline", "moving_interior")}
    assert counts["moving_outline"] + counts["moving_interior"] == counts["moving"] > 0
    for term in (*script.MASK_TERMS, "total"):
        split = sum(report[f"push/{term}/{name}"] * counts[name] for name in ("moving_outline", "moving_interior"))
        whole = report[f"push/{term}/moving"] * counts["moving"]
        assert abs(split - whole) <= 1e-4 * max(abs(whole), abs(split), 1e-12)
    gains = report["photo_gain_on_moving"]
    assert list(gains) == [str(v) for v in script.FORCED_VALUES] and gains["0.0"] == 0.0
    assert all(math.isfinite(v) for v in gains.values()) and any(v != 0.0 for v in gains.values())


def test_outline_is_the_ring_of_moving_pixels_next_to_others():
    """A filled rectangle's outline is its one-pixel ring, its interior the rectangle two pixels smaller;
    a rectangle touching the image border has no outline along that border."""
    import torch

    script = load_script(FORCES_SCRIPT)
    height, width = script.HEIGHT, script.WIDTH
    top, left, rows, cols = height // 4, width // 4, height // 2, width // 3
    moving = torch.zeros(1, height, width, dtype=torch.bool)
    moving[0, top:top + rows, left:left + cols] = True
    outline, interior = script.outline_and_interior(moving)
    assert int(outline.sum()) == 2 * (rows + cols) - 4
    assert int(interior.sum()) == (rows - 2) * (cols - 2)
    assert bool(interior[0, top + 1:top + rows - 1, left + 1:left + cols - 1].all())
    assert not bool((outline & interior).any()) and bool(((outline | interior) == moving).all())

    moving = torch.zeros(1, height, width, dtype=torch.bool)
    moving[0, height - rows:, left:left + cols] = True  # touches the bottom border
    outline, _ = script.outline_and_interior(moving)
    assert int(outline.sum()) == 2 * rows + cols - 2
