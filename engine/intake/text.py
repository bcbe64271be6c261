"""Plain text and Markdown: decoding bytes of unknown encoding."""
from __future__ import annotations

from typing import Optional

from engine.intake import limits
from engine.intake.result import Deadline, Extraction
from engine.intake.sniff import bom_encoding, utf16_without_bom


def decode_text(data: bytes, *, declared: Optional[str] = None) -> tuple[str, Optional[str]]:
    """Decode bytes of unknown encoding; returns (text, warning or None).

    Order: byte-order mark, a ``declared`` charset that decodes cleanly, UTF-8 (without
    BOM; also UTF-16 guessed from zero bytes), then charset-normalizer when installed,
    else cp1252 with latin-1 as the last resort.
    """
    found = bom_encoding(data)
    if found:
        encoding, skip = found
        return data[skip:].decode(encoding, errors="replace"), None
    if declared:
        try:
            if not utf16_without_bom(data[:limits.SNIFF_BYTES]):
                return data.decode(declared), None
        except (UnicodeDecodeError, LookupError):
            pass
    encoding, _, warning = detect_encoding(data)
    if encoding == "utf-8":
        try:
            return data.decode("utf-8"), None
        except UnicodeDecodeError as exc:  # a character cut by truncation
            return data[: exc.start].decode("utf-8"), None
    return data.decode(encoding, errors="replace"), warning


def detect_encoding(sample: bytes, *, complete: bool = False) -> tuple[str, int, Optional[str]]:
    """(codec, length of the byte-order mark to skip, warning or None) for bytes of unknown
    encoding, in the order of :func:`decode_text`. Unless the sample is ``complete`` (the whole
    file), a UTF-8 character cut at its end still counts as UTF-8."""
    found = bom_encoding(sample)
    if found:
        return found[0], found[1], None
    guessed16 = utf16_without_bom(sample[:limits.SNIFF_BYTES])
    if guessed16:
        return guessed16, 0, f"decoded as {guessed16} (no byte-order mark)"
    try:
        sample.decode("utf-8")
        return "utf-8", 0, None
    except UnicodeDecodeError as exc:
        if not complete and exc.start >= len(sample) - 3 and exc.reason == "unexpected end of data":
            return "utf-8", 0, None
    encoding = _guess_encoding(sample)
    return encoding, 0, f"not valid UTF-8; decoded as {encoding} (guessed)"


def _guess_encoding(data: bytes) -> str:
    try:
        from charset_normalizer import from_bytes
    except ImportError:
        from_bytes = None
    if from_bytes is not None:
        try:
            sample = data[: 256 * 1024]
            matches = from_bytes(sample)
            best = matches.best()
            if best is not None and best.encoding:
                # Short Western text often ties between code pages that decode it alike
                # (b"Caf\xe9": cp1006, cp1250, ... all "Café"): take cp1252 then.
                western = _decoded(sample, "cp1252")
                if any(m.chaos <= best.chaos and (m.encoding == "cp1252" or str(m) == western) for m in matches):
                    return "cp1252"
                return best.encoding
        except Exception:
            pass
    try:
        data.decode("cp1252")
        return "cp1252"
    except UnicodeDecodeError:
        return "latin-1"



def _decoded(data: bytes, encoding: str) -> Optional[str]:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError:
        return None


def extract_text(data: bytes, *, max_chars: int, deadline: Deadline) -> Extraction:
    """Plain text and Markdown: encoding detection, newlines normalised by the caller."""
    text, note = decode_text(data)
    return Extraction(text=text, warnings=[note] if note else [])
