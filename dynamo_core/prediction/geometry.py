"""Numbers derived from predictions: metric scale from the road plane, point clouds, trajectories.

All functions are pure and take NumPy arrays; torch is imported only by the road-plane fit.
"""

from __future__ import annotations

import math

import numpy as np


def backproject_depth(depth: np.ndarray, K: np.ndarray) -> np.ndarray:
    """(H, W) depth and (3, 3) pixel K -> (H, W, 3) camera-frame points (x right, y down, z forward).

    Pixel (u, v) is the centre of column u and row v, as in training (`geometry.pixel_grid`).
    """
    height, width = depth.shape
    u, v = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    skew = K[0, 1]
    y = (v - cy) / fy
    x = (u - cx - skew * y) / fx
    z = depth.astype(np.float64)
    return np.stack([x * z, y * z, z], axis=-1)


def ground_plane_scale(depth: np.ndarray, K: np.ndarray, camera_height: float, *, seed: int = 0,
                       prior: float = 0.4) -> float | None:
    """The factor that makes `depth` metric, from the known camera height above the road.

    The road plane is fitted with the RANSAC fit training uses, to the lower `prior` of the rows,
    after dividing the points by their median depth so that its inlier tolerance is relative.
    scale = camera_height / (fitted distance from the camera centre to the plane).

    Returns None when no plane can be fitted (no finite points, or a plane through the camera).
    """
    import torch

    from ..geometry import fit_ground_plane

    if camera_height <= 0:
        raise ValueError("camera_height must be positive")
    points = backproject_depth(depth, K)
    valid = np.isfinite(points).all(-1) & (points[..., 2] > 0)
    if not valid.any():
        return None
    norm = float(np.median(points[..., 2][valid]))
    if not math.isfinite(norm) or norm <= 0:
        return None
    cloud = np.where(valid[..., None], points / norm, 0.0)
    tensor = torch.from_numpy(cloud.astype(np.float64)).permute(2, 0, 1)[None]  # (1, 3, H, W)
    plane = fit_ground_plane(tensor, prior=prior, generator=torch.Generator().manual_seed(seed))[0, :, 0]
    w1, w2, w3 = (float(v) for v in plane)
    # y = w1 x + w2 z + w3  <=>  w1 x - y + w2 z + w3 = 0; distance of the origin from it:
    distance = abs(w3) / math.sqrt(w1 * w1 + 1.0 + w2 * w2) * norm
    if not math.isfinite(distance) or distance <= 1e-9:
        return None
    return float(camera_height / distance)


def chain_poses(relative: list[np.ndarray]) -> np.ndarray:
    """Camera-to-first-frame poses from the relative poses of consecutive frames.

    Args:
        relative: for each i, (4, 4) T_i_(i+1), which maps points in frame i+1's coordinates into
            frame i's (the pose network's `cam_T_cam` with frame i as source and i+1 as target).
    Returns:
        (N + 1, 4, 4) T_0_k: frame k's camera in the first frame's coordinates.
    """
    poses = [np.eye(4)]
    for T in relative:
        poses.append(poses[-1] @ np.asarray(T, dtype=np.float64))
    return np.stack(poses)


def rotation_to_quaternion(R: np.ndarray) -> np.ndarray:
    """(3, 3) rotation -> (qx, qy, qz, qw) with qw >= 0."""
    m = np.asarray(R, dtype=np.float64)
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    if trace > 0:
        s = math.sqrt(trace + 1.0) * 2
        q = [(m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, 0.25 * s]
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = math.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2]) * 2
        q = [0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s, (m[2, 1] - m[1, 2]) / s]
    elif m[1, 1] > m[2, 2]:
        s = math.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2]) * 2
        q = [(m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s, (m[0, 2] - m[2, 0]) / s]
    else:
        s = math.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1]) * 2
        q = [(m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s, (m[1, 0] - m[0, 1]) / s]
    q = np.array(q)
    q /= np.linalg.norm(q)
    return -q if q[3] < 0 else q


def independent_flow(depth: np.ndarray, K: np.ndarray, T: np.ndarray, complete: np.ndarray,
                     mask: np.ndarray) -> np.ndarray:
    """mask x (complete flow - ego flow), as the loss computes it.

    Args:
        depth: (H, W); K: (3, 3) pixels; T: (4, 4) cam_T_cam towards the next frame;
        complete: (3, H, W) complete 3D flow; mask: (H, W) motion probability.
    Returns:
        (H, W, 3) float32 independent 3D displacement of each pixel's point.
    """
    points = backproject_depth(depth, K).reshape(-1, 3).T  # (3, N)
    ego = (T[:3, :3] - np.eye(3)) @ points + T[:3, 3:]
    residual = complete.reshape(3, -1).astype(np.float64) - ego
    flow = residual * mask.reshape(1, -1)
    return flow.T.reshape(depth.shape[0], depth.shape[1], 3).astype(np.float32)
