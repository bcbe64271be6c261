"""The local `ScoringBackend`: segment prefills on one loaded MLX model.

Prompts arrive as segments (`engine.scoring`). Prompts that begin with the same segments share
their prefill: the first segment (the instructions) is prefilled once and kept across calls when
it has a key, each distinct second segment (a document) is prefilled once in a right-padded batch
on top of it, and the rest (each question's tail) goes on top of the document rows: all the
tails of a batch in one pass on a `BranchCache` (where our attention kernel runs, the documents'
keys are read in place; elsewhere joined for each layer's call, never stored per question).
Only the last real position of each row goes through the output projection, and of its output
only the log-softmax at the Yes/No forms is kept:
margin = logsumexp(log p[yes forms]) - logsumexp(log p[no forms]),
label mass = p(yes forms) + p(no forms).

Hidden states are captured during that same prefill, at each row's last real token, after the
requested blocks: layer k < n_layers is the residual stream after block k, layer n_layers the
final normed state (the one the output projection reads). When the answer is not wanted
(`answer=False`), every segment stops after the deepest requested block: no state above it can
reach the states below it, so those are the same, for the blocks above left out.
"""
from __future__ import annotations

import functools
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

from engine.runtime import device

device.start()  # the fast BLAS before MLX: importing mlx.core first would lock in the ~100x slower reference BLAS

import mlx.core as mx  # noqa: E402
import mlx.nn as nn  # noqa: E402
import numpy as np  # noqa: E402

from engine.model.architectures import embedding_scale  # noqa: E402
from engine.runtime import numpy_blas  # noqa: E402
from engine.runtime.kernels import reads_branch_caches  # noqa: E402
from engine.runtime.kv import BranchCache, SegmentCache  # noqa: E402
from engine.runtime.loading import LoadedModel, load_model  # noqa: E402
from engine.model.prompt import label_forms  # noqa: E402
from engine.scoring import Prompt, PromptScore, Segment, resolve_layer  # noqa: E402


# Segments up to this long may share their parent rows' keys in place (`BranchCache`): question
# tails. A longer one (a document after a question) attends to its own keys as a whole document
# does, which the branch's attention does not split into pieces of queries.
BRANCH_TOKENS = 64


@dataclass
class _Prefilled:
    """The states a prefill leaves at each row's last real token."""

    final: Optional[mx.array]  # (B, D) after the final norm; None when the blocks stopped short of it
    layers: dict[int, mx.array]  # requested layer -> (B, D)


