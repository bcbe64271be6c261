"""Mailboxes as documents: an mbox file or a Maildir folder gives one document per message,
each read by the e-mail reader (subject, from, date, body; attachments named).

Ids are ``inbox.mbox:#42 <message-id>`` (the message's position, counting from 1, and its
Message-ID when it has one). Messages are read one at a time (the stdlib's `mailbox` keeps only
where each one starts). One bad message costs one row: a message larger than
``limits.MAX_FILE_BYTES``, text before the first ``From`` line of an mbox (a broken separator,
or a file that is no mbox), a message that can't be read.
"""
from __future__ import annotations

import email.parser
import email.policy
import mailbox
import os
from typing import Iterator, Optional

from engine.intake import limits
from engine.intake.member import error_document, member_document
from engine.intake.result import describe_exception
from engine.types import Document

MBOX_SUFFIXES = (".mbox", ".mbx")


def is_mbox_name(name: str) -> bool:
    """Whether a file name says mbox."""
    return name.lower().endswith(MBOX_SUFFIXES)


def is_maildir(path: str) -> bool:
    """Whether a folder is a Maildir: it holds ``cur`` and ``new`` folders."""
    return os.path.isdir(os.path.join(path, "cur")) and os.path.isdir(os.path.join(path, "new"))


def iter_mbox(path: str, doc_id: str, *, max_chars: int, timeout_s: Optional[float]) -> Iterator[Document]:
    """One document per message of the mbox file at ``path`` (rows named after ``doc_id``)."""
    lead = 0
    try:
        with open(path, "rb") as fh:
            if fh.read(5) != b"From ":
                fh.seek(0)
                lead = _bytes_before_first_separator(fh)
        if lead:
            yield error_document(f"{doc_id}:#0", doc_id, (
                f"{lead:,} bytes before the first 'From ' line: not an mbox message (a broken "
                "separator, or not an mbox file); skipped"))
        box = mailbox.mbox(path, create=False)
        keys = box.keys()  # scans the file once for where each message starts
    except Exception as exc:
        yield error_document(doc_id, doc_id, f"cannot read the mailbox: {describe_exception(exc)}")
        return
    try:
        if not keys and not lead:
            yield error_document(doc_id, doc_id, "no messages found in the mailbox (it is empty)")
        for number, key in enumerate(keys, start=1):
            yield _message(box, key, doc_id, number, max_chars, timeout_s)
    finally:
        box.close()


def iter_maildir(path: str, doc_id: str, *, max_chars: int, timeout_s: Optional[float]) -> Iterator[Document]:
    """One document per message of the Maildir folder at ``path`` (``cur`` and ``new``, in the
    order of their file names: delivery time first)."""
    try:
        box = mailbox.Maildir(path, factory=None, create=False)
        keys = sorted(box.keys())
    except Exception as exc:
        yield error_document(doc_id, doc_id, f"cannot read the Maildir: {describe_exception(exc)}")
        return
    if not keys:
        yield error_document(doc_id, doc_id, "no messages found in the Maildir")
    for number, key in enumerate(keys, start=1):
        yield _message(box, key, doc_id, number, max_chars, timeout_s)


def _message(box: mailbox.Mailbox, key: str, doc_id: str, number: int, max_chars: int,
             timeout_s: Optional[float]) -> Document:
    row = f"{doc_id}:#{number}"
    try:
        with box.get_file(key) as fh:
            data = fh.read(limits.MAX_FILE_BYTES + 1)
    except Exception as exc:
        return error_document(row, doc_id, f"cannot read message #{number}: {describe_exception(exc)}")
    if len(data) > limits.MAX_FILE_BYTES:
        return error_document(row, doc_id, f"message #{number} is larger than the "
                                           f"{limits.MAX_FILE_BYTES // 2**20} MB limit; refusing")
    message_id = _message_id(data)
    if message_id:
        row = f"{row} {message_id}"
    if not data.strip():
        return error_document(row, doc_id, f"message #{number} is empty")
    return member_document(row, doc_id, data, "message.eml", max_chars=max_chars, timeout_s=timeout_s)


def _message_id(data: bytes) -> str:
    try:
        headers = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(data[:64 * 1024])
        value = headers.get("Message-ID")
    except Exception:
        return ""
    return " ".join(str(value).split())[:200] if value else ""


def _bytes_before_first_separator(fh) -> int:
    """How many bytes come before the first line that starts with ``From `` (all of them if none)."""
    count = 0
    for line in fh:
        if line.startswith(b"From "):
            return count
        count += len(line)
    return count
