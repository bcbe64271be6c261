"""Document intake: the files and folders a user named -> :class:`Document` rows.

Every file that should be read gets exactly one row, in a stable order; a file that cannot
be read gets a row with ``error`` (never an exception, never a silently missing row).
Folders are walked recursively (symlinked folders followed, loops reported); hidden
entries, OS clutter and unsupported file types inside folders are skipped quietly; a FIFO,
socket or device found in one gets an error row (it is never opened, so reading never blocks).
"""
from __future__ import annotations

import errno
import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Optional, Union

from engine.intake import limits
from engine.intake.archives import is_archive_name, iter_archive
from engine.intake.extract import extract_file
from engine.intake.mailboxes import is_maildir, is_mbox_name, iter_maildir, iter_mbox
from engine.intake.limits import DEFAULT_MAX_CHARS, DEFAULT_TIMEOUT_S
from engine.intake.normalize import normalize_document
from engine.intake.result import describe_exception, describe_os_error
from engine.intake.sniff import content_kind, file_suffix, kind_for_name
from engine.types import Document

PathLike = Union[str, bytes, os.PathLike]

# Compared lower-case. Windows/macOS junk that users copy along with their documents.
CLUTTER_NAMES = frozenset(
    {
        ".ds_store",
        "thumbs.db",
        "ehthumbs.db",
        "desktop.ini",
        "icon\r",
        "__macosx",
        "$recycle.bin",
        "system volume information",
    }
)


NOT_REGULAR_IN_FOLDER = "skipped: not a regular file (device, pipe or socket)"


def is_clutter(name: str) -> bool:
    """OS clutter and Office lock files (``~$report.docx``), skipped even when named."""
    lowered = name.lower()
    return lowered in CLUTTER_NAMES or name.startswith(("~$", "._"))


def is_hidden(name: str) -> bool:
    return name.startswith(".")


@dataclass
class _Entry:
    path: str  # what the OS needs (str with surrogate escapes for undecodable names)
    id: str  # what rows are keyed by: readable, same as path when the name is valid UTF-8
    error: Optional[str] = None
    warning: Optional[str] = None
    maildir: bool = False  # a Maildir folder: one row per message, not per file


def load_documents(
    paths: Iterable[PathLike],
    *,
    max_chars: int = DEFAULT_MAX_CHARS,
    timeout_s: Optional[float] = DEFAULT_TIMEOUT_S,
) -> list[Document]:
    """Read files and folders (recursively) into Documents; never raises for bad input.

    Order: the paths in the order named; inside a folder, depth first with each folder's
    entries sorted by name.
    ``id`` is the path as given, or for files found in a folder the folder as given
    joined with the relative path. ``meta`` has ``kind``, ``truncated``, ``sha256``,
    ``bytes`` and, for PDFs, ``pages``; a later file with the same content as an earlier
    one gets a warning and ``meta["duplicate_of"]``. ``max_chars`` caps the text kept per
    document and ``timeout_s`` the time spent per file (see :mod:`engine.intake.extract`).
    """
    return list(iter_documents(paths, max_chars=max_chars, timeout_s=timeout_s))


def iter_documents(
    paths: Iterable[PathLike],
    *,
    max_chars: int = DEFAULT_MAX_CHARS,
    timeout_s: Optional[float] = DEFAULT_TIMEOUT_S,
) -> Iterator[Document]:
    """Generator version of :func:`load_documents`: one Document at a time, same order."""
    if isinstance(paths, (str, bytes, os.PathLike)):
        paths = [paths]
    first_by_hash: dict[str, str] = {}
    used_ids: dict[str, str] = {}  # id -> real path, to keep ids unique
    for entry in _expand(paths):
        if entry.id in used_ids:
            if _same_file(used_ids[entry.id], entry.path):
                continue  # the same file named twice (e.g. a folder and a file in it)
            entry.id = _unique_id(entry.id, used_ids)
        used_ids[entry.id] = entry.path
        for document in _documents(entry, max_chars, timeout_s):
            digest = document.meta.get("sha256")
            if digest and document.meta.get("bytes"):
                if digest in first_by_hash:
                    original = first_by_hash[digest]
                    document.meta["duplicate_of"] = original
                    document.warnings.append(f"duplicate of {original} (same content)")
                else:
                    first_by_hash[digest] = document.id
            yield document


def _documents(entry: _Entry, max_chars: int, timeout_s: Optional[float]) -> Iterator[Document]:
    """The file's one document, or one per item of a collection (mailbox, archive)."""
    if entry.error is None:
        if entry.maildir:
            return iter_maildir(entry.path, entry.id, max_chars=max_chars, timeout_s=timeout_s)
        name = os.path.basename(entry.path)
        if is_mbox_name(name):
            return iter_mbox(entry.path, entry.id, max_chars=max_chars, timeout_s=timeout_s)
        if is_archive_name(name):
            return iter_archive(entry.path, entry.id, max_chars=max_chars, timeout_s=timeout_s)
    return iter([_load(entry, max_chars, timeout_s)])


# ----------------------------------------------------------------------------- walking


def _expand(paths: Iterable[PathLike]) -> Iterator[_Entry]:
    for given in paths:
        path = os.fsdecode(given) if isinstance(given, bytes) else os.fspath(given)
        entry = _make_entry(path)
        try:
            st = os.stat(path)
        except OSError as exc:
            entry.error = _stat_error(path, exc)
            yield entry
            continue
        if stat.S_ISDIR(st.st_mode) and is_maildir(path):
            entry.maildir = True
            yield entry
        elif stat.S_ISDIR(st.st_mode):
            try:
                yield from _walk(path)
            except Exception as exc:  # a bug or a race must cost a row, not the batch
                entry.error = f"could not read folder: {describe_exception(exc)}"
                yield entry
        elif is_clutter(os.path.basename(path)):
            continue
        else:
            yield entry


