"""`verdict bench`'s peer: llama.cpp's own server on the same GGUF, one document at a time.

The server (`llama-server` from llama.cpp: ``VERDICT_LLAMA_SERVER`` or on PATH) is started with
one slot on the model file the engine loaded, and the engine's prompts (the same token ids) go to
it one request at a time, the way a user would score documents with llama.cpp (its prompt cache
reuses the shared start of consecutive prompts, as it would for them). Each set of questions gets
a server of its own: recent servers also keep earlier prompts in memory (``--cache-ram``, on by
default), so a second set on the same server would find the documents the first one read.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from engine.types import Document

SERVER_ENV = "VERDICT_LLAMA_SERVER"
START_SECONDS = 300  # loading a model file; a server that takes longer is reported, not waited on


def llama_server_binary() -> Optional[str]:
    """The llama-server to compare with: ``VERDICT_LLAMA_SERVER``, else `llama-server` on PATH."""
    chosen = os.environ.get(SERVER_ENV, "")
    if chosen:
        return chosen if os.access(chosen, os.X_OK) else None
    return shutil.which("llama-server")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def llama_server(binary: str, gguf: Path) -> Iterator[str]:
    """Run `binary` on `gguf` (one slot, local port) and yield its URL; stopped on leaving."""
    port = _free_port()
    with tempfile.TemporaryFile() as log:
        server = subprocess.Popen([binary, "-m", str(gguf), "--host", "127.0.0.1", "--port", str(port),
                                   "-c", "4096", "-np", "1"], stdout=log, stderr=log)
        try:
            deadline = time.monotonic() + START_SECONDS
            while True:
                if server.poll() is not None:
                    log.seek(0)
                    raise RuntimeError(f"llama-server exited: {log.read().decode(errors='replace')[-500:]}")
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=5):
                        break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"llama-server did not answer within {START_SECONDS} s") from None
                    time.sleep(0.3)
            yield f"http://127.0.0.1:{port}/v1"
        finally:
            server.terminate()
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


WARM_UP_TEXT = "A few words that are none of the documents, read first so that start-up is not timed."


@dataclass(frozen=True)
class PeerRun:
    """How long llama.cpp took to read one set of questions over the documents, and how many prompt
    tokens it evaluated (its own count; what its prompt cache spared is not among them)."""

    seconds: float
    prompt_tokens: int
    evaluated_tokens: int


def _read(root: str, ids: list[int]) -> int:
    """One `/completion` of the prompt `ids` (one token predicted, its top probability, the prompt
    cache on); the prompt tokens the server evaluated (-1 where it doesn't say)."""
    body = json.dumps({"prompt": ids, "n_predict": 1, "n_probs": 1, "cache_prompt": True}).encode()
    request = urllib.request.Request(f"{root}/completion", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=600) as answer:
        reply = json.loads(answer.read())
    if "completion_probabilities" not in reply:
        raise RuntimeError("llama-server's /completion answer has no completion_probabilities")
    return int((reply.get("timings") or {}).get("prompt_n", -1))


def llama_cpp_seconds(binary: str, gguf: Path, question_sets: Sequence[Sequence[str]], docs: list[Document],
                      encode: Callable[[str, str], list[int]]) -> list[PeerRun]:
    """How llama.cpp reads each document's prompt for each set of questions, one request at a
    time, each set on a fresh server: `/completion` with the prompt's token ids (`encode(question,
    text)`, the engine's own), one token predicted and its top probability, the prompt cache on.
    That is the least work any verdict through llama.cpp takes (the engine's remote scoring may ask
    again for more probabilities), so the ratio is the engine's rate against llama.cpp's best."""
    runs = []
    for questions in question_sets:
        with llama_server(binary, gguf) as url:
            root = url.removesuffix("/v1")

            _read(root, encode(questions[0], WARM_UP_TEXT))  # the server's first request, on none of the documents
            prompts = [encode(q, doc.text) for doc in docs for q in questions]
            start = time.perf_counter()
            evaluated = [_read(root, ids) for ids in prompts]
            runs.append(PeerRun(time.perf_counter() - start, sum(map(len, prompts)),
                                -1 if min(evaluated) < 0 else sum(evaluated)))
    return runs
