"""Evaluation figures, written as PDF and PNG side by side.

Figures are drawn with matplotlib's object API on the Agg canvas (no pyplot, no display),
and each file is written to a temporary file in the target folder and moved into place.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from dynamo_core.atomic_files import atomic_output
from dynamo_core.errors import DataError

FIGURE_FORMATS = ("pdf", "png")


def _output_stem(path: str | os.PathLike) -> Path:
    """'out/pr_curve', 'out/pr_curve.pdf' or 'out/pr_curve.png' -> Path('out/pr_curve')."""
    path = Path(path)
    return path.with_suffix("") if path.suffix.lower() in {f".{fmt}" for fmt in FIGURE_FORMATS} else path


def _save_atomic(figure: Figure, path: Path, fmt: str) -> None:
    with atomic_output(path) as stream:
        figure.savefig(stream, format=fmt, dpi=150, bbox_inches="tight")


def save_png(figure: Figure, path: str | os.PathLike) -> Path:
    """One figure as a PNG only, written atomically."""
    target = _output_stem(path).with_suffix(".png")
    _save_atomic(figure, target, "png")
    return target


def _save_all(figure: Figure, path: str | os.PathLike) -> list[Path]:
    stem = _output_stem(path)
    written = []
    for fmt in FIGURE_FORMATS:
        target = stem.parent / f"{stem.name}.{fmt}"
        _save_atomic(figure, target, fmt)
        written.append(target)
    return written


def save_pr_curve(
    precision: Sequence[float],
    recall: Sequence[float],
    path: str | os.PathLike,
    *,
    baseline: float | None = None,
    best_index: int | None = None,
    label: str | None = None,
    title: str = "Motion segmentation PR curve",
) -> list[Path]:
    """Plot a precision-recall curve and save it as `<path>.pdf` and `<path>.png`.

    Args:
        precision, recall: (T,) values of a threshold sweep; points with recall 0 are not drawn.
        path: output path, with or without a .pdf/.png suffix.
        baseline: precision drawn as a dotted horizontal line (e.g. that of predicting every pixel).
        best_index: index of a point to mark (e.g. the best F1).
        label: legend text of the curve (e.g. "AP 0.61").
    Returns:
        the written paths, PDF first.
    """
    precision = np.asarray(precision, dtype=np.float64)
    recall = np.asarray(recall, dtype=np.float64)
    if precision.ndim != 1 or precision.shape != recall.shape or precision.size == 0:
        raise DataError(f"precision {precision.shape} and recall {recall.shape} must be non-empty 1-D of equal length")

    figure = Figure(figsize=(5, 4.5))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    drawn = recall > 0
    axes.plot(recall[drawn], precision[drawn], color="C0", label=label)
    if baseline is not None:
        axes.axhline(baseline, linestyle=":", color="C0", label=f"baseline {baseline:.3f}")
    if best_index is not None:
        axes.plot([recall[best_index]], [precision[best_index]], "o", color="C3",
                  label=f"best F1 (P {precision[best_index]:.3f}, R {recall[best_index]:.3f})")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.set_xlabel("Recall")
    axes.set_ylabel("Precision")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    if label is not None or baseline is not None or best_index is not None:
        axes.legend(loc="lower left")
    return _save_all(figure, path)


def save_false_positive_bars(
    class_names: Sequence[str],
    counts: Sequence[int],
    path: str | os.PathLike,
    *,
    title: str = "Motion segmentation false positives by class",
) -> list[Path]:
    """Bar chart of each class's share of all false-positive pixels, largest first.

    Args:
        class_names: (C,) class names.
        counts: (C,) false-positive pixel counts.
        path: output path, with or without a .pdf/.png suffix; written as PDF and PNG.
    Returns:
        the written paths, PDF first.
    """
    names = [str(name) for name in class_names]
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 1 or len(names) != counts.size:
        raise DataError(f"class_names ({len(names)}) and counts {counts.shape} must have one entry per class")
    if (counts < 0).any():
        raise DataError("false-positive counts must not be negative")
    total = counts.sum()
    shares = counts / total if total > 0 else counts
    order = np.argsort(-shares, kind="stable")

    figure = Figure(figsize=(max(6.0, 0.45 * len(names) + 2), 4.5))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.bar([names[i] for i in order], shares[order], color="C0")
    axes.tick_params(axis="x", labelrotation=60)
    axes.set_ylim(0, 1)
    axes.set_ylabel("Share of false positives")
    axes.set_title(f"{title} ({int(total)} pixels)")
    return _save_all(figure, path)
