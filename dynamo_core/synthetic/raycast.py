"""Pinhole camera and vectorised ray casting against the ground plane and axis-aligned boxes.

The camera looks along the body's x axis with no pitch or roll, so a ray's world x and y
components depend only on its image column and its z component only on its row. Rays are
kept in that separable form, (1, C) and (R, 1) arrays, and only broadcast to (R, C) where a
box can be seen: each box is tested only inside its projected bounding rectangle.

Ray directions are scaled so that their camera-z component is 1: the ray parameter of a hit
is then the depth along the optical axis.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SKY = -1
GROUND = -2
_NEAR = 0.05  # metres: box corners closer than this to the image plane are clipped

# Camera axes (x right, y down, z forward) expressed in body axes (x forward, y left, z up).
CAMERA_TO_BODY = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])

# Focal length as a fraction of the image width (a horizontal field of view of about 81 degrees).
FOCAL_PER_WIDTH = 0.58


@dataclass(frozen=True)
class Camera:
    """Pinhole intrinsics in pixels; pixel (row i, column j) is centred at (u, v) = (j, i)."""

    height: int
    width: int
    focal: float
    cx: float
    cy: float

    @classmethod
    def for_size(cls, height: int, width: int) -> "Camera":
        focal = FOCAL_PER_WIDTH * width
        return cls(height=height, width=width, focal=focal, cx=width / 2, cy=height / 2)

    def matrix(self) -> np.ndarray:
        """(3, 3) K in pixels."""
        return np.array([[self.focal, 0.0, self.cx], [0.0, self.focal, self.cy], [0.0, 0.0, 1.0]])

    def normalised_matrix(self) -> np.ndarray:
        """(3, 3) K with the first row divided by the width and the second by the height."""
        K = self.matrix()
        K[0] /= self.width
        K[1] /= self.height
        return K


@dataclass(frozen=True)
class RayGrid:
    """A separable grid of rays through pixel coordinates u (C,) and v (R,), both increasing."""

    u: np.ndarray
    v: np.ndarray

    @classmethod
    def pixel_centres(cls, camera: Camera, supersample: int = 1) -> "RayGrid":
        """`supersample` x `supersample` rays per pixel, centred on the pixel's sub-cells."""
        cols = (np.arange(camera.width * supersample) + 0.5) / supersample - 0.5
        rows = (np.arange(camera.height * supersample) + 0.5) / supersample - 0.5
        return cls(u=cols, v=rows)


@dataclass
class Hits:
    """What each ray of a grid sees.

    depth: (R, C) depth along the optical axis, inf for the sky.
    target: (R, C) int32, SKY, GROUND or the index of the box.
    axis: (R, C) int8, the axis of the face's normal (2 on the ground).
    """

    depth: np.ndarray
    target: np.ndarray
    axis: np.ndarray


def world_directions(camera: Camera, grid: RayGrid, camera_to_world: np.ndarray, dtype=np.float64):
    """World directions of the grid's rays, with unit camera-z component.

    Returns dx (1, C), dy (1, C), dz (R, 1).
    """
    rotation = camera_to_world[:3, :3]
    if abs(rotation[2, 0]) > 1e-12 or abs(rotation[2, 1]) > 1e-12:
        raise ValueError("the separable ray grid needs a camera without pitch or roll")
    a = (grid.u - camera.cx) / camera.focal  # camera x / z
    b = (grid.v - camera.cy) / camera.focal  # camera y / z
    # Body direction (1, -a, -b) rotated about z.
    dx = rotation[0, 0] - a * rotation[0, 1]
    dy = rotation[1, 0] - a * rotation[1, 1]
    dz = -b * rotation[2, 2]
    return dx[None, :].astype(dtype), dy[None, :].astype(dtype), dz[:, None].astype(dtype)


