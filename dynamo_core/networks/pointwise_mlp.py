"""The residual inverted-bottleneck MLP of Lite-Mono's blocks, fast at inference on the CPU.

Written plainly, `x + gamma * pwconv2(gelu(pwconv1(branch)))` expands every position to 6C channels
before GELU and the second product read them back: at batch 8 and 1/4 scale that hidden tensor is
94 MB, far past the caches. At inference on the CPU (no autograd, float32, no autocast) the same
products run over blocks of rows whose hidden part stays in cache, and the residual is added block by
block; on a 2-core AVX2 EPYC this ran the first stage's MLP 2.2-2.5 times faster at batch 8. How many
rows a block holds is measured on the machine at hand the first time a shape is seen, and cached on disk
per CPU model, torch version and thread count like the convolution plans (`block_rows`). Each output
value is computed by the same operations in the same order as the plain form, so the two agree to the
matrix product's rounding.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..conv_layouts import cache_path, write_cache
from ..runtime import best_time
from .blocks import drop_path, in_inference

log = logging.getLogger(__name__)

# Row counts tried for one block; a matrix with fewer rows is also tried whole.
_CANDIDATE_ROWS = (512, 1024, 2048, 4096, 8192)
# Time each candidate at least this long (best of its runs): a shorter budget picked the whole matrix
# against a 2x faster block size on a noisy 2-core machine.
_TIMING_BUDGET_S = 0.2


class BlockRowsCache:
    """Measured rows per block by matrix shape, for this CPU signature; read once, written back atomically."""

    def __init__(self, path: Path | None = None):
        self.path = path or cache_path("mlp_blocks")
        self.rows: dict[str, int] = {}
        self._lock = threading.Lock()
        try:
            stored = json.loads(self.path.read_text(encoding="utf-8"))
            self.rows = {key: int(rows) for key, rows in stored["rows"].items() if int(rows) > 0}
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            pass  # a missing or damaged cache is measured again

    def get(self, key: str) -> int | None:
        return self.rows.get(key)

    def put(self, key: str, rows: int) -> None:
        with self._lock:
            self.rows[key] = rows
            write_cache(self.path, "rows", dict(sorted(self.rows.items())))


_shared_cache: BlockRowsCache | None = None


def _cache() -> BlockRowsCache:
    global _shared_cache
    if _shared_cache is None or _shared_cache.path != cache_path("mlp_blocks"):
        _shared_cache = BlockRowsCache()
    return _shared_cache


def residual_mlp(x: torch.Tensor, branch: torch.Tensor, pwconv1: nn.Linear, pwconv2: nn.Linear,
                 gamma: torch.Tensor, drop_rate: float, training: bool) -> torch.Tensor:
    """x + drop_path(gamma * pwconv2(gelu(pwconv1(branch)))).

    x: (B, C, H, W); branch: (B, H, W, C) in any layout. Returns (B, C, H, W).
    """
    if _in_blocks_applies(x, branch, training):
        return _in_row_blocks(x, branch, pwconv1, pwconv2, gamma)
    update = gamma * pwconv2(F.gelu(pwconv1(branch)))
    return x + drop_path(update.permute(0, 3, 1, 2), drop_rate, training)


def _in_blocks_applies(x: torch.Tensor, branch: torch.Tensor, training: bool) -> bool:
    # Tracing (ONNX export) records the plain form: the blocks are a loop over concrete sizes.
    return (not training and in_inference() and x.device.type == "cpu" and not torch.is_autocast_enabled("cpu")
            and x.dtype == branch.dtype == torch.float32)


def _row_matrices(x: torch.Tensor, branch: torch.Tensor, out: torch.Tensor):
    """(input rows, residual rows, output rows) as (N, C) matrices: the whole batch at once when every
    tensor is stored channels-last (each is then one matrix), else one image at a time (each image's
    positions are then a matrix view of any layout)."""
    channels = x.shape[1]
    x_rows = x.permute(0, 2, 3, 1)
    if branch.is_contiguous() and x_rows.is_contiguous():
        yield branch.reshape(-1, channels), x_rows.reshape(-1, channels), out.view(-1, channels)
        return
    for image in range(x.shape[0]):
        yield (branch[image].reshape(-1, channels), x_rows[image].reshape(-1, channels),
               out[image].view(-1, channels))


def _run_blocks(rows_in, residual, rows_out, pwconv1, pwconv2, gamma, rows: int) -> None:
    w1, w2 = pwconv1.weight.t(), pwconv2.weight.t()
    for start in range(0, rows_in.shape[0], rows):
        stop = start + rows
        hidden = torch.ops.aten.gelu_(torch.addmm(pwconv1.bias, rows_in[start:stop], w1))
        block = torch.addmm(pwconv2.bias, hidden, w2, out=rows_out[start:stop])
        block.mul_(gamma).add_(residual[start:stop])


def block_rows(rows_in, residual, rows_out, pwconv1, pwconv2, gamma) -> int:
    """Rows per block for this matrix shape: cached, else measured (each candidate writes the same values into
    `rows_out`, which the caller then overwrites). A matrix of at most the smallest candidate is one block."""
    total = rows_in.shape[0]
    candidates = [rows for rows in _CANDIDATE_ROWS if rows < total] + [total]
    if len(candidates) == 1:
        return total
    key = json.dumps([total, pwconv1.in_features, pwconv1.out_features, str(rows_in.dtype)])
    cache = _cache()
    known = cache.get(key)
    if known is not None:
        return known
    times = {rows: best_time(lambda rows=rows: _run_blocks(rows_in, residual, rows_out, pwconv1, pwconv2, gamma, rows),
                             _TIMING_BUDGET_S) for rows in candidates}
    best = min(times, key=times.get)
    log.debug("MLP blocks %s: %s rows (%s)", key, best, times)
    cache.put(key, best)
    return best


def _in_row_blocks(x, branch, pwconv1, pwconv2, gamma) -> torch.Tensor:
    batch, channels, height, width = x.shape
    out = torch.empty((batch, height, width, channels), dtype=x.dtype, device=x.device)
    for rows_in, residual, rows_out in _row_matrices(x, branch, out):
        rows = block_rows(rows_in, residual, rows_out, pwconv1, pwconv2, gamma)
        _run_blocks(rows_in, residual, rows_out, pwconv1, pwconv2, gamma, rows)
    return out.permute(0, 3, 1, 2)
