"""The scoring thread's progress within a chunk: the engine takes a long chunk a part at a time and
reports document tokens scored of those it has taken, so the worker scales that by the part of
the chunk taken (`ChunkShare`); checked against a real engine run of the tiny model."""
from __future__ import annotations

from app.worker import PROGRESS_STEPS, ChunkShare, document_size
from engine import Classifier, Pipeline
from engine.types import Document

Q = "Does this document ask for a payment?"


def test_a_chunk_share_counts_only_the_documents_the_engine_has_taken(tiny_model_dir):
    clf = Classifier.load(tiny_model_dir, chunk_documents=2)  # the engine takes the chunk two at a time
    docs = [Document(id=f"d{i}", text=f"Document {i}: " + "please pay the invoice. " * (i + 1)) for i in range(6)]
    share = ChunkShare(docs)
    seen: list[tuple[int, int, int, int]] = []  # (steps, scored, taken, characters taken)

    def progress(scored: int, taken: int) -> None:
        seen.append((share.steps(scored, taken), scored, taken, share.taken))

    rows = list(Pipeline(clf, save=False).run(Q, share.feed(), ordered=False, decisions="row", progress=progress))
    assert sorted(v.document_index for v in rows) == list(range(6))
    total = sum(document_size(d) for d in docs)
    first_part = sum(document_size(d) for d in docs[:2])
    # the engine's first report: everything it has taken is scored, but that is the first two documents
    steps, scored, taken, characters = next(s for s in seen if s[1] == s[2])
    assert characters == first_part < total
    assert steps == int(PROGRESS_STEPS * first_part / total) < PROGRESS_STEPS // 2
    assert seen[-1][0] == PROGRESS_STEPS  # all of it, at the end
