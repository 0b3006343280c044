"""`dynamo demo`: the paper's central claim, in miniature, on built-in synthetic scenes.

Stages, each resumable (a rerun continues where the last one stopped):

1. data       render the default synthetic set (unless present);
2. plan       time a few steps of every phase and size the schedule to the budget;
3. train      `disp_init`, then two branches from its end: the *baseline*, a static-world learner (the
              `disp_init` objective, as Monodepth2) trained on until it has taken exactly as many steps as
              the whole Dynamo schedule, and *Dynamo*, the other three phases. A held-out monitor draws
              learning curves of both (logs only: training never sees the labels);
4. evaluate   both models: depth overall and on background, static and moving objects; motion
              segmentation; odometry;
5. visualize  one test sequence with the final model, and the baseline and Dynamo side by side on the
              test frame with the most vehicles driving at the camera's own speed;
6. report     report.md, report.html and metrics.json.
"""

from __future__ import annotations

import html
import json
import logging
import math
import shutil
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from .config import DataConfig, ModelConfig, OptimConfig, RunConfig, TrainConfig, default_scales
from .errors import CheckpointError, ConfigError
from .losses import PHASES
from .runtime import resolve_device
from .training.state import PHASE_ORDER, STATE_FILE, checkpoint_name

log = logging.getLogger(__name__)

# Share of the training time given to each phase.
PHASE_SHARES = {"disp_init": 0.35, "motion_init": 0.10, "mask_init": 0.20, "fine_tune": 0.35}
EPOCHS_PER_PHASE = 2  # a checkpoint halfway through every phase, so an interrupted demo loses little
# Training takes longer than its timed steps: loading, augmenting, logging and checkpoints. Measured on the
# default demo (2 cores): 17.4 minutes for a 15-minute budget planned from bare step times.
LOOP_OVERHEAD = 1.15
BASELINE_RUN = "baseline"
BASELINE_EPOCHS = EPOCHS_PER_PHASE  # baseline epochs after the shared disp_init; divides its step count exactly
MONITOR_FILE = "monitor.jsonl"
TIMING_FILE = "demo_time.json"
TEASER_NOTE = ("A static-world learner can only explain a car that keeps pace with the camera as very far away (dark "
               "in its disparity); Dynamo's mask and independent flow are there to account for its motion instead. "
               "Compare the outlined vehicles across the panels; each disparity map has its own colour scale.")
MONITOR_POINTS = 40  # held-out measurements over the Dynamo schedule


@dataclass
class DemoSize:
    """Data and model sizes of a demo run."""

    sequences: int
    frames: int
    test_sequences: int
    render_height: int
    render_width: int
    height: int
    width: int
    img_type: str
    batch_size: int
    eval_seconds: float
    """Time kept back for evaluation, visualisation and the report."""
    min_steps: int = 2
    """Steps per phase even when the budget is exhausted."""
    monitor_items: int = 4
    """Held-out test frames the learning curves are measured on."""


# Trained at 64x192: on 2 cores, more steps at a lower resolution learn far more within 15 minutes
# (measured: abs_rel 0.22 against 0.70 at 96x320 for the same budget).
DEFAULT_SIZE = DemoSize(10, 50, 2, 192, 640, 64, 192, "downsample", 4, 120.0, min_steps=20)
SMOKE_SIZE = DemoSize(2, 8, 1, 64, 192, 64, 192, "original", 2, 20.0, min_steps=2)


@dataclass
class DemoSettings:
    out: Path
    budget_minutes: float = 15.0
    depth_model: str = "monodepthv2"
    smoke: bool = False
    seed: int = 0
    learning_rate: float = 3e-4
    threads: int = 0
    device: str = "auto"
    precision: str = "fp32"
    flow_start: str = "random"

    @property
    def size(self) -> DemoSize:
        return SMOKE_SIZE if self.smoke else DEFAULT_SIZE

    @property
    def torch_device(self) -> torch.device:
        return resolve_device(self.device)


@dataclass
class DemoPlan:
    """The schedule chosen for the budget; stored so that a rerun trains the same schedule."""

    step_seconds: dict[str, float]
    epoch_size: dict[str, int]
    """Batches per epoch of each Dynamo phase; the baseline trains on for as many as the last three phases."""
    epochs: int
    budget_minutes: float
    depth_model: str
    smoke: bool
    device: str = "cpu"
    """The device the steps were timed on."""


