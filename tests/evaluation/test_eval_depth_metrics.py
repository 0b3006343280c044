"""Depth metrics: parity with the reference numbers and small hand-computed cases."""

import math

import pytest
import torch

from dynamo_core.errors import DataError
from dynamo_core.evaluation import (
    DEPTH_EVAL_DEFAULTS,
    DEPTH_METRIC_NAMES,
    compute_depth_errors,
    mean_depth_errors,
    merge_label_sums,
    region_means,
    score_depth_batch,
)

RTOL = 1e-5


@pytest.fixture(scope="module")
def metrics_fixture(metrics_file) -> dict:
    return metrics_file


def _score_fixture_case(case: dict):
    return score_depth_batch(
        case["disp_scaled"], case["depth_gt"], case["depth_valid"], case["gt_dim"],
        mask=case["mask"], img_bound=case["img_bound"],
        min_depth=float(case["min_depth"]), max_depth=float(case["max_depth"]),
    )


def _ours(name_in_fixture_order: list[str]) -> dict[str, str]:
    """The fixture lists the seven metrics in our order under its own names."""
    assert len(name_in_fixture_order) == len(DEPTH_METRIC_NAMES)
    return dict(zip(name_in_fixture_order, DEPTH_METRIC_NAMES))


def test_parity_depth_per_image_mean(metrics_fixture):
    case = metrics_fixture["depth"]
    scores = _score_fixture_case(case)
    assert len(scores.per_image) == case["disp_scaled"].shape[0]
    mean = mean_depth_errors(scores.per_image).as_dict()
    expected = case["expected_per_image_mean"]
    for theirs, ours in _ours(list(expected)).items():
        assert mean[ours] == pytest.approx(float(expected[theirs]), rel=RTOL), ours


def test_parity_depth_pooled_sums_by_label(metrics_fixture):
    case = metrics_fixture["depth"]
    by_label = _score_fixture_case(case).by_label
    expected = case["expected_by_label"]
    for theirs, ours in _ours(list(expected)).items():
        assert set(by_label[ours]) == {int(label) for label in expected[theirs]}, ours
        for label, (value_sum, count) in expected[theirs].items():
            got_sum, got_count = by_label[ours][int(label)]
            assert got_count == int(count), (ours, label)
            assert got_sum == pytest.approx(float(value_sum), rel=RTOL), (ours, label)


def test_parity_compute_errors(metrics_fixture):
    case = metrics_fixture["compute_errors"]
    got = compute_depth_errors(case["gt"], case["pred"])
    assert len(case["expected"]) == len(got)
    for name, value, expected in zip(DEPTH_METRIC_NAMES, got, case["expected"]):
        assert value == pytest.approx(float(expected), rel=RTOL), name


def test_compute_errors_hand_computed():
    # gt (1, 2), pred (2, 2): one point off by a factor 2, one exact.
    errors = compute_depth_errors(torch.tensor([1.0, 2.0]), torch.tensor([2.0, 2.0]))
    assert errors.abs_rel == pytest.approx(0.5)
    assert errors.sq_rel == pytest.approx(0.5)
    assert errors.rmse == pytest.approx(math.sqrt(0.5))
    assert errors.rmse_log == pytest.approx(math.log(2) / math.sqrt(2))
    # ratio 2 fails 1.25, 1.5625 and 1.953125: only the exact point counts.
    assert (errors.a1, errors.a2, errors.a3) == (0.5, 0.5, 0.5)
    assert tuple(errors.as_dict()) == DEPTH_METRIC_NAMES
    abs_rel, *_ = errors
    assert abs_rel == errors.abs_rel


def test_compute_errors_perfect_prediction():
    depth = torch.tensor([0.5, 3.0, 40.0, 79.0])
    errors = compute_depth_errors(depth, depth.clone())
    assert errors.abs_rel == 0 and errors.sq_rel == 0 and errors.rmse == 0 and errors.rmse_log == 0
    assert (errors.a1, errors.a2, errors.a3) == (1.0, 1.0, 1.0)


