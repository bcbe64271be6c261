"""engine.intake (formats): one extractor per format, content sniffing, and every kind of bad input."""
from __future__ import annotations

import io
import os
import sys
import threading
import zipfile

import pytest

import fixtures_docs as fx
from engine.intake import extract, limits, sniff
from engine.intake import Deadline, Extraction, decode_text, extract_bytes, extract_file, html_to_text


def _write(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


# ----------------------------------------------------------------------------- valid files


def test_pdf_pages_in_order(tmp_path):
    result = extract_file(_write(tmp_path, "invoice.pdf", fx.make_pdf()))
    assert result.ok, result.error
    assert result.kind == "pdf" and result.pages == 2
    assert result.text == f"{fx.PDF_TEXT[0]}\n\n{fx.PDF_TEXT[1]}"
    assert not result.truncated and result.warnings == []


def test_encrypted_fixture_is_really_encrypted():
    """The hand-written encrypted PDF opens with its password, so the error below is honest."""
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(fx.make_encrypted_pdf(), password="secret")
    assert pdf[0].get_textpage().get_text_bounded() == "Top secret merger terms"
    pdf.close()


def test_docx_paragraphs_and_tables_in_document_order(tmp_path):
    table = [["Item", "Price"], ["Widget", "9.99"], ["Gadget", "12.50"]]
    result = extract_file(_write(tmp_path, "a.docx", fx.make_docx(table=table)))
    assert result.ok, result.error
    assert result.kind == "docx" and result.pages is None
    assert result.text.split("\n") == [
        "Supply agreement",
        fx.DOCX_PARAGRAPH,
        "Item | Price",
        "Widget | 9.99",
        "Gadget | 12.50",
        "Signed by both parties.",
    ]


def test_docx_merged_cells_written_once(tmp_path):
    import docx

    document = docx.Document()
    grid = document.add_table(rows=2, cols=3)
    grid.cell(0, 0).merge(grid.cell(0, 2)).text = "Wide header"
    for c, value in enumerate(["a", "b", "c"]):
        grid.cell(1, c).text = value
    buffer = io.BytesIO()
    document.save(buffer)
    result = extract_bytes(buffer.getvalue(), "m.docx")
    assert result.text == "Wide header\na | b | c"


def test_html_readable_text_without_script_or_style():
    result = extract_bytes(fx.HTML_DOC.encode(), "policy.html")
    assert result.ok and result.kind == "html"
    assert result.text == (
        "Refund policy\n\n"
        "Refunds are issued within 14 days of the request.\n\n"
        "Receipts required\nNo cash refunds\n\n"
        "Plan | Days\nBasic | 14\n\n"
        "Line one\nLine two"
    )
    assert "secret" not in result.text and "color" not in result.text


def test_html_title_kept_and_pre_whitespace():
    text = html_to_text("<title>Memo</title><p>Body text</p><pre>a  b\nc</pre>")
    assert text.startswith("Memo\n\nBody text")
    assert text.endswith("a b\nc")


def test_html_declared_charset_is_honoured():
    data = '<html><head><meta charset="windows-1252"></head><body>Caf\xe9 \u20ac5</body></html>'
    result = extract_bytes(data.encode("cp1252"), "p.htm")
    assert result.text == "Caf\xe9 \u20ac5" and result.warnings == []


def test_eml_headers_plain_body_and_attachment_names():
    result = extract_bytes(fx.make_eml(), "report.eml")
    assert result.ok and result.kind == "eml"
    lines = result.text.split("\n")
    assert lines[:4] == [
        f"Subject: {fx.EML_SUBJECT}",
        "From: Ana Lima <ana@example.com>",
        "To: team@example.com",
        "Date: Tue, 01 Oct 2024 09:30:00 +0000",
    ]
    assert "the quarterly numbers are in the attachment." in result.text
    assert "<b>" not in result.text
    assert lines[-1] == f"Attachments: {fx.EML_ATTACHMENT}"


def test_eml_html_only_body_becomes_text():
    result = extract_bytes(fx.make_html_only_eml(), "n.eml")
    assert result.text.endswith("Hello team,\n\nnumbers attached.")


def test_eml_unknown_charset_and_broken_headers_do_not_fail():
    raw = (
        b"From: =?x-unknown?q?Bob?= <bob@example.com>\r\n"
        b"To: <<<not an address\r\n"
        b"Subject: =?utf-8?b?SGVsbG8gd29ybGQ=?=\r\n"
        b"Content-Type: text/plain; charset=x-nonsense\r\n\r\n"
        b"Body with caf\xe9\r\n"
    )
    result = extract_bytes(raw, "m.eml")
    assert result.ok, result.error
    assert "Subject: Hello world" in result.text
    assert "Body with caf\xe9" in result.text


def test_rtf_text_and_escapes():
    result = extract_bytes(fx.RTF_DOC.encode(), "contract.rtf")
    assert result.ok and result.kind == "rtf"
    assert result.text == "Contract renewal is automatic.\nCaf\xe9 au lait costs \u20ac 3."


def test_rtf_embedded_pictures_are_dropped_quickly():
    picture = "{\\pict\\pngblip " + "89ab" * 2_000_000 + "}"
    source = "{\\rtf1\\ansi Before.\\par " + picture + "After.\\par}"
    result = extract_bytes(source.encode(), "p.rtf", timeout_s=5)
    assert result.text == "Before.\nAfter."


def test_rtf_single_huge_line_with_fields_is_read_within_the_time_limit():
    """800 kB of fields on one line: a reader quadratic in the line's length would run into the
    intake's time limit (30 s) and give an error row; a linear one reads it whole."""
    fields = "{\\field{\\*\\fldinst{ PAGE }}{\\fldrslt 1}}" * 20_000
    source = "{\\rtf1\\ansi Start " + fields + " End}"
    result = extract_bytes(source.encode(), "f.rtf")
    assert result.ok and result.text.startswith("Start") and result.text.endswith("End")


def test_rtf_bad_control_words_do_not_fail():
    result = extract_bytes(b"{\\rtf1 A\\u99999999999? B\\uc C}", "x.rtf")
    assert result.ok and result.text.startswith("A")


def test_text_newlines_normalised_and_markdown_kept():
    assert extract_bytes(fx.TEXT_DOC.encode(), "n.txt").text == "Plain notes: the lease ends in 2027.\nSecond line."
    result = extract_bytes(fx.MARKDOWN_DOC.encode(), "m.md")
    assert result.kind == "markdown" and result.text == fx.MARKDOWN_DOC.strip()


@pytest.mark.parametrize(
    "data, expected, warned",
    [
        ("caf\xe9 \u2013 na\xefve".encode("utf-8-sig"), "caf\xe9 \u2013 na\xefve", False),
        ("caf\xe9 na\xefve".encode("utf-16"), "caf\xe9 na\xefve", False),
        ("caf\xe9 na\xefve \u20ac".encode("utf-32"), "caf\xe9 na\xefve \u20ac", False),
        ("Invoice total for the caf\xe9".encode("utf-16-le"), "Invoice total for the caf\xe9", True),
        ("The caf\xe9 served cr\xe8me br\xfbl\xe9e and the na\xefve g\xe2teau \u20ac".encode("cp1252"),
         "The caf\xe9 served cr\xe8me br\xfbl\xe9e and the na\xefve g\xe2teau \u20ac", True),
    ],
)
def test_text_encoding_detection(data, expected, warned):
    result = extract_bytes(data, "t.txt")
    assert result.text == expected
    assert bool(result.warnings) == warned


def test_decode_text_falls_back_without_charset_normalizer(monkeypatch):
    monkeypatch.setitem(sys.modules, "charset_normalizer", None)  # import fails
    text, warning = decode_text("na\xefve \u20ac".encode("cp1252"))
    assert text == "na\xefve \u20ac" and "cp1252" in warning
    text, warning = decode_text(b"\x81\x8d raw")  # bytes cp1252 leaves undefined
    assert text == "\x81\x8d raw" and "latin-1" in warning


def test_extract_bytes_without_a_name_sniffs_content():
    assert extract_bytes(fx.make_pdf()).kind == "pdf"
    assert extract_bytes(fx.RTF_DOC.encode()).kind == "rtf"
    assert extract_bytes(fx.make_eml()).kind == "eml"
    assert extract_bytes(b"just some pasted words").kind == "text"


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "name, data, error",
    [
        ("locked.pdf", fx.make_encrypted_pdf(), "PDF is password-protected"),
        ("empty.txt", b"", "file is empty"),
        ("program.txt", bytes(range(256)) * 8, "not a text file: binary content in a .txt"),
        ("page.html", b"\x7fELF\x02\x01\x01\x00" + bytes(200), "not a text file: binary content in a .html"),
        ("photo.png", b"\x89PNG\r\n\x1a\n" + bytes(100), "unsupported file type: .png"),
        ("old.doc", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(600), "unsupported file type: .doc (Word 97-2003); save it as .docx or PDF"),
        ("archive.txt", b"PK\x03\x04" + bytes(60), "not a text file: the content is a zip archive"),
        ("blank.txt", b"  \n\t\n ", "no text found in the text file"),
        ("nothing.pdf", b"hello, I am not a PDF", "corrupt PDF: no %PDF header (not a PDF file?)"),
    ],
)
def test_bad_inputs_give_clear_errors(tmp_path, name, data, error):
    result = extract_file(_write(tmp_path, name, data))
    assert result.error == error
    assert result.text == ""


