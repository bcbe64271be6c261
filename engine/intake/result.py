"""What reading one file gives: an `Extraction`, the `Deadline` it ran under, and the
words for what went wrong."""
from __future__ import annotations

import errno
import re
import time
from dataclasses import dataclass, field
from typing import Optional


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



def describe_exception(exc: BaseException) -> str:
    """The first line of an exception's message, short enough for a table cell."""
    return reason_of(exc)


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




def reason_of(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    reason = text[0] if text else type(exc).__name__
    reason = re.sub(r" \(<string>, line \d+\)$", "", reason)  # lxml's location noise
    return reason[:200]


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f\ufffe\uffff]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def tidy(text: str) -> str:
    """Normalise newlines and drop control characters and lone surrogates."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text)
    text = _SURROGATE.sub("\ufffd", text)
    return text.strip("\n")
