"""What every evaluation command shares: the model built from a checkpoint, the device, the split,
the output folder, batching and atomic result files.

Nothing here depends on the trainer: a checkpoint folder, a dataset and the model are enough.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..config import ModelConfig, default_scales
from ..data.base import FrameDataset, SplitLine
from ..data.factory import build_dataset, dataset_defaults
from ..data.splits import resolve_split
from ..errors import CheckpointError, ConfigError, DataError
from ..model import DynamoModel
from ..runtime import resolve_device
from ..atomic_files import atomic_write
from ..checkpoints import CheckpointInfo, inspect_checkpoint, load_weights

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[2]

Progress = Callable[[str, int, int], None]
"""Called as progress(stage, done, total) while a runner works."""

# The modules each task runs; nothing else is loaded.
TASK_MODULES: dict[str, tuple[str, ...]] = {
    "depth": ("depth_enc", "depth_dec"),
    "motseg": ("pose_enc", "pose_dec", "motion_enc", "motion_mask"),
    "odometry": ("pose_enc", "pose_dec"),
    "visualize": ("depth_enc", "depth_dec", "pose_enc", "pose_dec", "motion_enc", "motion_dec", "motion_mask"),
}


@dataclass
class EvalOptions:
    """The options every evaluation command takes."""

    checkpoint: Path
    """Checkpoint folder in the per-module layout."""
    dataset: str = "kitti"
    data_path: Path = Path(".")
    split: str | None = None
    """Split name under the project's `splits/` or a folder; None: the dataset's default."""
    depth_model: str | None = None
    """None: detected from the checkpoint."""
    height: int | None = None
    """None: the checkpoint's stored size, else the dataset's default."""
    width: int | None = None
    eval_dir: Path = Path("outputs")
    batch_size: int = 4
    num_workers: int = 2
    device: str = "auto"

    def validate(self) -> None:
        dataset_defaults(self.dataset)  # names the valid datasets
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size must be at least 1, got {self.batch_size}.")
        if self.num_workers < 0:
            raise ConfigError(f"--num-workers must be 0 or more, got {self.num_workers}.")
        if self.device not in ("cpu", "cuda", "auto"):
            raise ConfigError(f"--device must be cpu, cuda or auto, got {self.device!r}.")
        if not Path(self.data_path).expanduser().is_dir():
            raise DataError(f"--data-path {self.data_path} does not exist or is not a folder; "
                            "point it at the processed dataset.")


@dataclass
class EvalContext:
    """Resolved options: the model config, the device, the split folder and the output folder.

    The model itself is built and loaded on first use, so that bad data fails before that cost.
    """

    options: EvalOptions
    task: str
    config: ModelConfig
    checkpoint: CheckpointInfo
    device: torch.device
    split_folder: Path | None
    output_folder: Path
    _model: DynamoModel | None = field(default=None, repr=False)

    @property
    def model(self) -> DynamoModel:
        """The model with only the modules of `task` loaded, in eval mode on the device."""
        if self._model is None:
            config = self.config
            model = DynamoModel(config)
            load_weights(model, self.checkpoint.folder, modules=TASK_MODULES[self.task], height=config.height,
                         width=config.width)
            self._model = model.eval().to(self.device)
            log.info("evaluating %s (%s, %dx%d) on %s", self.checkpoint.folder, config.depth_model, config.height,
                     config.width, self.device)
        return self._model

    @property
    def data_path(self) -> Path:
        return Path(self.options.data_path).expanduser()

    def dataset(self, lines: list[str], *, frame_ids: Sequence[int], load_depth: bool = False,
                load_mask: bool = False) -> FrameDataset:
        """The evaluation dataset over split lines, at the model's size, on the evaluation images."""
        return build_dataset(
            self.options.dataset,
            self.data_path,
            lines,
            height=self.config.height,
            width=self.config.width,
            frame_ids=list(frame_ids),
            num_scales=1,
            load_depth=load_depth,
            load_mask=load_mask,
            img_type=dataset_defaults(self.options.dataset).eval_img_type,
        )

    def loader(self, dataset) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=self.options.batch_size,
            shuffle=False,
            drop_last=False,
            num_workers=self.options.num_workers,
            pin_memory=self.device.type == "cuda",
        )

    def summary(self) -> dict[str, Any]:
        """What was evaluated, for reports."""
        return {
            "checkpoint": str(self.checkpoint.folder.resolve()),
            "model": model_name(self.checkpoint.folder),
            "dataset": self.options.dataset,
            "data_path": str(self.data_path.resolve()),
            "split": str(self.split_folder) if self.split_folder is not None else None,
            "depth_model": self.config.depth_model,
            "height": self.config.height,
            "width": self.config.width,
        }


def model_name(folder: str | os.PathLike) -> str:
    """`<run>_<ckpt>` for `logs/<run>/models/<ckpt>`, else the checkpoint folder's name."""
    folder = Path(folder).expanduser().resolve()
    if folder.parent.name == "models" and folder.parent.parent.name:
        return f"{folder.parent.parent.name}_{folder.name}"
    return folder.name