def test_scanned_pdf_has_no_text_layer():
    result = extract_bytes(fx.make_image_only_pdf(), "scan.pdf")
    assert result.error == "PDF has no text layer (scanned image?); OCR is not supported"
    assert result.pages == 2


def test_partly_scanned_pdf_warns():
    result = extract_bytes(fx.make_pdf(["Page with text", ""]), "mixed.pdf")
    assert result.ok and result.text == "Page with text"
    assert result.warnings == ["1 of 2 pages have no text layer (scanned?); their content is missing"]


@pytest.mark.parametrize(
    "data",
    [
        b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF",
        b"%PDF-1.7\n" + bytes(range(256)) * 4,
    ],
)
def test_corrupt_pdf(data):
    result = extract_bytes(data, "broken.pdf")
    assert result.error.startswith("corrupt PDF: "), result.error


def test_truncated_pdf_fails_or_recovers_cleanly():
    data = fx.make_pdf()
    result = extract_bytes(data[: len(data) // 2], "half.pdf")
    assert result.error is None or result.error.startswith(("corrupt PDF", "PDF has no text layer"))


def test_zip_bomb_docx_is_refused_before_decompression():
    result = extract_bytes(fx.make_zip_bomb_docx(201), "bomb.docx")
    assert result.error == "docx decompresses to more than 200 MB; refusing (zip bomb?)"


def test_small_but_extreme_ratio_docx_part_is_refused():
    result = extract_bytes(fx.make_zip_bomb_docx(20), "ratio.docx")
    assert result.error.startswith("docx part word/media/image1.bin expands ")
    assert result.error.endswith("refusing (zip bomb?)")


def test_docx_that_is_not_a_zip_or_is_encrypted():
    assert extract_bytes(b"plain text pretending", "x.docx").error.startswith("corrupt docx: not a valid zip archive")
    encrypted = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(500) + "EncryptionInfo".encode("utf-16-le") + bytes(500)
    assert extract_bytes(encrypted, "secret.docx").error == "docx is password-protected"
    legacy = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(1000)
    assert "legacy Word 97-2003" in extract_bytes(legacy, "old.docx").error


def test_xlsx_renamed_docx():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(
            "[Content_Types].xml",
            '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.'
            'spreadsheetml.sheet.main+xml"/></Types>',
        )
        archive.writestr(
            "_rels/.rels",
            '<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
            'officeDocument" Target="xl/workbook.xml"/></Relationships>',
        )
        archive.writestr("xl/workbook.xml", "<workbook/>")
    result = extract_bytes(buffer.getvalue(), "sheet.docx")
    assert result.error and result.text == ""


def test_content_beats_suffix_with_a_warning():
    result = extract_bytes(fx.make_pdf(), "invoice.txt")
    assert result.kind == "pdf" and result.ok
    assert result.warnings == ["content is a PDF although the name ends in .txt"]
    result = extract_bytes(fx.HTML_DOC.encode(), "download.pdf")
    assert result.kind == "html" and result.text.startswith("Refund policy")
    result = extract_bytes(fx.RTF_DOC.encode(), "letter.doc")
    assert result.kind == "rtf" and result.text.startswith("Contract renewal")


def test_max_chars_truncates_with_warning(tmp_path):
    path = _write(tmp_path, "big.txt", ("0123456789" * 1000).encode())
    result = extract_file(path, max_chars=95)
    assert result.ok and result.truncated
    assert result.text == ("0123456789" * 10)[:95]
    assert "file is very large; only its beginning was read" in result.warnings
    assert result.warnings[-1] == "text truncated (95 characters kept)"


def test_max_chars_stops_reading_pdf_pages():
    pages = [f"Page {i} " + "x" * 50 for i in range(20)]
    result = extract_bytes(fx.make_pdf(pages), "long.pdf", max_chars=120)
    assert result.truncated and len(result.text) == 120
    assert result.pages == 20


def test_deadline_keeps_partial_pdf_text(monkeypatch):
    calls = []

    def fake_expired(self):
        calls.append(1)
        return len(calls) > 1  # time runs out after the first page

    monkeypatch.setattr(Deadline, "expired", fake_expired)
    result = extract_bytes(fx.make_pdf(), "slow.pdf")
    assert result.ok and result.truncated
    assert result.text == fx.PDF_TEXT[0]
    assert result.warnings[0] == "stopped after 1 of 2 pages: time limit of 30 s reached"


def test_deadline_before_any_text_is_an_error():
    result = extract_bytes(fx.make_pdf(), "slow.pdf", timeout_s=-1)
    assert result.error == "PDF took too long: time limit of -1 s reached before any text was found"
    result = extract_bytes(fx.make_docx(), "slow.docx", timeout_s=-1)
    assert result.error.startswith("docx took too long")


def test_pdf_page_cap(monkeypatch):
    monkeypatch.setattr(limits, "MAX_PDF_PAGES", 1)
    result = extract_bytes(fx.make_pdf(), "capped.pdf")
    assert result.text == fx.PDF_TEXT[0] and result.truncated
    assert result.warnings[0] == "stopped after the first 1 of 2 pages"


def test_whole_file_formats_above_the_size_cap_are_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "MAX_FILE_BYTES", 1000)
    result = extract_file(_write(tmp_path, "big.pdf", fx.make_pdf()))
    assert result.error.startswith("PDF is ") and result.error.endswith("MB limit; refusing")


def test_pdfium_calls_are_serialised_across_threads():
    data = fx.make_pdf()
    results: list[Extraction] = []

    def work():
        for _ in range(5):
            results.append(extract_bytes(data, "t.pdf"))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 20 and all(r.text == results[0].text and r.ok for r in results)


def test_unreadable_paths(tmp_path):
    assert extract_file(tmp_path / "missing.pdf").error == "file not found"
    assert extract_file(tmp_path).error == "is a folder, not a file"
    loop = tmp_path / "loop.txt"
    os.symlink(loop.name, loop)
    assert extract_file(loop).error == "symlink loop"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_fifo_is_not_opened(tmp_path):
    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)
    assert extract_file(fifo).error == "not a regular file (device, pipe or socket)"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads anything")
