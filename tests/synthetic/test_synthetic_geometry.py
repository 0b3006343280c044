"""The written ground truth is geometrically exact: depth, scene flow, odometry and intrinsics agree."""

from __future__ import annotations

import numpy as np

from synthetic_files import (  # noqa: F401 (small_dataset is a fixture)
    camera_poses,
    dense_depth,
    image,
    intrinsics,
    masks,
    scene_flow,
    sequence_folders,
    small_dataset,
)

ROAD, SKY = 20, 25
MOVING = 1


def pixel_rays(K: np.ndarray, height: int, width: int) -> np.ndarray:
    """(3, H*W) rays K^-1 [u, v, 1] through the pixel centres (u = column, v = row)."""
    rows, cols = np.mgrid[0:height, 0:width]
    pixels = np.stack([cols.reshape(-1), rows.reshape(-1), np.ones(height * width)])
    return np.linalg.inv(K) @ pixels


def road_plane_depth(K, pose, u, v) -> np.ndarray:
    """Depth along the optical axis where rays through pixel coordinates (u, v) meet the plane z = 0."""
    rays = np.linalg.inv(K) @ np.stack([u, v, np.ones_like(u)])
    world = pose[:3, :3] @ rays  # rays have camera z = 1, so the ray parameter is the depth
    return -pose[2, 3] / world[2]


def test_road_depth_is_the_ray_plane_distance(small_dataset):
    checked = 0
    for front in sequence_folders(small_dataset):
        K, height, width = intrinsics(front)
        poses = camera_poses(front)
        for frame in (0, 3):
            depth = dense_depth(front, frame)
            road = masks(front, frame)["semantic"] == ROAD
            rows, cols = np.nonzero(road)
            expected = road_plane_depth(K, poses[frame], cols.astype(float), rows.astype(float))
            np.testing.assert_allclose(depth[rows, cols], expected, rtol=1e-3)  # float16 storage
            checked += len(rows)
    assert checked > 10_000


def test_lidar_points_lie_on_the_surfaces_they_hit(small_dataset):
    for front in sequence_folders(small_dataset):
        K, height, width = intrinsics(front)
        poses = camera_poses(front)
        for frame in (1, 4):
            points = np.load(front / "depth" / f"{frame:06d}.npy")
            assert points.dtype == np.float32 and points.ndim == 2 and points.shape[1] == 3
            col, row, depth = points.T.astype(np.float64)
            assert len(points) > 1000
            assert np.all((col >= 0) & (col <= width - 1) & (row >= 0) & (row <= height - 1))
            assert np.all((depth > 0) & (depth < 80))
            semantic = masks(front, frame)["semantic"][np.rint(row).astype(int), np.rint(col).astype(int)]
            assert not np.any(semantic == SKY)
            # 64 scan lines.
            assert len(np.unique(row)) == 64
            # Points whose nearest pixel is road lie on the road plane, up to the few at object edges.
            on_road = semantic == ROAD
            expected = road_plane_depth(K, poses[frame], col[on_road], row[on_road])
            exact = np.isclose(depth[on_road], expected, rtol=1e-5)
            assert exact.mean() > 0.97


def test_scene_flow_is_non_zero_exactly_on_moving_pixels(small_dataset):
    moving_pixels = 0
    for front in sequence_folders(small_dataset):
        for frame in range(5):
            flow = scene_flow(front, frame)
            motion = masks(front, frame)["motion"]
            assert flow.shape == motion.shape + (3,)
            moving = motion == MOVING
            assert np.all(np.linalg.norm(flow[moving], axis=1) > 0.05)
            assert np.all(flow[~moving] == 0)
            moving_pixels += moving.sum()
    assert moving_pixels > 100


