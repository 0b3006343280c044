"""Geometry: round trips, hand-computed cases, gradients and the ground plane."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dynamo_core.geometry import (
    axis_angle_to_matrix,
    backproject,
    depth_to_disp,
    disp_to_depth,
    edge_aware_smoothness,
    edge_weights,
    fit_ground_plane,
    grid_camera,
    ground_plane_depth,
    pixel_grid,
    PhotometricError,
    plane_distance,
    pose_vec_to_matrix,
    project,
    project_to_grid,
    ssim,
    transform_points,
    translation_matrix,
    upsample_bilinear,
)


def intrinsics(batch: int, height: int, width: int, dtype=torch.float32) -> torch.Tensor:
    K = torch.tensor(
        [[0.58 * width, 0, 0.5 * width, 0], [0, 1.92 * height, 0.5 * height, 0], [0, 0, 1, 0], [0, 0, 0, 1]],
        dtype=dtype,
    )
    return K.expand(batch, 4, 4).clone()


def identity_grid(height: int, width: int) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, height), torch.linspace(-1, 1, width), indexing="ij")
    return torch.stack([xs, ys], -1)


def test_pixel_grid_hand_case():
    grid = pixel_grid(2, 3)
    assert grid.tolist() == [[0, 1, 2, 0, 1, 2], [0, 0, 0, 1, 1, 1], [1, 1, 1, 1, 1, 1]]


def test_project_of_backproject_is_identity_on_pixels():
    batch, height, width = 3, 6, 10
    K = intrinsics(batch, height, width)
    depth = torch.rand(batch, 1, height, width) * 50 + 1
    points = backproject(depth, torch.linalg.inv(K))
    grid = project(points, K, height, width)
    torch.testing.assert_close(grid, identity_grid(height, width).expand(batch, -1, -1, -1), atol=1e-5, rtol=0)
    # The depth survives the round trip as the z coordinate.
    torch.testing.assert_close(points[:, 2].reshape(batch, 1, height, width), depth)


def test_backproject_hand_case():
    K = torch.eye(4)[None].clone()
    K[0, 0, 0], K[0, 1, 1], K[0, 0, 2], K[0, 1, 2] = 2.0, 4.0, 1.0, 0.5
    depth = torch.full((1, 1, 1, 2), 3.0)
    points = backproject(depth, torch.linalg.inv(K))
    # pixel (0, 0): x = (0 - 1) / 2 * 3 = -1.5, y = (0 - 0.5) / 4 * 3 = -0.375
    # pixel (1, 0): x = 0
    expected = torch.tensor([[[-1.5, 0.0], [-0.375, -0.375], [3.0, 3.0], [1.0, 1.0]]])
    torch.testing.assert_close(points, expected)


def test_axis_angle_quarter_turn_about_z():
    R = axis_angle_to_matrix(torch.tensor([[[0.0, 0.0, math.pi / 2]]]))
    torch.testing.assert_close(R[0, :3, :3] @ torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0]), atol=1e-6, rtol=0)
    assert R[0, 3].tolist() == [0.0, 0.0, 0.0, 1.0]


def test_zero_axis_angle_is_identity():
    torch.testing.assert_close(axis_angle_to_matrix(torch.zeros(2, 1, 3)), torch.eye(4).expand(2, 4, 4))


def test_translation_matrix_hand_case():
    T = translation_matrix(torch.tensor([[[1.0, 2.0, 3.0]]]))
    expected = torch.eye(4)
    expected[:3, 3] = torch.tensor([1.0, 2.0, 3.0])
    torch.testing.assert_close(T[0], expected)


def test_pose_times_inverse_is_identity():
    generator = torch.Generator().manual_seed(0)
    axis_angle = torch.randn(5, 1, 3, generator=generator, dtype=torch.float64)
    translation = torch.randn(5, 1, 3, generator=generator, dtype=torch.float64)
    forward = pose_vec_to_matrix(axis_angle, translation)
    inverse = pose_vec_to_matrix(axis_angle, translation, invert=True)
    eye = torch.eye(4, dtype=torch.float64).expand(5, 4, 4)
    # The axis is normalised by (angle + 1e-7), as in the released models, so R is orthogonal to ~1e-7.
    torch.testing.assert_close(forward @ inverse, eye, atol=1e-6, rtol=0)
    torch.testing.assert_close(inverse @ forward, eye, atol=1e-6, rtol=0)
    torch.testing.assert_close(torch.linalg.inv(forward), inverse, atol=1e-6, rtol=0)


def test_disp_depth_conversion():
    scaled, depth = disp_to_depth(torch.tensor([0.0, 1.0]), 0.1, 100.0)
    torch.testing.assert_close(depth, torch.tensor([100.0, 0.1]))
    torch.testing.assert_close(scaled, torch.tensor([0.01, 10.0]))
    disp = torch.rand(2, 1, 4, 4)
    torch.testing.assert_close(depth_to_disp(disp_to_depth(disp)[1]), disp, atol=1e-5, rtol=0)


def test_ssim_identical_images_is_zero():
    image = torch.rand(2, 3, 8, 8)
    assert ssim(image, image).abs().max() < 1e-4


def test_ssim_constant_images_hand_case():
    c1, c2 = 0.01**2, 0.03**2
    value = ssim(torch.zeros(1, 1, 4, 4), torch.ones(1, 1, 4, 4))
    expected = (1 - (c1 * c2) / ((1 + c1) * c2)) / 2
    torch.testing.assert_close(value, torch.full_like(value, expected))


def test_box_mean_equals_average_pooling_and_its_gradient():
    from dynamo_core.geometry.image import box_mean3

    x = torch.rand(2, 9, 13, 21, dtype=torch.float64, requires_grad=True)
    torch.testing.assert_close(box_mean3(x), F.avg_pool2d(x, 3, 1))
    weights = torch.rand(2, 9, 11, 19, dtype=torch.float64)
    ours = torch.autograd.grad((box_mean3(x) * weights).sum(), x)[0]
    pooled = torch.autograd.grad((F.avg_pool2d(x, 3, 1) * weights).sum(), x)[0]
    torch.testing.assert_close(ours, pooled)
    assert torch.autograd.gradcheck(box_mean3, (torch.rand(1, 2, 6, 7, dtype=torch.float64, requires_grad=True),))


@pytest.mark.parametrize("ssim_weight", [0.85, 0.3])
def test_photometric_error_equals_the_plain_formula_with_its_gradient(ssim_weight):
    generator = torch.Generator().manual_seed(3)
    target = torch.rand(2, 3, 9, 14, generator=generator, dtype=torch.float64)
    # Equal pixels put the L1 term at its kink; the reference's gradient there is 0.
    pred = torch.where(torch.rand(target.shape, generator=generator, dtype=torch.float64) < 0.1, target,
                       torch.rand(target.shape, generator=generator, dtype=torch.float64)).requires_grad_(True)
    weights = torch.rand(2, 1, 9, 14, generator=generator, dtype=torch.float64)
    ours = PhotometricError(target, ssim_weight)(pred)
    plain = ssim_weight * ssim(pred, target).mean(1, keepdim=True) + (1 - ssim_weight) * (target - pred).abs().mean(
        1, keepdim=True)
    torch.testing.assert_close(ours, plain)
    ours_grad = torch.autograd.grad((ours * weights).sum(), pred)[0]
    plain_grad = torch.autograd.grad((plain * weights).sum(), pred)[0]
    torch.testing.assert_close(ours_grad, plain_grad)
    assert ours_grad.abs().sum() > 0


def test_photometric_error_gradcheck_and_reuse_of_one_target():
    generator = torch.Generator().manual_seed(4)
    error = PhotometricError(torch.rand(1, 3, 6, 7, generator=generator, dtype=torch.float64), 0.85)
    for _ in range(2):
        pred = torch.rand(1, 3, 6, 7, generator=generator, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(error, (pred,))


def test_smoothness_of_a_ramp():
    ramp = torch.arange(5.0).mul(0.5).expand(1, 1, 4, 5)
    assert edge_aware_smoothness(ramp).item() == pytest.approx(0.5)
    # An image edge across every column halves nothing but scales by exp(-|grad|).
    image = torch.arange(5.0).expand(1, 3, 4, 5)
    assert edge_aware_smoothness(ramp, image).item() == pytest.approx(0.5 * math.exp(-1))


def test_shared_edge_weights_give_the_same_smoothness():
    generator = torch.Generator().manual_seed(5)
    image, field = torch.rand(2, 3, 6, 9, generator=generator), torch.rand(2, 3, 6, 9, generator=generator)
    across_x, across_y = edge_weights(image)
    assert across_x.shape == (2, 1, 6, 8) and across_y.shape == (2, 1, 5, 9)
    torch.testing.assert_close(edge_aware_smoothness(field, weights=(across_x, across_y)),
                               edge_aware_smoothness(field, image))
    assert edge_aware_smoothness(field, image) < edge_aware_smoothness(field)


def test_grid_camera_projection_equals_transform_then_project():
    batch, height, width = 2, 6, 10
    generator = torch.Generator().manual_seed(6)
    K = intrinsics(batch, height, width, torch.float64)
    depth = torch.rand(batch, 1, height, width, generator=generator, dtype=torch.float64) * 20 + 1
    points = backproject(depth, torch.linalg.inv(K))
    T = pose_vec_to_matrix(0.05 * torch.randn(batch, 1, 3, generator=generator, dtype=torch.float64),
                           0.3 * torch.randn(batch, 1, 3, generator=generator, dtype=torch.float64))
    expected = project(transform_points(T, points), K, height, width)
    ours = project_to_grid(points[:, :3], grid_camera(K, height, width) @ T, height, width)
    assert ours.shape == (batch, height, width, 2)
    torch.testing.assert_close(ours, expected)
    torch.testing.assert_close(project_to_grid(points[:, :3], grid_camera(K, height, width), height, width),
                               project(points, K, height, width))


@pytest.mark.parametrize("factor", [2, 3, 4, 8])
def test_upsample_bilinear_equals_interpolate_with_its_gradient(factor):
    generator = torch.Generator().manual_seed(factor)
    x = torch.rand(2, 3, 5, 7, generator=generator, dtype=torch.float64, requires_grad=True)
    ours = upsample_bilinear(x, factor)
    reference = F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
    assert ours.shape == (2, 3, 5 * factor, 7 * factor)
    torch.testing.assert_close(ours, reference)
    weights = torch.rand(reference.shape, generator=generator, dtype=torch.float64)
    torch.testing.assert_close(torch.autograd.grad((ours * weights).sum(), x)[0],
                               torch.autograd.grad((reference * weights).sum(), x)[0])
    assert torch.autograd.gradcheck(lambda t: upsample_bilinear(t, factor), (x[:1, :1, :3, :4].detach().requires_grad_(),))


def test_project_to_grid_gradcheck_float64():
    batch, height, width = 1, 3, 4
    generator = torch.Generator().manual_seed(7)
    camera = grid_camera(intrinsics(batch, height, width, torch.float64), height, width)
    points = torch.rand(batch, 3, height * width, generator=generator, dtype=torch.float64) + 2
    points[:, :2] -= 2.5
    assert torch.autograd.gradcheck(lambda p: project_to_grid(p, camera, height, width), (points.requires_grad_(),))


def test_warp_gradcheck_float64():
    batch, height, width = 1, 4, 5
    generator = torch.Generator().manual_seed(1)
    K = intrinsics(batch, height, width, torch.float64)
    image = torch.rand(batch, 3, height, width, generator=generator, dtype=torch.float64)
    depth = (torch.rand(batch, 1, height, width, generator=generator, dtype=torch.float64) * 5 + 5).requires_grad_()
    axis_angle = (0.01 * torch.randn(batch, 1, 3, generator=generator, dtype=torch.float64)).requires_grad_()
    translation = (0.05 * torch.randn(batch, 1, 3, generator=generator, dtype=torch.float64)).requires_grad_()

    def warp(depth, axis_angle, translation):
        T = pose_vec_to_matrix(axis_angle, translation, invert=True)
        points = transform_points(T, backproject(depth, torch.linalg.inv(K)))
        grid = project(points, K, height, width)
        return F.grid_sample(image, grid, padding_mode="border", align_corners=True)

    assert torch.autograd.gradcheck(warp, (depth, axis_angle, translation), eps=1e-6, atol=1e-5)


def _plane_points(planes: torch.Tensor, count: int, generator: torch.Generator, noise: float, outliers: float):
    batch = planes.shape[0]
    x = torch.rand(batch, count, generator=generator) * 20 - 10
    z = torch.rand(batch, count, generator=generator) * 40 + 2
    design = torch.stack([x, z, torch.ones_like(x)], -1)
    y = (design @ planes).squeeze(-1) + noise * torch.randn(batch, count, generator=generator)
    bad = torch.rand(batch, count, generator=generator) < outliers
    y = torch.where(bad, y - 1 - 5 * torch.rand(batch, count, generator=generator), y)
    return torch.stack([x, y, z], 1)  # (B, 3, N)


# The original's form (the best 5-point hypothesis) is noisier than the refit on noisy points.
BOTH_FORMS = pytest.mark.parametrize("refit, atol", [(False, 5e-3), (True, 2e-3)], ids=["hypothesis", "refit"])


@BOTH_FORMS
def test_ransac_recovers_planes_with_noise_and_outliers_batched(refit, atol):
    generator = torch.Generator().manual_seed(3)
    planes = torch.tensor([[[0.01], [-0.02], [1.6]], [[-0.03], [0.01], [1.5]], [[0.0], [0.0], [1.7]]])
    height, width = 20, 30
    points = _plane_points(planes, height * width, generator, noise=0.002, outliers=0.3)
    fitted = fit_ground_plane(
        points.reshape(3, 3, height, width),
        prior=1.0,
        tolerance=0.01,
        hypotheses=50,
        generator=torch.Generator().manual_seed(0),
        refit=refit,
    )
    torch.testing.assert_close(fitted, planes, atol=atol, rtol=0)


@pytest.mark.parametrize("refit", [False, True])
def test_ransac_exact_plane_and_seeded(refit):
    generator = torch.Generator().manual_seed(4)
    planes = torch.tensor([[[0.05], [0.02], [1.55]], [[0.0], [-0.01], [1.65]]])
    points = _plane_points(planes, 400, generator, noise=0.0, outliers=0.0).reshape(2, 3, 20, 20)
    first = fit_ground_plane(points, prior=0.5, generator=torch.Generator().manual_seed(7), refit=refit)
    second = fit_ground_plane(points, prior=0.5, generator=torch.Generator().manual_seed(7), refit=refit)
    torch.testing.assert_close(first, planes, atol=1e-4, rtol=0)
    assert torch.equal(first, second)
    distances = plane_distance(points.reshape(2, 3, -1).transpose(1, 2), first)
    assert distances.abs().max() < 1e-3


def _ridge_plane(points: np.ndarray, weight: np.ndarray | None = None) -> np.ndarray:
    """(N, 3) points -> (3,) [w1, w2, w3] of y = w1 x + w2 z + w3: (AᵀA + 1e-6 everywhere) w = Aᵀy, in float64."""
    A = np.stack([points[:, 0], points[:, 2], np.ones(len(points))], 1)
    Aw = A if weight is None else A * weight[:, None]
    return np.linalg.solve(Aw.T @ A + 1e-6, Aw.T @ points[:, 1])


def test_ransac_default_returns_the_best_sampled_hypothesis_unrefitted():
    """The original's form: the 5-point ridge plane with most inliers, not a refit to its inliers."""
    generator = torch.Generator().manual_seed(12)
    planes = torch.tensor([[[0.02], [-0.01], [1.6]], [[-0.01], [0.02], [1.5]]])
    height, width, hypotheses, tolerance = 20, 30, 25, 0.01
    points = _plane_points(planes, height * width, generator, noise=0.005, outliers=0.3).reshape(2, 3, height, width)
    fitted = fit_ground_plane(
        points, prior=1.0, tolerance=tolerance, hypotheses=hypotheses, generator=torch.Generator().manual_seed(2)
    )
    refitted = fit_ground_plane(
        points,
        prior=1.0,
        tolerance=tolerance,
        hypotheses=hypotheses,
        generator=torch.Generator().manual_seed(2),
        refit=True,
    )

    # The same draws as the fit: 5 indices per hypothesis, with replacement, row-major over (B, K * 5).
    index = torch.randint(height * width, (2, hypotheses * 5), generator=torch.Generator().manual_seed(2)).numpy()
    candidates = points.reshape(2, 3, -1).transpose(1, 2).double().numpy()  # (B, N, 3)
    for b in range(2):
        cloud = candidates[b]
        sampled = cloud[index[b]].reshape(hypotheses, 5, 3)
        options = np.stack([_ridge_plane(sample) for sample in sampled])  # (K, 3)
        residual = cloud[:, 0:1] * options[:, 0] + cloud[:, 2:3] * options[:, 1] + options[:, 2] - cloud[:, 1:2]
        inliers = (np.abs(residual) < tolerance).sum(0)  # (K,)
        best = int(np.argmax(inliers))
        np.testing.assert_allclose(fitted[b, :, 0].double().numpy(), options[best], atol=1e-5, rtol=0)
        # The refit option is the least-squares plane of that hypothesis's inliers, a measurably different one.
        mask = (np.abs(residual[:, best]) < tolerance).astype(np.float64)
        np.testing.assert_allclose(refitted[b, :, 0].double().numpy(), _ridge_plane(cloud, mask), atol=1e-4, rtol=0)
        assert np.abs(options[best] - _ridge_plane(cloud, mask)).max() > 1e-3


