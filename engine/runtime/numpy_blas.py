"""Dense float32 matmuls through numpy's own OpenBLAS, when no system BLAS was loaded for MLX.

MLX's Linux CPU wheel links a reference BLAS (~3-6 GFLOP/s on two cores). `device` preloads the
system's OpenBLAS in its place when it is installed (Debian: libopenblas0-pthread), which needs
root to install. Every numpy wheel ships an OpenBLAS too, but with prefixed symbols
(`scipy_cblas_sgemm64_`), so MLX cannot link it. Calling it through `numpy.matmul` can: MLX
arrays convert to numpy without a copy, and back with one copy of the (small) result. Measured
on the 2-core machines: a 2048x576 @ 576x1536 matmul runs at 2.7 GFLOP/s in MLX's reference BLAS,
~70 GFLOP/s in numpy, ~65 GFLOP/s with the conversions.

Threads: numpy's OpenBLAS starts one thread per core, and a thread that waits for a core stalls
every GEMM it shares. On the shared 2-core machines (load average ~13) `make demo` took 474 s
with 2 threads and 93 s with 1 (the system OpenBLAS: 150 s with 2, 98 s with 1). So when the
machine is already busier than its cores at load time, numpy's BLAS gets one thread;
``VERDICT_BLAS_THREADS=N`` chooses. threadpoolctl sets it (numpy reads OPENBLAS_NUM_THREADS only
at import).

`install(model)` swaps the model's `nn.Linear` layers (our loaded model object, not mlx-lm's
classes) for `NumpyLinear`, and `active()` tells the attention kernel and the output head to
use `matmul`. Used only on the CPU, on Linux, when `device` loaded no system BLAS and numpy has
an optimized one; ``VERDICT_NUMPY_BLAS=0`` turns it off.
"""
from __future__ import annotations

import os
import sys
from typing import Optional

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from mlx.utils import tree_unflatten

from engine.runtime import device

_FAST_BLAS_NAMES = ("openblas", "mkl", "blis", "accelerate", "armpl")
_active = False


def numpy_blas_name() -> Optional[str]:
    """The optimized BLAS numpy was built with ('scipy-openblas', ...), or None."""
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    except (TypeError, KeyError):  # numpy < 1.26 has no mode="dicts"
        return None
    name = str(blas.get("name", ""))
    return name if blas.get("found") and any(n in name.lower() for n in _FAST_BLAS_NAMES) else None


def wanted() -> bool:
    """True when MLX runs on the CPU with its reference BLAS and numpy has a fast one."""
    return (
        sys.platform == "linux"
        and os.environ.get("VERDICT_NUMPY_BLAS", "1") != "0"
        and device.blas_in_use() is None
        and not device.is_gpu()
        and numpy_blas_name() is not None
    )


def active() -> bool:
    """True once `install` has put a model on numpy's BLAS (the kernels then use `matmul`)."""
    return _active


def matmul(a: mx.array, b: mx.array) -> mx.array:
    """a @ b (float32, any batch dimensions numpy broadcasts) computed by numpy's BLAS."""
    return mx.array(np.matmul(np.asarray(a), np.asarray(b)))


def linear(x: mx.array, weight: mx.array, bias: Optional[mx.array] = None) -> mx.array:
    """x @ weight.T (+ bias), with the leading dimensions of x folded into one GEMM."""
    w = np.asarray(weight)
    x2 = np.asarray(x).reshape(-1, w.shape[1])
    y = np.matmul(x2, w.T)  # w.T is a transposed view: OpenBLAS reads it as is, nothing is copied
    if bias is not None:
        y += np.asarray(bias)
    return mx.array(y.reshape(*x.shape[:-1], w.shape[0]))


class NumpyLinear(nn.Module):
    """`nn.Linear` with the same weight (and bias), multiplied by numpy's BLAS."""

    def __init__(self, layer: nn.Linear) -> None:
        super().__init__()
        self.weight = layer.weight
        if "bias" in layer:
            self.bias = layer.bias

    def __call__(self, x: mx.array) -> mx.array:
        return linear(x, self.weight, self.get("bias"))


def blas_threads() -> Optional[int]:
    """Threads for numpy's BLAS: ``VERDICT_BLAS_THREADS``, else 1 on an oversubscribed machine,
    else None (OpenBLAS's own choice, one per core)."""
    chosen = os.environ.get("VERDICT_BLAS_THREADS", "")
    if chosen.isdigit() and int(chosen) > 0:
        return int(chosen)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return 1 if os.getloadavg()[0] > cores else None


def install(model: nn.Module) -> int:
    """Swap the model's float32 `nn.Linear` layers for `NumpyLinear` and put every other float32
    matmul of the model on numpy's BLAS (`active()`); return how many layers were swapped."""
    global _active
    threads = blas_threads()
    if threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=threads, user_api="blas")
    swaps = [
        (path, NumpyLinear(module))
        for path, module in model.named_modules()
        if type(module) is nn.Linear and module.weight.dtype == mx.float32
    ]
    if swaps:
        model.update_modules(tree_unflatten(swaps))
    _active = True  # the attention, the output head and float16-stored layers use `matmul` too
    return len(swaps)


def slow_cpu_note() -> Optional[str]:
    """One line for a user whose CPU matmuls run on MLX's reference BLAS, with the fix; else None."""
    if sys.platform != "linux" or device.blas_in_use() is not None or active() or device.is_gpu():
        return None
    return (
        "no fast BLAS found, so MLX's CPU matmuls run ~20x slower: install OpenBLAS "
        "(Debian/Ubuntu: apt-get install libopenblas0-pthread), or numpy from PyPI, which ships its own "
        "(pip install --force-reinstall numpy)"
        + ("; VERDICT_NUMPY_BLAS=0 turned numpy's off" if os.environ.get("VERDICT_NUMPY_BLAS") == "0" else "")
    )