def _warp_check(front, frame, use_flow: bool):
    """Back-project frame k with its dense depth, move by scene flow and the relative pose, project
    into frame k+1. Returns which pixels land in view, which agree with the next dense depth, the
    moving mask and the photometric error of the warp."""
    K, height, width = intrinsics(front)
    poses = camera_poses(front)
    depth = dense_depth(front, frame).reshape(-1)
    points = pixel_rays(K, height, width) * depth
    if use_flow:
        points = points + scene_flow(front, frame).reshape(-1, 3).T
    T_next_this = np.linalg.inv(poses[frame + 1]) @ poses[frame]
    moved = T_next_this[:3, :3] @ points + T_next_this[:3, 3:]
    z = moved[2]
    with np.errstate(divide="ignore", invalid="ignore"):
        u, v = (K @ moved)[:2] / z
    in_view = (depth > 0) & (z > 0.5) & (u >= 0) & (u <= width - 1) & (v >= 0) & (v <= height - 1)
    u, v = np.where(in_view, u, 0), np.where(in_view, v, 0)

    # Inverse depth is affine in pixel coordinates on a plane, so bilinear interpolation of it is exact.
    next_depth = dense_depth(front, frame + 1)
    inverse = np.where(next_depth > 0, 1.0 / np.maximum(next_depth, 1e-9), 0.0)
    c0, r0 = np.minimum(np.floor(u).astype(int), width - 2), np.minimum(np.floor(v).astype(int), height - 2)
    a, b = u - c0, v - r0
    corners = [inverse[r0, c0], inverse[r0, c0 + 1], inverse[r0 + 1, c0], inverse[r0 + 1, c0 + 1]]
    valid = in_view & np.all([c > 0 for c in corners], axis=0)
    weights = [(1 - a) * (1 - b), a * (1 - b), (1 - a) * b, a * b]
    predicted = sum(w * c for w, c in zip(weights, corners))
    agree = valid & (np.abs(predicted * z - 1.0) < 0.01)

    colour_next = image(front, frame + 1)
    neighbours = [(r0, c0), (r0, c0 + 1), (r0 + 1, c0), (r0 + 1, c0 + 1)]
    sampled = sum(w[:, None] * colour_next[r, c] for w, (r, c) in zip(weights, neighbours))
    photometric = np.abs(sampled - image(front, frame).reshape(-1, 3)).mean(axis=1)
    moving = masks(front, frame)["motion"].reshape(-1) == MOVING
    return valid, agree, moving, photometric


def test_intrinsics_odometry_and_flow_reproject_dense_depth_into_the_next_frame(small_dataset):
    totals = dict(valid=0, agree=0, moving=0, moving_agree=0)
    for front in sequence_folders(small_dataset):
        for frame in (0, 2):
            valid, agree, moving, _ = _warp_check(front, frame, use_flow=True)
            totals["valid"] += valid.sum()
            totals["agree"] += agree.sum()
            totals["moving"] += (valid & moving).sum()
            totals["moving_agree"] += (agree & moving).sum()
    assert totals["valid"] > 50_000
    # What disagrees is occlusion and surface edges between pixel centres.
    assert totals["agree"] / totals["valid"] > 0.94
    assert totals["moving"] > 300
    assert totals["moving_agree"] / totals["moving"] > 0.9


def test_ignoring_scene_flow_breaks_the_reprojection_of_moving_objects(small_dataset):
    """The check above is sensitive to the flow: front and back faces of vehicles then miss.

    (A vehicle's side faces slide within their own plane, so depth alone cannot see their motion.)"""
    with_flow = without_flow = 0
    for front in sequence_folders(small_dataset):
        for frame in (0, 2):
            valid, agree, moving, _ = _warp_check(front, frame, use_flow=True)
            _, static_agree, _, _ = _warp_check(front, frame, use_flow=False)
            with_flow += (agree & moving).sum()
            without_flow += (static_agree & moving & valid).sum()
    assert without_flow < 0.5 * with_flow


def test_textures_are_fixed_to_their_surfaces(small_dataset):
    """Photometric constancy: warping the next frame with the true geometry reproduces this frame."""
    for front in sequence_folders(small_dataset):
        valid, agree, moving, error = _warp_check(front, 1, use_flow=True)
        _, _, _, error_without_flow = _warp_check(front, 1, use_flow=False)
        assert error[agree].mean() < 0.025
        if (agree & moving).sum() > 50:
            assert error[agree & moving].mean() < 0.5 * error_without_flow[valid & moving].mean()


def test_odometry_is_a_forward_drive_at_camera_height(small_dataset):
    for front in sequence_folders(small_dataset):
        vehicle = np.loadtxt(front / "odometry.txt", ndmin=2).reshape(-1, 4, 4)
        assert len(vehicle) == 5
        np.testing.assert_allclose(vehicle[:, 3], np.tile([0.0, 0.0, 0.0, 1.0], (5, 1)))
        rotations = vehicle[:, :3, :3]
        np.testing.assert_allclose(rotations @ rotations.transpose(0, 2, 1), np.tile(np.eye(3), (5, 1, 1)), atol=1e-12)
        assert np.all((vehicle[:, 2, 3] >= 1.5) & (vehicle[:, 2, 3] <= 1.7))
        for k in range(4):
            step = np.linalg.inv(vehicle[k]) @ vehicle[k + 1]
            # Forward is +x in the vehicle convention; the motion is mostly forward, with a small yaw.
            assert 0.5 <= step[0, 3] <= 1.5
            assert abs(step[1, 3]) < 0.1 and abs(step[2, 3]) < 1e-9
            assert abs(np.arctan2(step[1, 0], step[0, 0])) < np.radians(1.0)