def test_ransac_survives_degenerate_samples():
    """Points with one x / z (all samples singular under the rank-one ridge) still give a finite plane."""
    points = torch.zeros(2, 3, 6, 8)
    points[1, 1] = 1.5  # every point at (0, 1.5, 0)
    for refit in (False, True):
        fitted = fit_ground_plane(points, prior=1.0, generator=torch.Generator().manual_seed(0), refit=refit)
        assert torch.isfinite(fitted).all()
        distances = plane_distance(points.reshape(2, 3, -1).transpose(1, 2), fitted)
        assert distances.abs().max() < 1e-4


@pytest.mark.parametrize("refit", [False, True])
def test_ransac_counts_in_chunks_as_in_one_pass(monkeypatch, refit):
    from dynamo_core.geometry import ground

    generator = torch.Generator().manual_seed(8)
    planes = torch.tensor([[[0.02], [-0.01], [1.6]], [[0.0], [0.03], [1.5]]])
    height, width = 60, 400  # 24,000 candidates: several chunks, the last one partial
    points = _plane_points(planes, height * width, generator, noise=0.002, outliers=0.4).reshape(2, 3, height, width)
    options = dict(prior=1.0, tolerance=0.01, hypotheses=40, refit=refit)
    chunked = fit_ground_plane(points, generator=torch.Generator().manual_seed(1), **options)
    monkeypatch.setattr(ground, "_CHUNK", 10**9)
    whole = fit_ground_plane(points, generator=torch.Generator().manual_seed(1), **options)
    assert height * width > 2 * 8192
    torch.testing.assert_close(chunked, whole, atol=1e-6, rtol=0)
    torch.testing.assert_close(chunked, planes, atol=5e-3 if not refit else 2e-3, rtol=0)


def test_ground_plane_depth_matches_backprojected_plane():
    batch, height, width = 2, 8, 12
    K = intrinsics(batch, height, width)
    planes = torch.tensor([[[0.0], [0.0], [1.5]], [[0.02], [0.01], [1.6]]])
    depth = ground_plane_depth(planes, torch.linalg.inv(K), height, width, max_depth=100.0)
    # Pixels below the horizon hit the plane: their back-projected points lie on it.
    below = depth < 100.0
    assert below[:, :, height // 2 + 1 :].all()
    points = backproject(depth, torch.linalg.inv(K))[:, :3].transpose(1, 2)
    distance = plane_distance(points, planes).reshape(batch, 1, height, width)
    assert distance[below].abs().max() < 1e-4
    # Rays at or above the horizon never meet the road.
    assert (depth[:, :, : height // 2] == 100.0).all()
