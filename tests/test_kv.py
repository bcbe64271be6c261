"""The segment KV cache: buffers that grow in place, and forks that never see a later writer."""
import mlx.core as mx
import numpy as np

from engine.runtime.kv import SegmentCache


def _segment(cache: SegmentCache, seed: int, n: int, lengths=None):
    rng = np.random.default_rng(seed)
    b = 1 if cache.keys is None else cache.keys.shape[0]
    k = mx.array(rng.normal(size=(b, 2, n, 4)).astype(np.float32))
    v = mx.array(rng.normal(size=(b, 2, n, 4)).astype(np.float32))
    cache.begin_segment(mx.array(lengths or [n] * b, dtype=mx.int32))
    cache.update_and_fetch(k, v)
    return np.array(k), np.array(v)


def test_forks_never_see_a_later_writer():
    parent = SegmentCache()
    a, _ = _segment(parent, 0, 3)
    before = parent.fork()
    child = parent.fork()
    b, _ = _segment(parent, 1, 5)
    c, _ = _segment(child, 2, 2)
    d, _ = _segment(parent, 3, 1)  # the parent's buffer is its own now: written in place
    assert np.array_equal(np.array(before.keys), a)
    assert np.array_equal(np.array(child.keys), np.concatenate([a, c], axis=2))
    assert np.array_equal(np.array(parent.keys), np.concatenate([a, b, d], axis=2))
    assert (before.length, child.length, parent.length) == (3, 5, 9)


def test_growing_past_the_buffer_keeps_every_slot_and_the_mask():
    cache = SegmentCache()
    parts, valid = [], []
    for i, n in enumerate([100, 200, 300, 7]):  # past 256 and 512 slots
        k, v = _segment(cache, i, n, lengths=[n - 1])
        parts.append(k)
        valid += [True] * (n - 1) + [False]
    assert np.array_equal(np.array(cache.keys), np.concatenate(parts, axis=2))
    assert np.array(cache.valid)[0].tolist() == valid
    assert int(np.array(cache.offset)[0]) == sum(valid)


def test_a_broadcast_fork_gets_its_own_rows():
    head = SegmentCache()
    a, _ = _segment(head, 0, 4)
    batch = head.fork(3)
    rng = np.random.default_rng(9)
    k = mx.array(rng.normal(size=(3, 2, 2, 4)).astype(np.float32))
    batch.begin_segment(mx.array([2, 1, 2], dtype=mx.int32))
    batch.update_and_fetch(k, k)
    assert np.array_equal(np.array(head.keys), a)  # the shared head is untouched
    assert np.array_equal(np.array(batch.keys), np.concatenate([np.repeat(a, 3, axis=0), np.array(k)], axis=2))
    assert np.array(batch.valid).tolist() == [[True] * 6, [True] * 5 + [False], [True] * 6]


def test_a_one_row_cache_written_by_a_batch_repeats_its_row():
    head = SegmentCache()
    a, _ = _segment(head, 0, 5)
    k = mx.array(np.random.default_rng(4).normal(size=(2, 2, 3, 4)).astype(np.float32))
    head.begin_segment(mx.array([3, 2], dtype=mx.int32))
    head.update_and_fetch(k, k)
    assert np.array_equal(np.array(head.keys), np.concatenate([np.repeat(a, 2, axis=0), np.array(k)], axis=2))
    assert np.array(head.valid).tolist() == [[True] * 8, [True] * 7 + [False]]
