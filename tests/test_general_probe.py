"""The general answer probe: its file format, the model fingerprint it is tied to, and what it
does on real held-out text with the default model."""
from __future__ import annotations

import hashlib
import json
import subprocess

import numpy as np
import pytest

from engine.confidence.general import (
    GeneralProbe,
    general_probe_for,
    load_general_probe,
    model_fingerprint,
    save_general_probe,
)

# The default model's GGUF, as published (shared/MODELS.md): the shipped probe is tied to it.
DEFAULT_GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"


def test_fingerprint_is_the_files_sha256_as_coreutils_computes_it(tmp_path):
    path = tmp_path / "weights.gguf"
    path.write_bytes(bytes(range(256)) * 5000 + b"tail")
    expected = subprocess.run(["sha256sum", str(path)], capture_output=True, text=True, check=True).stdout.split()[0]
    assert model_fingerprint(path) == expected
    path.write_bytes(b"other content")  # a changed file is hashed again, not remembered by name
    assert model_fingerprint(path) == hashlib.sha256(b"other content").hexdigest()


def test_fingerprint_of_a_folder_covers_its_weight_files(tmp_path):
    (tmp_path / "a.safetensors").write_bytes(b"first")
    (tmp_path / "b.safetensors").write_bytes(b"second")
    (tmp_path / "config.json").write_text("{}")
    assert model_fingerprint(tmp_path) == hashlib.sha256(b"firstsecond").hexdigest()


def test_save_and_load_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    probe = GeneralProbe("ab" * 32, 18, rng.normal(size=8), rng.uniform(0.5, 2, size=8), rng.normal(size=8), -0.25,
                         0.71, 0.43, {"questions": 3})
    save_general_probe(probe, tmp_path)
    back = load_general_probe("ab" * 32, tmp_path)
    h = rng.normal(size=(5, 8))
    np.testing.assert_allclose(back.decision(h), probe.decision(h), rtol=1e-5)
    assert back.layer == 18 and back.beats_margin and back.info == {"questions": 3}
    assert load_general_probe("cd" * 32, tmp_path) is None


def test_damaged_or_mismatched_files_are_ignored(tmp_path):
    probe = GeneralProbe("ef" * 32, 3, np.zeros(4), np.ones(4), np.ones(4), 0.0, 0.5, 0.6)
    assert not probe.beats_margin
    path = save_general_probe(probe, tmp_path)
    meta = json.loads(path.read_text())
    path.write_text(json.dumps({**meta, "fingerprint": "00" * 32}))
    assert load_general_probe("ef" * 32, tmp_path) is None
    path.write_text("{not json")
    assert load_general_probe("ef" * 32, tmp_path) is None


def test_default_model_fingerprint_matches_the_published_hash(default_model_path):
    assert model_fingerprint(default_model_path) == DEFAULT_GGUF_SHA256


def test_no_general_probe_for_a_model_without_one(tiny_gguf):
    from engine.classifier import Classifier

    assert general_probe_for(Classifier.load(tiny_gguf)) is None
