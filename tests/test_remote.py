"""Scoring on inference servers: real HTTP servers on loopback, started by the tests.

A server of the tests' own (`fakeserver`) answers in vLLM's and llama.cpp's shapes from a made-up
model whose logprobs the test computes independently, and injects faults; mlx_lm.server (stock
mlx-lm) serves models written by `verdict models export-mlx`, and its margins are compared with
the local engine's on the same weights.
"""
from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from fakeserver import FakeServer, Faults, expected_margin
from tinymodels import vocab_size, write_gguf

QUESTIONS = ["Is this about the document?", "Does it say yes?"]


def run_cli(*args, timeout: int = 600):
    return subprocess.run([sys.executable, "-m", "engine.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def write_docs(path: Path, n: int) -> list[str]:
    rng = np.random.default_rng(7)
    words = ["the", "document", "Yes", "No", "answer", "Question", "cat", "tax", "river", "blue"]
    ids = [f"doc-{i:04d}" for i in range(n)]
    with open(path, "w", encoding="utf-8") as fh:
        for i in ids:
            text = " ".join(rng.choice(words, size=int(rng.integers(3, 25))))
            fh.write(json.dumps({"id": i, "text": text}) + "\n")
    return ids


def prompt_ids(model_dir, question: str, text: str) -> list[int]:
    """The token ids Verdict sends for a question about a text (its own prompt rendering)."""
    from engine.model.facts import read_model_facts
    from engine.model.prompt import PromptEncoder, build_template, default_layout

    facts = read_model_facts(model_dir)
    encoder = PromptEncoder(build_template(default_layout(facts.name), facts.tokenizer), facts.tokenizer)
    return encoder.encode(question, text).all


def forms(model_dir):
    from engine.model.facts import read_model_facts
    from engine.model.prompt import label_forms

    return label_forms(read_model_facts(model_dir).tokenizer)


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def check_margins(rows, docs_path: Path, model_dir, question: str) -> None:
    texts = {json.loads(line)["id"]: json.loads(line)["text"] for line in docs_path.read_text().splitlines()}
    yes, no = forms(model_dir)
    for row in rows:
        margin, _ = expected_margin(prompt_ids(model_dir, question, texts[row["id"]]), yes, no, vocab_size())
        assert row["raw_margin"] == pytest.approx(margin, abs=2e-6), row["id"]


# --- the wire shapes --------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["vllm", "llama.cpp"])
def test_margins_and_masses_are_the_servers_model_exactly(kind, tiny_model_dir):
    from engine.classifier import Classifier
    from engine.remote import RemoteBackend

    texts = [f"the document {i} says Yes or No about the cat" * (1 + i % 3) for i in range(12)]
    yes, no = forms(tiny_model_dir)
    with FakeServer(kind, vocab_size()) as server:
        backend = RemoteBackend(server.url, tiny_model_dir, concurrency=3)
        assert backend.info.kind == kind and backend.exact and not backend.supports_states
        try:
            verdicts = Classifier(backend).score(QUESTIONS, texts)
        finally:
            backend.close()
        bodies = list(server.bodies)
    assert len(verdicts) == len(texts) * len(QUESTIONS)
    for v in verdicts:
        margin, mass = expected_margin(prompt_ids(tiny_model_dir, v.question, texts[v.document_index]), yes, no,
                                       vocab_size())
        assert v.ok and v.raw_margin == pytest.approx(margin, abs=1e-5)
        assert v.label_mass == pytest.approx(mass, rel=1e-5)
    if kind == "vllm":  # several prompts per request, and every form asked for by id
        assert max(len(b["prompt"]) for b in bodies) > 1
        assert all(sorted(b["logprob_token_ids"]) == sorted(yes + no) for b in bodies)
        sent = [p for b in bodies for p in b["prompt"]]
    else:  # n_probs grew until every form was listed (the made-up model ranks them anywhere)
        assert any(b["n_probs"] > 64 for b in bodies)
        sent = [b["prompt"] for b in bodies]
    # A document's second question is sent after its first came back: the prefix is then cached.
    for text in texts:
        first = sent.index(prompt_ids(tiny_model_dir, QUESTIONS[0], text))
        second = sent.index(prompt_ids(tiny_model_dir, QUESTIONS[1], text))
        assert first < second


def test_ollama_top_logprobs_give_the_margin_of_the_forms_listed(tiny_model_dir):
    """Ollama has no logit_bias: a form outside its top 20 counts at the smallest logprob listed."""
    from engine.classifier import Classifier
    from engine.remote import RemoteBackend
    from engine.model.facts import read_model_facts
    from fakeserver import logprobs_for

    tokenizer = read_model_facts(tiny_model_dir).tokenizer
    yes, no = forms(tiny_model_dir)
    texts = ["the document says Yes", "No the river is blue", "the cat"]
    with FakeServer("ollama", vocab_size(), tokenizer=tokenizer) as server:
        backend = RemoteBackend(server.url, tiny_model_dir, model="tiny:latest")
        assert backend.info.kind == "ollama" and not backend.exact and backend.notes()
        verdicts = Classifier(backend).score(QUESTIONS[0], texts)
        backend.close()
    for v in verdicts:
        ids = tokenizer.encode(tokenizer.decode(prompt_ids(tiny_model_dir, v.question, texts[v.document_index])))
        lp = logprobs_for(ids, vocab_size())
        top = set(np.argsort(-lp)[:20].tolist())
        if not top & set(yes + no):  # nothing to bound the margin with: an error row says so
            assert not v.ok and "no Yes/No form is among the 20 logprobs" in v.error
            continue
        floor = lp[sorted(top, key=lambda t: lp[t])[0]]
        side = [np.log(sum(np.exp(lp[t] if t in top else floor) for t in ids_)) for ids_ in (yes, no)]
        assert v.ok and v.raw_margin == pytest.approx(side[0] - side[1], abs=1e-5)
        if set(yes + no) <= top:
            assert not v.warnings
        else:  # the row says it is approximate (the made-up model leaves the bound wide)
            assert len(v.warnings) == 1 and "approximate margin" in v.warnings[0]


def test_retry_after_is_honoured_and_a_request_fails_for_good_after_the_retries(tiny_model_dir):
    from engine.remote.http import HttpClient, RemoteError, RetryPolicy, parse_retry_after

    assert parse_retry_after("7") == 7.0 and parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert 0 <= parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") <= 1  # a date in the past: now
    waits: list[float] = []
    with FakeServer("vllm", vocab_size(), Faults(too_many=1.0, retry_after="7")) as server:
        client = HttpClient(server.url.rsplit("/v1", 1)[0], policy=RetryPolicy(retries=3, base=0.01, cap=30),
                            sleep=waits.append)
        with pytest.raises(RemoteError) as caught:
            client.post("/v1/completions", {"prompt": [[1]], "max_tokens": 1})
    assert caught.value.status == 429 and server.requests == 4
    assert len(waits) == 3 and all(7 <= w <= 7.02 for w in waits)
    backoff = [RetryPolicy(base=1.0, cap=5.0).delay(k) for k in range(8) for _ in range(20)]
    assert 0 <= min(backoff) and max(backoff) <= 5.0 and len(set(backoff)) > 100  # jittered, capped


def test_a_server_that_keeps_failing_gives_one_error_row_per_document(tiny_model_dir, tmp_path):
    docs = tmp_path / "docs.jsonl"
    ids = write_docs(docs, 5)
    with FakeServer("vllm", vocab_size(), Faults(unavailable=1.0)) as server:
        done = run_cli("classify", "-q", QUESTIONS[0], "--jsonl-in", docs, "--backend", server.url,
                       "--model", tiny_model_dir, "--retries", "2", "--backoff", "0.01")
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert done.returncode == 1, done.stderr
    assert [r["id"] for r in rows] == ids
    assert all(r["verdict"] == "error" and "HTTP 503" in r["error"] for r in rows)


def test_unreachable_server_is_one_line_and_exit_2(tiny_model_dir, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    docs = tmp_path / "docs.jsonl"
    write_docs(docs, 2)
    done = run_cli("classify", "-q", "x?", "--jsonl-in", docs, "--backend", f"http://127.0.0.1:{port}/v1",
                   "--model", tiny_model_dir, "--retries", "1", "--backoff", "0.01")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "--backend" in done.stderr and "Traceback" not in done.stderr


# --- faults at scale, and resuming -------------------------------------------------------------------
FAULTS = Faults(drop=0.10, too_many=0.05, unavailable=0.03, malformed=0.04, slow=0.05, retry_after="0", seed=3)


def test_1000_documents_at_concurrency_8_under_faults_give_exactly_1000_rows(tiny_model_dir, tmp_path):
    docs, out = tmp_path / "docs.jsonl", tmp_path / "rows.jsonl"
    ids = write_docs(docs, 1000)
    with FakeServer("vllm", vocab_size(), FAULTS) as server:
        done = run_cli("classify", "-q", QUESTIONS[0], "--jsonl-in", docs, "--backend", server.url, "--model",
                       tiny_model_dir, "--concurrency", "8", "--retries", "12", "--backoff", "0.01", "-o", out)
        requests, answered = server.requests, server.answered
    assert done.returncode == 0, done.stderr[-2000:]
    rows = read_rows(out)
    assert [r["id"] for r in rows] == ids  # exactly one row each, in input order
    assert all(r["error"] is None for r in rows)
    assert requests > answered * 1.15  # the faults happened and were retried
    check_margins(rows[::37], docs, tiny_model_dir, QUESTIONS[0])


def test_a_killed_run_resumes_without_losing_or_repeating_a_row(tiny_model_dir, tmp_path):
    docs, out = tmp_path / "docs.jsonl", tmp_path / "rows.jsonl"
    ids = write_docs(docs, 1000)
    faults = Faults(drop=0.05, too_many=0.05, malformed=0.02, seed=5)
    args = ["classify", "-q", QUESTIONS[0], "-q", QUESTIONS[1], "--jsonl-in", docs, "--model", tiny_model_dir,
            "--concurrency", "8", "--retries", "12", "--backoff", "0.01", "--resume", out,
            "--decisions", "row"]  # every row as soon as it is scored: the kill comes early
    with FakeServer("vllm", vocab_size(), faults, hold_after=40) as server:
        run = subprocess.Popen([sys.executable, "-m", "engine.cli", *map(str, args), "--backend", server.url],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            assert server.held.wait(300), "the run never reached the server's hold"
        finally:
            run.send_signal(signal.SIGKILL)
            run.wait(60)
        with open(out, "a", encoding="utf-8") as fh:  # as if killed in the middle of writing a row
            fh.write('{"id": "doc-09')
        before = read_rows_lenient(out)
        server.gate.set()
        done = run_cli(*args, "--backend", server.url)
    assert done.returncode == 0, done.stderr[-2000:]
    assert 0 < len(before) < 2000
    rows = read_rows(out)
    assert [(r["id"], r["question"]) for r in rows] == [(i, q) for i in ids for q in QUESTIONS]
    check_margins([r for r in rows if r["question"] == QUESTIONS[1]][::41], docs, tiny_model_dir, QUESTIONS[1])


def read_rows_lenient(path: Path) -> list[dict]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            pass
    return rows


# --- no MLX on the client side ------------------------------------------------------------------------
def test_scoring_through_a_server_imports_no_mlx(tiny_model_dir):
    with FakeServer("vllm", vocab_size()) as server:
        code = (
            "import sys\n"
            "from engine.remote import RemoteBackend\n"
            "from engine.classifier import Classifier\n"
            f"b = RemoteBackend({server.url!r}, {str(tiny_model_dir)!r})\n"
            "v = Classifier(b).classify('Is it?', ['a document', 'another one'])\n"
            "b.close()\n"
            "assert len(v) == 2 and all(x.ok for x in v), v\n"
            "print(sorted(m for m in sys.modules if m == 'mlx' or m.startswith(('mlx.', 'mlx_lm'))))\n"
        )
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


def test_labels_through_a_server_use_platt_and_say_why_once(tiny_model_dir, tmp_path):
    docs, labels = tmp_path / "docs.jsonl", tmp_path / "labels.jsonl"
    ids = write_docs(docs, 12)
    labels.write_text("".join(json.dumps({"id": i, "label": n % 2 == 0}) + "\n" for n, i in enumerate(ids)))
    with FakeServer("llama.cpp", vocab_size()) as server:
        done = run_cli("classify", "-q", QUESTIONS[0], "-q", QUESTIONS[1], "--jsonl-in", docs, "--labels", labels,
                       "--backend", server.url, "--model", tiny_model_dir)
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(done.stdout.splitlines()) == 24
    assert done.stderr.count("no hidden states") == 1


def test_a_general_probe_shipped_for_the_weights_is_not_used_through_a_server(tmp_path):
    """A server returns no hidden states, so the general probe of the same weights cannot be read:
    the label-free rows come from the margin, not an error per row."""
    from engine.confidence.general import GeneralProbe, general_probe_key, save_general_probe
    from engine.model.fingerprint import model_fingerprint

    gguf, _ = write_gguf(tmp_path / "tiny.Q8_0.gguf", "llama", quant="Q8_0", seed=2)
    probes = tmp_path / "probes"
    save_general_probe(GeneralProbe(general_probe_key(model_fingerprint(gguf)), 1, np.zeros(64), np.ones(64), np.ones(64), 0.0, 0.9, 0.5,
                                    subtract_null=True, null_texts=("N/A",)), probes)
    docs = tmp_path / "docs.jsonl"
    write_docs(docs, 4)
    env = dict(os.environ, VERDICT_GENERAL_PROBES=str(probes))
    local = subprocess.run([sys.executable, "-m", "engine.cli", "classify", "-q", QUESTIONS[0], "--jsonl-in",
                            str(docs), "--model", str(gguf)], capture_output=True, text=True, env=env, timeout=600)
    assert local.returncode == 0, local.stderr[-2000:]
    ours = [json.loads(line) for line in local.stdout.splitlines()]
    assert all(abs(r["margin"] - r["raw_margin"]) > 1e-3 for r in ours)  # read here, the probe decides
    with FakeServer("llama.cpp", vocab_size()) as server:
        done = subprocess.run([sys.executable, "-m", "engine.cli", "classify", "-q", QUESTIONS[0], "--jsonl-in",
                               str(docs), "--model", str(gguf), "--backend", server.url],
                              capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(rows) == 4 and not any(r.get("error") for r in rows)
    assert [r["margin"] for r in rows] == pytest.approx([r["raw_margin"] for r in rows])


# --- mlx_lm.server on exported models -----------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MlxServer:
    """Stock mlx_lm.server on a folder, with the fast BLAS preloaded as Verdict's own process does."""

    LAUNCH = ("import sys\nfrom engine.runtime import device\ndevice.start()\nfrom mlx_lm.server import main\n"
              "sys.argv = ['mlx_lm.server'] + sys.argv[1:]\nmain()\n")

    def __init__(self, folder: Path, tmp: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        env = dict(os.environ, HF_HUB_CACHE=str(tmp))
        self.log = open(tmp / "server.log", "w")
        self.proc = subprocess.Popen([sys.executable, "-c", self.LAUNCH, "--model", str(folder), "--host",
                                      "127.0.0.1", "--port", str(self.port)], stdout=self.log, stderr=self.log,
                                     env=env)
        for _ in range(600):  # bounded: the server loads the model, then answers /health
            if self.proc.poll() is not None:
                raise RuntimeError(f"mlx_lm.server exited: {(tmp / 'server.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=5):
                    return
            except OSError:
                try:  # wait a little on the process itself: it may also have died
                    self.proc.wait(timeout=0.5)
                except subprocess.TimeoutExpired:
                    pass
        raise RuntimeError("mlx_lm.server did not come up")

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(30)
        self.log.close()


@pytest.fixture(scope="module")
def tiny_llama_export(tmp_path_factory):
    """A tiny llama GGUF (Q8_0, permuted Q/K rows) and its export, written by the CLI."""
    folder = tmp_path_factory.mktemp("export")
    gguf, _ = write_gguf(folder / "tiny-llama.Q8_0.gguf", "llama", quant="Q8_0", seed=4)
    done = run_cli("models", "export-mlx", gguf, folder / "mlx")
    assert done.returncode == 0, done.stderr
    return gguf, folder / "mlx"


def test_mlx_lm_loads_the_export_and_its_logits_equal_the_ggufs(tiny_llama_export):
    import mlx.core as mx
    from mlx_lm.utils import load

    from engine.runtime.local import LocalBackend

    gguf, folder = tiny_llama_export
    model, tokenizer = load(str(folder))
    local = LocalBackend.load(gguf)
    ids = local.tokenizer.encode("<|im_start|>user\nIs the document about the cat? Yes or No<|im_end|>\n")
    theirs = np.array(model(mx.array([ids]))[0, -1].astype(mx.float32))
    ours = local.logits_for_ids(ids)
    assert np.abs(theirs - ours).max() < 1e-4 * max(1.0, np.abs(ours).max())
    assert tokenizer.encode("the document Yes") == local.tokenizer.encode("the document Yes")
    config = json.loads((folder / "config.json").read_text())
    assert config["rope_traditional"] is False and config["quantization"]["model.embed_tokens"]["bits"] == 8


def test_mlx_lm_server_margins_equal_the_local_engines(tiny_llama_export, tmp_path):
    from engine.classifier import Classifier
    from engine.remote import RemoteBackend

    gguf, folder = tiny_llama_export
    texts = [f"the document {i} is about the cat" for i in range(6)] + ["Yes", "No the river is blue"]
    local = Classifier.load(gguf).score(QUESTIONS, texts)
    server = MlxServer(folder, tmp_path)
    try:
        backend = RemoteBackend(server.url, gguf, concurrency=2)
        assert backend.info.kind == "mlx_lm" and backend.exact
        remote = Classifier(backend).score(QUESTIONS, texts)
        backend.close()
    finally:
        server.close()
    assert [(v.document_index, v.question) for v in remote] == [(v.document_index, v.question) for v in local]
    for a, b in zip(remote, local):
        assert a.ok and a.raw_margin == pytest.approx(b.raw_margin, abs=1e-3)
        assert math.isnan(a.label_mass)  # not computable under logit_bias


@pytest.fixture(scope="session")
def default_export(tmp_path_factory, default_model_path):
    folder = tmp_path_factory.mktemp("default-export") / "smollm2"
    done = run_cli("models", "export-mlx", default_model_path, folder, "--dequantize")
    assert done.returncode == 0, done.stderr
    return folder


def test_default_model_through_mlx_lm_server_gives_the_local_rows(default_export, tmp_path):
    labeled = Path(__file__).resolve().parents[1] / "resources" / "labeled" / "debian_games.jsonl"
    docs = tmp_path / "docs.jsonl"
    docs.write_text("".join(labeled.read_text(encoding="utf-8").splitlines(keepends=True)[:20]), encoding="utf-8")
    question = "Is this software a game?"
    local = run_cli("classify", "-q", question, "--jsonl-in", docs, "--model", default_export)
    server = MlxServer(default_export, tmp_path)
    try:
        remote = run_cli("classify", "-q", question, "--jsonl-in", docs, "--model", default_export,
                         "--backend", server.url, "--concurrency", "4")
    finally:
        server.close()
    assert local.returncode == remote.returncode == 0, remote.stderr[-2000:]
    ours = [json.loads(line) for line in local.stdout.splitlines()]
    theirs = [json.loads(line) for line in remote.stdout.splitlines()]
    assert len(ours) == 20 and [r["id"] for r in theirs] == [r["id"] for r in ours]
    for a, b in zip(theirs, ours):
        assert abs(a["raw_margin"] - b["raw_margin"]) < 0.1, (a["id"], a["raw_margin"], b["raw_margin"])
        near_edge = min(abs(abs(b["margin"]) - 1.0), abs(b["margin"])) < 0.1  # the band's edges, or 0
        assert a["verdict"] == b["verdict"] or near_edge
