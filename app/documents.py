"""Documents from what the user gave the window: files, folders, pasted or dropped text.

Reading goes through ``engine.intake`` (the same code the CLI uses). This module only adds
what a window needs on top: short display names and documents made from pasted text.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional, Sequence, Union

from engine.intake.normalize import normalize_document
from engine.types import Document


@dataclass(frozen=True)
class TableChoice:
    """A table to read one document per row: which columns hold the text and the row names."""

    path: str
    text_columns: tuple[str, ...]
    id_column: Optional[str] = None
    sheet: Optional[str] = None


def load_paths(paths: Sequence[Union[str, os.PathLike, TableChoice]]) -> list[tuple[str, Document]]:
    """(display name, document) for every file in ``paths`` (folders walked recursively), and
    for every row of each :class:`TableChoice`, in the order given.

    Never raises: a file that can't be read comes back as a document with ``error`` set.
    """
    from engine.intake import load_documents

    items: list[tuple[str, Document]] = []
    roots: list[str] = []
    for given in list(paths) + [None]:
        if isinstance(given, (str, os.PathLike)):
            roots.append(os.fspath(given))
            continue
        if roots:
            items += [(display_name(doc, roots), doc) for doc in load_documents(roots)]
            roots = []
        if isinstance(given, TableChoice):
            items += [(doc.id, doc) for doc in table_documents(given)]  # `name:row N` or the id column
    return items


def table_documents(choice: TableChoice) -> list[Document]:
    """One document per row of the table (a table that can no longer be read: one error row).
    Each row's ``meta`` keeps its row number (``row``) and the table's sheet and file stamp
    (``table``), so its verdicts can be added back to the original."""
    from engine.intake.table import TableError, iter_table_documents, open_table

    from app.table_export import table_stamp

    try:
        stamp = table_stamp(choice.path)  # before reading: a change while it is read counts as a change
        table = open_table(choice.path, sheet=choice.sheet)
        docs = list(iter_table_documents(table, choice.text_columns, choice.id_column))
    except (TableError, OSError) as exc:
        reason = str(exc) if isinstance(exc, TableError) else f"cannot read {choice.path}: {exc.strerror or exc}"
        return [Document(id=choice.path, text="", source=choice.path, error=reason)]
    for doc in docs:  # what "Add Verdict Columns to the Original" writes back, and the file as it was read
        doc.meta["table"] = {"sheet": table.sheet, "stamp": stamp}
    return docs


def display_name(doc: Document, roots: Sequence[str]) -> str:
    """A short name for a row: the file name, or the path inside the folder the user named
    (``2024/march/invoice.pdf``), so two ``README.md`` files in different subfolders stay apart;
    an item of a mailbox or archive the user named keeps that file's name (``docs.zip!a/b.pdf``,
    ``inbox.mbox:#3 <id>``)."""
    ident = doc.id
    for root in roots:
        root = root.rstrip("/\\") or root
        if ident == root:
            return os.path.basename(root) or root
        if ident.startswith((root + os.sep, root + "/")):
            return ident[len(root) + 1 :]
        if ident.startswith((root + "!", root + ":#")):
            return (os.path.basename(root) or root) + ident[len(root):]
    return os.path.basename(ident) or ident


def text_document(text: str, number: int) -> tuple[str, Document]:
    """A document made from pasted or dropped text; its name is its first line."""
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    title = first if len(first) <= 60 else first[:59].rstrip() + "…"
    name = f"Pasted {number}: {title}" if title else f"Pasted {number}"
    # Normalised here, on the GUI's side: the engine scores a normalised copy, and the spans of
    # its verdicts (passages, deciding windows) index this text.
    return name, normalize_document(Document(id=f"pasted-{number}", text=text, meta={"pasted": True}))
