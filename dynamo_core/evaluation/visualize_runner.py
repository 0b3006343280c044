"""`dynamo visualize`: one mp4 per segment (or per group of chosen frames) and a PNG panel per frame.

A panel shows, side by side: the image, the disparity (plasma), the ego flow, the independent flow
and the motion mask (hot), optionally also the complete flow and the total flow. Flows are seen
from the target frame towards the previous frame (-1), as in training, and drawn as colour wheels
(hue: direction, strength: magnitude, white: still) with one magnitude scale per video.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..data.base import FrameDataset, SplitLine, parse_split_line
from ..data.splits import read_split, validate_items
from ..errors import ConfigError, DataError
from ..geometry import backproject, disp_to_depth, transform_points
from ..visualize import colorize, flow_to_rgb, optical_flow, to_uint8, write_mp4
from .inference import (
    EvalContext,
    EvalOptions,
    Progress,
    has_neighbours,
    prepare,
    segment_frames,
    split_segments,
    to_device,
    write_png,
)

PANELS = ("image", "disp", "ego_flow", "ind_flow", "mask", "complete_flow", "total_flow")
DEFAULT_PANELS = ("image", "disp", "ego_flow", "ind_flow", "mask")
FLOW_PANELS = ("ego_flow", "ind_flow", "complete_flow", "total_flow")
SOURCE_FRAME = -1
"""Flows and the mask are shown towards this frame."""


def default_fps(dataset: str) -> float:
    """Frame rate of the recordings: nuScenes cameras run at about 13 Hz, the others at 10 Hz."""
    return 13.0 if dataset == "nuscenes" else 10.0


def check_panels(panels) -> tuple[str, ...]:
    panels = tuple(panels)
    unknown = [p for p in panels if p not in PANELS]
    if unknown or not panels:
        raise ConfigError(f"--panels takes names from {', '.join(PANELS)}; got {', '.join(panels) or 'none'}.")
    return panels


@dataclass
class VideoResult:
    name: str
    video: Path
    frames_folder: Path
    frames: list[int]
    max_flow: float
    """Flow magnitude (pixels) drawn at full strength in this video."""

    def to_dict(self) -> dict:
        return {"name": self.name, "video": str(self.video), "frames_folder": str(self.frames_folder),
                "frames": self.frames, "max_flow_pixels": self.max_flow}


@dataclass
class VisualizeResult:
    panels: tuple[str, ...]
    fps: float
    videos: list[VideoResult]
    summary: dict = field(default_factory=dict)

    @property
    def files(self) -> list[Path]:
        return [v.video for v in self.videos]

    def to_dict(self) -> dict:
        return {"task": "visualize", **self.summary, "panels": list(self.panels), "fps": self.fps,
                "videos": [v.to_dict() for v in self.videos]}


@torch.no_grad()
def predict_panel_maps(context: EvalContext, batch: dict, panels: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """Maps of one batch at the model's size.

    Returns:
        "image" (B, 3, H, W), "disp" and "mask" (B, 1, H, W) and, for each flow panel asked for,
        (B, 2, H, W) pixel displacements towards SOURCE_FRAME.
    """
    model = context.model
    model.set_heads(complete_flow=True, motion_mask=True)
    outputs = model(batch, depth_frames=(0,))
    disp = outputs["disp", 0, 0]
    mask = outputs["motion_mask", SOURCE_FRAME, 0]
    maps = {"image": batch["color", 0, 0], "disp": disp, "mask": mask}
    if not any(p in FLOW_PANELS for p in panels):
        return maps

    _, depth = disp_to_depth(disp, context.config.min_depth, context.config.max_depth)
    K, inv_K = batch["K", 0].to(depth.dtype), batch["inv_K", 0].to(depth.dtype)
    T = outputs["cam_T_cam", 0, SOURCE_FRAME]
    batch_size, _, height, width = depth.shape
    # The same composition as the training objective: the complete flow covers the frame's time step.
    time_step = batch["ts", SOURCE_FRAME].to(depth.dtype).reshape(batch_size, 1, 1, 1)
    complete = outputs["complete_flow", SOURCE_FRAME, 0] * time_step
    points = backproject(depth, inv_K)
    ego_3d = (transform_points(T, points) - points)[:, :3].reshape(batch_size, 3, height, width)
    independent = mask * (complete - ego_3d)
    flows = {
        "ego_flow": lambda: optical_flow(depth, K, inv_K, T=T),
        "ind_flow": lambda: optical_flow(depth, K, inv_K, motion=independent),
        "complete_flow": lambda: optical_flow(depth, K, inv_K, motion=complete),
        "total_flow": lambda: optical_flow(depth, K, inv_K, motion=independent, T=T),
    }
    maps.update({name: flows[name]() for name in panels if name in FLOW_PANELS})
    return maps


def still_panels(maps: dict[str, torch.Tensor], index: int) -> dict[str, np.ndarray]:
    """The panels that need no video-wide scale, as (H, W, 3) uint8."""
    return {
        "image": to_uint8(maps["image"][index].float().cpu()),
        "disp": to_uint8(colorize(maps["disp"][index : index + 1].float().cpu(), "plasma")[0]),
        "mask": to_uint8(colorize(maps["mask"][index : index + 1].float().cpu(), "hot", 0.0, 1.0)[0]),
    }


@dataclass
class VideoPlan:
    name: str
    dataset: FrameDataset


def plan_videos(context: EvalContext, frames: list[str] | None) -> list[VideoPlan]:
    """One video per test segment (its frames with both neighbours), or per segment of the given lines."""
    if frames:
        groups: dict[tuple[str, str], list[str]] = {}
        for number, text in enumerate(frames, start=1):
            line = parse_split_line(text, number)
            groups.setdefault((line.folder, line.side), []).append(text)
        plans = []
        for (folder, side), lines in groups.items():
            dataset = context.dataset(lines, frame_ids=(0, -1, 1))
            for line in dataset.lines:
                if not has_neighbours(dataset, line):
                    raise DataError(
                        f"--frames '{line.folder} {line.frame_index}': frames {line.frame_index - 1} and "
                        f"{line.frame_index + 1} must both exist in {dataset.image_path(line.folder, line.frame_index, line.side).parent}; "
                        "the motion networks need the neighbouring frames."
                    )
            plans.append(VideoPlan(video_name(folder, side), dataset))
        return plans

    plans = []
    for segment in split_segments(read_split(context.split_folder, "test")):
        probe = context.dataset([f"{segment} 0"], frame_ids=(0,))
        kept = [f for f in segment_frames(probe, segment) if has_neighbours(probe, SplitLine(segment, f))]
        if kept:
            plans.append(VideoPlan(video_name(segment, "l"), context.dataset([f"{segment} {f}" for f in kept],
                                                                              frame_ids=(0, -1, 1))))
    if not plans:
        raise DataError(f"no segment of {context.split_folder} has a frame whose neighbours (-1, +1) exist; "
                        "nothing to visualise.")
    return plans


def video_name(folder: str, side: str) -> str:
    name = Path(folder).name
    return name if side in ("l", "2") else f"{name}_{side}"


def render_video(context: EvalContext, plan: VideoPlan, panels: tuple[str, ...], fps: float,
                 progress: Progress | None = None) -> VideoResult:
    """Predict every frame, then draw the panels with one flow scale and write the PNGs and the mp4."""
    folder = context.output_folder
    frames_folder = folder / plan.name
    dataset = plan.dataset
    validate_items(dataset)
    height, width = context.config.height, context.config.width
    flow_names = [p for p in panels if p in FLOW_PANELS]
    still_names = [p for p in panels if p not in FLOW_PANELS]
    count = len(dataset)
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".frames-") as scratch:
        # Frames wait on disk for the video-wide flow scale, so memory stays flat for long segments.
        stills = np.lib.format.open_memmap(Path(scratch) / "stills.npy", mode="w+", dtype=np.uint8,
                                           shape=(count, max(len(still_names), 1), height, width, 3))
        flows = np.lib.format.open_memmap(Path(scratch) / "flows.npy", mode="w+", dtype=np.float16,
                                          shape=(count, max(len(flow_names), 1), 2, height, width))
        max_flow = 0.0
        index = 0
        for batch in context.loader(dataset):
            maps = predict_panel_maps(context, to_device(batch, context.device), panels)
            for item in range(len(batch["index"])):
                rendered = still_panels(maps, item)
                for slot, name in enumerate(still_names):
                    stills[index, slot] = rendered[name]
                for slot, name in enumerate(flow_names):
                    flow = maps[name][item].float().cpu()
                    max_flow = max(max_flow, float(flow.norm(dim=0).max()))
                    flows[index, slot] = flow.numpy()
                index += 1
                if progress is not None:
                    progress(f"predict {plan.name}", index, count)

        def frames():
            for index in range(count):
                tiles = {name: stills[index, slot] for slot, name in enumerate(still_names)}
                for slot, name in enumerate(flow_names):
                    flow = torch.from_numpy(flows[index, slot].astype(np.float32))[None]
                    tiles[name] = to_uint8(flow_to_rgb(flow, max_flow)[0])
                panel = np.concatenate([tiles[name] for name in panels], axis=1)
                write_png(frames_folder / f"{dataset.lines[index].frame_index:06d}.png", panel)
                if progress is not None:
                    progress(f"render {plan.name}", index + 1, count)
                yield panel

        video = folder / f"{plan.name}.mp4"
        write_mp4(frames(), video, fps=fps)
    return VideoResult(plan.name, video, frames_folder, [line.frame_index for line in dataset.lines], max_flow)


def run_visualize(options: EvalOptions, *, frames: list[str] | None = None, panels=DEFAULT_PANELS,
                  fps: float | None = None, progress: Progress | None = None) -> VisualizeResult:
    """Build the whole model and render the test segments (or the given frames)."""
    panels = check_panels(panels)
    fps = default_fps(options.dataset) if fps is None else float(fps)
    if fps <= 0:
        raise ConfigError(f"--fps must be positive, got {fps:g}.")
    context = prepare(options, "visualize", frame_ids=(0, -1, 1), need_split=not frames)
    plans = plan_videos(context, frames)
    videos = [render_video(context, plan, panels, fps, progress) for plan in plans]
    return VisualizeResult(panels=panels, fps=fps, videos=videos, summary=context.summary())
