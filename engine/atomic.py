"""Writing a file so that a reader sees the old one or the new one, never half of either.

The bytes go to a temporary file beside the target (same folder, so the same file system; a
name of its own, so several processes may write at once) and are moved onto it with
``os.replace`` only when the writer finished without an error; otherwise the temporary file is
removed and the target is as it was.
"""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator, Optional


def _read_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # once, at import: setting the umask to read it is not thread-safe


@contextmanager
def atomic_path(path: str | os.PathLike, *, durable: bool = True) -> Iterator[Path]:
    """A temporary path beside ``path`` for a writer that takes a file name (``np.savez``,
    ``mx.save_safetensors``); it keeps ``path``'s suffix, so such writers add none of their own.
    ``durable``: flush it to disk before the move (a cache that can be rebuilt may skip that)."""
    target = Path(path)
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp" + target.suffix)
    os.close(fd)
    tmp = Path(name)
    try:
        try:  # mkstemp makes it private (0600): give it the mode the file has, or a new file gets
            os.chmod(tmp, target.stat().st_mode & 0o7777)
        except FileNotFoundError:
            os.chmod(tmp, 0o666 & ~_UMASK)
        yield tmp
        if durable:
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", *, encoding: Optional[str] = "utf-8",
                 newline: Optional[str] = None, durable: bool = True) -> Iterator[IO]:
    """An open file (``mode`` "w" or "wb") whose content replaces ``path`` when the block ends
    without an error; on an error ``path`` is untouched and the partial file is gone."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write writes a whole file: mode 'w' or 'wb', not {mode!r}")
    binary = mode == "wb"
    with atomic_path(path, durable=False) as tmp:
        with open(tmp, mode, encoding=None if binary else encoding, newline=None if binary else newline) as fh:
            yield fh
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
