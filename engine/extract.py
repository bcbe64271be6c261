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

import codecs
import email
import email.header
import email.policy
import errno
import io
import os
import re
import stat
import threading
import time
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Union

DEFAULT_MAX_CHARS = 2_000_000
DEFAULT_TIMEOUT_S = 30.0
MAX_FILE_BYTES = 256 * 1024 * 1024  # whole-file formats (pdf, docx, eml) above this are refused
MAX_MARKUP_BYTES = 64 * 1024 * 1024  # html/rtf: only this much is read
# Parser throughput caps, so that one uninterruptible call stays well under the time limit.
# Measured on a slow 2-core Linux box: bs4 + html.parser ~150 K chars/s of dense markup
# (4 M chars took 27 s), striprtf ~1.3 M chars/s.
MAX_HTML_CHARS = 2_000_000
MAX_RTF_CHARS = 16_000_000
MAX_PDF_PAGES = 5000
DOCX_MAX_UNCOMPRESSED = 200_000_000
DOCX_MAX_RATIO = 100  # for parts larger than DOCX_RATIO_MIN_BYTES once decompressed
DOCX_RATIO_MIN_BYTES = 10 * 1024 * 1024
DOCX_MAX_PARTS = 10_000

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

_LABELS = {
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
_PDFIUM_LOCK = threading.Lock()

_SNIFF_BYTES = 8192

try:  # narrow, permanent filters: these bs4 warnings are about input we expect to see
    from bs4 import MarkupResemblesLocatorWarning, XMLParsedAsHTMLWarning

    warnings.filterwarnings("ignore", category=MarkupResemblesLocatorWarning)
    warnings.filterwarnings("ignore", category=XMLParsedAsHTMLWarning)
except ImportError:  # pragma: no cover - bs4 is a dependency
    pass


@dataclass
class Extraction:
    """The result of reading one file.

    ``kind`` is one of :data:`KINDS` (None when the type is unsupported); ``pages`` is set
    for PDFs. On failure ``error`` is one human sentence and ``text`` is empty.
    ``truncated`` means ``text`` holds only the beginning (``max_chars``, the time limit,
    or a page/size cap); a warning then says which.
    """

    text: str = ""
    kind: Optional[str] = None
    pages: Optional[int] = None
    truncated: bool = False
    warnings: list[str] = field(default_factory=list)
    error: Optional[str] = None

    @property
    def ok(self) -> bool:
        return self.error is None


class ExtractionError(Exception):
    """Raised inside an extractor; its message is the user-facing reason."""


class Deadline:
    """A wall-clock budget checked cooperatively between pages/blocks."""

    def __init__(self, seconds: Optional[float]):
        self.seconds = seconds
        self._end = None if seconds is None else time.monotonic() + seconds

    def expired(self) -> bool:
        return self._end is not None and time.monotonic() > self._end

    def note(self) -> str:
        return f"time limit of {self.seconds:g} s reached"


# ----------------------------------------------------------------------------- public API


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


def extract_file(
    path: Union[str, os.PathLike],
    *,
    max_chars: int = DEFAULT_MAX_CHARS,
    timeout_s: Optional[float] = DEFAULT_TIMEOUT_S,
) -> Extraction:
    """Read one file and return its text; never raises.

    The format is chosen from the content (PDF/RTF/zip/OLE magic bytes) and the suffix.
    Text files are read only as far as ``max_chars`` needs; HTML/RTF up to
    ``MAX_MARKUP_BYTES``; other formats above ``MAX_FILE_BYTES`` are refused.
    """
    try:
        return _extract_file(Path(path), max_chars, timeout_s)
    except Exception as exc:  # last resort: nothing escapes
        return Extraction(error=f"could not read file: {_reason(exc)}")


def extract_bytes(
    data: bytes,
    name: str = "",
    *,
    max_chars: int = DEFAULT_MAX_CHARS,
    timeout_s: Optional[float] = DEFAULT_TIMEOUT_S,
) -> Extraction:
    """Extract text from in-memory content (pasted or dropped); ``name`` gives the suffix.

    Never raises. With no usable suffix the content decides (PDF, RTF, e-mail, text).
    """
    try:
        data = bytes(data)
        if not data:
            return Extraction(kind=kind_for_name(name), error="file is empty")
        kind, notes, error = _choose_kind(data[:_SNIFF_BYTES], name)
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
        return Extraction(error=f"could not read content: {_reason(exc)}")


def content_kind(head: bytes) -> Optional[str]:
    """The kind the first bytes alone reveal ("pdf", "rtf", "eml"), whatever the name."""
    magic = _magic(head)
    if magic in ("pdf", "rtf"):
        return magic
    return "eml" if _looks_email(head) else None


def describe_exception(exc: BaseException) -> str:
    """The first line of an exception's message, short enough for a table cell."""
    return _reason(exc)


def describe_os_error(exc: OSError) -> str:
    """One human sentence for an OSError met while opening or reading a file."""
    if isinstance(exc, PermissionError):
        return "permission denied"
    if exc.errno == errno.ELOOP:
        return "symlink loop"
    if isinstance(exc, FileNotFoundError):
        return "file not found"
    if isinstance(exc, IsADirectoryError):
        return "is a folder, not a file"
    if exc.errno == errno.ENAMETOOLONG:
        return "file name too long"
    if exc.errno == errno.EIO:
        return "input/output error while reading (disk or network problem?)"
    return f"cannot read file: {exc.strerror or exc}"


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
            head = f.read(_SNIFF_BYTES)
            if not head:
                return Extraction(kind=named, error="file is empty")
            kind, notes, error = _choose_kind(head, path.name)
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
    label = _LABELS[kind]
    if kind in ("text", "markdown", "html", "eml") and _looks_binary(data[:_SNIFF_BYTES]):
        what = file_suffix(name) or _LABELS[kind]
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
        return Extraction(kind=kind, error=f"corrupt {label}: {_reason(exc)}", warnings=notes)

    result.kind = kind
    result.warnings = notes + result.warnings
    result.text = _tidy(result.text)
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


def _choose_kind(head: bytes, name: str) -> tuple[Optional[str], list[str], Optional[str]]:
    """(kind, warnings, error) from the first bytes and the file name."""
    suffix = file_suffix(name)
    by_name = SUFFIX_KINDS.get(suffix)
    magic = _magic(head)
    notes: list[str] = []
    if magic == "pdf" and by_name not in (None, "pdf", "docx") and not _starts_with(head, b"%PDF-"):
        magic = None  # a text file that merely mentions "%PDF-" near its start

    def content_is(kind: str) -> str:
        if by_name != kind:
            shown = f"the name ends in {suffix}" if suffix else "the name has no extension"
            notes.append(f"content is {_WITH_ARTICLE[kind]} although {shown}")
        return kind

    if magic == "pdf":
        return content_is("pdf"), notes, None
    if magic == "rtf":
        return content_is("rtf"), notes, None
    if magic == "zip" and by_name != "docx":
        return by_name, notes, (
            f"not {_WITH_ARTICLE[by_name]}: the content is a zip archive"
            if by_name
            else _unsupported(suffix)
        )
    if magic == "ole" and by_name != "docx":  # docx: extract_docx tells encrypted from legacy
        return by_name, notes, (
            f"not {_WITH_ARTICLE[by_name]}: the content is a legacy Office (OLE) file"
            if by_name
            else _unsupported(suffix)
        )
    if by_name == "pdf" and _looks_html(head):
        return content_is("html"), notes, None
    if by_name:
        return by_name, notes, None
    if not suffix:
        if _looks_email(head):
            return "eml", notes, None
        if not _looks_binary(head):
            return "text", notes, None
        return None, notes, "unsupported file type: no file extension and binary content"
    return None, notes, _unsupported(suffix)


def _unsupported(suffix: str) -> str:
    return f"unsupported file type: {suffix}{_UNSUPPORTED_HINTS.get(suffix, '')}"


_WITH_ARTICLE = {
    "pdf": "a PDF",
    "docx": "a docx",
    "html": "HTML",
    "eml": "an e-mail",
    "rtf": "RTF",
    "text": "a text file",
    "markdown": "a Markdown file",
}


def _read_limit(kind: str, max_chars: int) -> int:
    if kind in ("text", "markdown"):
        return max_chars * 4 + 16  # 4 bytes/char covers UTF-8, UTF-16 and UTF-32
    if kind == "html":
        return MAX_HTML_CHARS * 4 + 16
    if kind == "rtf":
        return MAX_MARKUP_BYTES  # embedded pictures are dropped before the RTF_CHARS cap
    return MAX_FILE_BYTES


def _too_large(kind: str, size: int) -> str:
    return (
        f"{_LABELS[kind]} is {size / 2**20:,.0f} MB, larger than the "
        f"{MAX_FILE_BYTES // 2**20} MB limit; refusing"
    )


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    reason = text[0] if text else type(exc).__name__
    reason = re.sub(r" \(<string>, line \d+\)$", "", reason)  # lxml's location noise
    return reason[:200]


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f\ufffe\uffff]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def _tidy(text: str) -> str:
    """Normalise newlines and drop control characters and lone surrogates."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text)
    text = _SURROGATE.sub("\ufffd", text)
    return text.strip("\n")


# ----------------------------------------------------------------------------- sniffing


def _magic(head: bytes) -> Optional[str]:
    if b"%PDF-" in head[:1024]:  # PDFium accepts the header anywhere in the first 1 KB
        return "pdf"
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return "zip"
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        return "ole"
    if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{\\rtf"):
        return "rtf"
    return None


def _starts_with(head: bytes, prefix: bytes) -> bool:
    return head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(prefix)


def _looks_html(head: bytes) -> bool:
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n")[:512].lower()
    return start.startswith((b"<!doctype html", b"<html", b"<head", b"<body"))


_HEADER_LINE = re.compile(rb"^[A-Za-z][A-Za-z0-9-]*:[ \t]")
_EMAIL_START = re.compile(
    rb"^(from |return-path:|received:|delivered-to:|message-id:|mime-version:|from:|date:|"
    rb"subject:|to:|x-[a-z0-9-]+:)",
    re.IGNORECASE,
)


def _looks_email(head: bytes) -> bool:
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


def _bom(data: bytes) -> Optional[tuple[str, int]]:
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return encoding, len(bom)
    return None


def _utf16_without_bom(sample: bytes) -> Optional[str]:
    """Guess UTF-16 from zero bytes in every other position (mostly-Latin text)."""
    if len(sample) < 8:
        return None
    even, odd = sample[0::2], sample[1::2]
    even_zero, odd_zero = even.count(0) / len(even), odd.count(0) / len(odd)
    if odd_zero > 0.4 and even_zero < 0.05:
        return "utf-16-le"
    if even_zero > 0.4 and odd_zero < 0.05:
        return "utf-16-be"
    return None


_BINARY_BYTES = bytes(range(0, 9)) + bytes(range(14, 27)) + bytes(range(28, 32)) + b"\x7f"


def _looks_binary(sample: bytes) -> bool:
    """True for content no text editor would have written (NULs, many control bytes)."""
    if not sample or _bom(sample) or _utf16_without_bom(sample):
        return False
    if b"\x00" in sample:
        return True
    controls = len(sample) - len(sample.translate(None, _BINARY_BYTES))
    return controls > max(4, len(sample) // 20)


# ----------------------------------------------------------------------------- decoding


def decode_text(data: bytes, *, declared: Optional[str] = None) -> tuple[str, Optional[str]]:
    """Decode bytes of unknown encoding; returns (text, warning or None).

    Order: byte-order mark, a ``declared`` charset that decodes cleanly, UTF-8 (without
    BOM; also UTF-16 guessed from zero bytes), then charset-normalizer when installed,
    else cp1252 with latin-1 as the last resort.
    """
    found = _bom(data)
    if found:
        encoding, skip = found
        return data[skip:].decode(encoding, errors="replace"), None
    guessed16 = _utf16_without_bom(data[:_SNIFF_BYTES])
    if guessed16:
        return data.decode(guessed16, errors="replace"), f"decoded as {guessed16} (no byte-order mark)"
    if declared:
        try:
            return data.decode(declared), None
        except (UnicodeDecodeError, LookupError):
            pass
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        if exc.start >= len(data) - 3 and exc.reason == "unexpected end of data":
            return data[: exc.start].decode("utf-8"), None  # a character cut by truncation
    encoding = _guess_encoding(data)
    return (
        data.decode(encoding, errors="replace"),
        f"not valid UTF-8; decoded as {encoding} (guessed)",
    )


def _guess_encoding(data: bytes) -> str:
    try:
        from charset_normalizer import from_bytes
    except ImportError:
        from_bytes = None
    if from_bytes is not None:
        try:
            matches = from_bytes(data[: 256 * 1024])
            best = matches.best()
            if best is not None and best.encoding:
                # Short Western text often ties between cp1250 and cp1252: take cp1252 then.
                if any(m.encoding == "cp1252" and m.chaos <= best.chaos for m in matches):
                    return "cp1252"
                return best.encoding
        except Exception:
            pass
    try:
        data.decode("cp1252")
        return "cp1252"
    except UnicodeDecodeError:
        return "latin-1"


# ----------------------------------------------------------------------------- extractors


def extract_text(data: bytes, *, max_chars: int, deadline: Deadline) -> Extraction:
    """Plain text and Markdown: encoding detection, newlines normalised by the caller."""
    text, note = decode_text(data)
    return Extraction(text=text, warnings=[note] if note else [])


def extract_pdf(data: bytes, *, max_chars: int, deadline: Deadline) -> Extraction:
    """PDF text layer with pypdfium2, page by page, under the PDFium lock.

    Stops (keeping what it has, ``truncated``) at ``max_chars``, ``MAX_PDF_PAGES`` or the
    deadline. A page that fails to load is skipped with a warning.
    """
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    if b"%PDF-" not in data[:1024]:
        raise ExtractionError("corrupt PDF: no %PDF header (not a PDF file?)")
    out = Extraction()
    parts: list[str] = []
    chars = 0
    with _PDFIUM_LOCK:
        try:
            pdf = pdfium.PdfDocument(data)
        except pdfium.PdfiumError as exc:
            code = getattr(exc, "err_code", None)  # pypdfium2 < 5 may lack it: read the message
            if code == pdfium_c.FPDF_ERR_PASSWORD or "password" in str(exc).lower():
                raise ExtractionError("PDF is password-protected") from None
            if code == pdfium_c.FPDF_ERR_SECURITY:
                raise ExtractionError("PDF is encrypted with an unsupported security handler") from None
            raise ExtractionError(f"corrupt PDF: {_pdfium_reason(exc)}") from None
        try:
            total = len(pdf)
            out.pages = total
            if total == 0:
                raise ExtractionError("corrupt PDF: it has no pages")
            empty = failed = 0
            for index in range(total):
                if deadline.expired():
                    out.truncated = True
                    out.warnings.append(f"stopped after {index} of {total} pages: {deadline.note()}")
                    break
                if index >= MAX_PDF_PAGES:
                    out.truncated = True
                    out.warnings.append(f"stopped after the first {MAX_PDF_PAGES} of {total} pages")
                    break
                if chars > max_chars:
                    out.truncated = True
                    break
                try:
                    text = _pdf_page_text(pdf, index)
                except pdfium.PdfiumError:
                    failed += 1
                    continue
                if not text.strip():
                    empty += 1
                parts.append(text)
                chars += len(text) + 2
        finally:
            pdf.close()
    if failed:
        out.warnings.append(f"{failed} of {total} pages could not be read (damaged?)")
    if 0 < empty < len(parts):
        out.warnings.append(f"{empty} of {total} pages have no text layer (scanned?); their content is missing")
    has_text = any(p.strip() for p in parts)
    if failed and not has_text and failed + empty == total:
        raise ExtractionError("corrupt PDF: no page could be read")
    if out.truncated and not has_text and deadline.expired():
        raise ExtractionError(f"PDF took too long: {deadline.note()} before any text was found")
    out.text = "\n\n".join(p.strip("\r\n") for p in parts)
    return out


def _pdf_page_text(pdf, index: int) -> str:
    page = pdf[index]
    try:
        textpage = page.get_textpage()
        try:
            return textpage.get_text_bounded()
        finally:
            textpage.close()
    finally:
        page.close()


def _pdfium_reason(exc: Exception) -> str:
    match = re.search(r"\(PDFium: ([^)]*)\)", str(exc))
    return match.group(1).lower() if match else _reason(exc)


def _check_docx_zip(data: bytes) -> None:
    """Refuse zip bombs and non-zips before python-docx decompresses anything.

    zipfile never inflates a member past its declared size, so the declared sizes bound
    the memory python-docx can use.
    """
    if data.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        if "EncryptionInfo".encode("utf-16-le") in data or b"EncryptedPackage" in data:
            raise ExtractionError("docx is password-protected")
        raise ExtractionError("not a .docx: legacy Word 97-2003 (.doc) format; save it as .docx")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
    except Exception as exc:  # BadZipFile, but also struct/value errors on mangled headers
        raise ExtractionError(f"corrupt docx: not a valid zip archive ({_reason(exc)})") from None
    if len(infos) > DOCX_MAX_PARTS:
        raise ExtractionError(f"docx has more than {DOCX_MAX_PARTS:,} parts; refusing (zip bomb?)")
    total = sum(info.file_size for info in infos)
    if total > DOCX_MAX_UNCOMPRESSED:
        raise ExtractionError(
            f"docx decompresses to more than {DOCX_MAX_UNCOMPRESSED // 10**6} MB; refusing (zip bomb?)"
        )
    for info in infos:
        if info.file_size > DOCX_RATIO_MIN_BYTES and info.file_size > DOCX_MAX_RATIO * max(1, info.compress_size):
            ratio = info.file_size // max(1, info.compress_size)
            raise ExtractionError(f"docx part {info.filename} expands {ratio:,}x; refusing (zip bomb?)")


def extract_docx(data: bytes, *, max_chars: int, deadline: Deadline) -> Extraction:
    """Word .docx with python-docx: body paragraphs and tables in document order.

    Table rows become ``cell | cell | cell`` lines; merged cells are written once.
    Headers, footers, footnotes and text boxes are not included.
    """
    _check_docx_zip(data)
    import docx
    from docx.opc.exceptions import PackageNotFoundError

    try:
        document = docx.Document(io.BytesIO(data))
    except PackageNotFoundError:
        raise ExtractionError("corrupt docx: not a Word package") from None
    except KeyError as exc:
        raise ExtractionError(f"corrupt docx: missing part {exc}") from None
    except ValueError as exc:
        if "not a Word file" in str(exc):
            raise ExtractionError("not a Word document (a different Office zip format)") from None
        raise
    out = Extraction()
    lines: list[str] = []
    chars = 0
    for block in document.iter_inner_content():
        if deadline.expired():
            out.truncated = True
            out.warnings.append(f"stopped early: {deadline.note()}")
            break
        if chars > max_chars:
            out.truncated = True
            break
        text = _docx_block_text(block, set())
        lines.append(text)
        chars += len(text) + 1
    out.text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines))
    if out.truncated and not out.text.strip() and deadline.expired():
        raise ExtractionError(f"docx took too long: {deadline.note()} before any text was found")
    return out


def _docx_block_text(block, seen: set, depth: int = 0) -> str:
    from docx.table import Table

    if not isinstance(block, Table):
        return block.text
    if depth > 20:
        return ""
    rows = []
    for row in block.rows:
        cells = []
        for cell in row.cells:
            if cell._tc in seen:  # merged cells repeat; vertical merges across rows too
                continue
            seen.add(cell._tc)  # the set keeps the lxml proxies alive, so identity is stable
            inner = [_docx_block_text(b, seen, depth + 1) for b in cell.iter_inner_content()]
            cells.append(" ".join(" ".join(inner).split()))
        rows.append(" | ".join(cells))
    return "\n".join(rows)


_HTML_CHARSET = re.compile(rb"""<meta[^>]{0,200}?charset\s*=\s*["']?\s*([A-Za-z0-9_:.-]+)""", re.IGNORECASE)


