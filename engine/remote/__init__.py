"""Scoring on an inference server (vLLM, llama.cpp server, mlx_lm.server, Ollama) instead of in
this process: `RemoteBackend` is a `ScoringBackend` over HTTP.

May import: the standard library, numpy, `engine.scoring`, `engine.types`, and the MLX-free model
layer `engine.model` (`tokenizer`, `prompt`, `facts`). Never MLX or mlx-lm, never `engine.runtime`,
never Qt.
"""
from engine.remote.backend import RemoteBackend, split_url
from engine.remote.http import BadAnswer, HttpClient, RemoteError, RetryPolicy

__all__ = ["RemoteBackend", "split_url", "HttpClient", "RemoteError", "BadAnswer", "RetryPolicy"]
