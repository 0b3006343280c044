"""Configuration dataclasses, one per concern, with a JSON round trip.

Every run saves its config next to its checkpoints so that it can be reproduced and resumed.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .atomic_files import atomic_output
from .errors import ConfigError
from .runtime import check_precision

CONV_LAYOUTS = ("auto", "contiguous", "channels_last", "plain")

DEPTH_MODELS = ("litemono", "monodepthv2")
WEIGHTS_INIT = ("pretrained", "scratch")

# Default input size per dataset, (height, width).
DATASET_SIZES = {
    "kitti": (192, 640),
    "waymo": (320, 480),
    "nuscenes": (288, 512),
    "synthetic": (192, 640),
}


def default_scales(depth_model: str) -> list[int]:
    """Lite-Mono predicts disparity at 3 scales, the Monodepth2 decoder at 4."""
    return [0, 1, 2] if depth_model == "litemono" else [0, 1, 2, 3]


FLOW_STARTS = ("random", "ego")


@dataclass
class ModelConfig:
    """What networks to build and at what resolution."""

    depth_model: str = "litemono"
    """`litemono` (Lite-Mono-8M) or `monodepthv2` (ResNet with the Monodepth2 decoder)."""
    num_layers: int = 18
    """ResNet depth of the pose and motion encoders, and of the Monodepth2 depth encoder."""
    weights_init: str = "pretrained"
    """`pretrained` starts encoders from ImageNet weights; `scratch` from random ones."""
    height: int = 192
    """Input height in pixels; a multiple of 32."""
    width: int = 640
    """Input width in pixels; a multiple of 32."""
    scales: list[int] = field(default_factory=lambda: [0, 1, 2])
    """Decoder output scales: scale s is at 1 / 2**s of the input size."""
    frame_ids: list[int] = field(default_factory=lambda: [0, -1, 1])
    """Target frame first, then the source frames."""
    min_depth: float = 0.1
    """Depth that the largest disparity maps to, in metres."""
    max_depth: float = 100.0
    """Depth that the smallest disparity maps to, in metres."""
    drop_path_rate: float = 0.4
    """Stochastic-depth rate of the Lite-Mono encoder during training."""
    pretrained_dir: str = "ckpt"
    """Folder holding `lite-mono-8m-pretrain.pth` for `weights_init=pretrained`."""
    flow_start: str = "random"
    """How the complete-flow head starts: `random` (the published initialisation) or `ego`, where it first
    predicts the camera's own translation at every pixel (the 3D flow of a static scene under a forward
    motion), so that motion_init only has to learn rotation and the movers."""

    def validate(self) -> None:
        if self.depth_model not in DEPTH_MODELS:
            raise ConfigError(f"--depth-model must be one of {', '.join(DEPTH_MODELS)}, got {self.depth_model!r}.")
        if self.weights_init not in WEIGHTS_INIT:
            raise ConfigError(f"--weights-init must be one of {', '.join(WEIGHTS_INIT)}, got {self.weights_init!r}.")
        for name in ("height", "width"):
            value = getattr(self, name)
            if value <= 0 or value % 32:
                raise ConfigError(f"--{name} must be a positive multiple of 32, got {value}.")
        if not self.frame_ids or self.frame_ids[0] != 0:
            raise ConfigError(f"frame ids must start with the target frame 0, got {self.frame_ids}.")
        if self.flow_start not in FLOW_STARTS:
            raise ConfigError(f"--flow-start must be one of {', '.join(FLOW_STARTS)}, got {self.flow_start!r}.")
        limit = 3 if self.depth_model == "litemono" else 4
        if not self.scales or any(s < 0 or s >= limit for s in self.scales):
            raise ConfigError(f"--scales for {self.depth_model} must lie in 0..{limit - 1}, got {self.scales}.")


@dataclass
class DataConfig:
    """Where the frames come from."""

    dataset: str = "kitti"
    """`kitti`, `waymo`, `nuscenes` or `synthetic` (the processed layouts)."""
    data_path: str = ""
    """Root folder of the processed dataset."""
    split: str = ""
    """Split name under the project's `splits/`, or a folder holding `train_files.txt` etc."""
    img_type: str = "downsample"
    """Image folder to read: `downsample` or `original`."""
    cam_name: str = ""
    """Camera folder; empty means the dataset's default."""
    num_workers: int = 2
    """Data-loading processes."""


@dataclass
class OptimConfig:
    """Optimiser and schedule."""

    learning_rate: float = 1e-4
    """Adam learning rate; halved in `fine_tune`."""
    scheduler_step_size: int = 10
    """Epochs between learning-rate halvings."""
    scheduler_gamma: float = 0.5
    batch_size: int = 3
    epoch_schedule: list[int] = field(default_factory=lambda: [1, 1, 5, 20])
    """Epochs of disp_init, motion_init, mask_init and fine_tune."""
    epoch_size: int = 8000
    """Batches sampled per epoch (with replacement when the split is smaller); 0 means one pass over the split."""


