"""Documents from JSON Lines: one object a line with ``id`` and ``text``; other keys pass through.

One bad line costs one row (``error`` set), never the file, wherever it is: invalid JSON, a
missing ``text``, NUL bytes, a line longer than ``limits.MAX_LINE_BYTES`` (skipped without being
parsed), or bytes that are not UTF-8 (replaced, with a warning on that row). A file that is not
UTF-8 JSON Lines at all (UTF-16 or UTF-32, with or without a byte-order mark, or binary with no
line that starts like a JSON object) raises :class:`JsonlError` before anything is read, so the
command line can refuse it with one line. A UTF-8 byte-order mark is accepted.
"""
from __future__ import annotations

import json
from typing import BinaryIO, Iterator

from engine.intake import limits
from engine.intake.normalize import decode_utf8, normalize_document, replace_surrogates
from engine.intake.sniff import bom_encoding, looks_binary, utf16_without_bom
from engine.types import Document

_HEAD_BYTES = 64 * 1024
_CHUNK = 1 << 20


class JsonlError(ValueError):
    """The file as a whole is not UTF-8 JSON Lines (the message says what it looks like)."""


def check_jsonl_head(head: bytes) -> None:
    """Raise :class:`JsonlError` when the first bytes show the file is not UTF-8 text."""
    found = bom_encoding(head)
    if found and found[0] != "utf-8":
        raise JsonlError(f"it is {found[0].upper()} (byte-order mark), not UTF-8; convert it to UTF-8")
    if utf16_without_bom(head):
        raise JsonlError("it looks like UTF-16 (zero bytes between characters), not UTF-8; convert it to UTF-8")
    if looks_binary(head) and not any(line.lstrip().startswith(b"{") for line in head.split(b"\n")):
        raise JsonlError("it is binary, not JSON Lines text")


def iter_jsonl_documents(source: BinaryIO, *, max_chars: int | None = None) -> Iterator[Document]:
    """Documents from a binary stream of JSON Lines, in order, one per non-blank line."""
    head = source.peek(_HEAD_BYTES)[:_HEAD_BYTES] if hasattr(source, "peek") else b""
    check_jsonl_head(head)
    number = 0
    while True:
        line = source.readline(limits.MAX_LINE_BYTES + 1)
        if not line:
            return
        number += 1
        if number == 1 and line.startswith(b"\xef\xbb\xbf"):
            line = line[3:]
        if len(line) > limits.MAX_LINE_BYTES and not line.endswith(b"\n"):
            skipped = len(line) + _skip_rest_of_line(source)
            yield Document(
                id=f"line {number}", text="",
                error=f"line {number} is {skipped / 2**20:,.0f} MB, larger than the "
                      f"{limits.MAX_LINE_BYTES // 2**20} MB limit for one line; skipped",
            )
            continue
        if not line.strip():
            continue
        yield _document(line, number, max_chars)


def _document(line: bytes, number: int, max_chars: int | None) -> Document:
    if b"\x00" in line:
        return Document(id=f"line {number}", text="", error=f"line {number} has NUL bytes: binary, not a JSON object")
    text, warning = decode_utf8(line)
    del line
    try:
        obj = json.loads(text)
        if not isinstance(obj, dict):
            raise ValueError("not a JSON object")
    except (ValueError, RecursionError) as exc:
        return Document(id=f"line {number}", text="", error=f"invalid JSON on line {number}: {str(exc)[:200]}")
    del text
    body = obj.pop("text", None)
    obj = replace_surrogates(obj)  # the id and pass-through values are written out as they are
    doc_id = str(obj.pop("id", f"line {number}"))
    if not isinstance(body, str):
        return Document(id=doc_id, text="", error=f"line {number} has no 'text' string", meta={"passthrough": obj})
    doc = Document(id=doc_id, text=body, meta={"passthrough": obj})
    if warning:
        doc.warnings.append(f"line {number}: {warning}")
    return normalize_document(doc, max_chars=max_chars)


def _skip_rest_of_line(source: BinaryIO) -> int:
    skipped = 0
    while True:
        chunk = source.readline(_CHUNK)
        skipped += len(chunk)
        if not chunk or chunk.endswith(b"\n"):
            return skipped
