"""Configuration dataclasses, one per concern, with a JSON round trip.

Every run saves its config next to its checkpoints so that it can be reproduced and resumed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

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
        limit = 3 if self.depth_model == "litemono" else 4
        if not self.scales or any(s < 0 or s >= limit for s in self.scales):
            raise ConfigError(f"--scales for {self.depth_model} must lie in 0..{limit - 1}, got {self.scales}.")


def to_dict(config: Any) -> dict:
    """Dataclass (possibly nested) to plain JSON-compatible data."""
    return dataclasses.asdict(config)


def from_dict(cls, data: dict, source: str = "config"):
    """Build dataclass `cls` from `data`, rejecting unknown keys with a clear message."""
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ConfigError(f"{source}: unknown {cls.__name__} keys {unknown}; known keys are {sorted(names)}.")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in data.items():
        if dataclasses.is_dataclass(hints[key]) and isinstance(value, dict):
            value = from_dict(hints[key], value, source)
        kwargs[key] = value
    return cls(**kwargs)


def save_json(config: Any, path: str | Path) -> None:
    """Write `config` as indented JSON, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as handle:
        json.dump(to_dict(config), handle, indent=2)
        handle.write("\n")
    os.replace(tmp, path)


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
