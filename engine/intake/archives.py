"""Archives as documents: a .zip, .tar, .tar.gz or .tgz gives one document per member, read by
the rules of a folder (format sniffed, text extracted, clutter and unsupported types skipped,
errors as rows), in the archive's own order. Ids are ``docs.zip!contracts/a.pdf``.

Nothing is trusted that the archive says about itself. Each member is inflated in chunks with a
running cap (``limits.MAX_FILE_BYTES``), and the whole archive too
(``limits.ARCHIVE_MAX_UNCOMPRESSED``); past either the member, or every member left, is
refused with an error row. A member whose name leads outside the archive (``../``, an absolute
path, a drive letter), a link, an encrypted or damaged member, and an archive inside archives
deeper than ``limits.ARCHIVE_MAX_DEPTH`` each cost their own row. Nothing is written to disk.
"""
from __future__ import annotations

import io
import posixpath
import re
import tarfile
import zipfile
from dataclasses import dataclass
from typing import BinaryIO, Iterator, Optional, Union

from engine.intake import limits
from engine.intake.member import error_document, member_document
from engine.intake.result import describe_exception
from engine.intake.sniff import content_kind, file_suffix, kind_for_name
from engine.types import Document

ZIP_SUFFIXES = (".zip",)
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
_CHUNK = 1 << 20
_DRIVE = re.compile(r"^[A-Za-z]:")


def is_archive_name(name: str) -> bool:
    """Whether a file name says zip or tar archive."""
    return name.lower().endswith(ZIP_SUFFIXES + TAR_SUFFIXES)


@dataclass
class _Budget:
    """Bytes the whole archive (nested ones included) may still inflate to."""

    left: int


def iter_archive(source: Union[str, bytes], doc_id: str, *, max_chars: int, timeout_s: Optional[float],
                 depth: int = 1, budget: Optional[_Budget] = None) -> Iterator[Document]:
    """One document per member of the archive at path ``source`` (or in bytes ``source``, when
    nested), rows named ``doc_id!member``. Never raises."""
    budget = budget or _Budget(limits.ARCHIVE_MAX_UNCOMPRESSED)
    name = doc_id.rsplit("!", 1)[-1]
    try:
        if name.lower().endswith(ZIP_SUFFIXES):
            yield from _zip_members(source, doc_id, max_chars, timeout_s, depth, budget)
        else:
            yield from _tar_members(source, doc_id, max_chars, timeout_s, depth, budget)
    except Exception as exc:  # a damaged directory or stream: the rest of the archive is lost, said in a row
        yield error_document(doc_id, doc_id, f"damaged archive, the rest of it can't be read: {describe_exception(exc)}")


class _Refused(Exception):
    """One member must not be read; the message says why."""


def _zip_members(source, doc_id, max_chars, timeout_s, depth, budget) -> Iterator[Document]:
    opened = source if isinstance(source, str) else io.BytesIO(source)
    try:
        archive = zipfile.ZipFile(opened)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        yield error_document(doc_id, doc_id, f"not a readable zip archive: {describe_exception(exc)}")
        return
    with archive:
        infos = archive.infolist()
        for count, info in enumerate(infos):
            if count >= limits.ARCHIVE_MAX_MEMBERS:
                yield error_document(doc_id, doc_id, f"{len(infos) - count:,} more members past the limit of "
                                                     f"{limits.ARCHIVE_MAX_MEMBERS:,}; not read (zip bomb?)")
                return
            if info.is_dir() or not _wanted(info.filename):
                continue
            row = f"{doc_id}!{info.filename}"
            try:
                _check_name(info.filename)
                if info.flag_bits & 0x1:
                    raise _Refused("password-protected (encrypted member); not read")
                with archive.open(info) as fh:
                    data = _read_capped(fh, budget)
            except _Refused as exc:
                yield error_document(row, doc_id, str(exc), info.filename)
                continue
            except Exception as exc:  # bad CRC, a zlib error, an unsupported compression
                yield error_document(row, doc_id, f"damaged member: {describe_exception(exc)}", info.filename)
                continue
            yield from _member(data, row, info.filename, max_chars, timeout_s, depth, budget)


