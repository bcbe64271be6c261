"""Zip bombs refused by what the members really inflate to, not by what their headers say.

A zip's central directory declares each member's size, and `zipfile` trusts it: reading a
member whole asks zlib for up to 2 GB at once, so a 2 MB file that understates a 2 GB member
peaks at 2 GB before anything can object. :func:`check_zip` inflates every member itself, in
chunks, with a running cap, and refuses the archive as soon as a member outgrows its declared
size or the total outgrows the limit. After it passes, every member inflates to at most its
declared size, so a library that trusts the headers (python-docx) is bounded by them too.
Every zip-based format is read through it.
"""
from __future__ import annotations

import io
import struct
import zipfile
import zlib
from typing import Optional

_CHUNK = 64 * 1024  # compressed bytes fed to zlib at a time
_OUT = 1024 * 1024  # the most zlib may produce per call
_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")  # see APPNOTE.TXT 4.3.7
_ENCRYPTED = 0x1


class ZipRefused(ValueError):
    """The archive must not be read; the message says why (for a row's error)."""


def check_zip(
    data: bytes,
    *,
    what: str,
    max_total: int,
    max_members: int,
    max_ratio: Optional[int] = None,
    ratio_min_bytes: int = 0,
) -> None:
    """Raise :class:`ZipRefused` unless every member of the zip in ``data`` inflates to its
    declared size, all together at most ``max_total`` bytes, with at most ``max_members``
    members and (for members above ``ratio_min_bytes``) at most ``max_ratio`` times their
    compressed size. ``what`` names the format in messages ("docx")."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
    except Exception as exc:  # BadZipFile, but also struct/value errors on mangled headers
        raise ZipRefused(f"corrupt {what}: not a valid zip archive ({str(exc)[:120]})") from None
    if len(infos) > max_members:
        raise ZipRefused(f"{what} has more than {max_members:,} parts; refusing (zip bomb?)")
    declared = sum(info.file_size for info in infos)
    if declared > max_total:
        raise ZipRefused(f"{what} decompresses to more than {max_total // 10**6} MB; refusing (zip bomb?)")
    total = 0
    view = memoryview(data)
    for info in infos:
        if info.file_size > ratio_min_bytes and max_ratio and info.file_size > max_ratio * max(1, info.compress_size):
            ratio = info.file_size // max(1, info.compress_size)
            raise ZipRefused(f"{what} part {info.filename} expands {ratio:,}x; refusing (zip bomb?)")
        size = _inflated_size(view, info, what, limit=min(info.file_size, max_total - total))
        total += size


def _inflated_size(data: memoryview, info: zipfile.ZipInfo, what: str, limit: int) -> int:
    """Inflate one member in chunks; refuse it once it passes ``limit`` (its declared size, or
    what is left of the total)."""
    if info.flag_bits & _ENCRYPTED:
        raise ZipRefused(f"{what} is password-protected (encrypted zip member {info.filename})")
    start = info.header_offset
    try:
        fields = _LOCAL_HEADER.unpack_from(data, start)
    except struct.error:
        raise ZipRefused(f"corrupt {what}: member {info.filename} is cut off") from None
    if fields[0] != b"PK\x03\x04":
        raise ZipRefused(f"corrupt {what}: bad header for member {info.filename}")
    name_len, extra_len = fields[-2], fields[-1]
    begin = start + _LOCAL_HEADER.size + name_len + extra_len
    raw = data[begin: begin + info.compress_size]
    if info.compress_type == zipfile.ZIP_STORED:
        size = len(raw)
    elif info.compress_type == zipfile.ZIP_DEFLATED:
        size = _deflated_size(raw, limit, info, what)
    else:  # Word and its kin write only these two; bzip2/lzma would inflate without a cap
        raise ZipRefused(f"{what} member {info.filename} uses an unsupported compression ({info.compress_type})")
    if size > limit:
        raise ZipRefused(_too_big(info, what))
    return size


def _deflated_size(raw: memoryview, limit: int, info: zipfile.ZipInfo, what: str) -> int:
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    size = 0
    try:
        for offset in range(0, len(raw), _CHUNK):
            pending = bytes(raw[offset: offset + _CHUNK])
            while pending:
                size += len(inflater.decompress(pending, _OUT))
                if size > limit:
                    raise ZipRefused(_too_big(info, what))
                pending = inflater.unconsumed_tail
            if inflater.eof:
                break
        while not inflater.eof:  # flush what zlib holds back, still capped
            out = inflater.decompress(b"", _OUT)
            if not out:
                break
            size += len(out)
            if size > limit:
                raise ZipRefused(_too_big(info, what))
    except zlib.error as exc:
        raise ZipRefused(f"corrupt {what}: member {info.filename} does not inflate ({exc})") from None
    return size


def _too_big(info: zipfile.ZipInfo, what: str) -> str:
    return (
        f"{what} part {info.filename} inflates past its declared {info.file_size:,} bytes "
        "or the size limit; refusing (zip bomb?)"
    )
