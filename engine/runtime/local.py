"""Prefill on top of cached segments and read the Yes/No verdict at the last position.

Only the last real position of each row goes through the output head, and of the head's output
only the log-softmax is needed: margin = logsumexp(log p[yes forms]) - logsumexp(log p[no forms]),
label mass = p(yes forms) + p(no forms).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import mlx.core as mx
import numpy as np

from engine.runtime.kv import SegmentCache
from engine.runtime.loading import LoadedModel


@dataclass
class Scores:
    """Per-row results of one scored batch (numpy, float32)."""

    margin: np.ndarray
    label_mass: np.ndarray
    hidden: Optional[np.ndarray] = None


class Scorer:
    """Runs segment prefills of one loaded model; every call must come from one thread."""

    def __init__(self, lm: LoadedModel, yes_ids: Sequence[int], no_ids: Sequence[int], chunk: int = 512) -> None:
        self.lm = lm
        self.chunk = chunk
        self.yes_ids = mx.array(list(yes_ids))
        self.no_ids = mx.array(list(no_ids))
        inner = lm.model.model
        self._layers = inner.layers

    def new_cache(self) -> list[SegmentCache]:
        return [SegmentCache() for _ in self._layers]

    @staticmethod
    def fork(cache: list[SegmentCache], batch: Optional[int] = None) -> list[SegmentCache]:
        return [c.fork(batch) for c in cache]

    def prefill(self, rows: Sequence[Sequence[int]], cache: list[SegmentCache]) -> mx.array:
        """Append one segment (one id list per row, right-padded here) to `cache`.

        Returns the final-norm hidden state at each row's last real token, shape (B, D).
        Long segments go through in chunks of `chunk` columns: attention then only looks at keys
        up to the chunk (half the work of a full causal square) and its temporaries stay small.
        The cache is evaluated after each chunk, so the graph behind it is freed.
        """
        lengths = np.array([len(r) for r in rows])
        if lengths.min() < 1:
            raise ValueError("every row of a segment needs at least one token")
        padded = np.zeros((len(rows), int(lengths.max())), dtype=np.int32)
        for i, r in enumerate(rows):
            padded[i, : len(r)] = r
        last = None
        for start in range(0, padded.shape[1], self.chunk):
            ids = padded[:, start : start + self.chunk]
            in_chunk = np.clip(lengths - start, 0, ids.shape[1])
            for c in cache:
                c.begin_segment(mx.array(in_chunk, dtype=mx.int32))
            hidden = self.lm.model.model(mx.array(ids), cache=cache)
            ends_here = (lengths > start) & (lengths <= start + ids.shape[1])
            picked = hidden[mx.arange(len(rows)), mx.array(np.maximum(in_chunk - 1, 0))]
            last = picked if last is None else mx.where(mx.array(ends_here)[:, None], picked, last)
            mx.eval(last, [c.state for c in cache])
        return last

    def head(self, hidden: mx.array) -> mx.array:
        """Next-token logits for hidden states (B, D), through the output head only here."""
        model = self.lm.model
        if hasattr(model, "lm_head"):
            return model.lm_head(hidden)
        return model.model.embed_tokens.as_linear(hidden)

    def verdict_scores(self, hidden: mx.array, keep_hidden: bool = False) -> Scores:
        logits = self.head(hidden).astype(mx.float32)
        logp = logits - mx.logsumexp(logits, axis=-1, keepdims=True)
        yes = mx.logsumexp(logp[:, self.yes_ids], axis=-1)
        no = mx.logsumexp(logp[:, self.no_ids], axis=-1)
        margin, mass = yes - no, mx.exp(yes) + mx.exp(no)
        mx.eval(margin, mass)
        return Scores(
            margin=np.array(margin, dtype=np.float32),
            label_mass=np.array(mass, dtype=np.float32),
            hidden=np.array(hidden.astype(mx.float32)) if keep_hidden else None,
        )

    def logits_for_ids(self, ids: Sequence[int]) -> np.ndarray:
        """Next-token logits after a whole prompt, no caching: the reference path for tests."""
        cache = self.new_cache()
        return np.array(self.head(self.prefill([list(ids)], cache)).astype(mx.float32))[0]
