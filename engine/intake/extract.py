"""Text extraction: one file (or its bytes) in, plain text out, never raising.

One function per format (:func:`extract_pdf`, :func:`extract_docx`, :func:`extract_html`,
:func:`extract_eml`, :func:`extract_rtf`, :func:`extract_text`); :func:`extract_file` and
:func:`extract_bytes` choose among them by content (magic bytes) as well as by suffix and
turn every failure into ``Extraction.error``, one human sentence.

Time limit (cooperative, in-process): each extraction gets a :class:`Deadline`
(``timeout_s``, default 30 s). PDFium cannot be interrupted mid-call and is not thread-safe,
so PDFs are read page by page under a module-level lock, with the deadline checked before
each page and at most ``MAX_PDF_PAGES`` pages; docx is checked between paragraphs/tables and
e-mail between parts. When the deadline passes, the text read so far is kept, ``truncated``
is set and a warning says why. The single-call parsers (HTML, RTF, text) cannot be paused, so
their input is capped instead (``MAX_HTML_CHARS``, ``MAX_RTF_CHARS``, ``max_chars`` for
text; the beginning is kept, with a warning), sized from measured throughput to stay well
under the limit; whole-file formats above ``MAX_FILE_BYTES`` are refused. Known super-linear
paths in striprtf (very long lines) and bs4 (tree edits) are avoided. There is no hard kill:
an input that makes a single library call itself pathologically slow is not interrupted
(running each file in a subprocess would allow that, at a cost in start-up time and
packaging complexity that this app does not pay).
"""
from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Callable, Optional, Union

from engine.intake import limits
from engine.intake.docx import extract_docx
from engine.intake.html import extract_html
from engine.intake.mail import extract_eml
from engine.intake.pdf import extract_pdf
from engine.intake.result import (
    Deadline,
    Extraction,
    ExtractionError,
    describe_os_error,
    reason_of,
    tidy,
)
from engine.intake.rtf import extract_rtf
from engine.intake.sniff import (
    LABELS,
    choose_kind,
    file_suffix,
    kind_for_name,
    looks_binary,
)
from engine.intake.text import extract_text


def extract_file(
    path: Union[str, os.PathLike],
    *,
    max_chars: int = limits.DEFAULT_MAX_CHARS,
    timeout_s: Optional[float] = limits.DEFAULT_TIMEOUT_S,
) -> Extraction:
    """Read one file and return its text; never raises.

    The format is chosen from the content (PDF/RTF/zip/OLE magic bytes) and the suffix.
    Text files are read only as far as ``max_chars`` needs; HTML/RTF up to
    ``limits.MAX_MARKUP_BYTES``; other formats above ``limits.MAX_FILE_BYTES`` are refused.
    """
    try:
        return _extract_file(Path(path), max_chars, timeout_s)
    except Exception as exc:  # last resort: nothing escapes
        return Extraction(error=f"could not read file: {reason_of(exc)}")


def extract_bytes(
    data: bytes,
    name: str = "",
    *,
    max_chars: int = limits.DEFAULT_MAX_CHARS,
    timeout_s: Optional[float] = limits.DEFAULT_TIMEOUT_S,
) -> Extraction:
    """Extract text from in-memory content (pasted or dropped); ``name`` gives the suffix.

    Never raises. With no usable suffix the content decides (PDF, RTF, e-mail, text).
    """
    try:
        data = bytes(data)
        if not data:
            return Extraction(kind=kind_for_name(name), error="file is empty")
        kind, notes, error = choose_kind(data[:limits.SNIFF_BYTES], name)
        if error:
            return Extraction(kind=kind, error=error, warnings=notes)
        clipped = False
        limit = _read_limit(kind, max_chars)
        if len(data) > limit:
            if kind in _CLIPPABLE:
                data, clipped = data[:limit], True
            else:
                return Extraction(kind=kind, error=_too_large(kind, len(data)), warnings=notes)
        return _run(kind, data, name, notes, clipped, max_chars, Deadline(timeout_s))
    except Exception as exc:
        return Extraction(error=f"could not read content: {reason_of(exc)}")



# ----------------------------------------------------------------------------- dispatch

_CLIPPABLE = ("text", "markdown", "html", "rtf")


