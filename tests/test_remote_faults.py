"""A misbehaving inference server never hangs a run: servers of the tests' own on loopback
(`fakeserver`) that drip their answers a byte at a time, never answer, drop the connection, fail
at start or answer garbage, and a run that is cancelled while requests hang.

No timing is asserted: the deadlines below are generous and only prove that a run ends (each
case would otherwise wait far longer than its deadline).
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading

import pytest

from fakeserver import FakeServer, Faults
from test_remote import QUESTIONS, run_cli, write_docs
from tinymodels import vocab_size

COMPLETION = {"prompt": [[1, 2, 3]], "max_tokens": 1, "return_tokens_as_token_ids": True}


def ends_within(seconds: float, work):
    """`work()`'s result or exception, failing the test if it has not ended after `seconds`."""
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["value"] = work()
        except BaseException as exc:  # handed to the test below
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds} s"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def client_for(server, **kwargs):
    from engine.remote.http import HttpClient, RetryPolicy

    policy = RetryPolicy(retries=kwargs.pop("retries", 1), base=0.01)
    return HttpClient(server.url.rsplit("/v1", 1)[0], policy=policy, **kwargs)


# --- the HTTP client ----------------------------------------------------------------------------------
@pytest.mark.parametrize("fault", ["drip", "hang"])
def test_a_request_that_drips_or_hangs_ends_at_its_deadline_and_is_retried(fault):
    """A byte every half second never trips a per-read timeout of 1 s; the whole answer would
    take minutes. The deadline covers the request as a whole."""
    from engine.remote.http import RemoteError

    faults = Faults(drip=1.0, drip_every=0.5) if fault == "drip" else Faults(hang=1.0)
    with FakeServer("vllm", vocab_size(), faults) as server:
        client = client_for(server, timeout=1.0, retries=1)
        with pytest.raises(RemoteError, match="timed out") as caught:
            ends_within(60, lambda: client.post("/v1/completions", COMPLETION))
        client.close()
    assert caught.value.retryable and server.requests == 2  # the first attempt and its retry


def test_a_closed_connection_and_a_malformed_answer_fail_after_the_retries():
    from engine.remote.http import RemoteError

    for faults, message in ((Faults(drop=1.0), "RemoteDisconnected"), (Faults(malformed=1.0), "not JSON")):
        with FakeServer("vllm", vocab_size(), faults) as server:
            client = client_for(server, timeout=5.0, retries=2)
            with pytest.raises(RemoteError, match=message):
                ends_within(60, lambda c=client: c.post("/v1/completions", COMPLETION))
            client.close()
        assert server.requests == 3


def test_cancel_ends_a_hanging_request_at_once_and_is_not_retried():
    from engine.remote.http import RemoteError

    with FakeServer("vllm", vocab_size(), Faults(hang=1.0)) as server:
        client = client_for(server, timeout=600.0, retries=6)
        threading.Thread(target=lambda: server.hanging.wait(60) and client.cancel(), daemon=True).start()
        with pytest.raises(RemoteError, match="cancelled"):
            ends_within(60, lambda: client.post("/v1/completions", COMPLETION))
        with pytest.raises(RemoteError, match="cancelled"):  # and nothing new is sent
            client.post("/v1/completions", COMPLETION)
        client.close()
    assert server.requests == 1


def test_a_time_budget_bounds_the_retries_of_a_thread():
    from engine.remote.http import RemoteError

    with FakeServer("vllm", vocab_size(), Faults(hang=1.0)) as server:
        client = client_for(server, timeout=1.0, retries=1000)

        def within_budget():
            with client.time_budget(2.5):  # the budget is the calling thread's
                return client.post("/v1/completions", COMPLETION)

        with pytest.raises(RemoteError, match="timed out"):
            ends_within(60, within_budget)
        client.close()
    assert 2 <= server.requests <= 4  # not a thousand


# --- detection -----------------------------------------------------------------------------------------
def test_a_transient_500_on_the_model_list_is_retried_and_the_kind_said_once(tiny_model_dir, tmp_path):
    docs = tmp_path / "docs.jsonl"
    ids = write_docs(docs, 40)
    with FakeServer("vllm", vocab_size(), Faults(models_errors=1)) as server:
        done = run_cli("classify", "-q", QUESTIONS[0], "--jsonl-in", docs, "--backend", server.url,
                       "--model", tiny_model_dir, "--backoff", "0.01", timeout=300)
        gets = list(server.gets)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["id"] for r in rows] == ids and not any(r["error"] for r in rows)
    assert gets.count("/v1/models") == 2
    assert done.stderr.count("scoring on vllm at") == 1 and done.stderr.count("scoring on") == 1


def test_a_model_list_that_keeps_failing_is_told_by_a_test_request(tiny_model_dir):
    from engine.remote import RemoteBackend

    with FakeServer("vllm", vocab_size(), Faults(models_errors=10**6)) as server:
        backend = RemoteBackend(server.url, tiny_model_dir, backoff=0.01)
        backend.close()
    assert backend.info.kind == "vllm" and "test request" in backend.describe()