def extract_html(data: bytes, *, max_chars: int, deadline: Deadline) -> Extraction:
    """HTML with BeautifulSoup (stdlib html.parser): script/style dropped, blocks on lines."""
    declared = None
    match = _HTML_CHARSET.search(data[:4096])
    if match:
        declared = match.group(1).decode("ascii").lower()
        if declared in ("iso-8859-1", "latin-1", "latin1", "us-ascii", "ascii"):
            declared = "cp1252"  # what browsers do
        elif declared.startswith(("utf-16", "utf16")):
            declared = None  # a byte-order mark would have said so
    markup, note = decode_text(data, declared=declared)
    out = Extraction(warnings=[note] if note else [])
    out.text, out.truncated = _html_text(markup, out.warnings)
    return out


# Private-use characters mark structure while source whitespace is collapsed.
_BR, _BLOCK, _PARA, _CELL = "\ue000", "\ue001", "\ue002", "\ue003"
_DROP_TAGS = frozenset("script style noscript template svg canvas iframe object embed head title".split())
_PARA_TAGS = frozenset("p h1 h2 h3 h4 h5 h6 table blockquote pre ul ol dl section article hr figure".split())
_BLOCK_TAGS = frozenset(
    "address aside body center dd details dialog dir div dt fieldset figcaption footer form "
    "header hgroup li main menu nav summary tbody thead tfoot tr caption legend option".split()
)
_MARKER_RUN = re.compile(f"[ {_BR}{_BLOCK}{_PARA}{_CELL}]+")


