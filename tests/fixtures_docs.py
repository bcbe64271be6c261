"""Fixture documents generated at test time (no committed binaries).

PDFs come from Qt's QPdfWriter (offscreen), except the encrypted one, which is written by
hand (RC4 40-bit standard security handler) because no permissive writer here encrypts.
"""
from __future__ import annotations

import hashlib
import io
import os
import struct
import zipfile
import zlib
from email.message import EmailMessage
from pathlib import Path

PDF_TEXT = ["Invoice 42: total due 1,234.00 EUR", "Payment terms: thirty days net"]
DOCX_PARAGRAPH = "The supplier shall deliver the goods by March."
DOCX_TABLE = [["Item", "Price"], ["Widget", "9.99"]]
EML_SUBJECT = "Quarterly report attached"
EML_PLAIN = "Hello team,\nthe quarterly numbers are in the attachment.\n"
EML_HTML = "<html><body><p>Hello <b>team</b>,</p><p>numbers attached.</p></body></html>"
EML_ATTACHMENT = "q3-report.pdf"

HTML_DOC = """<!DOCTYPE html>
<html><head><title>Refund policy</title>
<style>body { color: red; }</style>
<script>var secret = "do not show";</script></head>
<body>
<h1>Refund policy</h1>
<p>Refunds are issued within
   <em>14 days</em> of the request.</p>
<ul><li>Receipts required</li><li>No cash refunds</li></ul>
<table><tr><th>Plan</th><th>Days</th></tr><tr><td>Basic</td><td>14</td></tr></table>
<p>Line one<br>Line two</p>
</body></html>
"""

RTF_DOC = (
    r"{\rtf1\ansi\ansicpg1252\deff0{\fonttbl{\f0\fswiss\fcharset0 Arial;}}"
    r"{\colortbl;\red0\green0\blue0;}"
    r"\f0\fs24 Contract renewal is automatic.\par "
    r"Caf\'e9 au lait costs \u8364? 3.\par "
    r"{\*\shppict{\pict\pngblip\picw10\pich10 89504e470d0a1a0a0000000d49484452}}"
    r"}"
)

TEXT_DOC = "Plain notes: the lease ends in 2027.\r\nSecond line.\r\n"
MARKDOWN_DOC = "# Minutes\n\n- Budget approved\n- Next meeting Friday\n"


