"""TensorBoard (and optionally wandb) logging for a training run; silent on ranks other than 0."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from ..config import ModelConfig, to_dict
from ..errors import ConfigError
from ..geometry import disp_to_depth
from ..visualize import colorize, flow_to_rgb, grid, optical_flow

log = logging.getLogger(__name__)


class RunLogger:
    """Scalars every step and an image panel on request, under `<run>/tensorboard/`."""

    def __init__(self, run_dir: Path, enabled: bool = True, use_wandb: bool = False, config=None):
        self.enabled = enabled
        self.writer = None
        self.wandb = None
        if not enabled:
            return
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard"))
        if use_wandb:
            try:
                import wandb
            except ImportError:
                raise ConfigError("--wandb needs the wandb package: pip install -e '.[wandb]'.") from None
            wandb.init(project="dynamo", name=Path(run_dir).name, config=to_dict(config) if config else None)
            self.wandb = wandb

    def scalars(self, step: int, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        for name, value in values.items():
            self.writer.add_scalar(name, value, step)
        if self.wandb is not None:
            self.wandb.log(values, step=step)

    def panel(self, step: int, batch: dict, outputs: dict, result, model_config: ModelConfig) -> None:
        """Target, reconstruction, disparity and mask over ego, independent and complete flow, for the first item."""
        if not self.enabled:
            return
        image = panel_image(batch, outputs, result, model_config)
        self.writer.add_image("panel", image, step)
        if self.wandb is not None:
            self.wandb.log({"panel": self.wandb.Image(image.permute(1, 2, 0).numpy())}, step=step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.wandb is not None:
            self.wandb.finish()


@torch.no_grad()
def panel_image(batch: dict, outputs: dict, result, model_config: ModelConfig) -> torch.Tensor:
    """(3, 2H, 4W) panel of the first batch item, seen from source frame -1 (or the first source)."""
    frame = -1 if -1 in model_config.frame_ids else model_config.frame_ids[1]
    target = batch["color", 0, 0][:1].float().cpu()
    height, width = target.shape[-2:]
    visual = result.visuals.get(frame, {})
    warped = visual.get("warped", target)[:1].cpu()
    disp = outputs["disp", 0, 0][:1].float().cpu()
    _, depth = disp_to_depth(disp, model_config.min_depth, model_config.max_depth)
    K, inv_K = batch["K", 0][:1].float().cpu(), batch["inv_K", 0][:1].float().cpu()
    T = outputs["cam_T_cam", 0, frame][:1].float().cpu()
    mask = outputs.get(("motion_mask", frame, 0))
    mask = torch.zeros_like(disp) if mask is None else mask[:1].float().cpu()

    ego = optical_flow(depth, K, inv_K, T=T)
    flows = [ego]
    for name in ("independent_flow", "complete_flow"):
        motion = visual.get(name)
        flows.append(torch.zeros_like(ego) if motion is None else optical_flow(depth, K, inv_K, motion=motion[:1].float().cpu()))
    limit = max(float(f.norm(dim=1).max()) for f in flows)
    error = (warped - target).abs().mean(1, keepdim=True)
    rows = [
        [target[0], warped[0], colorize(disp, "plasma")[0], colorize(mask, "hot", 0.0, 1.0)[0]],
        [flow_to_rgb(f, limit)[0] for f in flows] + [colorize(error, "magma")[0]],
    ]
    return grid(rows).clamp(0, 1)