def html_to_text(markup: str) -> str:
    """Readable text of an HTML string: title first, blocks on their own lines.

    Only the first ``MAX_HTML_CHARS`` characters of markup are parsed.
    """
    return _html_text(markup, [])[0]


def _html_text(markup: str, notes: list[str]) -> tuple[str, bool]:
    """(text, clipped). One iterative pass over the parsed tree: no recursion, and no
    tree edits (bs4's insert_before is linear in the number of siblings)."""
    from bs4 import BeautifulSoup
    from bs4.element import CData, NavigableString, PreformattedString, Tag

    clipped = len(markup) > MAX_HTML_CHARS
    if clipped:
        markup = markup[:MAX_HTML_CHARS]
        notes.append(f"HTML is very large; only its first {MAX_HTML_CHARS // 10**6} million characters were read")
    soup = BeautifulSoup(markup, "html.parser")
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    out: list[str] = []
    in_pre = 0
    stack: list = [soup]
    while stack:
        node = stack.pop()
        if isinstance(node, Tag):
            name = node.name
            if name in _DROP_TAGS:
                continue
            if name == "br":
                out.append(_BR)
                continue
            marker = _PARA if name in _PARA_TAGS else _BLOCK if name in _BLOCK_TAGS else None
            if name in ("td", "th"):
                out.append(_CELL)  # a cell that starts a row shares its run with the row's marker
            if marker:
                out.append(marker)
                stack.append(marker)  # emitted again when the element ends
            if name == "pre":
                in_pre += 1
                stack.append(_END_PRE)
            stack.extend(reversed(node.contents))
        elif node is _END_PRE:
            in_pre -= 1
        elif isinstance(node, NavigableString):
            if isinstance(node, PreformattedString) and not isinstance(node, CData):
                continue  # comments, doctype, processing instructions
            out.append(str(node).replace("\n", _BR) if in_pre else str(node))
        else:  # a marker pushed for an element's end
            out.append(node)
    text = re.sub(r"\s+", " ", "".join(out))
    text = _MARKER_RUN.sub(_marker_run_text, text).strip()
    if title and not text.startswith(title):
        text = f"{title}\n\n{text}" if text else title
    return text, clipped