def _walk(root: str) -> Iterator[_Entry]:
    """Depth-first, entries sorted by name; symlinked folders followed once."""
    root_st = os.stat(root)
    visited = {(root_st.st_dev, root_st.st_ino)}
    # Each frame: (folder path, its ancestors' (dev, ino) for loop detection, names to
    # visit, reverse-sorted so that pop() yields them in order)
    stack: list[tuple[str, frozenset, list[str]]] = []
    entries = _list_folder(root)
    if isinstance(entries, _Entry):
        yield entries
        return
    stack.append((root, frozenset(visited), entries))
    while stack:
        folder, ancestors, names = stack[-1]
        if not names:
            stack.pop()
            continue
        name = names.pop()
        if is_hidden(name) or is_clutter(name):
            continue
        path = os.path.join(folder, name)
        entry = _make_entry(path)
        try:
            st = os.stat(path)
        except OSError as exc:
            if exc.errno == errno.ELOOP or _wanted(name, path):
                entry.error = _stat_error(path, exc)
                yield entry
            continue
        if stat.S_ISDIR(st.st_mode):
            key = (st.st_dev, st.st_ino)
            if key in ancestors:
                entry.error = "symlink loop: this folder link points back to a folder that contains it"
                yield entry
                continue
            if key in visited:
                continue  # already read through another link
            visited.add(key)
            if is_maildir(path):
                entry.maildir = True
                yield entry
                continue
            children = _list_folder(path)
            if isinstance(children, _Entry):
                yield children
                continue
            stack.append((path, ancestors | {key}, children))
        elif not stat.S_ISREG(st.st_mode):  # a FIFO, socket or device: never opened, never silent
            entry.error = NOT_REGULAR_IN_FOLDER
            yield entry
        elif _wanted(name, path):
            yield entry


def _list_folder(path: str) -> Union[list[str], _Entry]:
    try:
        with os.scandir(path) as scan:
            names = [item.name for item in scan]
    except OSError as exc:
        entry = _make_entry(path)
        if isinstance(exc, PermissionError):
            entry.error = "permission denied: cannot open folder"
        else:
            entry.error = f"cannot open folder: {exc.strerror or exc}"
        return entry
    return sorted(names, reverse=True)


def _wanted(name: str, path: str) -> bool:
    """Inside folders: supported suffixes, mailboxes and archives, plus extension-less PDFs and
    e-mails."""
    if kind_for_name(name) or is_mbox_name(name) or is_archive_name(name):
        return True
    if file_suffix(name):
        return False
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    return content_kind(head) in ("pdf", "eml")


def _stat_error(path: str, exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError) and os.path.islink(path):
        return "broken symlink: its target does not exist"
    return describe_os_error(exc)


def _make_entry(path: str) -> _Entry:
    readable = _readable(path)
    entry = _Entry(path=path, id=readable)
    if readable != path:
        entry.warning = "file name is not valid UTF-8; undecodable bytes are shown as \\x escapes"
    return entry


def _readable(name: str) -> str:
    """A printable, UTF-8-encodable form of an OS path string."""
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        return os.fsencode(name).decode("utf-8", errors="backslashreplace")


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return a == b


def _unique_id(base: str, used: dict[str, str]) -> str:
    n = 2
    while f"{base} ({n})" in used:
        n += 1
    return f"{base} ({n})"


# ----------------------------------------------------------------------------- reading


def _load(entry: _Entry, max_chars: int, timeout_s: Optional[float]) -> Document:
    try:
        return _load_checked(entry, max_chars, timeout_s)
    except Exception as exc:
        document = Document(id=entry.id, text="", source=entry.id, error=f"could not read file: {describe_exception(exc)}")
        document.meta = {"kind": kind_for_name(entry.id), "truncated": False}
        return document


def _load_checked(entry: _Entry, max_chars: int, timeout_s: Optional[float]) -> Document:
    document = Document(id=entry.id, text="", source=entry.id)
    if entry.warning:
        document.warnings.append(entry.warning)
    if entry.error:
        document.error = entry.error
        document.meta = {"kind": kind_for_name(entry.id), "truncated": False}
        return document
    try:
        digest, size = _sha256(entry.path)
    except OSError as exc:
        document.error = describe_os_error(exc)
        document.meta = {"kind": kind_for_name(entry.id), "truncated": False}
        return document
    result = extract_file(Path(entry.path), max_chars=max_chars, timeout_s=timeout_s)
    document.text = result.text
    document.error = result.error
    document.warnings.extend(result.warnings)
    document.meta = {"kind": result.kind, "truncated": result.truncated, "sha256": digest, "bytes": size}
    if digest is None:
        del document.meta["sha256"]
    if result.pages is not None:
        document.meta["pages"] = result.pages
    return normalize_document(document, max_chars=max_chars)


def _sha256(path: str) -> tuple[Optional[str], int]:
    """(content hash, size); no hash for files above ``limits.MAX_FILE_BYTES`` (read in part or
    refused anyway; hashing a huge or sparse file would take minutes before its row)."""
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):  # reading a FIFO would block
        raise OSError(errno.EINVAL, "not a regular file (device, pipe or socket)")
    if st.st_size > limits.MAX_FILE_BYTES:
        return None, st.st_size
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
            if size > limits.MAX_FILE_BYTES:  # it grew meanwhile
                return None, size
    return digest.hexdigest(), size
