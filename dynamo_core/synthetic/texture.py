"""Band-limited procedural patterns: multi-octave value noise and box-filtered stripes.

Every pattern is a function of surface coordinates only (metres, in the surface's own frame),
so a surface looks the same from every viewpoint. `footprint` is the width of surface seen by
one sample; detail finer than it is faded out (value noise) or integrated exactly (stripes),
which keeps distant texture from aliasing.
"""

from __future__ import annotations

import numpy as np

_SIDE = 256
# One fixed lattice of random values, with its first row and column repeated after the last
# so that the four corners of a cell are at fixed offsets; surfaces read it at different offsets.
_CORE = np.random.default_rng(20231110).random((_SIDE, _SIDE)).astype(np.float32)
_LATTICE = np.pad(_CORE, ((0, 1), (0, 1)), mode="wrap").reshape(-1)
_STRIDE = _SIDE + 1
# Extra lattice shift per octave, so that octaves of one surface are unrelated.
_OCTAVE_SHIFT = np.float32(61.0)


def lattice_offsets(seeds: np.ndarray) -> np.ndarray:
    """(..., 2) float32 lattice offsets in [0, 256) from integer surface seeds (...)."""
    value = np.asarray(seeds, dtype=np.int64) & 0xFFFFFFFF
    pair = np.stack([value * 2654435761, value * 2246822519 + 374761393], axis=-1) & 0xFFFFFFFF
    pair ^= pair >> 15
    pair = (pair * 668265263) & 0xFFFFFFFF
    pair ^= pair >> 13
    return (pair & (_SIDE - 1)).astype(np.float32)


def value_noise(
    p: np.ndarray,
    q: np.ndarray,
    offsets: np.ndarray,
    cells: tuple[float, ...],
    footprint: np.ndarray,
) -> np.ndarray:
    """Sum of value-noise octaves, normalised to mean 0.5 and range [0, 1].

    Args:
        p, q: (N,) float32 surface coordinates in metres.
        offsets: (2,) or (N, 2) lattice offsets of each sample's surface (`lattice_offsets`).
        cells: lattice spacing of each octave in metres, coarse to fine; amplitude halves per octave.
        footprint: (N,) metres of surface covered by one sample.
    Returns:
        (N,) float32.
    """
    offsets = np.asarray(offsets, dtype=np.float32)
    offset_p, offset_q = np.ascontiguousarray(offsets[..., 0]), np.ascontiguousarray(offsets[..., 1])
    inverse_footprint = np.float32(1.0) / footprint.astype(np.float32)
    finest = float(inverse_footprint.max(initial=0.0))
    coarsest = float(inverse_footprint.min(initial=np.inf))
    total = np.zeros(p.shape, dtype=np.float32)
    weight_sum = 0.0
    amplitude = 1.0
    for octave, cell in enumerate(cells):
        weight_sum += amplitude
        if cell * finest <= 1.0:  # finer than every sample: only its mean remains
            total += np.float32(0.5 * amplitude)
            amplitude *= 0.5
            continue
        shift = _OCTAVE_SHIFT * octave
        x = p * np.float32(1.0 / cell) + (offset_p + shift)
        y = q * np.float32(1.0 / cell) + (offset_q + shift)
        fx, fy = np.floor(x), np.floor(y)
        tx, ty = x - fx, y - fy
        tx = tx * tx * (3.0 - 2.0 * tx)
        ty = ty * ty * (3.0 - 2.0 * ty)
        corner = (fy.astype(np.int32) & (_SIDE - 1)) * _STRIDE + (fx.astype(np.int32) & (_SIDE - 1))
        v00, v10 = _LATTICE[corner], _LATTICE[corner + 1]
        v01, v11 = _LATTICE[corner + _STRIDE], _LATTICE[corner + _STRIDE + 1]
        top = v00 + (v10 - v00) * tx
        bottom = v01 + (v11 - v01) * tx
        value = top + (bottom - top) * ty - np.float32(0.5)
        if cell * coarsest < 2.0:
            # Full weight when a cell spans two samples or more, none below one sample.
            value *= np.clip(cell * inverse_footprint - np.float32(1.0), 0.0, 1.0)
        total += np.float32(amplitude) * value + np.float32(0.5 * amplitude)
        amplitude *= 0.5
    return total / np.float32(weight_sum)


def _pulse_integral(x: np.ndarray, period: float | np.ndarray, start: float | np.ndarray, width: float | np.ndarray):
    """Integral from 0 to x of a pulse train that is 1 on [start, start + width) in every period."""
    cycles = np.floor(x / period)
    phase = x - cycles * period
    return cycles * width + np.clip(phase - start, 0.0, width)


def pulse_coverage(x, period, start, width, footprint) -> np.ndarray:
    """Fraction of the window [x - footprint/2, x + footprint/2] covered by a periodic pulse train.

    Exact box filtering: a pulse thinner than the footprint fades to its duty cycle instead of flickering.
    """
    half = 0.5 * footprint
    covered = _pulse_integral(x + half, period, start, width) - _pulse_integral(x - half, period, start, width)
    return np.clip(covered / footprint, 0.0, 1.0)


def band_coverage(x, low, high, footprint) -> np.ndarray:
    """Fraction of the window [x - footprint/2, x + footprint/2] inside the band [low, high]."""
    half = 0.5 * footprint
    overlap = np.minimum(x + half, high) - np.maximum(x - half, low)
    return np.clip(overlap / footprint, 0.0, 1.0)