def box_rectangles(camera: Camera, camera_to_world: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Image-space bounding rectangles of boxes, clipped to the near plane.

    Args:
        lower, upper: (N, 3) world corners.
    Returns:
        (N, 4) u_min, u_max, v_min, v_max in pixels; NaN for a box entirely behind the camera.
    """
    bits = np.array([[i & 1, (i >> 1) & 1, (i >> 2) & 1] for i in range(8)], dtype=bool)
    corners = np.where(bits[None], upper[:, None, :], lower[:, None, :])  # (N, 8, 3)
    world_to_camera = (camera_to_world[:3, :3] @ CAMERA_TO_BODY).T
    cam = (corners - camera_to_world[:3, 3]) @ world_to_camera.T  # (N, 8, 3)
    # Edges join corners that differ in one bit.
    edges = np.array([(i, i | (1 << k)) for i in range(8) for k in range(3) if not i & (1 << k)])
    start, end = cam[:, edges[:, 0]], cam[:, edges[:, 1]]  # (N, 12, 3)
    dz = end[..., 2] - start[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        s = (_NEAR - start[..., 2]) / dz
    crossing = (s > 0) & (s < 1)
    clipped = start + np.where(crossing, s, 0.0)[..., None] * (end - start)
    points = np.concatenate([cam, clipped], axis=1)  # (N, 20, 3)
    usable = np.concatenate([cam[..., 2] >= _NEAR, crossing], axis=1)
    z = np.where(usable, points[..., 2], 1.0)
    u = np.where(usable, camera.focal * points[..., 0] / z + camera.cx, np.nan)
    v = np.where(usable, camera.focal * points[..., 1] / z + camera.cy, np.nan)
    rects = np.full((len(lower), 4), np.nan)
    seen = usable.any(axis=1)
    with np.errstate(invalid="ignore"):
        rects[seen] = np.stack(
            [np.nanmin(u[seen], 1), np.nanmax(u[seen], 1), np.nanmin(v[seen], 1), np.nanmax(v[seen], 1)], axis=1
        )
    return rects


def cast(
    camera: Camera,
    grid: RayGrid,
    camera_to_world: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    dtype=np.float64,
) -> Hits:
    """Nearest hit of every ray of a separable grid among the ground plane z = 0 and the boxes.

    Args:
        lower, upper: (N, 3) world corners of the boxes at this frame.
    """
    dx, dy, dz = world_directions(camera, grid, camera_to_world, dtype)
    rows, cols = len(grid.v), len(grid.u)
    near, far, origin_z = _box_planes(camera_to_world, lower, upper, dtype)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv_x, inv_y, inv_z = 1.0 / dx, 1.0 / dy, 1.0 / dz
        ground = np.where(dz < 0, -origin_z / dz, np.inf).astype(dtype)  # (R, 1)
        depth = np.broadcast_to(ground, (rows, cols)).copy()
        target = np.broadcast_to(np.where(np.isfinite(ground), GROUND, SKY).astype(np.int32), (rows, cols)).copy()
        axis = np.full((rows, cols), 2, dtype=np.int8)

        rects = box_rectangles(camera, camera_to_world, lower, upper)
        visible = np.flatnonzero(~np.isnan(rects[:, 0]))
        c0 = np.searchsorted(grid.u, rects[visible, 0] - 1.0)
        c1 = np.searchsorted(grid.u, rects[visible, 1] + 1.0, side="right")
        r0 = np.searchsorted(grid.v, rects[visible, 2] - 1.0)
        r1 = np.searchsorted(grid.v, rects[visible, 3] + 1.0, side="right")
        for index, a, b, c, d in zip(visible.tolist(), r0.tolist(), r1.tolist(), c0.tolist(), c1.tolist()):
            if a >= b or c >= d:
                continue
            lo, hi = near[index], far[index]
            x0, x1 = lo[0] * inv_x[:, c:d], hi[0] * inv_x[:, c:d]  # (1, c)
            y0, y1 = lo[1] * inv_y[:, c:d], hi[1] * inv_y[:, c:d]
            z0, z1 = lo[2] * inv_z[a:b], hi[2] * inv_z[a:b]  # (r, 1)
            x_in, y_in, z_in = np.minimum(x0, x1), np.minimum(y0, y1), np.minimum(z0, z1)
            enter_xy = np.maximum(x_in, y_in)
            leave_xy = np.minimum(np.maximum(x0, x1), np.maximum(y0, y1))
            enter = np.maximum(enter_xy, z_in)  # (r, c)
            leave = np.minimum(leave_xy, np.maximum(z0, z1))
            best = depth[a:b, c:d]
            hit = (enter > 0) & (enter < np.minimum(leave, best))
            hr, hc = np.nonzero(hit)
            if not len(hr):
                continue
            best[hr, hc] = enter[hr, hc]
            target[a:b, c:d][hr, hc] = index
            face = np.where(z_in[hr, 0] >= enter_xy[0, hc], 2, np.where(x_in[0, hc] >= y_in[0, hc], 0, 1))
            axis[a:b, c:d][hr, hc] = face
    return Hits(depth=depth, target=target, axis=axis)


def cast_rays(
    camera: Camera,
    u: np.ndarray,
    v: np.ndarray,
    camera_to_world: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    dtype=np.float32,
) -> Hits:
    """Like `cast` for a list of rays through pixel coordinates u (N,), v (N,), sorted by v.

    Returns a `Hits` whose arrays have shape (N,).
    """
    order_ok = len(v) < 2 or bool(np.all(v[1:] >= v[:-1]))
    if not order_ok:
        raise ValueError("cast_rays needs rays sorted by image row")
    a = (u - camera.cx) / camera.focal
    b = (v - camera.cy) / camera.focal
    rotation = camera_to_world[:3, :3]
    dx = (rotation[0, 0] - a * rotation[0, 1]).astype(dtype)
    dy = (rotation[1, 0] - a * rotation[1, 1]).astype(dtype)
    dz = (-b * rotation[2, 2]).astype(dtype)
    near, far, origin_z = _box_planes(camera_to_world, lower, upper, dtype)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = (1.0 / dx, 1.0 / dy, 1.0 / dz)
        depth = np.where(dz < 0, -origin_z / dz, np.inf).astype(dtype)
        target = np.where(np.isfinite(depth), GROUND, SKY).astype(np.int32)
        axis = np.full(len(u), 2, dtype=np.int8)

        rects = box_rectangles(camera, camera_to_world, lower, upper)
        visible = np.flatnonzero(~np.isnan(rects[:, 0]))
        first = np.searchsorted(v, rects[visible, 2] - 1.0)
        last = np.searchsorted(v, rects[visible, 3] + 1.0, side="right")
        for index, i0, i1 in zip(visible.tolist(), first.tolist(), last.tolist()):
            if i0 >= i1:
                continue
            cols = u[i0:i1]
            rays = i0 + np.flatnonzero((cols >= rects[index, 0] - 1.0) & (cols <= rects[index, 1] + 1.0))
            if not len(rays):
                continue
            t_in, t_out = [], []
            for k in range(3):
                inv_k = inv[k][rays]
                t0, t1 = near[index, k] * inv_k, far[index, k] * inv_k
                t_in.append(np.minimum(t0, t1))
                t_out.append(np.maximum(t0, t1))
            enter = np.maximum(np.maximum(t_in[0], t_in[1]), t_in[2])
            leave = np.minimum(np.minimum(t_out[0], t_out[1]), t_out[2])
            hit = (enter > 0) & (enter < np.minimum(leave, depth[rays]))
            if not hit.any():
                continue
            hits = np.flatnonzero(hit)
            rays, enter = rays[hits], enter[hits]
            depth[rays] = enter
            target[rays] = index
            axis[rays] = np.where(t_in[2][hits] >= enter, 2, np.where(t_in[0][hits] >= enter, 0, 1))
    return Hits(depth=depth, target=target, axis=axis)


def _box_planes(camera_to_world: np.ndarray, lower: np.ndarray, upper: np.ndarray, dtype):
    """Box corners relative to the camera centre, in `dtype`, and the camera's height."""
    origin = camera_to_world[:3, 3]
    return (lower - origin).astype(dtype), (upper - origin).astype(dtype), dtype(origin[2])