def _tar_members(source, doc_id, max_chars, timeout_s, depth, budget) -> Iterator[Document]:
    try:
        archive = (tarfile.open(source, mode="r|*") if isinstance(source, str)
                   else tarfile.open(fileobj=io.BytesIO(source), mode="r|*"))
    except (tarfile.TarError, OSError, EOFError) as exc:
        yield error_document(doc_id, doc_id, f"not a readable tar archive: {describe_exception(exc)}")
        return
    with archive:
        for count, info in enumerate(archive):  # streamed: each member is read when it comes
            if count >= limits.ARCHIVE_MAX_MEMBERS:
                yield error_document(doc_id, doc_id, f"members past the limit of {limits.ARCHIVE_MAX_MEMBERS:,}; "
                                                     "not read (tar bomb?)")
                return
            if info.isdir() or not _wanted(info.name):
                continue
            row = f"{doc_id}!{info.name}"
            try:
                _check_name(info.name)
                if not info.isfile():
                    raise _Refused("a link or special file inside the archive; not read")
                fh = archive.extractfile(info)
                data = _read_capped(fh, budget)
            except _Refused as exc:
                yield error_document(row, doc_id, str(exc), info.name)
                continue
            yield from _member(data, row, info.name, max_chars, timeout_s, depth, budget)


def _member(data: bytes, row: str, name: str, max_chars, timeout_s, depth, budget) -> Iterator[Document]:
    source = row.rsplit("!", 1)[0]
    if is_archive_name(name):
        if depth >= limits.ARCHIVE_MAX_DEPTH:
            yield error_document(row, source, f"an archive inside {depth} archives; refusing archives nested "
                                              f"deeper than {limits.ARCHIVE_MAX_DEPTH}", name)
            return
        yield from iter_archive(data, row, max_chars=max_chars, timeout_s=timeout_s, depth=depth + 1, budget=budget)
        return
    if not file_suffix(posixpath.basename(name)) and content_kind(data[:4096]) not in ("pdf", "eml"):
        return  # as in a folder: a file without an extension is read only when it is a PDF or an e-mail
    yield member_document(row, source, data, posixpath.basename(name), max_chars=max_chars, timeout_s=timeout_s)


def _read_capped(fh: BinaryIO, budget: _Budget) -> bytes:
    """All of a member, inflated a chunk at a time; refused once it passes the per-member limit or
    what is left of the archive's total."""
    limit = min(limits.MAX_FILE_BYTES, budget.left)
    parts, size = [], 0
    while chunk := fh.read(_CHUNK):
        size += len(chunk)
        if size > limit:
            if limit == budget.left:
                budget.left = 0
                raise _Refused(f"the archive inflates to more than {limits.ARCHIVE_MAX_UNCOMPRESSED // 10**6:,} MB "
                               "in all; refusing the rest (zip bomb?)")
            raise _Refused(f"inflates to more than the {limits.MAX_FILE_BYTES // 2**20} MB limit for one "
                           "member; refusing (zip bomb?)")
        parts.append(chunk)
    budget.left -= size
    return b"".join(parts)


def _check_name(name: str) -> None:
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or _DRIVE.match(name) or ".." in parts:
        raise _Refused("the member's name leads outside the archive (absolute, or with '..'); refusing")


def _wanted(name: str) -> bool:
    """A folder's rules: hidden entries and OS clutter skipped, as are types we don't read
    (archives are read; names without an extension are read as text or e-mail)."""
    from engine.intake.walker import is_clutter, is_hidden

    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts or any(is_hidden(p) and p != ".." or is_clutter(p) for p in parts):
        return False
    base = parts[-1]
    return bool(kind_for_name(base)) or is_archive_name(base) or not file_suffix(base)