class _EndPre:
    pass


_END_PRE = _EndPre()


def _marker_run_text(match: re.Match) -> str:
    run = match.group()
    if _PARA in run:
        return "\n\n"
    breaks = run.count(_BR)
    if breaks:
        return "\n" * min(breaks, 2)
    if _BLOCK in run:
        return "\n"
    if _CELL in run:
        return " | "
    return " "


def extract_eml(data: bytes, *, max_chars: int, deadline: Deadline) -> Extraction:
    """E-mail (.eml, RFC 822) with the stdlib: headers, the plain (else HTML) body, attachments."""
    message = email.message_from_bytes(data, policy=email.policy.default)
    out = Extraction()
    header_lines = []
    for name in ("Subject", "From", "To", "Cc", "Date"):
        value = _email_header(message, name)
        if value:
            header_lines.append(f"{name}: {value}")
    if not header_lines:
        out.warnings.append("no e-mail headers found")
    body = _email_body(message, out.warnings)
    attachments = []
    for part in message.walk():
        if deadline.expired():
            out.warnings.append(f"attachment list incomplete: {deadline.note()}")
            break
        try:
            filename = part.get_filename()
            disposition = part.get_content_disposition()
        except Exception:
            continue
        if disposition == "attachment" or (filename and disposition != "inline"):
            attachments.append(filename or part.get_content_type())
    sections = ["\n".join(header_lines), body.strip()]
    if attachments:
        sections.append("Attachments: " + ", ".join(attachments))
    out.text = "\n\n".join(s for s in sections if s)
    return out


