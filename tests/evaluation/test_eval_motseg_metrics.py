"""Motion segmentation metrics: parity with the reference sweep and hand-computed cases."""

import numpy as np
import pytest
import torch

from dynamo_core.errors import DataError
from dynamo_core.evaluation import (
    MotionSegAccumulator,
    average_precision,
    default_thresholds,
    false_positives_by_class,
)

RTOL = 1e-5


@pytest.fixture(scope="module")
def motseg_fixture(metrics_file) -> dict:
    return metrics_file["motseg"]


def test_parity_precision_recall_f1_every_threshold(motseg_fixture):
    accumulator = MotionSegAccumulator(motseg_fixture["thresholds"])
    accumulator.update(motseg_fixture["motion_prob"], motseg_fixture["gt_mot_mask"])
    result = accumulator.compute()
    for name in ("precision", "recall", "f1"):
        expected = motseg_fixture[name].double().numpy()
        got = getattr(result, name)
        assert got.shape == expected.shape, name
        np.testing.assert_allclose(got, expected, rtol=RTOL, atol=1e-12, err_msg=name)


def test_parity_default_thresholds(motseg_fixture):
    expected = motseg_fixture["thresholds"]
    assert torch.equal(default_thresholds(expected.numel()), expected)


def test_parity_streaming_one_image_at_a_time(motseg_fixture):
    prob, labels = motseg_fixture["motion_prob"], motseg_fixture["gt_mot_mask"]
    whole = MotionSegAccumulator(motseg_fixture["thresholds"])
    whole.update(prob, labels)
    streamed = MotionSegAccumulator(motseg_fixture["thresholds"])
    for i in range(prob.shape[0]):
        streamed.update(prob[i : i + 1], labels[i : i + 1])
    a, b = whole.compute(), streamed.compute()
    np.testing.assert_array_equal(a.true_positives, b.true_positives)
    np.testing.assert_array_equal(a.false_positives, b.false_positives)
    np.testing.assert_array_equal(a.false_negatives, b.false_negatives)
    np.testing.assert_allclose(b.f1, motseg_fixture["f1"].double().numpy(), rtol=RTOL, atol=1e-12)


def _four_pixels():
    # probabilities 0.9 0.6 0.4 0.1 with labels moving, background, moving, static
    prob = torch.tensor([[[[0.9, 0.6], [0.4, 0.1]]]])
    labels = torch.tensor([[[1, 0], [1, 2]]], dtype=torch.uint8)
    return prob, labels


def test_counts_hand_computed():
    prob, labels = _four_pixels()
    accumulator = MotionSegAccumulator(torch.tensor([0.0, 0.5, 0.8]))
    accumulator.update(prob, labels)
    result = accumulator.compute()
    # t=0: all four positive; t=0.5: 0.9 and 0.6; t=0.8: 0.9 only.
    np.testing.assert_array_equal(result.true_positives, [2, 1, 1])
    np.testing.assert_array_equal(result.false_positives, [2, 1, 0])
    np.testing.assert_array_equal(result.false_negatives, [0, 1, 1])
    np.testing.assert_allclose(result.precision, [0.5, 0.5, 1.0])
    np.testing.assert_allclose(result.recall, [1.0, 0.5, 0.5])
    np.testing.assert_allclose(result.f1, [2 / 3, 0.5, 2 / 3])
    assert result.best_index == 0 and result.best_threshold == 0.0
    # Recall rises 0 -> 0.5 at t=0.8 (precision 1), then 0.5 -> 1 at t=0 (precision 0.5).
    assert result.average_precision == pytest.approx(0.5 * 1.0 + 0.5 * 0.5)


def test_unlabeled_pixels_are_never_false_positives():
    prob, labels = _four_pixels()
    thresholds = torch.tensor([0.0, 0.5, 0.8])
    plain = MotionSegAccumulator(thresholds)
    plain.update(prob, labels)
    with_unlabeled = MotionSegAccumulator(thresholds)
    with_unlabeled.update(torch.cat([prob, torch.full_like(prob, 0.95)]),
                          torch.cat([labels, torch.full_like(labels, 3)]))
    a, b = plain.compute(), with_unlabeled.compute()
    np.testing.assert_array_equal(a.false_positives, b.false_positives)
    np.testing.assert_array_equal(a.true_positives, b.true_positives)
    np.testing.assert_array_equal(a.false_negatives, b.false_negatives)


def test_positive_means_strictly_above_threshold():
    accumulator = MotionSegAccumulator(torch.tensor([0.25, 0.5]))
    accumulator.update(torch.tensor([[0.5]]), torch.tensor([[1]]))
    np.testing.assert_array_equal(accumulator.compute().true_positives, [1, 0])


def test_perfect_classifier_has_ap_one():
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 4, (2, 9, 11), generator=generator)
    prob = (labels == 1).float()[:, None]
    accumulator = MotionSegAccumulator()
    accumulator.update(prob, labels)
    result = accumulator.compute()
    assert result.average_precision == pytest.approx(1.0)
    assert result.best_f1 == pytest.approx(1.0)
    assert result.precision[0] < 1  # at the lowest threshold every pixel is positive


def test_average_precision_hand_computed():
    assert average_precision([0.5, 0.5, 1.0], [1.0, 0.5, 0.5]) == pytest.approx(0.75)
    # Recall 0 everywhere: nothing was found.
    assert average_precision([0.0, 0.0], [0.0, 0.0]) == 0.0
    assert average_precision([1 / 3, 0.5, 1.0, 0.0], [1.0, 1.0, 0.5, 0.0]) == pytest.approx(0.5 * 1.0 + 0.5 * 0.5)


def test_false_positives_by_class_hand_computed():
    prob = torch.tensor([[0.9, 0.8, 0.7], [0.2, 0.95, 0.6]])
    labels = torch.tensor([[0, 1, 2], [0, 3, 0]], dtype=torch.uint8)
    semantic = torch.tensor([[4, 4, 5], [4, 6, 5]], dtype=torch.uint8)
    # Above 0.5: (0,0) bg sem 4 -> FP; (0,1) moving -> TP; (0,2) static sem 5 -> FP;
    # (1,1) unlabeled -> ignored; (1,2) bg sem 5 -> FP.
    assert false_positives_by_class(prob, labels, semantic, 0.5) == {4: 1, 5: 2}
    assert false_positives_by_class(prob[None, None], labels[None], semantic[None], 0.65) == {4: 1, 5: 1}
    assert false_positives_by_class(prob, labels, semantic, 0.99) == {}


def test_bad_inputs_are_rejected():
    with pytest.raises(DataError, match="strictly increasing"):
        MotionSegAccumulator(torch.tensor([0.5, 0.5]))
    accumulator = MotionSegAccumulator()
    with pytest.raises(DataError, match="does not match"):
        accumulator.update(torch.zeros(1, 1, 4, 4), torch.zeros(1, 4, 5))
    with pytest.raises(DataError, match="NaN"):
        accumulator.update(torch.full((1, 1, 2, 2), float("nan")), torch.zeros(1, 2, 2))
    with pytest.raises(DataError, match="sem_mask"):
        false_positives_by_class(torch.zeros(2, 2), torch.zeros(2, 2), torch.zeros(3, 2), 0.5)
