"""Which MLX backend we run on, and the fast CPU path.

MLX's Linux CPU wheel links a reference BLAS (dense float32 matmul ~6 GFLOP/s on two cores).
Loading an optimized BLAS with global symbol visibility *before* `mlx.core` is imported makes the
same matmul ~100 GFLOP/s. Quantized matmul doesn't use BLAS, so on CPU small models run with
dequantized float32 weights (see `engine.runtime.loading`). On Metal nothing changes.
"""
from __future__ import annotations

import ctypes
import os
import platform
import sys
from typing import Optional

# Debian/Ubuntu paths of OpenBLAS's reference-BLAS-compatible interface (package libopenblas0-pthread).
_BLAS_CANDIDATES = [
    "/usr/lib/{arch}-linux-gnu/openblas-pthread/libblas.so.3",
    "/usr/lib/{arch}-linux-gnu/openblas-openmp/libblas.so.3",
    "/usr/lib/{arch}-linux-gnu/libopenblas.so.0",
    "/usr/lib64/libopenblas.so.0",
]

_loaded_blas: Optional[str] = None
_allocator_tuned = False

# glibc's mallopt parameters (malloc.h) and the values we set. By default glibc hands every block
# above a dynamic threshold (from 128 KiB) back to the kernel when it is freed, and trims the
# heap's top above 128 KiB; a forward pass allocates and frees tens of MiB of activations per
# layer (MLX's CPU buffers and numpy's both come from malloc), so each layer page-faulted fresh
# zeroed pages. Measured on the 2-core machines, a prefill of 11 documents spent a third of its
# system time there. Kept in the heap, the freed blocks are reused; peak RSS stays the same.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD = 32 << 20  # glibc's largest on 64-bit: bigger blocks are still mapped
_TRIM_THRESHOLD = 256 << 20  # free memory above this at the heap's top goes back to the kernel


def preload_fast_blas() -> Optional[str]:
    """Load an optimized BLAS before MLX, if one is installed; return its path (None if not).

    Set ``VERDICT_BLAS`` to a library path to choose one, or to ``none`` to keep MLX's own.
    Has no effect once `mlx.core` is imported, or on macOS (Accelerate is already used).
    """
    global _loaded_blas
    if _loaded_blas or sys.platform != "linux" or "mlx.core" in sys.modules:
        return _loaded_blas
    choice = os.environ.get("VERDICT_BLAS", "")
    if choice.lower() == "none":
        return None
    arch = platform.machine()
    candidates = [choice] if choice else [c.format(arch=arch) for c in _BLAS_CANDIDATES]
    for path in candidates:
        if path and os.path.exists(path):
            try:
                ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
            except OSError:
                continue
            _loaded_blas = path
            return path
    return None


def tune_allocator() -> bool:
    """Let glibc's malloc keep freed activation-sized blocks for reuse (see the values above).

    Returns True when the settings took effect: False off glibc (macOS, musl), or when
    ``VERDICT_MALLOC_TUNE=0`` leaves malloc as it is.
    """
    global _allocator_tuned
    if _allocator_tuned:
        return True
    if sys.platform != "linux" or os.environ.get("VERDICT_MALLOC_TUNE", "1") == "0":
        return False
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return False
    if not hasattr(libc, "gnu_get_libc_version") or not hasattr(libc, "mallopt"):  # glibc only (not musl)
        return False
    mallopt = libc.mallopt
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _allocator_tuned = bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))
    return _allocator_tuned


def blas_in_use() -> Optional[str]:
    """The optimized BLAS loaded for MLX's CPU backend, or None (reference BLAS or Metal)."""
    return _loaded_blas


def is_gpu() -> bool:
    """True when MLX's default device is a GPU (Metal on a Mac, CUDA where present), or when
    ``VERDICT_FORCE_GPU_CONFIG=1`` asks for the GPU's preparation on the CPU (quantized weights,
    float16 compute), so the suite can check that configuration on a machine without a GPU."""
    import mlx.core as mx

    return mx.default_device() == mx.gpu or os.environ.get("VERDICT_FORCE_GPU_CONFIG") == "1"


def start() -> None:
    """Start the local MLX runtime: the fast BLAS first (on Linux, if installed), malloc set to
    keep freed activation buffers, then MLX.

    Called when a local model is loaded, never at import time, so a process that imports
    `engine` without loading a model keeps its own BLAS. Later calls do nothing.
    """
    preload_fast_blas()
    tune_allocator()
    import mlx.core  # noqa: F401
