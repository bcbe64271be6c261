"""Run a command with one folder read-only, for real: by its permissions for an ordinary user,
and for root (whom permissions don't stop) by a read-only bind mount in a private mount
namespace (`unshare -m`), which gives EROFS. Skips the test where neither is possible."""
from __future__ import annotations

import os
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import pytest

_MOUNT = 'mount --bind "$1" "$1" && mount -o remount,ro,bind "$1" && shift && exec "$@"'


@contextmanager
def read_only(folder: Path) -> Iterator[Callable[[list[str]], list[str]]]:
    """Yields wrap(argv) -> argv that runs argv while ``folder`` cannot be written."""
    if os.geteuid() != 0:
        mode = folder.stat().st_mode
        folder.chmod(0o555)
        try:
            yield lambda argv: list(argv)
        finally:
            folder.chmod(mode)
        return
    if not shutil.which("unshare") or subprocess.run(
        ["unshare", "-m", "sh", "-c", _MOUNT, "sh", str(folder), "true"], capture_output=True
    ).returncode != 0:
        pytest.skip("running as root without a private mount namespace: cannot make a folder read-only")
    yield lambda argv: ["unshare", "-m", "sh", "-c", _MOUNT, "sh", str(folder), *map(str, argv)]
