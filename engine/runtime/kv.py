"""A per-layer KV cache for prefilling prompts segment by segment, in right-padded batches.

mlx-lm models call `cache.make_mask(N)`, read `cache.offset` for RoPE and call
`cache.update_and_fetch(k, v)`; this class answers all three for a batch whose rows have
different real lengths. Each row keeps its own position counter, so a row's next segment starts
right after its last real token, and padded slots are masked out for every later query: the
result is the same as prefilling each prompt alone. Arrays are never modified in place, so a
cache can be forked (`fork`) and extended along different paths (one path per question) while
the shared part stays intact: copy-on-write for free.
"""
from __future__ import annotations

from typing import Optional

import mlx.core as mx


class SegmentCache:
    """Keys, values, a validity mask and per-row positions for one attention layer."""

    def __init__(
        self,
        keys: Optional[mx.array] = None,
        values: Optional[mx.array] = None,
        valid: Optional[mx.array] = None,
        offset: Optional[mx.array] = None,
    ) -> None:
        self.keys = keys  # (B, kv_heads, T, head_dim)
        self.values = values
        self.valid = valid  # (B, T) bool: which cached slots hold real tokens
        self.offset = offset if offset is not None else mx.array([0], dtype=mx.int32)
        self._lengths: Optional[mx.array] = None  # real lengths of the segment being added

    # --- called by us -------------------------------------------------------------------------
    def begin_segment(self, lengths: mx.array) -> None:
        """Announce the next segment's real length per row (the rest of each row is padding)."""
        self._lengths = lengths

    def fork(self, batch: Optional[int] = None) -> "SegmentCache":
        """A new cache sharing this one's arrays; with `batch`, a one-row cache broadcast to it."""
        if batch is None or self.keys is None or self.keys.shape[0] == batch:
            return SegmentCache(self.keys, self.values, self.valid, self.offset)
        if self.keys.shape[0] != 1:
            raise ValueError("only a one-row cache can be broadcast to a batch")
        k_shape = (batch,) + tuple(self.keys.shape[1:])
        return SegmentCache(
            mx.broadcast_to(self.keys, k_shape),
            mx.broadcast_to(self.values, (batch,) + tuple(self.values.shape[1:])),
            mx.broadcast_to(self.valid, (batch, self.valid.shape[1])),
            mx.broadcast_to(self.offset, (batch,)),
        )

    def select(self, rows: list[int]) -> "SegmentCache":
        """A new cache with these rows of this one (copied), in this order."""
        index = mx.array(rows)
        return SegmentCache(self.keys[index], self.values[index], self.valid[index],
                            mx.broadcast_to(self.offset, (self.batch,))[index])

    @property
    def batch(self) -> int:
        """Rows in this cache (an empty cache counts as one)."""
        return 1 if self.keys is None else self.keys.shape[0]

    @property
    def length(self) -> int:
        return 0 if self.keys is None else self.keys.shape[2]

    # --- called by mlx-lm's attention -------------------------------------------------------
    def make_mask(self, n: int, return_array: bool = False, window_size: Optional[int] = None) -> mx.array:
        """(B, 1, n, T + n) bool: causal, real keys only. A padding query also sees itself, so no
        row is ever fully masked (that would make NaNs, which 0-weights can't cancel later)."""
        if window_size is not None:
            raise NotImplementedError("sliding-window attention is not supported by the segment cache")
        lengths = self._require_lengths()
        t = self.length
        new_valid = mx.arange(n)[None, :] < lengths[:, None]  # (B, n)
        key_valid = new_valid if self.valid is None else mx.concatenate([self.valid, new_valid], axis=1)
        keys = mx.arange(t + n)[None, :]
        queries = (t + mx.arange(n))[:, None]
        causal, itself = keys <= queries, keys == queries  # (n, t+n)
        return causal[None, None] & (key_valid[:, None, None, :] | itself[None, None])

    def update_and_fetch(self, keys: mx.array, values: mx.array) -> tuple[mx.array, mx.array]:
        lengths = self._require_lengths()
        n = keys.shape[2]
        new_valid = mx.arange(n)[None, :] < lengths[:, None]
        if self.keys is None:
            self.keys, self.values, self.valid = keys, values, new_valid
        else:
            self.keys = mx.concatenate([self.keys, keys], axis=2)
            self.values = mx.concatenate([self.values, values], axis=2)
            self.valid = mx.concatenate([self.valid, new_valid], axis=1)
        self.offset = self.offset + lengths
        self._lengths = None
        return self.keys, self.values

    def _require_lengths(self) -> mx.array:
        if self._lengths is None:
            raise RuntimeError("begin_segment() must be called before each forward pass")
        return self._lengths

    @property
    def state(self) -> list[Optional[mx.array]]:
        return [self.keys, self.values, self.valid, self.offset]
