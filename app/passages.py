"""The deciding passage of an ordinary (one-window) document.

A document that fits in one window has no deciding window to show. For the selected document
only, its paragraphs are scored one by one as documents of their own (through the question's
calibrator, on the scoring thread, after any scoring already queued), and the paragraph that read
alone points most strongly to the verdict's side is highlighted, and labelled as exactly that: it
is evidence the model finds in that part by itself, not an attribution of the whole verdict.
Mail headers (From:, Subject:, …) and set phrases (greetings, sign-offs, "if you have already
paid, please ignore this reminder", unsubscribe lines) are not candidates: read alone they can
point anywhere, and they say nothing about this document. When no candidate points to the
answer, no single paragraph decides it, and the pane says so.
"""
from __future__ import annotations

import math
import re
from typing import Optional, Sequence

MAX_PASSAGES = 40  # paragraphs scored per document (the first ones); each costs a short prefill
MIN_PASSAGE_CHARS = 20  # shorter paragraphs (headings, signatures) are not candidates

# A line of a mail's (or a forwarded message's) header block.
_HEADER_LINE = re.compile(
    r"^\s*(from|to|cc|bcc|subject|date|sent|reply-to|return-path|message-id|received|delivered-to|"
    r"mime-version|content-type|content-transfer-encoding|x-[\w-]+)\s*:", re.IGNORECASE)
# Sentences any letter of the kind carries whatever it is about: set phrases, not content.
_SET_PHRASES = re.compile(
    r"^\s*(if you have already (paid|sent|done|submitted|responded|replied)\b"
    r"|please (ignore|disregard) this\b"
    r"|(many )?thanks?( you)?( (so|very) much)?( again)?( for [\w\s']{0,40})?[.!,]?\s*(\n|$)"
    r"|((with )?(kind|best|warm)(est)?( regards| wishes)?|regards|cheers|(yours )?(sincerely|faithfully|truly)"
    r"|see you( there| soon| then)?)[,.!]?\s*(\n|$)"
    r"|(dear|hello|hi)\b[^\n]{0,60}[,:]\s*$"
    r"|sent from my\b"
    r"|(to )?unsubscribe\b|you are receiving this\b|this (e-?mail|message) (was sent|is intended|may contain)\b"
    r"|(please )?do not reply\b"
    r"|all rights reserved\b|©)", re.IGNORECASE)


def is_boilerplate(paragraph: str, last: bool = False) -> bool:
    """Whether ``paragraph`` is a mail header block (every line a header field), one set phrase
    (a greeting, a thank-you, a sign-off with the name under it, "if you have already paid,
    please ignore this reminder", an unsubscribe or confidentiality line), or, when it is the
    ``last`` of the text, a signature (one or two short lines without a sentence)."""
    lines = [line for line in paragraph.splitlines() if line.strip()]
    if not lines:
        return False
    if all(_HEADER_LINE.match(line) for line in lines):
        return True
    if last and len(lines) <= 2 and all(len(line) <= 80 for line in lines) and not re.search(r"[.!?]", paragraph):
        return True
    sentences = [x for x in re.split(r"(?<=[.!?])\s+", paragraph.strip()) if x]
    return len(lines) <= 3 and len(sentences) <= 2 and bool(_SET_PHRASES.match(paragraph.strip()))


def split_passages(text: str) -> list[tuple[int, int]]:
    """Character spans of the paragraphs of ``text`` (separated by blank lines, else by line
    breaks), stripped, at least MIN_PASSAGE_CHARS long and not boilerplate (`is_boilerplate`),
    at most MAX_PASSAGES of them; none when fewer than two are left."""
    for separator in (r"\n[ \t]*\n", r"\n"):
        spans, start = [], 0
        breaks = [*re.finditer(separator, text), None]
        for n, match in enumerate(breaks):
            end = match.start() if match else len(text)
            piece = text[start:end]
            lead = len(piece) - len(piece.lstrip())
            a, b = start + lead, start + len(piece.rstrip())
            last = not text[b:].strip()
            if b - a >= MIN_PASSAGE_CHARS and not is_boilerplate(text[a:b], last=last and n > 0):
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