def _email_header(message, name: str) -> str:
    try:
        value = message.get(name)
        text = "" if value is None else str(value)
    except Exception:  # malformed header: fall back to the raw value, decoded leniently
        text = ""
        for key, raw in message.raw_items():
            if key.lower() == name.lower():
                try:
                    text = str(email.header.make_header(email.header.decode_header(str(raw))))
                except Exception:
                    text = str(raw)
                break
    return " ".join(text.split())


def _email_body(message, notes: list[str]) -> str:
    texts = {}
    for subtype in ("plain", "html"):
        try:
            part = message.get_body(preferencelist=(subtype,))
        except Exception:
            part = None
        if part is not None:
            texts[subtype] = _email_part_text(part, notes)
    if texts.get("plain", "").strip():
        return texts["plain"]
    if "html" in texts:
        return _html_text(texts["html"], notes)[0]
    return ""


def _email_part_text(part, notes: list[str]) -> str:
    try:
        content = part.get_content()
        if isinstance(content, str):
            return content
    except Exception:
        pass
    try:
        payload = part.get_payload(decode=True)
    except Exception:
        payload = None
    if not isinstance(payload, bytes):
        return ""
    charset = None
    try:
        charset = part.get_content_charset()
        codecs.lookup(charset or "")
    except Exception:
        charset = None
    text, note = decode_text(payload, declared=charset)
    if note:
        notes.append(f"e-mail body {note}")
    return text


