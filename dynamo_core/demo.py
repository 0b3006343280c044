"""`dynamo demo`: the paper's central claim, in miniature, on built-in synthetic scenes.

Stages, each resumable (a rerun continues where the last one stopped):

1. data       render the default synthetic set (unless present);
2. plan       time a few steps of every phase and size the schedule to the budget;
3. train      all four phases (the trainer resumes from its latest checkpoint);
4. evaluate   the `disp_init` checkpoint (a static-world learner, as Monodepth2) and the final model:
              depth overall and on background, static and moving objects; motion segmentation; odometry;
5. visualize  one test sequence with the final model;
6. report     report.md, report.html and metrics.json.
"""

from __future__ import annotations

import html
import json
import logging
import math
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from .config import DataConfig, ModelConfig, OptimConfig, RunConfig, TrainConfig, default_scales
from .errors import ConfigError
from .losses import PHASES
from .training.state import PHASE_ORDER, checkpoint_name

log = logging.getLogger(__name__)

# Share of the training time given to each phase.
PHASE_SHARES = {"disp_init": 0.35, "motion_init": 0.10, "mask_init": 0.20, "fine_tune": 0.35}
EPOCHS_PER_PHASE = 2  # a checkpoint halfway through every phase, so an interrupted demo loses little
# Training takes longer than its timed steps: loading, augmenting, logging and checkpoints. Measured on the
# default demo (2 cores): 17.4 minutes for a 15-minute budget planned from bare step times.
LOOP_OVERHEAD = 1.15


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

    @property
    def size(self) -> DemoSize:
        return SMOKE_SIZE if self.smoke else DEFAULT_SIZE


@dataclass
class DemoPlan:
    """The schedule chosen for the budget; stored so that a rerun trains the same schedule."""

    step_seconds: dict[str, float]
    epoch_size: dict[str, int]
    epochs: int
    budget_minutes: float
    depth_model: str
    smoke: bool


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
                          scales=default_scales(settings.depth_model)),
        data=DataConfig(dataset="synthetic", data_path=str(_data_dir(settings)), split=str(_data_dir(settings) / "splits"),
                        img_type=size.img_type, num_workers=0),
        optim=OptimConfig(learning_rate=settings.learning_rate, batch_size=size.batch_size,
                          epoch_schedule=[plan.epochs if plan else 1] * 4, epoch_size=epoch_size),
        train=TrainConfig(name="run", log_dir=str(settings.out), seed=settings.seed, device="cpu", log_frequency=50,
                          threads=settings.threads, keep_checkpoints="phase-end"),
    )


def make_data(settings: DemoSettings, progress: DemoProgress) -> Path:
    from .synthetic import generate_dataset

    size = settings.size
    progress.stage("data", f"{size.sequences} sequences x {size.frames} frames")
    generate_dataset(
        _data_dir(settings), sequences=size.sequences, frames=size.frames, height=size.render_height,
        width=size.render_width, seed=settings.seed, test_sequences=size.test_sequences, progress=progress.advance,
    )
    return _data_dir(settings)


def schedule(available: float, step_seconds: dict[str, float], min_steps: int) -> dict[str, int]:
    """Batches per epoch for each phase, so that training (with its loop overhead) fills `available` seconds
    in the shares of PHASE_SHARES; at least `min_steps` steps per phase."""
    epoch_size = {}
    for name in PHASE_ORDER:
        steps = max(min_steps, int(available * PHASE_SHARES[name] / (step_seconds[name] * LOOP_OVERHEAD)))
        epoch_size[name] = max(1, math.ceil(steps / EPOCHS_PER_PHASE))
    return epoch_size


