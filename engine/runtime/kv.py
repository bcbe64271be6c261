"""A per-layer KV cache for prefilling prompts segment by segment, in right-padded batches.

mlx-lm models call `cache.make_mask(N)`, read `cache.offset` for RoPE and call
`cache.update_and_fetch(k, v)`; this class answers all three for a batch whose rows have
different real lengths. Each row keeps its own position counter, so a row's next segment starts
right after its last real token, and padded slots are masked out for every later query: the
result is the same as prefilling each prompt alone.

Keys, values and the validity mask live in buffers with spare room that grow geometrically, so
appending a 512-token chunk writes only that chunk (concatenating copied the whole cache each
time: quadratic in the document's length). A cache can be forked (`fork`) and extended along
different paths (one path per question): a fork shares its parent's buffers, and whichever of
them writes first after the fork copies its own (copy-on-write), so no fork ever sees a later
writer's data.

Rows that each continue a row of a cache and end a prompt there (one question's tail per row, every
question of a document in one pass) go on a `BranchCache`: the parent's keys stay where they are
and each row's own keys are kept apart, so the document's keys are neither copied nor repeated per
question. The CPU attention kernel (`engine.runtime.kernels`) reads that layout as it is; for any
other attention the branch joins the parent's keys with the rows' own for each call (`joined`).
"""
from __future__ import annotations

from typing import Optional

import mlx.core as mx


_MIN_ROOM = 256  # slots a new buffer holds at least


class _Shared:
    """A flag every cache holding the same buffers can see: set once a fork shares them."""

    def __init__(self) -> None:
        self.shared = False