_RTF_BIG_GROUP = re.compile(r"\{(?:\\\*)?\\(?:pict|objdata|datastore|themedata|colorschememapping)(?![a-z])")
_RTF_BRACE_TOKEN = re.compile(r"\\bin(\d{1,9}) ?|\\[\\{}]|[{}]")
_RTF_UNICODE = re.compile(r"\\u(-?\d{1,10})")
_RTF_BARE_UC = re.compile(r"\\uc(?![-\d])")


def extract_rtf(data: bytes, *, max_chars: int, deadline: Deadline) -> Extraction:
    """RTF with striprtf, after removing embedded pictures/objects and fixing what crashes it."""
    from striprtf.striprtf import rtf_to_text

    try:
        source = data.decode("utf-8")
    except UnicodeDecodeError:
        source = data.decode("cp1252", errors="replace")
    source = _drop_rtf_groups(source)
    out = Extraction()
    if len(source) > MAX_RTF_CHARS:
        source, out.truncated = source[:MAX_RTF_CHARS], True
        out.warnings.append(f"RTF is very large; only its first {MAX_RTF_CHARS // 10**6} million characters were read")
    source = _RTF_UNICODE.sub(_rtf_unicode_fix, source)
    source = _RTF_BARE_UC.sub(r"\\uc1", source)
    if any(len(line) > 20_000 for line in source.splitlines()):
        # striprtf's hyperlink/font-table regexes backtrack to the end of the line: on a
        # single-line file that is quadratic. RTF ignores raw newlines, so break lines at groups.
        source = re.sub(r"(?<!\\)\{", "\n{", source)
    try:
        text = rtf_to_text(source, errors="replace")
    except LookupError:  # a font charset Python has no codec for
        text = rtf_to_text(re.sub(r"\\fcharset\d+", r"\\fcharset0", source), errors="replace")
    out.text = re.sub(r"\n{3,}", "\n\n", text)
    return out