def make_plan(settings: DemoSettings, started: float, progress: DemoProgress) -> DemoPlan:
    """Time two steps of every phase and share the remaining budget between the phases."""
    from .training.run import build_training_dataset
    from .training.trainer import Trainer

    path = settings.out / "demo_plan.json"
    if path.is_file():
        plan = DemoPlan(**json.loads(path.read_text()))
        if plan.depth_model == settings.depth_model and plan.smoke == settings.smoke:
            return plan
    if settings.smoke:
        # A pipeline check: the fewest steps that exercise every phase, whatever the budget.
        plan = DemoPlan({name: 0.0 for name in PHASE_ORDER}, {name: 1 for name in PHASE_ORDER}, EPOCHS_PER_PHASE,
                        settings.budget_minutes, settings.depth_model, settings.smoke)
        path.write_text(json.dumps(asdict(plan), indent=2) + "\n")
        return plan
    progress.stage("plan", "timing every phase")
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
            times.append(time.perf_counter() - tick)
        seconds[name] = statistics.median(times[1:])  # the first step warms up
        progress.advance(index + 1, len(PHASE_ORDER))
    trainer.logger.close()
    available = settings.budget_minutes * 60 - (time.perf_counter() - started) - settings.size.eval_seconds
    epoch_size = schedule(available, seconds, settings.size.min_steps)
    plan = DemoPlan(seconds, epoch_size, EPOCHS_PER_PHASE, settings.budget_minutes, settings.depth_model, settings.smoke)
    path.write_text(json.dumps(asdict(plan), indent=2) + "\n")
    log.info("demo plan: %s steps per epoch, %d epochs per phase", epoch_size, EPOCHS_PER_PHASE)
    return plan


def train(settings: DemoSettings, plan: DemoPlan, progress: DemoProgress) -> Path:
    """Train phase by phase (each phase has its own epoch size); every call resumes."""
    from .training.run import build_training_dataset
    from .training.trainer import Callbacks, Trainer

    class Relay(Callbacks):
        def __init__(self, total: int):
            self.total, self.done = total, 0

        def step_finished(self, info) -> None:
            self.done += 1
            progress.advance(self.done, self.total)

    models = settings.out / "run" / "models"
    for index, name in enumerate(PHASE_ORDER):
        final = models / checkpoint_name(name, plan.epochs - 1)
        if (final / "COMPLETE").is_file():
            continue
        config = _run_config(settings, plan, name)
        config.optim.epoch_schedule = [plan.epochs if i <= index else 0 for i in range(4)]
        progress.stage("train", f"{name}: {plan.epochs} x {plan.epoch_size[name]} steps")
        trainer = Trainer(config, build_training_dataset(config), callbacks=Relay(plan.epochs * plan.epoch_size[name]),
                          resume=True)
        trainer.fit()
    return models


def evaluate(settings: DemoSettings, plan: DemoPlan, models: Path, progress: DemoProgress) -> dict:
    """Baseline (end of disp_init) and final model on the synthetic test split; cached in metrics.json."""
    from .evaluation.depth_runner import run_depth
    from .evaluation.inference import EvalOptions
    from .evaluation.motseg_runner import run_motseg
    from .evaluation.odometry_runner import run_odometry

    cache = settings.out / "eval" / "metrics_cache.json"
    metrics = json.loads(cache.read_text()) if cache.is_file() else {}
    checkpoints = {
        "baseline": models / checkpoint_name("disp_init", plan.epochs - 1),
        "dynamo": models / checkpoint_name("fine_tune", plan.epochs - 1),
    }
    tasks = [("baseline", "depth"), ("baseline", "odometry"), ("dynamo", "depth"), ("dynamo", "motseg"), ("dynamo", "odometry")]
    for done, (model, task) in enumerate(tasks):
        key = f"{model}/{task}"
        if key in metrics:
            continue
        progress.stage("evaluate", key)
        options = EvalOptions(checkpoint=checkpoints[model], dataset="synthetic", data_path=_data_dir(settings),
                              split=str(_data_dir(settings) / "splits"), eval_dir=settings.out / "eval" / model,
                              batch_size=4, num_workers=0, device="cpu")
        runner = {"depth": run_depth, "motseg": run_motseg, "odometry": run_odometry}[task]
        metrics[key] = runner(options).to_dict()
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(metrics, indent=2, default=str) + "\n")
        progress.advance(done + 1, len(tasks))
    return metrics


