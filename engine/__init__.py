"""Verdict engine: yes/no verdicts from one prefill pass. No Qt here."""
from engine.types import Document, Verdict

__all__ = ["Document", "Verdict", "Classifier"]


def __getattr__(name):  # lazy: importing engine.types must not import MLX
    if name == "Classifier":
        from engine.classifier import Classifier

        return Classifier
    raise AttributeError(name)