@dataclass
class DemoResult:
    out: Path
    metrics: dict
    report_md: Path
    report_html: Path
    elapsed_seconds: float
    files: list[Path] = field(default_factory=list)


class DemoProgress:
    """Hooks for a display: the current stage and its fraction done."""

    def stage(self, name: str, detail: str = "") -> None: ...

    def advance(self, done: int, total: int) -> None: ...


def _data_dir(settings: DemoSettings) -> Path:
    return settings.out / "data"


def _run_config(settings: DemoSettings, plan: DemoPlan | None, phase: str | None = None) -> RunConfig:
    size = settings.size
    epoch_size = plan.epoch_size[phase] if plan and phase else 1
    return RunConfig(
        model=ModelConfig(depth_model=settings.depth_model, weights_init="scratch", height=size.height, width=size.width,
                          scales=default_scales(settings.depth_model), flow_start=settings.flow_start),
        data=DataConfig(dataset="synthetic", data_path=str(_data_dir(settings)), split=str(_data_dir(settings) / "splits"),
                        img_type=size.img_type, num_workers=0),
        # No learning-rate decay inside the demo's short schedule, so that both branches see the same rate.
        optim=OptimConfig(learning_rate=settings.learning_rate, batch_size=size.batch_size,
                          epoch_schedule=[plan.epochs if plan else 1] * 4, epoch_size=epoch_size,
                          scheduler_step_size=1000),
        train=TrainConfig(name="run", log_dir=str(settings.out), seed=settings.seed, device=str(settings.torch_device),
                          log_frequency=50, threads=settings.threads, keep_checkpoints="phase-end",
                          precision=settings.precision),
    )


def make_data(settings: DemoSettings, progress: DemoProgress) -> Path:
    from .synthetic.dataset import OtherSettingsError, generate_dataset

    size = settings.size
    progress.stage("data", f"{size.sequences} sequences x {size.frames} frames")
    try:
        generate_dataset(
            _data_dir(settings), sequences=size.sequences, frames=size.frames, height=size.render_height,
            width=size.render_width, seed=settings.seed, test_sequences=size.test_sequences, progress=progress.advance,
        )
    except OtherSettingsError as err:
        # The runs in OUT were trained on those scenes, so continuing there would mix two data sets.
        raise ConfigError(
            f"{settings.out} holds a demo made on other synthetic scenes ({', '.join(err.differences)}; an "
            f"earlier version of dynamo, or other options). Choose another --out, or delete {settings.out} "
            "to start again."
        ) from None
    return _data_dir(settings)


def dynamo_steps(plan: DemoPlan) -> dict[str, int]:
    """Planned optimisation steps of each Dynamo phase."""
    return {name: plan.epochs * plan.epoch_size[name] for name in PHASE_ORDER}


def baseline_extra_steps(plan: DemoPlan) -> int:
    """Steps the baseline trains on after the shared `disp_init`: as many as Dynamo's other three phases."""
    return sum(dynamo_steps(plan)[name] for name in PHASE_ORDER[1:])


def schedule(available: float, step_seconds: dict[str, float], min_steps: int) -> dict[str, int]:
    """Batches per epoch for each Dynamo phase, so that training (with its loop overhead) fills `available`
    seconds: Dynamo's steps split in the shares of PHASE_SHARES, plus the baseline's extra `disp_init`
    steps, one for each step of Dynamo's last three phases; at least `min_steps` steps per phase."""
    # Seconds per Dynamo step, counting the baseline step that each non-disp_init step brings along.
    per_step = sum(
        share * (step_seconds[name] + (step_seconds["disp_init"] if name != "disp_init" else 0.0))
        for name, share in PHASE_SHARES.items()
    )
    total = max(0.0, available) / (per_step * LOOP_OVERHEAD)
    # Rounded up, so that the plan fills the budget to within one epoch of each phase.
    return {name: max(1, math.ceil(max(min_steps, total * PHASE_SHARES[name]) / EPOCHS_PER_PHASE))
            for name in PHASE_ORDER}