def output_folder(eval_dir: str | os.PathLike, checkpoint: str | os.PathLike, dataset: str, task: str) -> Path:
    """`<eval_dir>/<model>_<dataset>/<task>/` (not created)."""
    return Path(eval_dir).expanduser() / f"{model_name(checkpoint)}_{dataset}" / task


def eval_split_folder(dataset: str, data_path: str | os.PathLike, split: str | None) -> Path:
    """The split folder: `--split NAME|DIR`, else the dataset's default (synthetic: DATA_PATH/splits)."""
    split = split or dataset_defaults(dataset).split or str(Path(data_path).expanduser() / "splits")
    return resolve_split(split, PROJECT_ROOT)


def model_config_for(info: CheckpointInfo, options: EvalOptions, frame_ids: Sequence[int]) -> ModelConfig:
    """The model the checkpoint describes; explicit options win over what was detected."""
    depth_model = options.depth_model or info.depth_model or "litemono"
    defaults = dataset_defaults(options.dataset)
    height = options.height or info.height or defaults.height
    width = options.width or info.width or defaults.width
    scales = list(info.scales) if info.scales and depth_model == info.depth_model else default_scales(depth_model)
    config = ModelConfig(
        depth_model=depth_model,
        num_layers=info.num_layers or 18,
        weights_init="scratch",
        height=int(height),
        width=int(width),
        scales=scales,
        frame_ids=list(frame_ids),
    )
    config.validate()
    return config


def prepare(options: EvalOptions, task: str, *, frame_ids: Sequence[int] = (0, -1, 1),
            need_split: bool = True) -> EvalContext:
    """Check the options, resolve the split and describe the model; the model loads on first use."""
    options.validate()
    split_folder = eval_split_folder(options.dataset, options.data_path, options.split) if need_split else None
    info = inspect_checkpoint(options.checkpoint)
    missing = [m for m in TASK_MODULES[task] if m not in info.modules]
    if missing:
        raise CheckpointError(
            f"{info.folder} lacks {', '.join(f'{m}.pth' for m in missing)}, which this evaluation runs "
            f"(it needs {', '.join(TASK_MODULES[task])}). Present: {', '.join(info.modules)}. "
            "Use a complete checkpoint folder."
        )
    return EvalContext(
        options=options,
        task=task,
        config=model_config_for(info, options, frame_ids),
        checkpoint=info,
        device=resolve_device(options.device),
        split_folder=split_folder.resolve() if split_folder is not None else None,
        output_folder=output_folder(options.eval_dir, info.folder, options.dataset, task),
    )


def to_device(batch: dict, device: torch.device) -> dict:
    return {k: (v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}


def has_neighbours(dataset: FrameDataset, line: SplitLine, offsets: Iterable[int] = (-1, 1)) -> bool:
    """Whether the frames at `offsets` from the line's frame exist (no stand-ins at a sequence's start)."""
    for offset in offsets:
        index = line.frame_index + offset
        if index < 0 or not dataset.image_path(line.folder, index, line.side).is_file():
            return False
    return True


def segment_frames(dataset: FrameDataset, folder: str, side: str = "l") -> list[int]:
    """Sorted frame indices of a segment, from the image files of the dataset's image type."""
    image_dir = dataset.image_path(folder, 0, side).parent
    try:
        names = os.listdir(image_dir)
    except OSError:
        raise DataError(f"segment {folder}: image folder {image_dir} does not exist or is unreadable; "
                        "check --data-path and the split.") from None
    frames = []
    for name in names:
        stem, ext = os.path.splitext(name)
        if ext == dataset.img_ext and stem.isdigit():
            frames.append(int(stem))
    if not frames:
        raise DataError(f"segment {folder}: image folder {image_dir} holds no {dataset.img_ext} frames.")
    return sorted(frames)


def split_segments(lines: list[str]) -> list[str]:
    """Sorted distinct folders of split lines."""
    return sorted({line.split()[0] for line in lines if line.split()})


# ---- atomic result files -------------------------------------------------------------------------------------


def report_header(summary: dict, input_text: str) -> list[str]:
    """The first lines of every text report: what was scored, on which data, from which input."""
    return [
        f"checkpoint: {summary.get('checkpoint')}",
        f"dataset:    {summary.get('dataset')} ({summary.get('data_path')})",
        f"split:      {summary.get('split')}",
        f"input:      {input_text}",
    ]


def write_text(path: Path, text: str) -> Path:
    return atomic_write(path, lambda stream: stream.write(text), mode="w")


def json_ready(value: Any) -> Any:
    """Plain JSON data: numpy values become Python numbers, NaN and infinities become null."""
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_ready(value.tolist())
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, Path):
        return str(value)
    return value


def write_json(path: Path, document: Any) -> Path:
    return write_text(path, json.dumps(json_ready(document), indent=2) + "\n")


def write_npz(path: Path, **arrays: np.ndarray) -> Path:
    return atomic_write(path, lambda stream: np.savez(stream, **arrays))


def write_png(path: Path, image: np.ndarray) -> Path:
    """(H, W, 3) uint8 as PNG."""
    from PIL import Image

    return atomic_write(path, lambda stream: Image.fromarray(image).save(stream, format="PNG"))
