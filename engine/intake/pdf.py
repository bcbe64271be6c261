"""PDF text through PDFium, page by page under one lock (PDFium is not thread-safe),
with the deadline checked before each page."""
from __future__ import annotations

import re
import threading

from engine.intake import limits
from engine.intake.result import Deadline, Extraction, ExtractionError, reason_of

# PDFium is not thread-safe: every call into it happens under this lock.
_PDFIUM_LOCK = threading.Lock()


def extract_pdf(data: bytes, *, max_chars: int, deadline: Deadline) -> Extraction:
    """PDF text layer with pypdfium2, page by page, under the PDFium lock.

    Stops (keeping what it has, ``truncated``) at ``max_chars``, ``limits.MAX_PDF_PAGES`` or the
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
                if index >= limits.MAX_PDF_PAGES:
                    out.truncated = True
                    out.warnings.append(f"stopped after the first {limits.MAX_PDF_PAGES} of {total} pages")
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
    return match.group(1).lower() if match else reason_of(exc)
