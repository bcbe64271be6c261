"""The deciding passage of an ordinary (one-window) document.

A document that fits in one window has no deciding window to show. For the selected document
only, its paragraphs are scored one by one as documents of their own (through the question's
calibrator, on the scoring thread, after any scoring already queued), and the paragraph that read
alone points most strongly to the verdict's side is highlighted, and labelled as exactly that: it
is evidence the model finds in that part by itself, not an attribution of the whole verdict.
"""
from __future__ import annotations

import math
import re
from typing import Optional, Sequence

MAX_PASSAGES = 40  # paragraphs scored per document (the first ones); each costs a short prefill
MIN_PASSAGE_CHARS = 20  # shorter paragraphs (headings, signatures) are not candidates


def split_passages(text: str) -> list[tuple[int, int]]:
    """Character spans of the paragraphs of ``text`` (separated by blank lines, else by line
    breaks), stripped, at least MIN_PASSAGE_CHARS long, at most MAX_PASSAGES of them."""
    for separator in (r"\n[ \t]*\n", r"\n"):
        spans, start = [], 0
        for match in [*re.finditer(separator, text), None]:
            end = match.start() if match else len(text)
            piece = text[start:end]
            lead = len(piece) - len(piece.lstrip())
            a, b = start + lead, start + len(piece.rstrip())
            if b - a >= MIN_PASSAGE_CHARS:
                spans.append((a, b))
            if match:
                start = match.end()
        if len(spans) >= 2:
            return spans[:MAX_PASSAGES]
    return []


def deciding_passage(verdict_margin: float, spans: Sequence[tuple[int, int]],
                     margins: Sequence[float]) -> Optional[tuple[int, tuple[int, int], float]]:
    """(index, span, margin) of the passage whose own margin points furthest to the verdict's
    side (yes when ``verdict_margin`` > 0, else no); None when none points that way."""
    side = 1.0 if verdict_margin > 0 else -1.0
    best = None
    for n, (span, margin) in enumerate(zip(spans, margins)):
        if math.isnan(margin) or margin * side <= 0:
            continue
        if best is None or margin * side > best[2] * side:
            best = (n, span, margin)
    return best