def test_a_server_that_fails_everything_at_start_is_one_line_and_exit_2(tiny_model_dir, tmp_path):
    docs = tmp_path / "docs.jsonl"
    write_docs(docs, 3)
    with FakeServer("vllm", vocab_size(), Faults(models_errors=10**6, unavailable=1.0)) as server:
        done = run_cli("classify", "-q", QUESTIONS[0], "--jsonl-in", docs, "--backend", server.url,
                       "--model", tiny_model_dir, "--retries", "1", "--backoff", "0.01", timeout=300)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "cannot tell which kind of server" in done.stderr


# --- whole runs ------------------------------------------------------------------------------------------
def test_200_documents_against_a_server_that_drips_hangs_drops_and_fails_give_200_rows(tiny_model_dir, tmp_path):
    docs = tmp_path / "docs.jsonl"
    ids = write_docs(docs, 200)
    faults = Faults(drip=0.08, hang=0.08, drop=0.08, unavailable=0.08, malformed=0.08, drip_every=0.2, seed=11)
    with FakeServer("vllm", vocab_size(), faults) as server:
        done = run_cli("classify", "-q", QUESTIONS[0], "--jsonl-in", docs, "--backend", server.url, "--model",
                       tiny_model_dir, "--timeout", "2", "--retries", "2", "--backoff", "0.01", timeout=600)
    assert done.returncode in (0, 1), done.stderr[-2000:]
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["id"] for r in rows] == ids  # exactly one row each, in input order
    assert all(r["verdict"] in ("yes", "no", "uncertain") or (r["verdict"] == "error" and r["error"]) for r in rows)


def test_no_answer_for_a_while_is_reported_and_the_prompt_gets_an_error(tiny_model_dir):
    from engine.classifier import Classifier
    from engine.remote import RemoteBackend

    lines: list[str] = []
    with FakeServer("vllm", vocab_size(), Faults(hang=1.0)) as server:
        backend = RemoteBackend(server.url, tiny_model_dir, timeout=2.0, retries=0, stall_after=0.5,
                                report=lines.append)
        try:
            (verdict,) = ends_within(120, lambda: Classifier(backend).score(QUESTIONS[0], ["a document"]))
        finally:
            backend.close()
    assert verdict.error and "timed out" in verdict.error
    assert lines and all(line.startswith(f"no answer from {server.url}") for line in lines)


@pytest.mark.parametrize("sig, code, word", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
@pytest.mark.parametrize("fmt", ["jsonl", "table"])
def test_a_signal_cancels_hanging_requests_and_keeps_the_rows_done(sig, code, word, fmt, tiny_model_dir, tmp_path):
    """Requests hang with a 600 s timeout and 6 retries: only cancelling them ends the run in time."""
    docs = tmp_path / "docs.jsonl"
    ids = write_docs(docs, 200)
    with FakeServer("vllm", vocab_size(), hang_after=4) as server:
        proc = subprocess.Popen(
            [sys.executable, "-m", "engine.cli", "classify", "-q", QUESTIONS[0], "--jsonl-in", str(docs),
             "--backend", server.url, "--model", str(tiny_model_dir), "--concurrency", "1", "--timeout", "600",
             "--retries", "6", "--format", fmt],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            # A suite started in the background ignores SIGINT; give the child the default action.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        try:
            assert server.hanging.wait(300), "no request ever hung"
            proc.send_signal(sig)
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(60)
    stderr = err.decode()
    assert proc.returncode == code, stderr[-2000:]
    assert f"verdict: {word}" in stderr and "Traceback" not in stderr
    text = out.decode()
    assert text == "" or text.endswith("\n")  # whole lines only
    if fmt == "jsonl":
        rows = [json.loads(line) for line in text.splitlines()]
        assert [r["id"] for r in rows] == ids[: len(rows)] and len(rows) < len(ids)
    else:
        header, *lines = text.splitlines()
        assert header.split()[:2] == ["id", "verdict"]
        assert [line.split()[0] for line in lines] == ids[: len(lines)] and len(lines) < len(ids)


def test_a_server_whose_test_request_hangs_is_one_line_and_exit_2(tiny_model_dir, tmp_path):
    docs = tmp_path / "docs.jsonl"
    write_docs(docs, 2)
    with FakeServer("vllm", vocab_size(), Faults(models_errors=10**6, hang=1.0)) as server:
        done = run_cli("classify", "-q", QUESTIONS[0], "--jsonl-in", docs, "--backend", server.url, "--model",
                       tiny_model_dir, "--timeout", "2", "--retries", "1", "--backoff", "0.01", timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "cannot tell which kind of server" in done.stderr, done.stderr
    assert "timed out" in done.stderr
