"""Which format a file is: by its name's suffix and by its first bytes (magic, BOMs,
e-mail headers, binary content)."""
from __future__ import annotations

import codecs
import re
import unicodedata
from pathlib import Path
from typing import Optional

KINDS = ("pdf", "docx", "html", "eml", "rtf", "text", "markdown")

SUFFIX_KINDS: dict[str, str] = {
    ".pdf": "pdf",
    ".docx": "docx",
    ".docm": "docx",
    ".html": "html",
    ".htm": "html",
    ".xhtml": "html",
    ".eml": "eml",
    ".rtf": "rtf",
    ".txt": "text",
    ".text": "text",
    ".log": "text",
    ".csv": "text",
    ".tsv": "text",
    ".json": "text",
    ".xml": "text",
    ".yaml": "text",
    ".yml": "text",
    ".md": "markdown",
    ".markdown": "markdown",
    ".mdown": "markdown",
    ".mkd": "markdown",
}

LABELS = {
    "pdf": "PDF",
    "docx": "docx",
    "html": "HTML",
    "eml": "e-mail",
    "rtf": "RTF",
    "text": "text file",
    "markdown": "Markdown file",
}

_UNSUPPORTED_HINTS = {
    ".doc": " (Word 97-2003); save it as .docx or PDF",
    ".odt": " (OpenDocument); save it as .docx or PDF",
    ".pages": " (Apple Pages); export it as .docx or PDF",
    ".msg": " (Outlook message); save it as .eml",
}

# PDFium is not thread-safe: every call into it happens under this lock.


def kind_for_name(name: str) -> Optional[str]:
    """The kind a file name's suffix promises, or None for unsupported/no suffix."""
    return SUFFIX_KINDS.get(file_suffix(name))


_EXTENSION = re.compile(r"\.[a-z0-9]{1,5}")


def file_suffix(name: str) -> str:
    """The lower-case extension, or "" when the name has none that looks like one.

    Maildir names such as ``1700000000.M1P2.host:2,S`` count as having no extension.
    """
    suffix = Path(name).suffix.lower()
    return suffix if suffix in SUFFIX_KINDS or _EXTENSION.fullmatch(suffix) else ""



def content_kind(head: bytes) -> Optional[str]:
    """The kind the first bytes alone reveal ("pdf", "rtf", "eml"), whatever the name."""
    magic = magic_kind(head)
    if magic in ("pdf", "rtf"):
        return magic
    return "eml" if looks_email(head) else None



def choose_kind(head: bytes, name: str) -> tuple[Optional[str], list[str], Optional[str]]:
    """(kind, warnings, error) from the first bytes and the file name."""
    suffix = file_suffix(name)
    by_name = SUFFIX_KINDS.get(suffix)
    magic = magic_kind(head)
    notes: list[str] = []
    if magic == "pdf" and by_name not in (None, "pdf", "docx") and not starts_with(head, b"%PDF-"):
        magic = None  # a text file that merely mentions "%PDF-" near its start

    def content_is(kind: str) -> str:
        if by_name != kind:
            shown = f"the name ends in {suffix}" if suffix else "the name has no extension"
            notes.append(f"content is {WITH_ARTICLE[kind]} although {shown}")
        return kind

    if magic == "pdf":
        return content_is("pdf"), notes, None
    if magic == "rtf":
        return content_is("rtf"), notes, None
    if magic == "zip" and by_name != "docx":
        return by_name, notes, (
            f"not {WITH_ARTICLE[by_name]}: the content is a zip archive"
            if by_name
            else unsupported(suffix)
        )
    if magic == "ole" and by_name != "docx":  # docx: extract_docx tells encrypted from legacy
        return by_name, notes, (
            f"not {WITH_ARTICLE[by_name]}: the content is a legacy Office (OLE) file"
            if by_name
            else unsupported(suffix)
        )
    if by_name == "pdf" and looks_html(head):
        return content_is("html"), notes, None
    if by_name:
        return by_name, notes, None
    if not suffix:
        if looks_email(head):
            return "eml", notes, None
        if not looks_binary(head):
            return "text", notes, None
        return None, notes, "unsupported file type: no file extension and binary content"
    return None, notes, unsupported(suffix)


def unsupported(suffix: str) -> str:
    return f"unsupported file type: {suffix}{_UNSUPPORTED_HINTS.get(suffix, '')}"


WITH_ARTICLE = {
    "pdf": "a PDF",
    "docx": "a docx",
    "html": "HTML",
    "eml": "an e-mail",
    "rtf": "RTF",
    "text": "a text file",
    "markdown": "a Markdown file",
}



def magic_kind(head: bytes) -> Optional[str]:
    if b"%PDF-" in head[:1024]:  # PDFium accepts the header anywhere in the first 1 KB
        return "pdf"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        return "ole"
    if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{\\rtf"):
        return "rtf"
    return None


def starts_with(head: bytes, prefix: bytes) -> bool:
    return head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(prefix)


def looks_html(head: bytes) -> bool:
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n")[:512].lower()
    return start.startswith((b"<!doctype html", b"<html", b"<head", b"<body"))


_HEADER_LINE = re.compile(rb"^[A-Za-z][A-Za-z0-9-]*:[ \t]")
_EMAIL_START = re.compile(
    rb"^(from |return-path:|received:|delivered-to:|message-id:|mime-version:|from:|date:|"
    rb"subject:|to:|x-[a-z0-9-]+:)",
    re.IGNORECASE,
)


def looks_email(head: bytes) -> bool:
    lines = head[:4096].lstrip().splitlines()[:30]
    if not lines or not _EMAIL_START.match(lines[0]):
        return False
    return sum(1 for line in lines if _HEADER_LINE.match(line)) >= 2


_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


def bom_encoding(data: bytes) -> Optional[tuple[str, int]]:
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return encoding, len(bom)
    return None


def utf16_without_bom(sample: bytes) -> Optional[str]:
    """Guess UTF-16 from zero bytes in every other position (mostly-Latin text), when the
    sample decoded that way reads as text: binary data (arrays of small integers) has a zero
    in every other byte too, but decodes to control characters."""
    if len(sample) < 8:
        return None
    even, odd = sample[0::2], sample[1::2]
    even_zero, odd_zero = even.count(0) / len(even), odd.count(0) / len(odd)
    guess = None
    if odd_zero > 0.4 and even_zero < 0.05:
        guess = "utf-16-le"
    elif even_zero > 0.4 and odd_zero < 0.05:
        guess = "utf-16-be"
    if guess and _reads_as_text(sample[: len(sample) // 2 * 2].decode(guess, errors="replace")):
        return guess
    return None


_NOT_TEXT = frozenset(("Cc", "Cs", "Co", "Cn"))


def _reads_as_text(text: str) -> bool:
    """At most 2% control, unassigned, private-use or undecodable characters."""
    odd = sum(
        1 for ch in text if ch == "\ufffd" or (unicodedata.category(ch) in _NOT_TEXT and ch not in "\t\n\r\f")
    )
    return odd <= 0.02 * len(text)


_BINARY_BYTES = bytes(range(9)) + bytes(range(14, 27)) + bytes(range(28, 32)) + b"\x7f"


def looks_binary(sample: bytes) -> bool:
    """True for content no text editor would have written (NULs, many control bytes)."""
    if not sample or bom_encoding(sample) or utf16_without_bom(sample):
        return False
    if b"\x00" in sample:
        return True
    controls = len(sample) - len(sample.translate(None, _BINARY_BYTES))
    return controls > max(4, len(sample) // 20)