def make_plan(settings: DemoSettings, started: float, progress: DemoProgress) -> DemoPlan:
    """Time two steps of every phase and share the remaining budget between the phases."""
    from .training.run import build_training_dataset
    from .training.trainer import Trainer

    path = settings.out / "demo_plan.json"
    if path.is_file():
        plan = DemoPlan(**json.loads(path.read_text()))
        if (plan.depth_model, plan.smoke, plan.device) == (settings.depth_model, settings.smoke, settings.torch_device.type):
            return plan
    if settings.smoke:
        # A pipeline check: the fewest steps that exercise every phase, whatever the budget.
        plan = DemoPlan({name: 0.0 for name in PHASE_ORDER}, {name: 1 for name in PHASE_ORDER}, EPOCHS_PER_PHASE,
                        settings.budget_minutes, settings.depth_model, settings.smoke, settings.torch_device.type)
        path.write_text(json.dumps(asdict(plan), indent=2) + "\n")
        return plan
    progress.stage("plan", f"timing every phase on {settings.torch_device}")
    config = _run_config(settings, None)
    config.train.log_dir = str(settings.out / "plan")
    dataset = build_training_dataset(config)
    trainer = Trainer(config, dataset)
    batch = next(iter(torch.utils.data.DataLoader(dataset, batch_size=settings.size.batch_size, shuffle=False)))
    seconds = {}
    for index, name in enumerate(PHASE_ORDER):
        phase = PHASES[name]
        trainer.model.set_heads(phase.complete_flow, phase.motion_mask)
        trainer.model.train()
        optimizer = trainer.build_optimizer(phase)  # this trainer's weights are thrown away after timing
        times = []
        for step in range(3):
            tick = time.perf_counter()
            trainer.train_step(trainer.model, optimizer, phase, dict(batch), 10, 100, 1)
            _synchronize(trainer.device)
            times.append(time.perf_counter() - tick)
        seconds[name] = statistics.median(times[1:])  # the first step warms up
        progress.advance(index + 1, len(PHASE_ORDER))
    trainer.logger.close()
    available = settings.budget_minutes * 60 - (time.perf_counter() - started) - settings.size.eval_seconds
    epoch_size = schedule(available, seconds, settings.size.min_steps)
    plan = DemoPlan(seconds, epoch_size, EPOCHS_PER_PHASE, settings.budget_minutes, settings.depth_model, settings.smoke,
                    settings.torch_device.type)
    path.write_text(json.dumps(asdict(plan), indent=2) + "\n")
    log.info("demo plan: %s steps per epoch, %d epochs per phase, %d baseline steps after disp_init",
             epoch_size, EPOCHS_PER_PHASE, baseline_extra_steps(plan))
    return plan


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _monitor(settings: DemoSettings, config: RunConfig, plan: DemoPlan, run: str):
    from .training.monitor import HeldOutMonitor, held_out_batch

    batch = held_out_batch(config, settings.size.monitor_items)
    if batch is None:
        return None
    every = max(1, sum(dynamo_steps(plan).values()) // MONITOR_POINTS)
    return HeldOutMonitor(batch, every, settings.out / run / MONITOR_FILE)


def train(settings: DemoSettings, plan: DemoPlan, progress: DemoProgress) -> dict[str, Path]:
    """Train `disp_init`, the baseline branch and Dynamo's other phases; every call resumes.

    Returns the final checkpoint folder of each model: {"baseline": ..., "dynamo": ...}.
    """
    from .training.run import build_training_dataset
    from .training.trainer import Callbacks, Trainer

    class Relay(Callbacks):
        def __init__(self, total: int):
            self.total, self.done = total, 0

        def step_finished(self, info) -> None:
            self.done += 1
            progress.advance(self.done, self.total)

    models = settings.out / "run" / "models"
    baseline_models = settings.out / BASELINE_RUN / "models"
    shared_end = checkpoint_name("disp_init", plan.epochs - 1)
    baseline_end = checkpoint_name("disp_init", plan.epochs + BASELINE_EPOCHS - 1)

    def fit(config: RunConfig, run: str, label: str, steps: int) -> None:
        progress.stage("train", label)
        dataset = build_training_dataset(config)
        trainer = Trainer(config, dataset, callbacks=Relay(steps), resume=True,
                          monitor=_monitor(settings, config, plan, run))
        trainer.fit()

    for index, name in enumerate(PHASE_ORDER):
        if not (models / checkpoint_name(name, plan.epochs - 1) / "COMPLETE").is_file():
            config = _run_config(settings, plan, name)
            config.optim.epoch_schedule = [plan.epochs if i <= index else 0 for i in range(4)]
            fit(config, "run", f"{name}: {plan.epochs} x {plan.epoch_size[name]} steps",
                plan.epochs * plan.epoch_size[name])
        # The baseline branches off before motion_init drops the resume state of disp_init's end.
        if name == "disp_init" and not (baseline_models / baseline_end / "COMPLETE").is_file():
            _start_baseline(models / shared_end, baseline_models)
            _train_baseline(settings, plan, fit)
    return {"baseline": baseline_models / baseline_end, "dynamo": models / checkpoint_name("fine_tune", plan.epochs - 1)}


def _start_baseline(shared_end: Path, baseline_models: Path) -> None:
    """Copy the end of the shared disp_init, with its resume state, as the baseline branch's start."""
    target = baseline_models / shared_end.name
    if (target / "COMPLETE").is_file():
        return
    if not (shared_end / STATE_FILE).is_file():
        raise CheckpointError(f"{shared_end / STATE_FILE} is missing, so the baseline cannot branch off the end of "
                              f"disp_init; delete {shared_end.parent.parent.parent} and run the demo again.")
    baseline_models.mkdir(parents=True, exist_ok=True)
    staging = baseline_models / f".{shared_end.name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(shared_end, staging)
    staging.rename(target)


def _train_baseline(settings: DemoSettings, plan: DemoPlan, fit) -> None:
    """The static-world learner: `disp_init` on from the shared start, in BASELINE_EPOCHS epochs that add up
    to exactly as many steps as Dynamo's motion_init, mask_init and fine_tune."""
    extra = baseline_extra_steps(plan)
    config = _run_config(settings, plan, "disp_init")
    config.train.name = BASELINE_RUN
    config.optim.epoch_schedule = [plan.epochs + BASELINE_EPOCHS, 0, 0, 0]
    config.optim.epoch_size = extra // BASELINE_EPOCHS
    fit(config, BASELINE_RUN, f"baseline: disp_init on for {extra} steps", extra)


def trained_steps(checkpoint: Path) -> int:
    """Optimisation steps behind a checkpoint, as its completion marker records them."""
    return int(json.loads((checkpoint / "COMPLETE").read_text())["global_step"])


def evaluate(settings: DemoSettings, checkpoints: dict[str, Path], progress: DemoProgress) -> dict:
    """Baseline and Dynamo on the synthetic test split; cached in eval/metrics_cache.json."""
    from .evaluation.depth_runner import run_depth
    from .evaluation.motseg_runner import run_motseg
    from .evaluation.odometry_runner import run_odometry

    cache = settings.out / "eval" / "metrics_cache.json"
    metrics = json.loads(cache.read_text()) if cache.is_file() else {}
    tasks = [("baseline", "depth"), ("baseline", "odometry"), ("dynamo", "depth"), ("dynamo", "motseg"), ("dynamo", "odometry")]
    for done, (model, task) in enumerate(tasks):
        key = f"{model}/{task}"
        if key in metrics:
            continue
        progress.stage("evaluate", key)
        runner = {"depth": run_depth, "motseg": run_motseg, "odometry": run_odometry}[task]
        metrics[key] = runner(_eval_options(settings, checkpoints[model], model)).to_dict()
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(metrics, indent=2, default=str) + "\n")
        progress.advance(done + 1, len(tasks))
    metrics["steps"] = {model: trained_steps(folder) for model, folder in checkpoints.items()}
    return metrics