def _extract_file(path: Path, max_chars: int, timeout_s: Optional[float]) -> Extraction:
    deadline = Deadline(timeout_s)
    named = kind_for_name(path.name)
    try:
        st = os.stat(path)
        if stat.S_ISDIR(st.st_mode):
            return Extraction(error="is a folder, not a file")
        if not stat.S_ISREG(st.st_mode):  # opening a FIFO would block forever
            return Extraction(kind=named, error="not a regular file (device, pipe or socket)")
        if st.st_size == 0:
            return Extraction(kind=named, error="file is empty")
        with open(path, "rb") as f:
            head = f.read(limits.SNIFF_BYTES)
            if not head:
                return Extraction(kind=named, error="file is empty")
            kind, notes, error = choose_kind(head, path.name)
            if error:
                return Extraction(kind=kind, error=error, warnings=notes)
            limit = _read_limit(kind, max_chars)
            if st.st_size > limit and kind not in _CLIPPABLE:
                return Extraction(kind=kind, error=_too_large(kind, st.st_size), warnings=notes)
            data = head + f.read(max(0, limit - len(head)))
            clipped = len(data) >= limit and bool(f.read(1))
    except OSError as exc:
        return Extraction(kind=named, error=describe_os_error(exc))
    return _run(kind, data, path.name, notes, clipped, max_chars, deadline)


def _run(
    kind: str,
    data: bytes,
    name: str,
    notes: list[str],
    clipped: bool,
    max_chars: int,
    deadline: Deadline,
) -> Extraction:
    """Call the extractor for ``kind`` and normalise its result or its failure."""
    label = LABELS[kind]
    if kind in ("text", "markdown", "html", "eml") and looks_binary(data[:limits.SNIFF_BYTES]):
        what = file_suffix(name) or LABELS[kind]
        return Extraction(kind=kind, error=f"not a text file: binary content in a {what}", warnings=notes)
    try:
        result = _EXTRACTORS[kind](data, max_chars=max_chars, deadline=deadline)
    except ExtractionError as exc:
        return Extraction(kind=kind, error=str(exc), warnings=notes)
    except MemoryError:
        return Extraction(kind=kind, error=f"out of memory while reading the {label}", warnings=notes)
    except RecursionError:
        return Extraction(kind=kind, error=f"corrupt {label}: structure nested too deeply", warnings=notes)
    except Exception as exc:
        return Extraction(kind=kind, error=f"corrupt {label}: {reason_of(exc)}", warnings=notes)

    result.kind = kind
    result.warnings = notes + result.warnings
    result.text = tidy(result.text)
    if clipped:
        if not result.truncated:  # else the extractor has already said why
            result.warnings.append("file is very large; only its beginning was read")
        result.truncated = True
    if len(result.text) > max_chars:
        result.text = result.text[:max_chars]
        result.truncated = True
    if result.truncated:
        result.warnings.append(f"text truncated ({len(result.text):,} characters kept)")
    if not result.text.strip() and result.error is None:
        result.text = ""
        result.error = (
            "PDF has no text layer (scanned image?); OCR is not supported"
            if kind == "pdf"
            else f"no text found in the {label}"
        )
    if result.error:
        result.text = ""
    return result



def _read_limit(kind: str, max_chars: int) -> int:
    if kind in ("text", "markdown"):
        return max_chars * 4 + 16  # 4 bytes/char covers UTF-8, UTF-16 and UTF-32
    if kind == "html":
        return limits.MAX_HTML_CHARS * 4 + 16
    if kind == "rtf":
        return limits.MAX_MARKUP_BYTES  # embedded pictures are dropped before the RTF_CHARS cap
    return limits.MAX_FILE_BYTES


def _too_large(kind: str, size: int) -> str:
    return (
        f"{LABELS[kind]} is {size / 2**20:,.0f} MB, larger than the "
        f"{limits.MAX_FILE_BYTES // 2**20} MB limit; refusing"
    )



_EXTRACTORS: dict[str, Callable[..., Extraction]] = {
    "pdf": extract_pdf,
    "docx": extract_docx,
    "html": extract_html,
    "eml": extract_eml,
    "rtf": extract_rtf,
    "text": extract_text,
    "markdown": extract_text,
}
