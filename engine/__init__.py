"""Verdict engine: yes/no verdicts from one prefill pass. No Qt here.

Rooms (see ARCHITECTURE.md): `engine.intake` (files to text), `engine.model` (models found,
fetched and read without MLX: files, tokenizer, prompts), `engine.runtime` (the local MLX model),
`engine.scoring` (the `ScoringBackend` seam), `engine.classifier` (prompts, windows and
batches over a backend), `engine.confidence` (calibration and probes), `engine.pipeline` (the one
classify -> calibrate flow every front end uses) and `engine.cli` (interfaces).
Importing `engine` loads no MLX and no BLAS: that happens when a local model is loaded.
"""
from engine.types import Document, Example, Verdict

__all__ = ["Document", "Example", "Verdict", "Classifier", "Pipeline"]


def __getattr__(name):  # lazy: importing engine.types must not import MLX
    if name == "Classifier":
        from engine.classifier import Classifier

        return Classifier
    if name == "Pipeline":
        from engine.pipeline import Pipeline

        return Pipeline
    raise AttributeError(name)
