"""glibc's malloc keeps a forward pass's freed activations for the next one once the runtime starts.

Each forward pass of the default model is run in a fresh process, with the allocator tuned (as
`device.start()` does) and left as glibc has it; the count of minor page faults during a second,
identical pass says whether its activations landed in memory already touched by the first.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="glibc's malloc is tuned on Linux only")

ROOT = Path(__file__).resolve().parents[1]
SECOND_PASS = """
import json, resource
from engine.runtime import device
device.start()
import mlx.core as mx
from engine.runtime.kv import SegmentCache
from engine.runtime.loading import load_model
inner = load_model(None).model.model
ids = mx.array([[(7 * i + 3 * j) % 40000 + 100 for j in range(175)] for i in range(2)])
def forward():
    cache = [SegmentCache() for _ in inner.layers]
    for c in cache:
        c.begin_segment(mx.array([175, 175]))
    mx.eval(inner(ids, cache=cache))
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
forward()
before = faults()
forward()
print(json.dumps({"tuned": device.tune_allocator(), "faults": faults() - before}))
"""


def second_pass_faults(tune: str) -> dict:
    env = dict(os.environ, VERDICT_MALLOC_TUNE=tune)
    done = subprocess.run([sys.executable, "-c", SECOND_PASS], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def transparent_huge_pages_always() -> bool:
    try:
        return "[always]" in Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        return False


def test_a_second_forward_pass_reuses_the_first_ones_memory() -> None:
    tuned = second_pass_faults("1")
    assert tuned["tuned"] is True
    # 2 x 175 tokens: one MLP activation alone is 2 MiB (512 pages); all of them, thousands of pages
    assert tuned["faults"] < 2000, tuned
    untuned = second_pass_faults("0")
    assert untuned["tuned"] is False
    if not transparent_huge_pages_always():  # huge pages would fault once per 2 MiB either way
        assert untuned["faults"] > 5 * max(tuned["faults"], 100), (tuned, untuned)