class SegmentCache:
    """Keys, values, a validity mask and per-row positions for one attention layer."""

    def __init__(
        self,
        keys: Optional[mx.array] = None,
        values: Optional[mx.array] = None,
        valid: Optional[mx.array] = None,
        offset: Optional[mx.array] = None,
        *,
        length: Optional[int] = None,
        owner: Optional[_Shared] = None,
    ) -> None:
        # Buffers (B, kv_heads, capacity, head_dim) and (B, capacity); slots [0, length) are in use.
        self._k, self._v, self._valid = keys, values, valid
        self._length = length if length is not None else (0 if keys is None else keys.shape[2])
        self._owner = owner or _Shared()
        self.offset = offset if offset is not None else mx.array([0], dtype=mx.int32)
        self._lengths: Optional[mx.array] = None  # real lengths of the segment being added

    # --- called by us -------------------------------------------------------------------------
    def begin_segment(self, lengths: mx.array) -> None:
        """Announce the next segment's real length per row (the rest of each row is padding)."""
        self._lengths = lengths

    def fork(self, batch: Optional[int] = None) -> "SegmentCache":
        """A new cache sharing this one's buffers; with `batch`, a one-row cache broadcast to it."""
        if self._k is None:
            return SegmentCache(offset=self.offset if batch is None else mx.broadcast_to(self.offset, (batch,)))
        if batch is None or self._k.shape[0] == batch:
            self._owner.shared = True
            return SegmentCache(self._k, self._v, self._valid, self.offset, length=self._length, owner=self._owner)
        if self._k.shape[0] != 1:
            raise ValueError("only a one-row cache can be broadcast to a batch")
        t = self._length  # broadcast only the used slots: the first write copies them anyway
        return SegmentCache(
            mx.broadcast_to(self.keys, (batch,) + tuple(self._k.shape[1:2]) + (t,) + tuple(self._k.shape[3:])),
            mx.broadcast_to(self.values, (batch,) + tuple(self._v.shape[1:2]) + (t,) + tuple(self._v.shape[3:])),
            mx.broadcast_to(self.valid, (batch, t)),
            mx.broadcast_to(self.offset, (batch,)),
            length=t,
            owner=_shared_flag(),
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
        return self._length

    @property
    def keys(self) -> Optional[mx.array]:
        return None if self._k is None else self._k[:, :, : self._length]

    @property
    def values(self) -> Optional[mx.array]:
        return None if self._v is None else self._v[:, :, : self._length]

    @property
    def valid(self) -> Optional[mx.array]:
        return None if self._valid is None else self._valid[:, : self._length]

    # --- called by mlx-lm's attention -------------------------------------------------------
    def make_mask(self, n: int, return_array: bool = False, window_size: Optional[int] = None) -> mx.array:
        """(B, 1, n, T + n) bool: causal, real keys only. A padding query also sees itself, so no
        row is ever fully masked (that would make NaNs, which 0-weights can't cancel later)."""
        if window_size is not None:
            raise NotImplementedError("sliding-window attention is not supported by the segment cache")
        return _segment_mask(self.valid, self._require_lengths(), n)

    def update_and_fetch(self, keys: mx.array, values: mx.array) -> tuple[mx.array, mx.array]:
        lengths = self._require_lengths()
        b, n, t = keys.shape[0], keys.shape[2], self._length
        new_valid = mx.arange(n)[None, :] < lengths[:, None]
        capacity = 0 if self._k is None else self._k.shape[2]
        full = self._k is None or t + n > capacity or self._k.shape[0] != b
        if full or self._owner.shared:
            # Grow geometrically when full; a copy made only because a fork shares the buffer gets
            # just the room it needs (rounded, to keep few distinct shapes): a question's tail on a
            # forked document cache must not allocate and zero twice the document's buffer.
            room = max(t + n, 2 * capacity, _MIN_ROOM) if full else -(-(t + n) // _MIN_ROOM) * _MIN_ROOM
            # one concatenation writes each slot once (zeros then slice writes wrote the used ones
            # twice); only the spare room is zeroed
            spare = room - t - n
            self._k = _joined(self.keys if t else None, keys, spare)
            self._v = _joined(self.values if t else None, values, spare)
            self._valid = _joined(self.valid if t else None, new_valid, spare, axis=1)
            self._owner = _Shared()
        else:
            self._k[:, :, t : t + n] = keys
            self._v[:, :, t : t + n] = values
            self._valid[:, t : t + n] = new_valid
        self._length = t + n
        self.offset = self.offset + lengths
        self._lengths = None
        return self.keys, self.values

    def _require_lengths(self) -> mx.array:
        if self._lengths is None:
            raise RuntimeError("begin_segment() must be called before each forward pass")
        return self._lengths

    @property
    def state(self) -> list[Optional[mx.array]]:
        return [self._k, self._v, self._valid, self.offset]


class BranchCache:
    """`children` rows for each row of a parent cache, in the parent's row order (the parent's row
    r has rows r*children ... r*children + children - 1), for segments that end their prompts.

    A row attends to its parent row's keys, read where the parent keeps them, and to its own keys,
    which `update_and_fetch` keeps here and returns alone. `make_mask` gives the mask over those
    own keys; the parent's validity is `parent_valid`. `materialized` joins both parts into one
    cache's keys, values and mask, for an attention that can't read them apart.

    `joined=True` is for such an attention (mlx-lm's own, e.g. on a GPU): `update_and_fetch` and
    `make_mask` then give the joined keys, values and mask, made for each layer's call and not
    kept, so the parent's keys are still stored once however many rows read them.
    """

    def __init__(self, parent: SegmentCache, children: int, joined: bool = False) -> None:
        if parent.keys is None:
            raise ValueError("a branch needs a parent with keys")
        self.parents, self.children, self.joined = parent.batch, children, joined
        self.parent_keys, self.parent_values, self.parent_valid = parent.keys, parent.values, parent.valid
        self._parent_rows = mx.repeat(mx.arange(self.parents), children)  # each row's parent row
        self.offset = mx.broadcast_to(parent.offset, (self.parents,))[self._parent_rows]
        self._k: Optional[mx.array] = None
        self._v: Optional[mx.array] = None
        self._valid: Optional[mx.array] = None
        self._lengths: Optional[mx.array] = None

    @property
    def batch(self) -> int:
        return self.parents * self.children

    @property
    def own_length(self) -> int:
        return 0 if self._k is None else self._k.shape[2]

    @property
    def length(self) -> int:
        return self.parent_keys.shape[2] + self.own_length

    def begin_segment(self, lengths: mx.array) -> None:
        """Announce the next segment's real length per row (the rest of each row is padding)."""
        self._lengths = lengths

    def make_mask(self, n: int, return_array: bool = False, window_size: Optional[int] = None) -> mx.array:
        """(B, 1, n, own + n) bool over the rows' own keys: causal, real keys only, a padding
        query seeing itself (as `SegmentCache.make_mask`); joined, (B, 1, n, parent + own + n)."""
        if window_size is not None:
            raise NotImplementedError("sliding-window attention is not supported by the segment cache")
        own = _segment_mask(self._valid, self._require_lengths(), n)
        return self._widened(own) if self.joined else own

    def update_and_fetch(self, keys: mx.array, values: mx.array) -> tuple[mx.array, mx.array]:
        """Keep the segment's keys and values as the rows' own; return all of the own ones (joined:
        after their parent's)."""
        lengths = self._require_lengths()
        new_valid = mx.arange(keys.shape[2])[None, :] < lengths[:, None]
        if self._k is None:
            self._k, self._v, self._valid = keys, values, new_valid
        else:
            self._k = mx.concatenate([self._k, keys], axis=2)
            self._v = mx.concatenate([self._v, values], axis=2)
            self._valid = mx.concatenate([self._valid, new_valid], axis=1)
        self.offset = self.offset + lengths
        self._lengths = None
        return self._with_parent(self._k, self._v) if self.joined else (self._k, self._v)

    def _require_lengths(self) -> mx.array:
        if self._lengths is None:
            raise RuntimeError("begin_segment() must be called before each forward pass")
        return self._lengths

    def materialized(self, keys: mx.array, values: mx.array, mask: mx.array) -> tuple[mx.array, mx.array, mx.array]:
        """The parent's keys and values repeated for each row and joined with the rows' own (as
        returned by `update_and_fetch`), and `mask` (from `make_mask`) widened to match."""
        return (*self._with_parent(keys, values), self._widened(mask))

    def _with_parent(self, keys: mx.array, values: mx.array) -> tuple[mx.array, mx.array]:
        rows = self._parent_rows
        return (mx.concatenate([self.parent_keys[rows], keys], axis=2),
                mx.concatenate([self.parent_values[rows], values], axis=2))

    def _widened(self, mask: mx.array) -> mx.array:
        t, n = self.parent_keys.shape[2], mask.shape[2]
        parent_mask = mx.broadcast_to(self.parent_valid[self._parent_rows][:, None, None, :], (self.batch, 1, n, t))
        return mx.concatenate([parent_mask, mask], axis=3)

    @property
    def state(self) -> list[Optional[mx.array]]:
        return [self._k, self._v, self._valid, self.offset]


def _segment_mask(valid: Optional[mx.array], lengths: mx.array, n: int) -> mx.array:
    """(B, 1, n, T + n) bool for a segment of n columns (real lengths `lengths`) after T slots of
    validity `valid` (B, T) or none: causal, real keys only, and a padding query sees itself, so
    no row is ever fully masked (that would make NaNs, which 0-weights can't cancel later)."""
    t = 0 if valid is None else valid.shape[1]
    new_valid = mx.arange(n)[None, :] < lengths[:, None]  # (B, n)
    key_valid = new_valid if valid is None else mx.concatenate([valid, new_valid], axis=1)
    keys = mx.arange(t + n)[None, :]
    queries = (t + mx.arange(n))[:, None]
    causal, itself = keys <= queries, keys == queries  # (n, t+n)
    return causal[None, None] & (key_valid[:, None, None, :] | itself[None, None])


def _joined(used: Optional[mx.array], new: mx.array, spare: int, axis: int = 2) -> mx.array:
    """used (if any; a one-row cache is broadcast to new's rows), then new, then `spare` zero
    slots, along `axis`."""
    if used is not None and used.shape[0] != new.shape[0]:
        used = mx.broadcast_to(used, (new.shape[0],) + tuple(used.shape[1:]))
    parts = ([] if used is None else [used]) + [new]
    if spare:
        shape = list(new.shape)
        shape[axis] = spare
        parts.append(mx.zeros(shape, dtype=new.dtype))
    return parts[0] if len(parts) == 1 else mx.concatenate(parts, axis=axis)


def _shared_flag() -> _Shared:
    flag = _Shared()
    flag.shared = True  # broadcast views can't be written in place
    return flag
