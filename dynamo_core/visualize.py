"""Pictures of predictions: colour maps, optical-flow colour wheels and panels.

Everything returns float images (B, 3, H, W) in [0, 1] or uint8 (H, W, 3) arrays; `write_mp4`
encodes uint8 frames as a video.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from matplotlib import colormaps

from .atomic_files import atomic_path
from .geometry import backproject, project, transform_points


def colorize(values: torch.Tensor, cmap: str = "plasma", vmin: float | None = None, vmax: float | None = None) -> torch.Tensor:
    """(B, 1, H, W) scalars -> (B, 3, H, W) colours; limits default to each image's 0 and 95th percentile."""
    out = []
    table = torch.from_numpy(colormaps[cmap](np.linspace(0, 1, 256))[:, :3]).to(values.dtype)
    for image in values.detach().cpu():
        lo = float(image.min()) if vmin is None else vmin
        hi = float(torch.quantile(image.flatten().float(), 0.95)) if vmax is None else vmax
        scaled = ((image - lo) / max(hi - lo, 1e-8)).clamp(0, 1)
        out.append(table[(scaled[0] * 255).long()].permute(2, 0, 1))
    return torch.stack(out).to(values.device)


def hsv_to_rgb(hue: torch.Tensor, saturation: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """Element-wise HSV (each in [0, 1], same shape S) to RGB stacked on a new dim 1 when S is (B, H, W)."""
    sector = hue * 6
    k = lambda n: (n + sector) % 6  # noqa: E731
    channel = lambda n: value - value * saturation * torch.clamp(torch.minimum(k(n), 4 - k(n)), 0, 1)  # noqa: E731
    return torch.stack([channel(5), channel(3), channel(1)], dim=1)


def flow_to_rgb(flow: torch.Tensor, max_magnitude: float | None = None) -> torch.Tensor:
    """Colour wheel: hue is the direction, brightness the magnitude (white means still).

    Args:
        flow: (B, 2, H, W) pixel displacements (x, y).
        max_magnitude: the magnitude shown at full strength; defaults to the batch maximum.
    Returns:
        (B, 3, H, W) in [0, 1].
    """
    magnitude = flow.norm(dim=1)
    angle = torch.atan2(flow[:, 1], flow[:, 0])
    limit = float(magnitude.max()) if max_magnitude is None else max_magnitude
    strength = (magnitude / max(limit, 1e-8)).clamp(0, 1)
    hue = (angle / (2 * math.pi)) % 1.0
    # Inverted value so that zero motion is white, which reads better on panels.
    return 1 - hsv_to_rgb(hue, torch.ones_like(hue), strength)


def optical_flow(
    depth: torch.Tensor,
    K: torch.Tensor,
    inv_K: torch.Tensor,
    motion: torch.Tensor | None = None,
    T: torch.Tensor | None = None,
) -> torch.Tensor:
    """2D pixel displacement induced by a 3D motion field and/or a camera transform.

    Args:
        depth: (B, 1, H, W); K, inv_K: (B, 4, 4) at that resolution.
        motion: (B, 3, H, W) displacement of each pixel's 3D point, or None.
        T: (B, 4, 4) transform into the other camera, or None.
    Returns:
        (B, 2, H, W) displacement in pixels.
    """
    batch, _, height, width = depth.shape
    points = backproject(depth, inv_K)
    start = project(points, K, height, width)
    moved = points
    if motion is not None:
        moved = torch.cat([points[:, :3] + motion.reshape(batch, 3, -1), points[:, 3:]], 1)
    if T is not None:
        moved = transform_points(T, moved)
    end = project(moved, K, height, width)
    scale = torch.tensor([(width - 1) / 2, (height - 1) / 2], dtype=depth.dtype, device=depth.device)
    return ((end - start) * scale).permute(0, 3, 1, 2)


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """(3, H, W) in [0, 1] -> (H, W, 3) uint8."""
    return (image.detach().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255 + 0.5).astype(np.uint8)


def grid(rows: list[list[torch.Tensor]]) -> torch.Tensor:
    """Tile equally sized (3, H, W) images into one (3, rows*H, cols*W) panel."""
    return torch.cat([torch.cat(row, dim=2) for row in rows], dim=1)


def write_mp4(frames, path, fps: float = 10.0) -> None:
    """Encode (H, W, 3) uint8 frames as an H.264 mp4, atomically (a temporary file moved into place).

    Args:
        frames: an iterable of equally sized (H, W, 3) uint8 arrays; H and W must be even.
        path: the target `.mp4` file.
    """
    import imageio.v2 as imageio  # with its ffmpeg plugin, only needed for videos

    with atomic_path(path, suffix=".tmp.mp4") as temp:
        writer = imageio.get_writer(temp, format="FFMPEG", mode="I", fps=fps, codec="libx264", quality=8,
                                    macro_block_size=1, ffmpeg_log_level="error")
        try:
            for frame in frames:
                writer.append_data(np.ascontiguousarray(frame))
        finally:
            writer.close()
