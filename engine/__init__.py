"""Verdict engine: yes/no verdicts from one prefill pass. No Qt here."""
from engine.backend import preload_fast_blas

preload_fast_blas()  # must run before anything imports mlx.core

from engine.types import Document, Verdict  # noqa: E402

__all__ = ["Document", "Verdict", "Classifier"]


def __getattr__(name):  # lazy: importing engine.types must not import MLX
    if name == "Classifier":
        from engine.classifier import Classifier

        return Classifier
    raise AttributeError(name)