def _eval_options(settings: DemoSettings, checkpoint: Path, model: str):
    from .evaluation.inference import EvalOptions

    return EvalOptions(checkpoint=checkpoint, dataset="synthetic", data_path=_data_dir(settings),
                       split=str(_data_dir(settings) / "splits"), eval_dir=settings.out / "eval" / model,
                       batch_size=4, num_workers=0, device=str(settings.torch_device))


def visualize(settings: DemoSettings, checkpoints: dict[str, Path], progress: DemoProgress):
    from .data.splits import read_split
    from .evaluation.visualize_runner import run_visualize

    progress.stage("visualize", "one test sequence")
    lines = read_split(_data_dir(settings) / "splits", "test")
    first = lines[0].split()[0]
    frames = [line for line in lines if line.split()[0] == first]
    return run_visualize(_eval_options(settings, checkpoints["dynamo"], "dynamo"), frames=frames,
                         panels=("image", "disp", "ego_flow", "ind_flow", "mask"))


def camera_speed_frame(data_dir: Path) -> str | None:
    """The test line whose frame shows the most pixels of vehicles driving at the camera's own speed
    (within 5%): the case a static-world learner places at infinity. None without labelled test frames."""
    import numpy as np

    from .data.splits import read_split

    lines = read_split(data_dir / "splits", "test_mask")
    best, best_count = None, 0
    for i, line in enumerate(lines[1:-1], start=1):
        folder, frame = line.split()[0], int(line.split()[1])
        if not lines[i - 1].startswith(folder + " ") or not lines[i + 1].startswith(folder + " "):
            continue
        front = data_dir / folder / "FRONT"
        speed = json.loads((front.parent / "sequence.json").read_text())["ego_speed"]
        with np.load(front / "mask" / f"{frame:06d}.npz", allow_pickle=False) as arrays:
            moving = arrays["motion"].squeeze() == 1
        flow = np.load(front / "scene_flow" / f"{frame:06d}.npy", allow_pickle=False).astype(np.float32)
        along = moving & (np.abs(np.linalg.norm(flow, axis=-1) - speed) < 0.05 * speed)
        if int(along.sum()) > best_count:
            best, best_count = line, int(along.sum())
    return best


