"""What a program shows on a real terminal: a pseudo-terminal (which reports a size of 0 x 0)."""
from __future__ import annotations

import os
import pty
from typing import Callable


def on_a_terminal(write: Callable[[int], object]) -> str:
    """Call `write(fd)` with the terminal end of a new pseudo-terminal (give it to a subprocess
    as its stderr, or open a stream on a dup of it); return everything it showed there."""
    leader, follower = pty.openpty()
    try:
        write(follower)
        os.close(follower)
        follower = -1
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the terminal's other end is closed and drained
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(leader)
        if follower != -1:
            os.close(follower)
    return b"".join(chunks).decode()
