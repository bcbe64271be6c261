"""The short list of models we recommend downloading on a Mac (MLX 4-bit, from the hub).

Sizes are the hub's download sizes as measured for shared/MODELS.md (None: not measured).
The reranker is trained for exactly this task and gets its own prompt preset: the
`qwen3-reranker` layout, chosen from the model's name (see `engine.model.prompt`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class Recommended:
    """A model offered for download: its hub repo, a title, a size and why."""

    repo: str
    title: str
    size_bytes: Optional[int]
    note: str
    layout: str = "document-first"


RECOMMENDED = (
    Recommended("mlx-community/Qwen3-Reranker-0.6B-4bit", "Qwen3-Reranker-0.6B (4-bit)", 330_000_000,
                "trained to judge whether a document meets a requirement: the best small model for this",
                layout="qwen3-reranker"),
    Recommended("Qwen/Qwen3-1.7B-MLX-4bit", "Qwen3-1.7B (4-bit)", 914_000_000,
                "a general chat model, larger and slower"),
    Recommended("mlx-community/Qwen2.5-1.5B-Instruct-4bit", "Qwen2.5-1.5B-Instruct (4-bit)", None,
                "a general instruct model"),
)
