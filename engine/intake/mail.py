"""E-mail (.eml): headers that matter and the readable body parts."""
from __future__ import annotations

import codecs
import email
import email.header
import email.policy

from engine.intake.html import _html_text
from engine.intake.result import Deadline, Extraction
from engine.intake.text import decode_text


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
