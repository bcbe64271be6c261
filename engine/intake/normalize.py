"""One place where text becomes safe to tokenize, whatever it came from.

Files, standard input, `--jsonl-in` lines and text given to the Python API all pass through
:func:`normalize_document` (or :func:`normalize_text`) before the tokenizer sees them:

- lone surrogates (``"\\ud800"`` from a JSON escape, or bytes a decoder escaped with
  ``surrogateescape``) become U+FFFD, with a warning that counts them; the tokenizer would
  refuse such a string and cost the whole batch;
- text longer than the character budget (``limits.DEFAULT_MAX_CHARS``) is cut, with a warning.

:func:`decode_utf8` turns bytes that should be UTF-8 (a JSONL line) into text, replacing
undecodable bytes and saying how many. Both are idempotent: a second pass changes nothing and
adds no warning.
"""
from __future__ import annotations

import re
from typing import Any, Optional

from engine.intake import limits
from engine.types import Document

REPLACEMENT = "\ufffd"
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def normalize_text(text: str, *, max_chars: Optional[int] = None) -> tuple[str, list[str]]:
    """(text safe for the tokenizer, warnings). ``max_chars`` defaults to the intake budget."""
    limit = limits.DEFAULT_MAX_CHARS if max_chars is None else max_chars
    warnings: list[str] = []
    if len(text) > limit:
        warnings.append(f"text truncated ({limit:,} of {len(text):,} characters kept)")
        text = text[:limit]
    text, replaced = _SURROGATE.subn(REPLACEMENT, text)
    if replaced:
        warnings.append(f"{_count(replaced, 'invalid character')} (lone surrogates) replaced with U+FFFD")
    return text, warnings


def normalize_document(doc: Document, *, max_chars: Optional[int] = None) -> Document:
    """Normalise ``doc.text`` in place (see :func:`normalize_text`), adding its warnings once;
    returns ``doc``."""
    if not isinstance(doc.text, str):
        doc.text, doc.error = "", doc.error or "document text is not a string"
        return doc
    doc.text, warnings = normalize_text(doc.text, max_chars=max_chars)
    for warning in warnings:
        if warning not in doc.warnings:
            doc.warnings.append(warning)
    return doc


def replace_surrogates(value: Any) -> Any:
    """``value`` with lone surrogates replaced in every string (dict keys, lists, nested), so
    that it can be encoded as UTF-8 when it is written out; other values unchanged."""
    if isinstance(value, str):
        return _SURROGATE.sub(REPLACEMENT, value)
    if isinstance(value, dict):
        return {replace_surrogates(k): replace_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [replace_surrogates(v) for v in value]
    return value


def decode_utf8(data: bytes) -> tuple[str, Optional[str]]:
    """Bytes that should be UTF-8 -> (text, warning or None). Undecodable bytes become U+FFFD."""
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError:
        pass
    text = data.decode("utf-8", errors="replace")
    bad = text.count(REPLACEMENT) - data.count(REPLACEMENT.encode("utf-8"))
    return text, f"{_count(bad, 'invalid UTF-8 sequence')} replaced with U+FFFD"


def _count(n: int, what: str) -> str:
    return f"{n:,} {what}{'' if n == 1 else 's'}"
