"""The road plane in camera coordinates: RANSAC fit and per-pixel plane depth.

A plane is parameterised by its height along the camera's vertical axis (y, pointing
down): y = w1 * x + w2 * z + w3, stored as (B, 3, 1) = [w1, w2, w3].
"""

from __future__ import annotations

import torch

from .camera import pixel_grid

_RIDGE = 1e-6
_CHUNK = 8192  # points per pass when counting inliers


def _design(points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(..., 3) points to the least-squares system A w = b with A = [x, z, 1], b = y."""
    x, y, z = points.unbind(-1)
    design = torch.stack([x, z, torch.ones_like(x)], dim=-1)
    return design, y.unsqueeze(-1)


def _solve(design: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Ridge-regularised (weighted) least squares: (..., N, 3), (..., N, 1) -> (..., 3, 1).

    The ridge is added to every entry of AᵀA, as the original does. That rank-one ridge
    cannot rescue a degenerate system (say points that all share one x and z), where the
    original fails; there, and only there, the solution with the ridge on the diagonal is used.
    """
    weighted = design if weight is None else design * weight.unsqueeze(-1)
    normal = weighted.transpose(-1, -2) @ design
    moment = weighted.transpose(-1, -2) @ target
    solution, _ = torch.linalg.solve_ex(normal + _RIDGE, moment)
    # Both solves always run (3x3 systems are cheap): choosing on the host would sync a GPU.
    eye = torch.eye(3, dtype=design.dtype, device=design.device)
    diagonal, _ = torch.linalg.solve_ex(normal + _RIDGE * eye, moment)
    return torch.where(torch.isfinite(solution).all(-2, keepdim=True), solution, diagonal)


def plane_distance(points: torch.Tensor, plane: torch.Tensor) -> torch.Tensor:
    """Signed vertical offset w1 x + w2 z + w3 - y of each point from the plane.

    Args:
        points: (B, N, 3).
        plane: (B, 3, 1).
    Returns:
        (B, N, 1); positive where a point lies above the plane (y points down).
    """
    design, target = _design(points)
    return design @ plane - target


def fit_ground_plane(
    points: torch.Tensor,
    *,
    prior: float = 0.4,
    tolerance: float = 0.005,
    points_per_hypothesis: int = 5,
    hypotheses: int = 25,
    generator: torch.Generator | None = None,
    refit: bool = False,
) -> torch.Tensor:
    """RANSAC fit of the road plane to the lower rows of a point map, for the whole batch at once.

    Each hypothesis is a least-squares plane through `points_per_hypothesis` random
    points (sampled with replacement); the one with most inliers (|distance| < tolerance)
    wins, the first on a tie. As in the original, the winning hypothesis is returned as is.

    Args:
        points: (B, 3, H, W) camera-frame points.
        prior: fraction of rows, counted from the bottom, that may hold the road.
        generator: CPU generator for the sampling, for reproducible fits.
        refit: refit the winner to all its inliers (when it has at least 3), which the
            original does not do.
    Returns:
        (B, 3, 1) plane parameters, detached.
    """
    points = points.detach()
    batch, _, height, _ = points.shape
    rows = max(1, int(prior * height))
    candidates = points[:, :, height - rows :, :].reshape(batch, 3, -1).transpose(1, 2)  # (B, N, 3)
    count = candidates.shape[1]

    index = torch.randint(count, (batch, hypotheses * points_per_hypothesis), generator=generator)
    index = index.to(points.device)
    sampled = torch.gather(candidates, 1, index[..., None].expand(-1, -1, 3))
    sampled = sampled.reshape(batch, hypotheses, points_per_hypothesis, 3)
    planes = _solve(*_design(sampled))  # (B, K, 3, 1)

    # Offsets of every point from every hypothesis in one product: [w1, w2, w3, 1] . [x, z, 1, -y].
    coefficients = torch.cat([planes[..., 0], torch.ones_like(planes[..., :1, 0])], dim=-1)  # (B, K, 4)
    x, y, z = candidates.unbind(-1)
    homogeneous = torch.stack([x, z, torch.ones_like(x), -y], dim=1)  # (B, 4, N)
    # Counted in chunks of points, so that the (B, K, chunk) offsets stay in cache (about 4x faster than
    # one pass at 192x640), in place and as floats (boolean sums are several times slower on the CPU).
    counts = coefficients.new_zeros(batch, hypotheses)
    for start in range(0, count, _CHUNK):
        offsets = torch.bmm(coefficients, homogeneous[:, :, start : start + _CHUNK])  # (B, K, chunk)
        counts += offsets.abs_().lt_(tolerance).sum(-1)
    best = counts.argmax(-1)  # (B,)
    rows_index = torch.arange(batch, device=points.device)
    chosen = planes[rows_index, best]  # (B, 3, 1)
    if not refit:
        return chosen
    offsets = torch.bmm(coefficients[rows_index, best][:, None], homogeneous)[:, 0]  # (B, N)
    best_inliers = offsets.abs_().lt_(tolerance)
    refitted = _solve(*_design(candidates), best_inliers)
    enough = best_inliers.sum(-1) >= 3
    return torch.where(enough[:, None, None], refitted, chosen)


def ground_plane_depth(
    plane: torch.Tensor, inv_K: torch.Tensor, height: int, width: int, max_depth: float = 100.0
) -> torch.Tensor:
    """Depth at which each pixel's ray meets the plane.

    Args:
        plane: (B, 3, 1).
        inv_K: (B, 4, 4) inverse intrinsics at this resolution.
    Returns:
        (B, 1, H, W); `max_depth` where the ray misses the plane or meets it beyond max_depth.
    """
    rays = inv_K[:, :3, :3] @ pixel_grid(height, width, dtype=inv_K.dtype, device=inv_K.device)
    vx, vy, vz = rays[:, 0:1], rays[:, 1:2], rays[:, 2:3]
    w1, w2, w3 = plane[:, 0:1], plane[:, 1:2], plane[:, 2:3]
    depth = (w3 / (vy - vx * w1 - vz * w2)).reshape(-1, 1, height, width)
    beyond = (depth < 0) | (depth > max_depth)
    return torch.where(beyond, torch.full_like(depth, max_depth), depth)
