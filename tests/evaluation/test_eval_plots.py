"""Figures: both formats are written, atomically, from plain arrays."""

import numpy as np
import pytest
from matplotlib.figure import Figure

from dynamo_core.errors import DataError
from dynamo_core.evaluation.plots import save_false_positive_bars, save_pr_curve


def _is_png(path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _is_pdf(path) -> bool:
    return path.read_bytes()[:5] == b"%PDF-"


def test_pr_curve_written_as_pdf_and_png(tmp_path):
    recall = np.linspace(1, 0, 20)
    precision = 0.2 + 0.8 * (1 - recall**2)
    written = save_pr_curve(precision, recall, tmp_path / "figs" / "pr_curve.png",
                            baseline=0.2, best_index=10, label="AP 0.75")
    assert [p.name for p in written] == ["pr_curve.pdf", "pr_curve.png"]
    assert _is_pdf(written[0]) and _is_png(written[1])
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == ["pr_curve.pdf", "pr_curve.png"]


def test_false_positive_bars_written(tmp_path):
    written = save_false_positive_bars(["car", "road", "sign"], [5, 30, 0], tmp_path / "fp_tally")
    assert _is_pdf(written[0]) and _is_png(written[1])
    # No false positive at all still draws an (empty) chart.
    assert len(save_false_positive_bars(["car"], [0], tmp_path / "none")) == 2


def test_failed_write_leaves_nothing_behind(tmp_path, monkeypatch):
    (tmp_path / "pr.pdf").write_bytes(b"previous")

    def broken_savefig(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", broken_savefig)
    with pytest.raises(OSError):
        save_pr_curve([1.0, 0.5], [0.5, 1.0], tmp_path / "pr")
    assert [p.name for p in tmp_path.iterdir()] == ["pr.pdf"]
    assert (tmp_path / "pr.pdf").read_bytes() == b"previous"


def test_bad_arrays_are_rejected(tmp_path):
    with pytest.raises(DataError, match="precision"):
        save_pr_curve([1.0, 0.5], [0.5], tmp_path / "pr")
    with pytest.raises(DataError, match="one entry per class"):
        save_false_positive_bars(["car", "road"], [1], tmp_path / "fp")
    assert list(tmp_path.iterdir()) == []
