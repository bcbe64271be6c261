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
    """Start the local MLX runtime: the fast BLAS first (on Linux, if installed), then MLX.

    Called when a local model is loaded, never at import time, so a process that imports
    `engine` without loading a model keeps its own BLAS. Later calls do nothing.
    """
    preload_fast_blas()
    import mlx.core  # noqa: F401
