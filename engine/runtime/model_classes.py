"""mlx-lm's model classes for an architecture, without importing the rest of mlx-lm.

`mlx_lm/__init__.py` imports its converter, generator and loader, and through them
`transformers`: about a second of a cold start on a 2-core machine, for code the scoring path
never runs. The architectures we score live in `mlx_lm.models.<type>`, which import only MLX and
their siblings. So when `mlx_lm` is not imported yet, its package module is created from its own
spec (same path, same loader) with the running of its `__init__` deferred: importing
`mlx_lm.models.llama` then runs `mlx_lm/models/` alone.

The package is not changed, only started later: the first use of anything else (an attribute such
as `mlx_lm.load`, or importing a submodule outside `mlx_lm.models`, e.g. `mlx_lm.utils`) runs
its `__init__` in place, exactly once, so every later user sees the package as mlx-lm defines it.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types
from typing import Any

_PACKAGE = "mlx_lm"
_init_lock = threading.RLock()


def _loading_a_submodule() -> bool:
    """True while some `mlx_lm.*` module is still running its own code."""
    return any(
        getattr(getattr(module, "__spec__", None), "_initializing", False)
        for name, module in list(sys.modules.items())
        if name.startswith(_PACKAGE + ".")
    )


class _DeferredPackage(types.ModuleType):
    """The `mlx_lm` package module before its `__init__` has run."""

    def _finish_import(self) -> None:
        with _init_lock:
            if self.__class__ is _DeferredPackage:
                self.__class__ = types.ModuleType
                self.__spec__.loader.exec_module(self)  # its own __init__, in its own namespace

    def __getattr__(self, name: str) -> Any:  # a name its __init__ has not bound (yet)
        self._finish_import()
        return getattr(self, name)

    def __setattr__(self, name: str, value: Any) -> None:
        # The import system binds each submodule here once it has run. One outside `models` means
        # mlx-lm itself is in use: its __init__ runs then, once no submodule is half-run (its own
        # imports would find one), and after the binding, as a plain import orders them
        # (`from .generate import generate` rebinds the name to the function).
        super().__setattr__(name, value)
        if isinstance(value, types.ModuleType) and name != "models" and not _loading_a_submodule():
            self._finish_import()


def _import_models_package() -> None:
    """Let `mlx_lm.models.<type>` be imported without running `mlx_lm/__init__.py` when mlx-lm
    isn't in use yet."""
    with _init_lock:
        if _PACKAGE in sys.modules:
            return
        spec = importlib.util.find_spec(_PACKAGE)
        if spec is None or spec.loader is None or spec.submodule_search_locations is None:
            raise ImportError("mlx-lm is not installed")
        package = importlib.util.module_from_spec(spec)
        package.__class__ = _DeferredPackage
        sys.modules[_PACKAGE] = package


def model_classes(model_type: str) -> tuple[type, type]:
    """mlx-lm's `(Model, ModelArgs)` for an allow-listed `model_type` (llama, qwen2, qwen3,
    gemma3_text: none of them is renamed by mlx-lm's remapping table)."""
    from engine.model.architectures import check_architecture

    check_architecture(model_type)
    _import_models_package()
    module = importlib.import_module(f"{_PACKAGE}.models.{model_type}")
    return module.Model, module.ModelArgs
