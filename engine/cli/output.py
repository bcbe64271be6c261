"""What the command line writes besides the rows themselves (their contract, and the error a
failed write raises, are `engine.rows`'s): strict JSON, the stream rows go to (whose write errors
name it), and the progress bar."""
from __future__ import annotations

import json
import math
import os
import sys
from typing import Any, Optional, TextIO

from engine.rows import OutputError


def strict_json(value: Any, indent: Optional[int] = None) -> str:
    """JSON that strict parsers (jq, browsers) read: NaN and infinities become null."""
    def clean(x):
        if isinstance(x, float) and not math.isfinite(x):
            return None
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [clean(v) for v in x]
        return x

    return json.dumps(clean(value), indent=indent, allow_nan=False)


class RowsOut:
    """The text stream rows go to (a file, or standard output), whose write errors become one
    `OutputError` naming it. After one, closing does not try to write again."""

    def __init__(self, stream: TextIO, name: str, owned: bool) -> None:
        self.stream, self.name, self.owned = stream, name, owned
        self.broken = False

    @classmethod
    def open(cls, path: Optional[str], append: bool = False) -> "RowsOut":
        """`path` opened for rows (appending, or replacing it), or standard output for None."""
        if not path:
            return cls(sys.stdout, "standard output", owned=False)
        try:
            return cls(open(path, "a" if append else "w", encoding="utf-8", newline=""), path, owned=True)
        except OSError as exc:
            raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None

    def write(self, text: str) -> int:
        try:
            return self.stream.write(text)
        except OSError as exc:
            raise self._failed(exc) from None

    def flush(self) -> None:
        try:
            self.stream.flush()
        except OSError as exc:
            raise self._failed(exc) from None

    def close(self) -> None:
        """Flush (and close a file); quietly when writing has already failed."""
        try:
            self.stream.close() if self.owned else self.stream.flush()
        except OSError as exc:
            if not self.broken:
                raise self._failed(exc) from None

    def _failed(self, exc: OSError) -> OutputError:
        self.broken = True
        return OutputError(f"cannot write {self.name}: {exc.strerror or exc}")


class Progress:
    """The one progress bar of the command line: tqdm on stderr, drawn only when stderr is a
    terminal. Counts documents (`step` once per row, `per_document` rows making a document), or
    any other unit through `advance_to` (downloads count bytes: `unit="B"`)."""

    def __init__(self, total: Optional[int], stream: Optional[TextIO] = None, per_document: int = 1, *,
                 unit: str = "docs", desc: Optional[str] = None) -> None:
        from tqdm import tqdm

        stream = stream or sys.stderr  # today's stderr, not the one at import
        self.per_document = max(1, per_document)
        self.rows = 0
        self.enabled = total != 0 and stream.isatty()
        self.bar = tqdm(total=None if total is None else total // self.per_document, desc=desc, unit=unit,
                        unit_scale=unit == "B", file=stream, disable=not self.enabled,
                        ncols=_size(stream)[0], nrows=_size(stream)[1], mininterval=0.1, leave=True)

    def step(self) -> None:
        """One more row; the bar moves when a document's rows are all in."""
        self.rows += 1
        if self.rows % self.per_document == 0:
            self.bar.update(1)

    def advance_to(self, done: int, total: Optional[int] = None) -> None:
        """`done` units so far (of `total`, when it became known)."""
        if total is not None and total != self.bar.total:
            self.bar.total = total
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        self.bar.close()


def _size(stream: TextIO) -> tuple[int, int]:
    """The terminal's columns and lines, 80 x 24 where it reports none (a new pseudo-terminal
    says 0 x 0, which tqdm takes as no room to draw in)."""
    try:
        size = os.get_terminal_size(stream.fileno())
        return size.columns or 80, size.lines or 24
    except (OSError, ValueError, AttributeError):
        return 80, 24