def test_permission_denied(tmp_path):
    path = _write(tmp_path, "secret.txt", b"hidden")
    path.chmod(0)
    try:
        assert extract_file(path).error == "permission denied"
    finally:
        path.chmod(0o600)


def test_permission_denied_simulated(tmp_path, monkeypatch):
    path = _write(tmp_path, "secret.txt", b"hidden")

    def deny(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("builtins.open", deny)
    assert extract_file(path).error == "permission denied"


def test_unexpected_exceptions_never_escape(monkeypatch):
    def boom(data, **kwargs):
        raise ValueError("library bug")

    monkeypatch.setitem(extract._EXTRACTORS, "text", boom)
    result = extract_bytes(b"hello", "a.txt")
    assert result.error == "corrupt text file: library bug"


def test_wide_html_page_is_linear():
    import time

    started = time.monotonic()
    text = html_to_text("<div>row</div>" * 20_000)
    assert text.split("\n") == ["row"] * 20_000
    assert time.monotonic() - started < 30


def test_markup_caps_keep_the_beginning(monkeypatch):
    monkeypatch.setattr(limits, "MAX_HTML_CHARS", 40)
    result = extract_bytes(b"<p>first paragraph</p>" + b"<p>more</p>" * 100, "big.html")
    assert result.truncated and result.text.startswith("first paragraph")
    assert result.warnings[0].startswith("HTML is very large")
    monkeypatch.setattr(limits, "MAX_RTF_CHARS", 40)
    result = extract_bytes(b"{\\rtf1\\ansi Beginning. " + b"more words " * 100 + b"}", "big.rtf")
    assert result.truncated and result.text.startswith("Beginning.")


def test_content_kind():
    assert sniff.content_kind(fx.make_pdf()[:100]) == "pdf"
    assert sniff.content_kind(fx.make_eml()[:4096]) == "eml"
    assert sniff.content_kind(fx.RTF_DOC.encode()) == "rtf"
    assert sniff.content_kind(b"Dear Sir: hello") is None


def test_text_that_mentions_a_pdf_header_stays_text():
    result = extract_bytes(b"Notes on file formats: every PDF starts with %PDF-1.x\n", "formats.md")
    assert result.kind == "markdown" and result.ok
