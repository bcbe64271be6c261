"""Word (.docx) text, after checking the zip against decompression bombs."""
from __future__ import annotations

import io
import re

from engine.intake import limits
from engine.intake.result import Deadline, Extraction, ExtractionError
from engine.intake.zipcheck import ZipRefused, check_zip


def _check_docx_zip(data: bytes) -> None:
    """Refuse zip bombs and non-zips before python-docx decompresses anything: every member
    is inflated in chunks against its declared size (engine.intake.zipcheck), so the declared
    sizes, capped in total, bound the memory python-docx can use."""
    if data.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        if "EncryptionInfo".encode("utf-16-le") in data or b"EncryptedPackage" in data:
            raise ExtractionError("docx is password-protected")
        raise ExtractionError("not a .docx: legacy Word 97-2003 (.doc) format; save it as .docx")
    try:
        check_zip(
            data,
            what="docx",
            max_total=limits.DOCX_MAX_UNCOMPRESSED,
            max_members=limits.DOCX_MAX_PARTS,
            max_ratio=limits.DOCX_MAX_RATIO,
            ratio_min_bytes=limits.DOCX_RATIO_MIN_BYTES,
        )
    except ZipRefused as exc:
        raise ExtractionError(str(exc)) from None


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