class LocalBackend:
    """Scores prompts on a model loaded in this process. Every call must come from one thread."""

    supports_states = True

    def __init__(self, lm: LoadedModel, chunk: int = 512, kept_segments: int = 16) -> None:
        self.lm = lm
        self.chunk = chunk
        self.tokenizer = lm.tokenizer
        self.name = lm.name
        self.fingerprint = str(getattr(lm, "fingerprint", "") or lm.name)
        self.preset = lm.preset  # a prompt preset read from the model's metadata, if any
        self.context_length = lm.context_length
        self.yes_ids, self.no_ids = label_forms(lm.tokenizer)
        self._yes = mx.array(self.yes_ids)
        self._no = mx.array(self.no_ids)
        inner = lm.model.model
        self._embed, self._blocks, self._norm = inner.embed_tokens, inner.layers, inner.norm
        self._embed_scale = embedding_scale(lm.model_type, int(lm.config.get("hidden_size") or 0))
        self.n_layers = len(self._blocks)
        # every question's tail of a batch goes in one pass: reading the documents' keys in place
        # where our attention kernel runs, else on keys joined for each layer's call
        self._branches_in_place = all(reads_branch_caches(getattr(block, "self_attn", None)) for block in self._blocks)
        self._kept: OrderedDict[Segment, list[SegmentCache]] = OrderedDict()
        self._kept_limit = kept_segments

    @classmethod
    def load(cls, model: Union[str, Path, None] = None) -> "LocalBackend":
        """Load a model (MLX folder, .gguf file, or None for the embedded default)."""
        return cls(load_model(model))

    # --- the ScoringBackend interface ----------------------------------------------------------
    def score(self, prompts: Sequence[Prompt], layers: Sequence[int] = (), answer: bool = True) -> list[PromptScore]:
        wanted = sorted({resolve_layer(self.n_layers, layer) for layer in layers})
        if not answer and not wanted:
            raise ValueError("without the answer, a score needs at least one layer's state")
        depth = self.n_layers if answer else wanted[-1]
        results: list[Optional[PromptScore]] = [None] * len(prompts)
        by_first: dict[Segment, list[int]] = {}
        for i, prompt in enumerate(prompts):
            if not prompt or any(len(segment) == 0 for segment in prompt):
                raise ValueError("every segment of a prompt needs at least one token")
            by_first.setdefault(prompt[0], []).append(i)
        prompts = fuse_unshared(prompts)
        for first, members in by_first.items():
            ending = [i for i in members if len(prompts[i]) == 1]
            if ending:
                cache = self.new_cache(depth)
                self._finish(ending, self.prefill([first.ids], cache, wanted), [0] * len(ending), results, wanted)
            going_on = [i for i in members if len(prompts[i]) > 1]
            if going_on:
                self._extend(prompts, going_on, 1, self._first_cache(first, depth), {i: 0 for i in going_on}, results,
                             wanted)
        return results  # type: ignore[return-value]

    # --- prefill --------------------------------------------------------------------------------
    def new_cache(self, depth: Optional[int] = None) -> list[SegmentCache]:
        """An empty cache for the first `depth` blocks (default: all of them); a prefill on it runs
        those blocks only."""
        return [SegmentCache() for _ in self._blocks[: self.n_layers if depth is None else depth]]

    @staticmethod
    def fork(cache: list[SegmentCache], batch: Optional[int] = None) -> list[SegmentCache]:
        return [c.fork(batch) for c in cache]

    def prefill(self, rows: Sequence[Sequence[int]], cache: list[SegmentCache], layers: Sequence[int] = ()) -> _Prefilled:
        """Append one segment (one id list per row, right-padded here) to `cache`; return the
        states at each row's last real token (final state, and after each of `layers`). A cache of
        fewer blocks than the model's (`new_cache(depth)`) runs those only, and has no final state.

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
        rows_index = mx.arange(len(rows))
        kept: Optional[_Prefilled] = None
        for start in range(0, padded.shape[1], self.chunk):
            ids = padded[:, start : start + self.chunk]
            in_chunk = np.clip(lengths - start, 0, ids.shape[1])
            for c in cache:
                c.begin_segment(mx.array(in_chunk, dtype=mx.int32))
            picked = self._forward(mx.array(ids), cache, rows_index, mx.array(np.maximum(in_chunk - 1, 0)), layers)
            if kept is None:
                kept = picked
            else:
                ends_here = mx.array((lengths > start) & (lengths <= start + ids.shape[1]))[:, None]
                kept = _Prefilled(
                    None if picked.final is None else mx.where(ends_here, picked.final, kept.final),
                    {n: mx.where(ends_here, picked.layers[n], kept.layers[n]) for n in picked.layers},
                )
            mx.eval([] if kept.final is None else kept.final, list(kept.layers.values()), [c.state for c in cache])
        return kept  # type: ignore[return-value]

    def _forward(self, ids: mx.array, cache: list[SegmentCache], rows: mx.array, last: mx.array,
                 layers: Sequence[int]) -> _Prefilled:
        """The decoder of the allow-listed architectures (embed times its family's scale, blocks,
        norm; `loading` refuses the others), keeping states at `last` of each row after the blocks
        in `layers`. It runs the blocks `cache` has; the final state only when that is all of them."""
        h = self._embed(ids)
        if self._embed_scale is not None:
            h = h * self._embed_scale
        mask = cache[0].make_mask(ids.shape[1])
        captured: dict[int, mx.array] = {}
        for n, (block, c) in enumerate(zip(self._blocks, cache), 1):
            h = block(h, mask, cache=c)
            if n in layers and n != self.n_layers:
                captured[n] = h[rows, last]
        if len(cache) < self.n_layers:
            return _Prefilled(None, captured)
        final = self._norm(h[rows, last])  # the norm is per position: only the picked rows need it
        if self.n_layers in layers:
            captured[self.n_layers] = final
        return _Prefilled(final, captured)

    def project_to_vocab(self, hidden: mx.array) -> mx.array:
        """Next-token logits for final states (B, D): the output projection alone (`lm_head`, or
        the tied embedding). For the allow-listed architectures this is the model's whole output
        step; `loading` refuses architectures that add logit softcaps or scaling there."""
        model = self.lm.model
        if hasattr(model, "lm_head"):
            return model.lm_head(hidden)
        embed = model.model.embed_tokens
        if numpy_blas.active() and type(embed) is nn.Embedding and embed.weight.dtype == hidden.dtype == mx.float32:
            return numpy_blas.linear(hidden, embed.weight)
        return embed.as_linear(hidden)

    def answer(self, final: mx.array) -> tuple[np.ndarray, np.ndarray]:
        """Margins and label masses (float32, per row) from final states (B, D)."""
        logits = self.project_to_vocab(final).astype(mx.float32)
        logp = logits - mx.logsumexp(logits, axis=-1, keepdims=True)
        yes = mx.logsumexp(logp[:, self._yes], axis=-1)
        no = mx.logsumexp(logp[:, self._no], axis=-1)
        margin, mass = yes - no, mx.exp(yes) + mx.exp(no)
        mx.eval(margin, mass)
        return np.array(margin, dtype=np.float32), np.array(mass, dtype=np.float32)

    def logits_for_ids(self, ids: Sequence[int]) -> np.ndarray:
        """Next-token logits after a whole prompt, no caching: the reference path for tests."""
        final = self.prefill([list(ids)], self.new_cache()).final
        return np.array(self.project_to_vocab(final).astype(mx.float32))[0]

    # --- thinking before answering (`--deliberate`) --------------------------------------------
    supports_thinking = True

    def think_then_score(self, prompt: Prompt, cue: Sequence[int], max_new_tokens: int,
                         layers: Sequence[int] = ()) -> tuple[PromptScore, list[int]]:
        """Let the model write up to `max_new_tokens` tokens after `prompt` (greedy; a control
        token such as its end of turn stops it, and is not kept), then append `cue` and score the
        Yes/No answer there. Returns the score (states after `layers` at the answer position) and
        the ids the model wrote. The prompt's first segment is shared with `score`'s cache."""
        wanted = sorted({resolve_layer(self.n_layers, layer) for layer in layers})
        if not prompt or any(len(segment) == 0 for segment in prompt) or not cue:
            raise ValueError("every segment of a prompt and the cue need at least one token")
        if len(prompt) == 1:
            cache = self.new_cache()
            final = self.prefill([prompt[0].ids], cache).final
        else:
            cache = self.fork(self._first_cache(prompt[0], self.n_layers), 1)
            for segment in prompt[1:]:
                final = self.prefill([segment.ids], cache).final
        stop = self._stop_ids
        written: list[int] = []
        while len(written) < max_new_tokens:
            token = int(mx.argmax(self.project_to_vocab(final)[0]).item())
            if token in stop:
                break
            written.append(token)
            final = self.prefill([[token]], cache).final
        done = self.prefill([list(cue)], cache, wanted)
        margins, masses = self.answer(done.final)
        states = {n: np.array(done.layers[n].astype(mx.float32))[0] for n in wanted}
        return PromptScore(float(margins[0]), float(masses[0]), states if wanted else None), written

    @functools.cached_property
    def _stop_ids(self) -> frozenset[int]:
        """Ids that end the model's turn: every control token (end of turn, end of text, EOS)."""
        eos = self.tokenizer.encode(self.tokenizer.eos_token) if self.tokenizer.eos_token else []
        return self.tokenizer.special_ids() | frozenset(eos if len(eos) == 1 else [])

    # --- sharing prefixes -----------------------------------------------------------------------
    def _first_cache(self, first: Segment, depth: int) -> list[SegmentCache]:
        """A one-row cache holding the first segment through `depth` blocks; kept across calls
        when it has a key (a kept one of more blocks serves a shallower pass with its first ones)."""
        if first.key is not None and len(self._kept.get(first, ())) >= depth:
            self._kept.move_to_end(first)
            return self._kept[first][:depth]
        cache = self.new_cache(depth)
        self.prefill([first.ids], cache)
        if first.key is not None:
            self._kept[first] = cache
            while len(self._kept) > self._kept_limit:
                self._kept.popitem(last=False)
        return cache

    def _extend(self, prompts: Sequence[Prompt], members: list[int], depth: int, parent: list[SegmentCache],
                parent_row: dict[int, int], results: list, layers: Sequence[int]) -> None:
        """Prefill segment `depth` of `members` on the rows of `parent` they continue from."""
        children: dict[tuple[int, Segment], list[int]] = {}
        for i in members:
            children.setdefault((parent_row[i], prompts[i][depth]), []).append(i)
        batch = parent[0].batch
        branched = self._branched(prompts, children, depth, batch)
        if branched is not None:
            cache = [BranchCache(c, len(branched) // batch, joined=not self._branches_in_place) for c in parent]
            prefilled = self.prefill([segment.ids for _, segment in branched], cache, layers)
            done = [(i, r) for r, child in enumerate(branched) for i in children[child]]
            self._finish([i for i, _ in done], prefilled, [r for _, r in done], results, layers)
            return
        for wave in _waves(list(children), batch):
            rows = [row for row, _ in wave]
            if batch == 1:
                cache = self.fork(parent, len(wave))  # broadcast the one row: no copy
            elif rows == list(range(batch)):
                cache = self.fork(parent)  # every row once, in order: no copy
            else:
                cache = [c.select(rows) for c in parent]
            ending = any(len(prompts[i]) == depth + 1 for child in wave for i in children[child])
            prefilled = self.prefill([segment.ids for _, segment in wave], cache, layers if ending else ())
            done, done_rows, going_on, next_row = [], [], [], {}
            for r, child in enumerate(wave):
                for i in children[child]:
                    if len(prompts[i]) == depth + 1:
                        done.append(i)
                        done_rows.append(r)
                    else:
                        going_on.append(i)
                        next_row[i] = r
            if done:
                self._finish(done, prefilled, done_rows, results, layers)
            if going_on:
                self._extend(prompts, going_on, depth + 1, cache, next_row, results, layers)

    def _branched(self, prompts: Sequence[Prompt], children: dict[tuple[int, Segment], list[int]], depth: int,
                  batch: int) -> Optional[list[tuple[int, Segment]]]:
        """The children in parent-row order when they can all go on one `BranchCache`: every row
        of a batch has the same number of them (more than one), and each is a short segment (a
        question's tail) that ends its prompts. Else None."""
        if batch == 1:
            return None
        per_row: dict[int, list[tuple[int, Segment]]] = {}
        for row, segment in children:
            per_row.setdefault(row, []).append((row, segment))
        counts = {len(kids) for kids in per_row.values()}
        if len(per_row) != batch or len(counts) != 1 or counts == {1}:
            return None
        for (_, segment), members in children.items():
            if len(segment.ids) > BRANCH_TOKENS or any(len(prompts[i]) != depth + 1 for i in members):
                return None
        return [child for row in range(batch) for child in per_row[row]]

    def _finish(self, done: list[int], prefilled: _Prefilled, rows: list[int], results: list,
                layers: Sequence[int]) -> None:
        if prefilled.final is None:  # stopped short of the final state: no answer
            margins = masses = np.full(len(prefilled.layers[layers[0]]), np.nan, dtype=np.float32)
        else:
            margins, masses = self.answer(prefilled.final)
        states = {n: np.array(prefilled.layers[n].astype(mx.float32)) for n in layers}
        for i, r in zip(done, rows):
            results[i] = PromptScore(
                margin=float(margins[r]),
                label_mass=float(masses[r]),
                states={n: states[n][r] for n in layers} if layers else None,
            )


def fuse_unshared(prompts: Sequence[Prompt]) -> list[Prompt]:
    """The prompts with each one's segments after the first joined into one from where no other
    prompt of the call shares them: e.g. a document asked one question is prefilled with its
    question's tail in one pass instead of two (each pass reads every weight once), while a
    document asked five questions is still prefilled once for all five. The first segment stays
    apart (it may be kept across calls); the scores are those of the same tokens."""
    shared: dict[tuple[Segment, ...], int] = {}
    for prompt in prompts:
        for depth in range(2, len(prompt)):
            shared[tuple(prompt[:depth])] = shared.get(tuple(prompt[:depth]), 0) + 1
    fused: list[Prompt] = []
    for prompt in prompts:
        depth = 1
        while depth < len(prompt) - 1 and shared[tuple(prompt[: depth + 1])] > 1:
            depth += 1
        if depth >= len(prompt) - 1:
            fused.append(prompt)
        else:
            rest = Segment(tuple(token for segment in prompt[depth:] for token in segment.ids))
            fused.append([*prompt[:depth], rest])
    return fused


def _waves(children: list[tuple[int, Segment]], batch: int) -> list[list[tuple[int, Segment]]]:
    """Batches of (parent row, segment) pairs to prefill together. From a one-row parent, all of
    them at once. Otherwise wave k takes the k-th child of each row, so that in the usual case
    (every document row continues with each question's tail) a wave covers every row in order
    and can extend the parent's cache without copying it."""
    if batch == 1:
        return [children]
    waves: list[list[tuple[int, Segment]]] = []
    seen: dict[int, int] = {}
    for row, segment in children:
        k = seen.get(row, 0)
        seen[row] = k + 1
        if k == len(waves):
            waves.append([])
        waves[k].append((row, segment))
    return [sorted(wave, key=lambda child: child[0]) for wave in waves]