KEEP_CHECKPOINTS = ("all", "phase-end")


@dataclass
class TrainConfig:
    """Run bookkeeping."""

    name: str = "dynamo"
    """Run folder name under `log_dir`."""
    log_dir: str = "logs"
    seed: int = 0
    device: str = "auto"
    """`cpu`, `cuda` or `auto` (CUDA when present)."""
    max_steps: int = 0
    """Stop after this many optimisation steps in total (0: no cap); the current epoch is cut short and saved."""
    log_frequency: int = 100
    """Steps between TensorBoard image panels."""
    save_frequency: int = 1
    """Epochs between checkpoints; the last epoch of every phase is always saved."""
    keep_checkpoints: str = "all"
    """`all` keeps the weights of every saved epoch; `phase-end` keeps only the newest epoch of each phase.
    Either way only the newest checkpoint keeps the optimiser state that `--resume` reads."""
    load: str = ""
    """Checkpoint folder to start from (weights only)."""
    threads: int = 0
    """CPU threads for torch (0: torch's default)."""
    precision: str = "fp32"
    """`fp32` (the default, as the original trains), `bf16` (networks in bfloat16; weights, gradients and
    the loss in float32: about half the step time on a CPU with native bfloat16 instructions, at a
    coarser gradient, see the README) or `auto` (bf16 on such a CPU, fp32 elsewhere)."""
    conv_layout: str = "auto"
    """Memory layout of each CPU convolution's forward, input gradient and weight gradient: `auto` (timed
    once per CPU, shape and torch version, and cached), `contiguous`, `channels_last`, or `plain` (nn.Conv2d
    with the weights' layout). Results agree to float rounding either way; only the speed differs."""
    wandb: bool = False
    """Also log to Weights & Biases (needs the `wandb` extra and an account)."""
    max_nonfinite: int = 10
    """Consecutive non-finite losses after which training stops."""


@dataclass
class RunConfig:
    """Everything a training run needs; saved as `config.json` in the run folder."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: "LossConfig" = None  # type: ignore[assignment]
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        from .losses import LossConfig

        if self.loss is None:
            self.loss = LossConfig()
        elif isinstance(self.loss, dict):
            self.loss = from_dict(LossConfig, self.loss, "loss config")

    def validate(self) -> None:
        self.model.validate()
        schedule = self.optim.epoch_schedule
        if len(schedule) != 4 or any(e < 0 for e in schedule):
            raise ConfigError(f"--epoch-schedule needs four non-negative epoch counts, got {schedule}.")
        if self.optim.batch_size < 1:
            raise ConfigError(f"--batch-size must be at least 1, got {self.optim.batch_size}.")
        if self.train.device not in ("cpu", "cuda", "auto"):
            raise ConfigError(f"--device must be cpu, cuda or auto, got {self.train.device!r}.")
        check_precision(self.train.precision)
        if self.train.conv_layout not in CONV_LAYOUTS:
            raise ConfigError(f"--conv-layout must be one of {', '.join(CONV_LAYOUTS)}, got {self.train.conv_layout!r}.")
        if self.train.keep_checkpoints not in KEEP_CHECKPOINTS:
            raise ConfigError(f"--keep-checkpoints must be all or phase-end, got {self.train.keep_checkpoints!r}.")


def to_dict(config: Any) -> dict:
    """Dataclass (possibly nested) to plain JSON-compatible data."""
    return dataclasses.asdict(config)


def from_dict(cls, data: dict, source: str = "config"):
    """Build dataclass `cls` from `data`, rejecting unknown keys with a clear message."""
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ConfigError(f"{source}: unknown {cls.__name__} keys {unknown}; known keys are {sorted(names)}.")
    from . import losses  # noqa: F401  (resolves the LossConfig annotation)

    hints = typing.get_type_hints(cls, {**globals(), "LossConfig": losses.LossConfig})
    kwargs = {}
    for key, value in data.items():
        if dataclasses.is_dataclass(hints[key]) and isinstance(value, dict):
            value = from_dict(hints[key], value, source)
        kwargs[key] = value
    return cls(**kwargs)


def save_json(config: Any, path: str | Path) -> None:
    """Write `config` as indented JSON, atomically."""
    with atomic_output(path, "w") as handle:
        json.dump(to_dict(config), handle, indent=2)
        handle.write("\n")


def load_json(cls, path: str | Path):
    """Read a config written by `save_json`."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist.") from None
    except json.JSONDecodeError as err:
        raise ConfigError(f"config file {path} is not valid JSON ({err}).") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a JSON object.")
    return from_dict(cls, data, source=str(path))