def _rtf_unicode_fix(match: re.Match) -> str:
    value = int(match.group(1))
    if value < 0:
        value += 0x10000
    return match.group(0) if 0 <= value <= 0x10FFFF else "\\u63"


def _drop_rtf_groups(text: str) -> str:
    """Remove picture/object/data groups (often megabytes of hex) by brace matching."""
    out, pos = [], 0
    while True:
        start = _RTF_BIG_GROUP.search(text, pos)
        if start is None:
            break
        out.append(text[pos : start.start()])
        pos = _rtf_group_end(text, start.start())
    out.append(text[pos:])
    return "".join(out)


def _rtf_group_end(text: str, start: int) -> int:
    depth, pos = 0, start
    while True:
        token = _RTF_BRACE_TOKEN.search(text, pos)
        if token is None:
            return len(text)
        pos = token.end()
        if token.group(1):
            pos += int(token.group(1))  # \binN: N raw bytes that may contain braces
        elif token.group() == "{":
            depth += 1
        elif token.group() == "}":
            depth -= 1
            if depth == 0:
                return pos


_EXTRACTORS: dict[str, Callable[..., Extraction]] = {
    "pdf": extract_pdf,
    "docx": extract_docx,
    "html": extract_html,
    "eml": extract_eml,
    "rtf": extract_rtf,
    "text": extract_text,
    "markdown": extract_text,
}
