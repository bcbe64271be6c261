"""Documents from what the user gave the window: files, folders, pasted or dropped text.

Reading goes through ``engine.intake`` (the same code the CLI uses). This module only adds
what a window needs on top: short display names and documents made from pasted text.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from engine.types import Document

SAMPLES_DIR = Path(__file__).resolve().parent.parent / "resources" / "samples"


def load_paths(paths: Sequence[str | os.PathLike]) -> list[tuple[str, Document]]:
    """(display name, document) for every file in ``paths`` (folders walked recursively).

    Never raises: a file that can't be read comes back as a document with ``error`` set.
    """
    try:
        from engine.intake import load_documents
    except ImportError:  # engine.intake not in this checkout yet: plain text and Markdown only
        load_documents = _read_text_files

    roots = [os.fspath(p) for p in paths]
    return [(display_name(doc, roots), doc) for doc in load_documents(roots)]


def _read_text_files(paths: Sequence[str]) -> list[Document]:
    docs = []
    for given in paths:
        files = sorted(str(p) for p in Path(given).rglob("*") if p.is_file()) if os.path.isdir(given) else [given]
        for path in files:
            if Path(path).suffix.lower() not in (".txt", ".md") and os.path.isdir(given):
                continue
            try:
                docs.append(Document(id=path, text=Path(path).read_text(encoding="utf-8"), source=path))
            except (OSError, UnicodeDecodeError) as exc:
                docs.append(Document(id=path, text="", source=path, error=f"could not read: {exc}"))
    return docs


def display_name(doc: Document, roots: Sequence[str]) -> str:
    """A short name for a row: the file name, or the path inside the folder the user named
    (``2024/march/invoice.pdf``), so two ``README.md`` files in different subfolders stay apart."""
    ident = doc.id
    for root in roots:
        root = root.rstrip("/\\") or root
        if ident == root:
            return os.path.basename(root) or root
        if ident.startswith(root + os.sep) or ident.startswith(root + "/"):
            return ident[len(root) + 1 :]
    return os.path.basename(ident) or ident


def text_document(text: str, number: int) -> tuple[str, Document]:
    """A document made from pasted or dropped text; its name is its first line."""
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    title = first if len(first) <= 60 else first[:59].rstrip() + "…"
    name = f"Pasted {number}: {title}" if title else f"Pasted {number}"
    return name, Document(id=f"pasted-{number}", text=text, meta={"pasted": True})
