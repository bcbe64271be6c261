"""One item inside a collection (a mailbox's message, an archive's member) as a Document: its
bytes extracted like a file's, with the file's metadata (kind, size, content hash)."""
from __future__ import annotations

import hashlib
from typing import Optional

from engine.intake.extract import extract_bytes
from engine.intake.normalize import normalize_document
from engine.intake.sniff import kind_for_name
from engine.types import Document


def member_document(doc_id: str, source: str, data: bytes, name: str, *, max_chars: int,
                    timeout_s: Optional[float]) -> Document:
    """The Document for one item whose bytes are ``data``; ``name`` gives the suffix (its format
    is sniffed from the content too). Never raises."""
    result = extract_bytes(data, name, max_chars=max_chars, timeout_s=timeout_s)
    document = Document(id=doc_id, text=result.text, source=source, error=result.error,
                        warnings=list(result.warnings))
    document.meta = {"kind": result.kind, "truncated": result.truncated,
                     "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    if result.pages is not None:
        document.meta["pages"] = result.pages
    return normalize_document(document, max_chars=max_chars)


def error_document(doc_id: str, source: str, error: str, name: str = "") -> Document:
    """A row for an item that could not be read."""
    return Document(id=doc_id, text="", source=source, error=error,
                    meta={"kind": kind_for_name(name or doc_id), "truncated": False})