def visualize(settings: DemoSettings, plan: DemoPlan, models: Path, progress: DemoProgress):
    from .data.splits import read_split
    from .evaluation.inference import EvalOptions
    from .evaluation.visualize_runner import run_visualize

    progress.stage("visualize", "one test sequence")
    lines = read_split(_data_dir(settings) / "splits", "test")
    first = lines[0].split()[0]
    frames = [line for line in lines if line.split()[0] == first]
    options = EvalOptions(checkpoint=models / checkpoint_name("fine_tune", plan.epochs - 1), dataset="synthetic",
                          data_path=_data_dir(settings), split=str(_data_dir(settings) / "splits"),
                          eval_dir=settings.out / "eval" / "dynamo", batch_size=4, num_workers=0, device="cpu")
    return run_visualize(options, frames=frames, panels=("image", "disp", "ego_flow", "ind_flow", "mask"))


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


def write_report(settings: DemoSettings, plan: DemoPlan, metrics: dict, video, elapsed: float) -> tuple[Path, Path, Path]:
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
    steps = {name: plan.epochs * plan.epoch_size[name] for name in PHASE_ORDER}
    intro = (
        f"Synthetic driving scenes ({settings.size.sequences} sequences x {settings.size.frames} frames), "
        f"{settings.depth_model} depth network at {settings.size.height}x{settings.size.width}, trained on CPU "
        f"in {elapsed / 60:.1f} minutes (budget {settings.budget_minutes:g})."
    )
    baseline_note = (
        "Baseline is the model at the end of disp_init: depth and pose under the static-world assumption, "
        "which is what Monodepth2 learns. Dynamo is the final model after all four phases."
    )

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
        f"Steps per phase: {', '.join(f'{k} {v}' for k, v in steps.items())}.",
        "",
    ]
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

    table = "".join(f"<tr><td>{html.escape(a)}</td><td>{b}</td><td>{c}</td></tr>" for a, b, c in rows)
    images = "".join(f'<p><img src="{html.escape(rel(p))}" style="max-width:100%"></p>' for p in panels)
    body = f"""<!doctype html><html><head><meta charset="utf-8"><title>dynamo demo</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}td,th{{padding:4px 12px;border-bottom:1px solid #ddd}}</style>
</head><body><h1>dynamo demo report</h1>
<p>{html.escape(intro)}</p><p>{html.escape(baseline_note)}</p>
<table><tr><th>measure</th><th>baseline</th><th>Dynamo</th></tr>{table}</table>
<p>{html.escape(change)}</p>
{f'<h2>Motion segmentation</h2><p><img src="{html.escape(rel(pr_curve))}" style="max-width:600px"></p>' if pr_curve else ''}
{'<h2>Predictions on a test sequence</h2><p>Image, disparity, ego flow, independent flow, motion mask.</p>' + images if panels else ''}
{f'<p><a href="{html.escape(rel(mp4))}">video</a></p>' if mp4 else ''}
</body></html>
"""
    html_path = out / "report.html"
    html_path.write_text(body)
    json_path = out / "metrics.json"
    document = {"elapsed_seconds": elapsed, "plan": asdict(plan), "summary": [list(r) for r in rows],
                "moving_abs_rel_improvement": improvement, "metrics": metrics}
    json_path.write_text(json.dumps(document, indent=2, default=str) + "\n")
    return md_path, html_path, json_path


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
    models = train(settings, plan, progress)
    metrics = evaluate(settings, plan, models, progress)
    video = visualize(settings, plan, models, progress)
    progress.stage("report", "")
    elapsed = time.perf_counter() - started
    md, page, js = write_report(settings, plan, metrics, video, elapsed)
    return DemoResult(settings.out, json.loads(js.read_text()), md, page, elapsed, [md, page, js])