def test_compute_errors_rejects_bad_input():
    with pytest.raises(DataError, match="equal length"):
        compute_depth_errors(torch.ones(3), torch.ones(4))
    with pytest.raises(DataError, match="at least one"):
        compute_depth_errors(torch.ones(0), torch.ones(0))
    with pytest.raises(DataError, match="positive"):
        compute_depth_errors(torch.tensor([1.0, 0.0]), torch.ones(2))


def _dense_case(depth: torch.Tensor, disparity: torch.Tensor):
    """Ground truth at every pixel of (B, H, W) `depth`, predictions at the same size."""
    batch, height, width = depth.shape
    rows, cols = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    points = torch.stack([rows.flatten().float(), cols.flatten().float()], dim=1)
    depth_gt = torch.stack([torch.cat([points, d.reshape(-1, 1)], dim=1) for d in depth])
    counts = torch.full((batch,), height * width)
    gt_dim = torch.tensor([[height, width]] * batch)
    return disparity, depth_gt, counts, gt_dim


def _random_depth(batch=2, height=6, width=8, seed=0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return 1 + 49 * torch.rand(batch, height, width, generator=generator)


def test_perfect_prediction_scores_zero_error():
    depth = _random_depth()
    scores = score_depth_batch(*_dense_case(depth, (1 / depth)[:, None]))
    for errors in scores.per_image:
        assert errors.abs_rel == pytest.approx(0, abs=1e-6)
        assert errors.a1 == 1.0


def test_median_scaling_makes_scores_scale_invariant():
    depth = _random_depth(seed=1)
    noisy = depth * (1 + 0.2 * torch.rand(depth.shape, generator=torch.Generator().manual_seed(2)))
    base = score_depth_batch(*_dense_case(depth, (1 / noisy)[:, None]), max_depth=1000.0)
    doubled = score_depth_batch(*_dense_case(depth, (1 / (2 * noisy))[:, None]), max_depth=1000.0)
    for a, b in zip(base.per_image, doubled.per_image):
        assert a == pytest.approx(b, rel=1e-5)
    exact_double = score_depth_batch(*_dense_case(depth, (1 / (2 * depth))[:, None]))
    assert all(e.abs_rel == pytest.approx(0, abs=1e-6) for e in exact_double.per_image)


def test_crop_and_depth_range_exclude_points():
    depth = _random_depth(batch=1, height=10, width=10, seed=3)
    prediction = depth.clone()
    prediction[0, :5] *= 3  # wrong only in the top half
    disparity, depth_gt, counts, gt_dim = _dense_case(depth, (1 / prediction)[:, None])
    cropped = score_depth_batch(disparity, depth_gt, counts, gt_dim, img_bound=(0.5, 1.0, 0.0, 1.0))
    assert cropped.per_image[0].abs_rel == pytest.approx(0, abs=1e-6)
    full = score_depth_batch(disparity, depth_gt, counts, gt_dim)
    assert full.per_image[0].abs_rel > 0.1

    far = depth.clone()
    far[0, :5] = 200.0  # beyond max_depth, so ignored even with a wrong prediction
    disparity, depth_gt, counts, gt_dim = _dense_case(far, (1 / prediction)[:, None])
    in_range = score_depth_batch(disparity, depth_gt, counts, gt_dim, max_depth=80.0)
    assert in_range.per_image[0].abs_rel == pytest.approx(0, abs=1e-6)


def test_valid_counts_and_valid_flags_agree():
    depth = _random_depth(seed=4)
    noisy = depth * 1.3
    noisy[:, :2] *= 0.5
    disparity, depth_gt, counts, gt_dim = _dense_case(depth, (1 / noisy)[:, None])
    counts = torch.tensor([20, 35])
    padded = depth_gt.clone()
    for i, count in enumerate(counts):
        padded[i, count:] = 0  # padding rows must not be read
    flags = torch.arange(depth_gt.shape[1])[None, :] < counts[:, None]
    by_count = score_depth_batch(disparity, padded, counts, gt_dim)
    by_flag = score_depth_batch(disparity, padded, flags.float(), gt_dim)
    assert by_count.per_image == by_flag.per_image
    truncated = score_depth_batch(disparity[:1], depth_gt[:1, :20], torch.tensor([20]), gt_dim[:1])
    assert by_count.per_image[0] == truncated.per_image[0]


def test_label_sums_and_region_means():
    depth = _random_depth(batch=2, height=4, width=5, seed=5)
    prediction = depth * (1 + 0.3 * torch.rand(depth.shape, generator=torch.Generator().manual_seed(6)))
    mask = torch.zeros(2, 4, 5, dtype=torch.uint8)
    mask[:, 1:3, 1:4] = 1  # moving in both images
    mask[1, 3] = 7  # an extra label in image 1 only; no static (2) at all
    scores = score_depth_batch(*_dense_case(depth, (1 / prediction)[:, None]), mask=mask, max_depth=1000.0)

    # Rebuild the moving sums by hand from each image's median-scaled prediction.
    moving_sum, moving_count = 0.0, 0
    for i in range(2):
        scaled = prediction[i] * (depth[i].flatten().median() / prediction[i].flatten().median())
        selected = mask[i] == 1
        errors = compute_depth_errors(depth[i][selected], scaled[selected])
        moving_sum += errors.abs_rel * int(selected.sum())
        moving_count += int(selected.sum())
    assert scores.by_label["abs_rel"][1][1] == moving_count
    assert scores.by_label["abs_rel"][1][0] == pytest.approx(moving_sum, rel=1e-6)
    assert scores.by_label["a1"][7][1] == 5  # one row of five pixels
    assert set(scores.by_label["rmse"]) == {0, 1, 7}

    regions = region_means(scores.by_label)
    assert regions["moving"].abs_rel == pytest.approx(moving_sum / moving_count, rel=1e-6)
    assert all(math.isnan(value) for value in regions["static"])

    doubled = merge_label_sums(merge_label_sums({}, scores.by_label), scores.by_label)
    assert doubled["abs_rel"][1] == [pytest.approx(2 * moving_sum, rel=1e-6), 2 * moving_count]
    assert region_means(doubled)["moving"].abs_rel == pytest.approx(regions["moving"].abs_rel)
    assert scores.by_label["abs_rel"][1][1] == moving_count  # merging did not touch the batch sums


def test_no_mask_gives_no_label_sums():
    depth = _random_depth(batch=1, seed=7)
    assert score_depth_batch(*_dense_case(depth, (1 / depth)[:, None])).by_label == {}


def test_bad_batches_are_rejected():
    depth = _random_depth(batch=2, seed=8)
    disparity, depth_gt, counts, gt_dim = _dense_case(depth, (1 / depth)[:, None])
    with pytest.raises(DataError, match="no ground-truth point"):
        score_depth_batch(disparity, depth_gt, torch.tensor([0, 10]), gt_dim)
    with pytest.raises(DataError, match="depth_valid"):
        score_depth_batch(disparity, depth_gt, torch.ones(3), gt_dim)
    with pytest.raises(DataError, match="disp_scaled"):
        score_depth_batch(disparity[:, 0], depth_gt, counts, gt_dim)
    with pytest.raises(DataError, match="mask"):
        score_depth_batch(disparity, depth_gt, counts, gt_dim, mask=torch.zeros(2, 3, 3))
    with pytest.raises(DataError, match="img_bound"):
        score_depth_batch(disparity, depth_gt, counts, gt_dim, img_bound=(0.0, 1.2, 0.0, 1.0))
    with pytest.raises(DataError, match="no images"):
        mean_depth_errors([])


def test_dataset_defaults():
    kitti = DEPTH_EVAL_DEFAULTS["kitti"]
    assert kitti.max_depth == 80 and kitti.min_depth == 1e-3
    assert kitti.img_bound == pytest.approx((0.40810811, 0.99189189, 0.03594771, 0.96405229))
    for name in ("waymo", "nuscenes"):
        assert DEPTH_EVAL_DEFAULTS[name].img_bound == (0, 1, 0, 1)
        assert DEPTH_EVAL_DEFAULTS[name].max_depth == 75
    assert DEPTH_EVAL_DEFAULTS["synthetic"].img_bound == (0, 1, 0, 1)
    assert DEPTH_EVAL_DEFAULTS["synthetic"].max_depth == 80
