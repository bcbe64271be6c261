"""The calibrator store: damaged files are set aside, saves are atomic across processes."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from engine.confidence.calibrate import Calibrator, Platt
from engine.confidence.probe import Probe
from engine.confidence.store import StoreWarning, load_calibrator_file, calibrator_path, save_calibrator_file


def _probe(value: float, dim: int = 64) -> Probe:
    full = np.full(dim, value)
    return Probe(model="m", question="Is it?", layer=3, mean=full, scale=full + 1, w=full * 2, b=value, l2=1.0,
                 n_positive=3, n_negative=4, cv_auc=0.9, cv_auc_margin=float("nan"))


def test_one_file_round_trip_keeps_arrays_and_settings(tmp_path):
    probe = _probe(0.25)
    path = save_calibrator_file("m", "Is it?", probe, {"question": "Is it?", "tag": "x"}, tmp_path)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # one file, no temporaries left
    again, extra = load_calibrator_file("m", "Is it?", tmp_path)
    assert extra == {"question": "Is it?", "tag": "x"}
    for name in ("mean", "scale", "w"):
        np.testing.assert_array_equal(getattr(again, name), getattr(probe, name))
    assert (again.layer, again.b, again.n_negative) == (3, 0.25, 4) and np.isnan(again.cv_auc_margin)


def test_the_earlier_two_file_format_is_still_read(tmp_path):
    base = calibrator_path("m", "Is it?", tmp_path)
    base.parent.mkdir(parents=True)
    np.savez(base.with_name(base.name + ".npz"), mean=np.zeros(4), scale=np.ones(4), w=np.arange(4.0))
    info = {"model": "m", "question": "Is it?", "layer": 2, "b": 0.5, "l2": 10.0}
    base.with_name(base.name + ".json").write_text(json.dumps({"format": 1, "probe": info, "extra": {"k": 1}}))
    probe, extra = load_calibrator_file("m", "Is it?", tmp_path)
    np.testing.assert_array_equal(probe.w, np.arange(4.0))
    assert extra == {"k": 1} and probe.b == 0.5


@pytest.mark.parametrize("damage", ["empty json", "truncated json", "truncated npz", "wrong arrays"])
def test_a_damaged_calibrator_is_set_aside_with_a_warning_and_later_runs_work(tmp_path, damage):
    base = calibrator_path("m", "Is it?", tmp_path)
    json_path = base.with_name(base.name + ".json")
    npz_path = base.with_name(base.name + ".npz")
    if damage == "truncated npz":  # the earlier format's pair, its arrays cut short
        base.parent.mkdir(parents=True)
        np.savez(npz_path, mean=np.zeros(400), scale=np.ones(400), w=np.ones(400))
        npz_path.write_bytes(npz_path.read_bytes()[:300])
        info = {"model": "m", "question": "Is it?", "layer": 2, "b": 0.5, "l2": 10.0}
        json_path.write_text(json.dumps({"format": 1, "probe": info, "extra": None}))
    else:
        save_calibrator_file("m", "Is it?", _probe(1.0), {"question": "Is it?"}, tmp_path)
        text = json_path.read_text()
        if damage == "empty json":
            json_path.write_text("")
        elif damage == "truncated json":
            json_path.write_text(text[: len(text) // 2])
        else:
            record = json.loads(text)
            record["probe"]["arrays"]["w"]["shape"] = [3]
            json_path.write_text(json.dumps(record))
    with pytest.warns(StoreWarning, match="could not be read"):
        assert load_calibrator_file("m", "Is it?", tmp_path) is None
    assert not json_path.exists() and not npz_path.exists()
    assert list(json_path.parent.glob("*.damaged-*"))  # kept for the user, out of the way
    notes: list[str] = []
    assert Calibrator.load("m", "Is it?", tmp_path, on_damaged=notes.append) is None and notes == []
    Calibrator(question="Is it?", model="m", platt=Platt(2.0, 0.5)).save(tmp_path)  # a later run saves again
    assert Calibrator.load("m", "Is it?", tmp_path).platt == Platt(2.0, 0.5)


def test_a_damaged_calibrator_becomes_a_note_of_the_run(tmp_path, tiny_classifier):
    from engine.gather import calibrator_for

    base = calibrator_path(tiny_classifier.fingerprint, "Is it?", tmp_path)
    base.parent.mkdir(parents=True)
    base.with_name(base.name + ".json").write_text("")
    cal = calibrator_for(tiny_classifier, "Is it?", folder=tmp_path)
    assert cal.platt is None and any("could not be read" in note for note in cal.notes)


WRITER = """
import sys
from pathlib import Path
import numpy as np
from engine.confidence.calibrate import Calibrator, Platt
from engine.confidence.probe import Probe

folder, value = Path(sys.argv[1]), float(sys.argv[2])
full = np.full(256, value)
for i in range(int(sys.argv[3])):
    probe = Probe(model="m", question="Is it?", layer=3, mean=full, scale=full + 1, w=full * 2, b=value, l2=1.0)
    Calibrator(question="Is it?", model="m", platt=Platt(value, float(i)), probe=probe, use_probe=True).save(folder)
"""


def test_concurrent_saves_from_two_processes_never_give_a_mixed_or_corrupt_calibrator(tmp_path):
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), str(value), "150"], stderr=subprocess.PIPE)
        for value in (1.0, 2.0)
    ]
    problems: list[str] = []
    seen: set[float] = set()
    while any(w.poll() is None for w in writers):  # bounded: the writers stop after 150 saves each
        cal = Calibrator.load("m", "Is it?", tmp_path, on_damaged=problems.append)
        if cal is None:
            continue  # before the first save lands
        value = cal.platt.a
        seen.add(value)
        assert cal.probe is not None and cal.probe.b == value  # settings and arrays from one writer
        for name, expected in (("mean", value), ("scale", value + 1), ("w", value * 2)):
            assert np.all(getattr(cal.probe, name) == expected), name
    for w in writers:
        assert w.wait() == 0, w.stderr.read().decode()
    assert problems == []
    final = Calibrator.load("m", "Is it?", tmp_path, on_damaged=problems.append)
    assert final.platt.a in (1.0, 2.0) and final.platt.b == 149.0 and problems == []
    leftovers = [p.name for p in final_folder(tmp_path).iterdir() if not p.name.endswith(".json")]
    assert leftovers == []  # no temporary file survives a save


def final_folder(tmp_path):
    return calibrator_path("m", "Is it?", tmp_path).parent