def qt_app():
    """The app's own QApplication subclass, the same one pytest-qt creates (conftest's qapp_cls),
    so whichever test makes it first, window tests find the application they expect."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    from app.application import VerdictApplication

    return QApplication.instance() or VerdictApplication([])


def make_pdf(pages: list[str] | None = None, *, draw_text: bool = True) -> bytes:
    """A PDF from QPdfWriter with one line of text per page (or only a rectangle)."""
    from PySide6.QtCore import QBuffer, QIODevice, QRect
    from PySide6.QtGui import QColor, QPageSize, QPainter, QPdfWriter

    qt_app()
    pages = PDF_TEXT if pages is None else pages
    buffer = QBuffer()
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    writer = QPdfWriter(buffer)
    writer.setPageSize(QPageSize(QPageSize.PageSizeId.A4))
    painter = QPainter(writer)
    for index, text in enumerate(pages):
        if index:
            writer.newPage()
        if draw_text:
            painter.drawText(200, 400, text)
        else:
            painter.fillRect(QRect(200, 400, 3000, 2000), QColor(40, 40, 40))
    painter.end()
    buffer.close()
    return bytes(buffer.data())


def make_image_only_pdf() -> bytes:
    """A PDF with no text layer, like a scan: only filled rectangles."""
    return make_pdf(["", ""], draw_text=False)


_PDF_PAD = bytes.fromhex("28BF4E5E4E758A4164004E56FFFA01082E2E00B6D0683E802F0CA9FE6453697A")


def _rc4(key: bytes, data: bytes) -> bytes:
    s = list(range(256))
    j = 0
    for i in range(256):
        j = (j + s[i] + key[i % len(key)]) % 256
        s[i], s[j] = s[j], s[i]
    out = bytearray()
    i = j = 0
    for byte in data:
        i = (i + 1) % 256
        j = (j + s[i]) % 256
        s[i], s[j] = s[j], s[i]
        out.append(byte ^ s[(s[i] + s[j]) % 256])
    return bytes(out)


def make_encrypted_pdf(text: str = "Top secret merger terms", user_password: bytes = b"secret") -> bytes:
    """A one-page PDF encrypted with the standard handler (V1/R2, RC4 40-bit)."""
    owner_password = b"owner"
    permissions = -44
    file_id = hashlib.md5(b"verdict-fixture").digest()
    pad = lambda pw: (pw + _PDF_PAD)[:32]  # noqa: E731
    owner_entry = _rc4(hashlib.md5(pad(owner_password)).digest()[:5], pad(user_password))
    key = hashlib.md5(pad(user_password) + owner_entry + struct.pack("<i", permissions) + file_id).digest()[:5]
    user_entry = _rc4(key, _PDF_PAD)

    def encrypt(num: int, data: bytes) -> bytes:
        object_key = hashlib.md5(key + struct.pack("<I", num)[:3] + b"\x00\x00").digest()[:10]
        return _rc4(object_key, data)

    content = encrypt(4, f"BT /F1 24 Tf 72 720 Td ({text}) Tj ET".encode("latin-1"))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Filter /Standard /V 1 /R 2 /O <%s> /U <%s> /P %d >>"
        % (owner_entry.hex().encode(), user_entry.hex().encode(), permissions),
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for num, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % num + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    hex_id = file_id.hex().encode()
    out += (
        b"trailer\n<< /Size %d /Root 1 0 R /Encrypt 6 0 R /ID [<%s> <%s>] >>\nstartxref\n%d\n%%%%EOF\n"
        % (len(objects) + 1, hex_id, hex_id, xref)
    )
    return bytes(out)


def make_docx(paragraph: str = DOCX_PARAGRAPH, table: list[list[str]] | None = None) -> bytes:
    """A .docx with a heading, a paragraph, a table, and a closing paragraph."""
    import docx

    table = DOCX_TABLE if table is None else table
    document = docx.Document()
    document.add_heading("Supply agreement", level=1)
    document.add_paragraph(paragraph)
    grid = document.add_table(rows=len(table), cols=len(table[0]))
    for r, row in enumerate(table):
        for c, value in enumerate(row):
            grid.cell(r, c).text = value
    document.add_paragraph("Signed by both parties.")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def make_zip_bomb_docx(megabytes: int = 201) -> bytes:
    """A valid docx plus one part of zeros that inflates to ``megabytes`` MB."""
    source = zipfile.ZipFile(io.BytesIO(make_docx()))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as bomb:
        for info in source.infolist():
            bomb.writestr(info.filename, source.read(info.filename))
        with bomb.open("word/media/image1.bin", "w", force_zip64=True) as member:
            chunk = bytes(1 << 20)
            for _ in range(megabytes):
                member.write(chunk)
    return buffer.getvalue()


def make_eml() -> bytes:
    """An e-mail with plain and HTML alternatives and a PDF attachment."""
    message = EmailMessage()
    message["Subject"] = EML_SUBJECT
    message["From"] = "Ana Lima <ana@example.com>"
    message["To"] = "team@example.com"
    message["Date"] = "Tue, 01 Oct 2024 09:30:00 +0000"
    message.set_content(EML_PLAIN)
    message.add_alternative(EML_HTML, subtype="html")
    message.add_attachment(b"%PDF-1.4 fake", maintype="application", subtype="pdf", filename=EML_ATTACHMENT)
    return bytes(message)


def make_html_only_eml() -> bytes:
    message = EmailMessage()
    message["Subject"] = "HTML only"
    message["From"] = "news@example.com"
    message.set_content(EML_HTML, subtype="html")
    return bytes(message)


def valid_samples() -> dict[str, bytes]:
    """One valid file of each supported kind, keyed by file name."""
    return {
        "invoice.pdf": make_pdf(),
        "agreement.docx": make_docx(),
        "policy.html": HTML_DOC.encode("utf-8"),
        "report.eml": make_eml(),
        "contract.rtf": RTF_DOC.encode("ascii"),
        "notes.txt": TEXT_DOC.encode("utf-8"),
        "minutes.md": MARKDOWN_DOC.encode("utf-8"),
    }


def write_files(folder: Path, files: dict[str, bytes]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, data in files.items():
        path = folder / name
        path.write_bytes(data)
        paths.append(path)
    return paths


def _raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


def zeros_deflate_stream(megabytes: int) -> bytes:
    """A raw deflate stream that inflates to ``megabytes`` MB of zeros, built without
    compressing them: one fully flushed 1 MB block (it needs no history) repeated."""
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    block = packer.compress(bytes(1 << 20)) + packer.flush(zlib.Z_FULL_FLUSH)
    return block * megabytes + packer.flush()


def zip_with_members(members: list[tuple[str, bytes, int, int]]) -> bytes:
    """A zip written byte by byte (APPNOTE 4.3), so a member's declared size and CRC can lie:
    ``(name, raw deflate data, declared uncompressed size, crc32)`` per member."""
    out, central = bytearray(), bytearray()
    for name, raw, size, crc in members:
        encoded = name.encode()
        offset = len(out)
        out += struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 8, 0, 0, crc, len(raw), size, len(encoded), 0)
        out += encoded + raw
        central += struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 8, 0, 0, crc, len(raw), size,
                               len(encoded), 0, 0, 0, 0, 0, offset) + encoded
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(members), len(members), len(central), len(out), 0)
    return bytes(out + central + end)


def make_lying_docx(megabytes: int = 2048, declared: int = 1000) -> bytes:
    """A real docx plus a part that declares ``declared`` bytes but inflates to ``megabytes``
    MB (the CRC matches the declared prefix, as a careful attacker would make it)."""
    source = zipfile.ZipFile(io.BytesIO(make_docx()))
    members = [
        (info.filename, _raw_deflate(source.read(info.filename)), info.file_size, info.CRC)
        for info in source.infolist()
    ]
    members.append(("word/media/image1.bin", zeros_deflate_stream(megabytes), declared, zlib.crc32(bytes(declared))))
    return zip_with_members(members)
