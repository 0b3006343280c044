"""Process-level settings that make CPU work faster."""

from __future__ import annotations

import contextlib
import ctypes
import time

from .errors import ConfigError

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters


def keep_freed_memory(mmap_threshold: int = 32 << 20, trim_threshold: int = 256 << 20) -> bool:
    """Let glibc's allocator reuse freed memory instead of returning it to the system.

    Work that allocates many short-lived arrays of a few megabytes (rendering, a training step)
    otherwise maps and unmaps each one, and the page faults cost a large share of the time.
    Returns False where the C library is not glibc (nothing changes there).
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, mmap_threshold)
        libc.mallopt(_M_TRIM_THRESHOLD, trim_threshold)
        return True
    except (OSError, AttributeError):
        return False


def best_time(fn, budget_s: float = 0.05) -> float:
    """Best time of fn() in seconds: one warm-up run, then at least 2 timed runs and until `budget_s` is spent."""
    fn()
    best, spent, runs = float("inf"), 0.0, 0
    while runs < 2 or spent < budget_s:
        started = time.perf_counter()
        fn()
        elapsed = time.perf_counter() - started
        best, spent, runs = min(best, elapsed), spent + elapsed, runs + 1
    return best


def machine_info() -> dict:
    """CPU model, the instruction-set flags that select oneDNN's kernels, torch version and threads."""
    import platform

    import torch

    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                    break
    except OSError:
        pass
    wanted = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16")
    return {"cpu": model, "flags": [flag for flag in wanted if flag in flags], "torch": torch.__version__,
            "threads": torch.get_num_threads()}


def resolve_device(name: str):
    """`cpu`, `cuda` or `auto` (CUDA when visible) to a torch.device, with an error a user can act on."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda"):
        raise ConfigError(f"--device must be cpu, cuda or auto, got {name!r}.")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but no CUDA device is visible; use --device cpu or auto.")
    return torch.device(name)


PRECISIONS = ("auto", "fp32", "bf16")


def check_precision(name: str) -> None:
    """Reject anything but auto, fp32 or bf16, naming the option."""
    if name not in PRECISIONS:
        raise ConfigError(f"--precision must be auto, fp32 or bf16, got {name!r}.")


def cpu_has_native_bf16() -> bool:
    """True when the CPU computes bfloat16 products in hardware (AVX512-BF16 or AMX)."""
    import torch

    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def resolve_precision(name: str, device):
    """`auto`, `fp32` or `bf16` to the dtype the networks run in under autocast (None: plain float32).

    `auto` picks bfloat16 only on a CPU that has native bfloat16 instructions; on CUDA it keeps
    float32, as the reference training does.
    """
    import torch

    check_precision(name)
    device = torch.device(device)
    if name == "fp32" or (name == "auto" and (device.type != "cpu" or not cpu_has_native_bf16())):
        return None
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError("--precision bf16 needs a GPU with bfloat16 support; use --precision fp32.")
    return torch.bfloat16


def autocast(device, dtype):
    """A context that runs the networks in `dtype` (from resolve_precision); no-op for None."""
    import torch

    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype)