def render_teaser(settings: DemoSettings, checkpoints: dict[str, Path]) -> Path | None:
    """Baseline and Dynamo side by side on a frame with a vehicle at the camera's speed, as one PNG:
    the image with the true moving pixels outlined, both disparities, the mask, the independent flow
    and the true disparity."""
    import numpy as np
    from matplotlib.figure import Figure

    from .evaluation.inference import prepare, to_device
    from .evaluation.plots import save_png
    from .evaluation.visualize_runner import predict_panel_maps
    from .visualize import flow_to_rgb

    line = camera_speed_frame(_data_dir(settings))
    if line is None:
        return None
    maps = {}
    for model, folder in checkpoints.items():
        context = prepare(_eval_options(settings, folder, model), "visualize", need_split=False)
        dataset = context.dataset([line], frame_ids=(0, -1, 1), load_mask=True)
        batch = next(iter(context.loader(dataset)))
        with torch.no_grad():
            maps[model] = predict_panel_maps(context, to_device(batch, context.device), ("ind_flow",))
        labels = batch["mot_mask"][0].numpy()
    image = maps["dynamo"]["image"][0].permute(1, 2, 0).float().cpu().numpy()
    height, width = image.shape[:2]
    moving = torch.from_numpy((labels == 1).astype(np.float32))[None, None]
    moving = torch.nn.functional.interpolate(moving, size=(height, width), mode="nearest")[0, 0].numpy()
    flow = maps["dynamo"]["ind_flow"][:1].float().cpu()
    folder, frame = line.split()[0], int(line.split()[1])
    depth = np.load(_data_dir(settings) / folder / "FRONT" / "depth_dense" / f"{frame:06d}.npy",
                    allow_pickle=False).astype(np.float32)
    true_disp = np.where(depth > 0, 1.0 / np.maximum(depth, 1e-3), 0.0)  # the sky has no depth
    tiles = [
        ("input (true moving pixels outlined)", image, None),
        ("baseline disparity (static world)", maps["baseline"]["disp"][0, 0].float().cpu().numpy(), "plasma"),
        ("Dynamo disparity", maps["dynamo"]["disp"][0, 0].float().cpu().numpy(), "plasma"),
        ("Dynamo motion mask", maps["dynamo"]["mask"][0, 0].float().cpu().numpy(), "hot"),
        ("Dynamo independent flow", flow_to_rgb(flow)[0].permute(1, 2, 0).numpy(), None),
        ("true disparity", true_disp, "plasma"),
    ]
    figure = Figure(figsize=(12, 0.8 + 3 * 6.2 * height / width), dpi=110)
    for index, (title, values, cmap) in enumerate(tiles):
        axes = figure.add_subplot(3, 2, index + 1)
        if cmap == "hot":
            axes.imshow(values, cmap=cmap, vmin=0.0, vmax=1.0)
        else:
            axes.imshow(values, cmap=cmap)
        if index == 0:
            axes.contour(moving, levels=[0.5], colors="red", linewidths=0.8)
        axes.set_title(title, fontsize=9)
        axes.axis("off")
    figure.suptitle(f"{line}: a vehicle at the camera's own speed", fontsize=10)
    figure.tight_layout()
    return save_png(figure, settings.out / "figures" / "baseline_vs_dynamo.png")


