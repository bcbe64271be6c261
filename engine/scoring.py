"""The seam between prompts and whatever computes their next-token answer: `ScoringBackend`.

A backend is given prompts as lists of token-id segments and returns, per prompt, the Yes/No
margin at the last position, the label mass and, when asked and available, the hidden states
after chosen layers. The local MLX runtime (`engine.runtime.local.LocalBackend`) is one; a remote
inference server is another. Everything above this seam (windows, batches, calibration, the
pipeline) is the same for all of them.

Segments are what makes caching possible without the caller knowing how: prompts that start with
equal segments share that prefix, and a segment with a `key` is one the caller will send again
(the instructions), so a backend may keep its cache across calls. No MLX here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Protocol, Sequence, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class Segment:
    """A run of token ids. `key` names a segment that will be sent again (e.g. "instructions"):
    a backend may cache it across calls under that key. Equal ids are equal segments."""

    ids: tuple[int, ...]
    key: Optional[str] = None

    def __len__(self) -> int:
        return len(self.ids)


Prompt = Sequence[Segment]


@dataclass
class PromptScore:
    """What a backend returns for one prompt."""

    margin: float  # log P(yes forms) - log P(no forms) at the last position
    label_mass: float  # P(yes forms) + P(no forms); NaN when the backend can't tell
    states: Optional[dict[int, np.ndarray]] = None  # layer -> hidden state (D,), when asked and available
    error: Optional[str] = None  # this prompt could not be scored (e.g. a server failed): one error row
    warning: Optional[str] = None  # scored, but with a caveat the row should carry (an approximate margin)


@runtime_checkable
class ScoringBackend(Protocol):
    """Scores prompts. Every call comes from one thread (MLX streams are thread-local)."""

    name: str  # shown to users
    fingerprint: str  # identifies the weights: what calibrators and probes are keyed by
    context_length: int  # the most tokens one prompt may have
    n_layers: int  # hidden-state layers are numbered 1..n_layers (n_layers: after the final norm)
    supports_states: bool  # whether `score` can return hidden states

    def score(self, prompts: Sequence[Prompt], layers: Sequence[int] = (), answer: bool = True) -> list[PromptScore]:
        """One `PromptScore` per prompt, in order. `layers` (resolved, 1..n_layers) asks for
        hidden states at the last position; a backend without them raises ValueError.
        `answer=False`: only those states are wanted, so the backend may stop each prompt after
        the deepest of them and leave margin and label mass NaN."""
        ...


def resolve_layer(n_layers: int, layer: int) -> int:
    """A layer number in 1..n_layers; negative numbers count from the end (-1: the final state)."""
    resolved = layer if layer >= 0 else n_layers + 1 + layer
    if not 1 <= resolved <= n_layers:
        raise ValueError(f"layer {layer} is outside 1..{n_layers} (or -1 for the final state)")
    return resolved
