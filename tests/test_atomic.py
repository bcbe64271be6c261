"""engine.atomic: the one way Verdict replaces a file."""
from __future__ import annotations

import json

import numpy as np
import pytest

from engine.atomic import atomic_path, atomic_write


def test_a_finished_write_replaces_the_file_and_leaves_nothing_beside_it(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")
    with atomic_write(target) as fh:
        json.dump({"a": 1}, fh)
        assert target.read_text() == "old"  # a reader sees the old file until the block ends
    assert json.loads(target.read_text()) == {"a": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_a_failed_write_keeps_the_old_file_and_removes_the_partial_one(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_write(target, "wb") as fh:
            fh.write(b"half")
            raise RuntimeError("disk gone")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_a_writer_that_takes_a_path_gets_the_targets_suffix(tmp_path):
    """np.savez adds .npz to a name without it: the temporary name must already end in .npz."""
    target = tmp_path / "arrays.npz"
    with atomic_path(target, durable=False) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".npz" and tmp != target
        np.savez(tmp, x=np.arange(3))
    with np.load(target) as arrays:
        assert arrays["x"].tolist() == [0, 1, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["arrays.npz"]


def test_only_whole_file_modes(tmp_path):
    with pytest.raises(ValueError):
        with atomic_write(tmp_path / "x", "a"):
            pass


def test_the_file_gets_the_mode_a_plain_open_gives_or_keeps_its_own(tmp_path):
    """mkstemp makes private files: an exported CSV must not turn 0600 behind the user's back."""
    plain = tmp_path / "plain.csv"
    plain.write_text("x")
    ours = tmp_path / "ours.csv"
    with atomic_write(ours) as fh:
        fh.write("x")
    assert ours.stat().st_mode == plain.stat().st_mode
    plain.chmod(0o640)
    with atomic_write(plain) as fh:
        fh.write("y")
    assert plain.stat().st_mode & 0o777 == 0o640