def read_curves(settings: DemoSettings) -> dict[str, list[dict]]:
    """Held-out measurements of both models, by training step. The baseline's curve starts with the
    shared disp_init, which lies in Dynamo's run folder."""
    def read(run: str) -> list[dict]:
        path = settings.out / run / MONITOR_FILE
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    dynamo = read("run")
    shared = [entry for entry in dynamo if entry["phase"] == "disp_init"]
    return {"dynamo": dynamo, "baseline": shared + read(BASELINE_RUN)}


def plot_curves(settings: DemoSettings, curves: dict[str, list[dict]]) -> Path | None:
    """Learning curves as one PNG: depth error overall and on moving objects and the disparity's spread for both
    models, and the mask's F1, AP, mean value on moving and other pixels, the moving pixels the sparsity
    term labels static, and the photometric error of the ego warp and of the complete flow on moving and
    other pixels."""
    from matplotlib.figure import Figure

    from .evaluation.plots import save_png

    if not curves["dynamo"]:
        return None
    figure = Figure(figsize=(18, 3.6), dpi=110)
    panels = [
        ("abs_rel on moving objects", [("abs_rel_moving", "baseline", "tab:gray"), ("abs_rel_moving", "dynamo", "tab:red")]),
        ("abs_rel overall", [("abs_rel", "baseline", "tab:gray"), ("abs_rel", "dynamo", "tab:blue")]),
        ("disparity spread (0: a constant map)", [("disp_spread", "baseline", "tab:gray"),
                                                  ("disp_spread", "dynamo", "tab:blue")]),
        ("motion mask (Dynamo)", [("mask_f1", "F1", "tab:green"), ("mask_ap", "AP", "tab:olive"),
                                  ("mask_moving", "mean on moving", "tab:red"), ("mask_static", "mean elsewhere", "tab:gray"),
                                  ("moving_labelled_static", "moving labelled static", "tab:purple")]),
        ("photometric error (Dynamo)", [("photo_ego_moving", "ego warp, moving", "tab:red"),
                                        ("photo_flow_moving", "complete flow, moving", "tab:orange"),
                                        ("photo_ego_static", "ego warp, elsewhere", "tab:gray"),
                                        ("photo_flow_static", "complete flow, elsewhere", "tab:brown")]),
    ]
    boundaries = {}
    for entry in curves["dynamo"]:
        boundaries.setdefault(entry["phase"], entry["step"])
    for index, (title, series) in enumerate(panels):
        axes = figure.add_subplot(1, len(panels), index + 1)
        for key, label, colour in series:
            source = curves[label] if label in curves else curves["dynamo"]
            points = [(e["step"], e[key]) for e in source if key in e and e[key] == e[key]]
            if points:
                axes.plot(*zip(*points), label=label, color=colour, linewidth=1.4)
        for phase, step in boundaries.items():
            if phase != "disp_init":
                axes.axvline(step, color="0.8", linewidth=0.8)
                axes.text(step, 0.02, f" {phase}", transform=axes.get_xaxis_transform(), fontsize=7, va="bottom",
                          color="0.4", rotation=90)
        axes.set_title(title, fontsize=9)
        axes.set_xlabel("training step", fontsize=8)
        axes.tick_params(labelsize=7)
        axes.legend(fontsize=7)
    figure.tight_layout()
    return save_png(figure, settings.out / "figures" / "learning_curves.png")


def summary_rows(metrics: dict) -> list[tuple[str, str, str]]:
    """(measure, baseline, Dynamo) rows of the headline table."""

    def depth(model: str, region: str, metric: str = "abs_rel") -> float:
        entry = metrics[f"{model}/depth"]
        values = entry["overall"] if region == "overall" else (entry.get("regions") or {}).get(region, {})
        return float(values.get(metric, float("nan")))

    def fmt(value: float, digits: int = 3) -> str:
        return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"

    rows = []
    for region in ("overall", "background", "static", "moving"):
        rows.append((f"abs_rel, {region}", fmt(depth("baseline", region)), fmt(depth("dynamo", region))))
    rows.append(("a1 (delta < 1.25), overall", fmt(depth("baseline", "overall", "a1")), fmt(depth("dynamo", "overall", "a1"))))
    rows.append(("a1, moving objects", fmt(depth("baseline", "moving", "a1")), fmt(depth("dynamo", "moving", "a1"))))
    motseg = metrics["dynamo/motseg"]
    rows.append(("motion mask best F1", "n/a", fmt(motseg["best_f1"])))
    rows.append(("motion mask AP", "n/a", fmt(motseg["average_precision"])))
    steps = metrics.get("steps", {})
    rows.append(("training steps", str(steps.get("baseline", "n/a")), str(steps.get("dynamo", "n/a"))))
    rows.append(("odometry ATE (mean)", fmt(metrics["baseline/odometry"]["ate"]["mean"], 4),
                 fmt(metrics["dynamo/odometry"]["ate"]["mean"], 4)))
    return rows


def moving_improvement(metrics: dict) -> float | None:
    """Relative drop of abs_rel on moving objects from baseline to Dynamo (0.3 means 30% lower)."""
    try:
        before = metrics["baseline/depth"]["regions"]["moving"]["abs_rel"]
        after = metrics["dynamo/depth"]["regions"]["moving"]["abs_rel"]
    except (KeyError, TypeError):
        return None
    return (before - after) / before if before else None


def write_report(settings: DemoSettings, plan: DemoPlan, metrics: dict, video, elapsed: float,
                 figures: dict[str, Path | None], curves: dict[str, list[dict]]) -> tuple[Path, Path, Path]:
    """report.md, report.html and metrics.json in the demo folder."""
    out = settings.out
    rows = summary_rows(metrics)
    pr_curve = next((Path(f) for f in metrics["dynamo/motseg"]["files"] if str(f).endswith(".png")), None)
    panels = []
    if video is not None and video.videos:
        frames = sorted(Path(video.videos[0].frames_folder).glob("*.png"))
        panels = [frames[i] for i in sorted({0, len(frames) // 2, len(frames) - 1})] if frames else []
        mp4 = Path(video.videos[0].video)
    else:
        mp4 = None
    rel = lambda p: str(Path(p).resolve().relative_to(out.resolve())) if p else ""  # noqa: E731
    improvement = moving_improvement(metrics)
    if improvement is None:
        change = ""
    else:
        direction = "lower" if improvement >= 0 else "higher"
        change = f"abs_rel on moving objects is {abs(improvement) * 100:.1f}% {direction} than the baseline's."
    phase_steps = ", ".join(f"{k} {v}" for k, v in dynamo_steps(plan).items())
    steps = metrics.get("steps", {})
    intro = (
        f"Synthetic driving scenes ({settings.size.sequences} sequences x {settings.size.frames} frames), "
        f"{settings.depth_model} depth network at {settings.size.height}x{settings.size.width}, trained on "
        f"{settings.torch_device.type.upper() if settings.torch_device.type == 'cpu' else 'CUDA'} "
        f"in {elapsed / 60:.1f} minutes of wall time over every run on this folder (budget {settings.budget_minutes:g})."
    )
    baseline_note = (
        f"Baseline: a static-world learner (the disp_init objective: depth and pose with automasking, as Monodepth2), "
        f"trained for {steps.get('baseline', '?')} steps. Dynamo: all four phases, {steps.get('dynamo', '?')} steps "
        f"({phase_steps}). Both share the first {dynamo_steps(plan)['disp_init']} steps, with the same batch, "
        "resolution and start."
    )
    teaser, curves_png = figures.get("teaser"), figures.get("curves")
    curve_note = ("Measured every few steps on held-out test frames with exact labels; training never sees them. "
                  "Grey lines mark the start of each Dynamo phase. The disparity spread (std / mean per image) falls "
                  "towards 0 when a depth network collapses to a constant map; median scaling then still gives "
                  "it the abs_rel of predicting one depth everywhere. The mask can only hold a moving pixel where "
                  "the complete flow explains it better than the ego warp (depth and pose); where the two "
                  "photometric errors on moving pixels meet, the mask has lost its support.")

    md = [
        "# dynamo demo report",
        "",
        intro,
        "",
        baseline_note,
        "",
        "| measure | baseline | Dynamo |",
        "| --- | --- | --- |",
        *[f"| {a} | {b} | {c} |" for a, b, c in rows],
        "",
        "abs_rel: mean |d - d*| / d* after median scaling (lower is better); regions come from the exact "
        "motion labels (background, static objects, moving vehicles).",
        "",
        change,
        "",
    ]
    if teaser:
        md += ["## A vehicle at the camera's own speed", "",
               TEASER_NOTE, "",
               f"![baseline and Dynamo]({rel(teaser)})", ""]
    if curves_png:
        md += ["## Learning curves", "", curve_note, "", f"![learning curves]({rel(curves_png)})", ""]
    if pr_curve:
        md += ["## Motion segmentation", "", f"![precision-recall curve]({rel(pr_curve)})", ""]
    if panels:
        md += ["## Predictions on a test sequence", "",
               "Each panel: image, disparity, ego flow, independent flow, motion mask.", ""]
        md += [f"![frame]({rel(p)})" for p in panels]
        if mp4:
            md += ["", f"Video: [{rel(mp4)}]({rel(mp4)})"]
    md_path = out / "report.md"
    md_path.write_text("\n".join(md) + "\n")

    def figure_html(title: str, text: str, path: Path | None, width: str = "100%") -> str:
        if not path:
            return ""
        return (f"<h2>{html.escape(title)}</h2><p>{html.escape(text)}</p>"
                f'<p><img src="{html.escape(rel(path))}" style="max-width:{width}"></p>')

    table = "".join(f"<tr><td>{html.escape(a)}</td><td>{b}</td><td>{c}</td></tr>" for a, b, c in rows)
    images = "".join(f'<p><img src="{html.escape(rel(p))}" style="max-width:100%"></p>' for p in panels)
    body = f"""<!doctype html><html><head><meta charset="utf-8"><title>dynamo demo</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}td,th{{padding:4px 12px;border-bottom:1px solid #ddd}}</style>
</head><body><h1>dynamo demo report</h1>
<p>{html.escape(intro)}</p><p>{html.escape(baseline_note)}</p>
<table><tr><th>measure</th><th>baseline</th><th>Dynamo</th></tr>{table}</table>
<p>{html.escape(change)}</p>
{figure_html("A vehicle at the camera's own speed", TEASER_NOTE, teaser)}
{figure_html("Learning curves", curve_note, curves_png)}
{figure_html("Motion segmentation", "Precision and recall of the motion mask over all thresholds.", pr_curve, "600px")}
{'<h2>Predictions on a test sequence</h2><p>Image, disparity, ego flow, independent flow, motion mask.</p>' + images if panels else ''}
{f'<p><a href="{html.escape(rel(mp4))}">video</a></p>' if mp4 else ''}
</body></html>
"""
    html_path = out / "report.html"
    html_path.write_text(body)
    json_path = out / "metrics.json"
    document = {"elapsed_seconds": elapsed, "device": str(settings.torch_device), "plan": asdict(plan),
                "summary": [list(r) for r in rows], "moving_abs_rel_improvement": improvement, "metrics": metrics,
                "curves": curves}
    json_path.write_text(json.dumps(document, indent=2, default=str) + "\n")
    return md_path, html_path, json_path


def _add_time(out: Path, seconds: float) -> float:
    """Wall time of every call on this folder so far: a rerun that continues adds its own time."""
    path = out / TIMING_FILE
    total = seconds + (float(json.loads(path.read_text())["seconds"]) if path.is_file() else 0.0)
    path.write_text(json.dumps({"seconds": total}) + "\n")
    return total


def run_demo(settings: DemoSettings, progress: DemoProgress | None = None) -> DemoResult:
    """Every stage in order, skipping what a previous run finished."""
    progress = progress or DemoProgress()
    if settings.budget_minutes <= 0:
        raise ConfigError(f"--budget-minutes must be positive, got {settings.budget_minutes}.")
    if settings.threads > 0:
        torch.set_num_threads(settings.threads)
    started = time.perf_counter()
    settings.out.mkdir(parents=True, exist_ok=True)
    make_data(settings, progress)
    plan = make_plan(settings, started, progress)
    checkpoints = train(settings, plan, progress)
    metrics = evaluate(settings, checkpoints, progress)
    video = visualize(settings, checkpoints, progress)
    progress.stage("report", "")
    curves = read_curves(settings)
    figures = {"teaser": render_teaser(settings, checkpoints), "curves": plot_curves(settings, curves)}
    elapsed = _add_time(settings.out, time.perf_counter() - started)
    md, page, js = write_report(settings, plan, metrics, video, elapsed, figures, curves)
    return DemoResult(settings.out, json.loads(js.read_text()), md, page, elapsed, [md, page, js])
