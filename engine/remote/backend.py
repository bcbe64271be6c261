"""`RemoteBackend`: the `ScoringBackend` seam over an OpenAI-compatible inference server.

The prompt is rendered here, with the model's own tokenizer and chat template (read from a local
GGUF file or MLX folder, weights untouched), so the server sees exactly what the local engine
would; the server only returns next-token logprobs of the Yes/No forms (`engine.remote.servers`).

Throughput: up to `concurrency` requests in flight from a pool of threads; the prompts of one
`score` call are the backlog, so the caller's next batch waits (back-pressure). Prompts that share
a document (several questions about it) are sent after the first of them has come back, so the
server's prefix cache holds the document when they arrive. A prompt whose request still fails
after the retries gets a `PromptScore` with `error` set: one error row, never a lost one.

Nothing waits forever: each attempt has a deadline for the whole request, each request's prompts
a budget for all their attempts (`RetryPolicy.budget`), a wait in which no request comes back for
`stall_after` seconds is reported, and `close` cancels what is in flight at once (Ctrl-C).
Every request runs on the pool's threads, detection too; the calling thread only waits, in
slices of `POLL` seconds: a signal that lands on another thread (a tokenizer's, say) wakes no
blocked wait, and Python runs its handler (KeyboardInterrupt) when the main thread next wakes.
No MLX here: the server does the model's work.
"""
from __future__ import annotations

import math
import os
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Callable, Optional, Sequence, Union
from urllib.parse import urlsplit, urlunsplit

from engine.remote.http import BadAnswer, HttpClient, RemoteError, RetryPolicy
from engine.remote.servers import Method, ServerInfo, answer, approximation, detect, make_method, settle
from engine.model.facts import read_model_facts
from engine.model.prompt import label_forms
from engine.scoring import Prompt, PromptScore

POLL = 0.2  # seconds the calling thread waits at most before it looks at signals again


def split_url(url: str) -> tuple[str, str]:
    """(server root, OpenAI prefix) of what the user gave: `http://h:p/v1` -> (`http://h:p`, `/v1`);
    a URL without `/v1` gets it added."""
    parts = urlsplit(url.strip().rstrip("/"))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"--backend {url!r} is not an http(s) URL")
    path = parts.path
    root_path, api = (path[: -len("/v1")], "/v1") if path.endswith("/v1") else (path, "/v1")
    return urlunsplit((parts.scheme, parts.netloc, root_path, "", "")), api


class RemoteBackend:
    """Scores prompts on an inference server (vLLM, llama.cpp server, mlx_lm.server, Ollama)."""

    supports_states = False

    def __init__(self, url: str, tokenizer_model: Union[str, Path], *, model: Optional[str] = None,
                 api_key: Optional[str] = None, concurrency: int = 8, timeout: float = 60.0,
                 retries: int = 3, backoff: float = 0.5, kind: Optional[str] = None, stall_after: float = 60.0,
                 report: Optional[Callable[[str], None]] = None) -> None:
        """`tokenizer_model`: the served model's GGUF file or MLX folder (only its tokenizer and
        metadata are read). `model`: the name to ask the server for (default: what it serves).
        `timeout`: seconds for one attempt of a request as a whole; `retries`: attempts after the
        first. `kind`: skip detection (vllm, llama.cpp, mlx_lm, ollama, openai). `report` receives a line
        when no request has come back for `stall_after` seconds."""
        facts = read_model_facts(tokenizer_model)
        self.tokenizer = facts.tokenizer
        self.name = facts.name
        self.url = url
        self.root, self.api = split_url(url)
        self.fingerprint = facts.fingerprint  # the weights' file: saved calibrators carry over
        self.preset = facts.preset
        self.n_layers = max(facts.n_layers, 1)
        self.yes_ids, self.no_ids = label_forms(facts.tokenizer)
        self.concurrency = max(1, int(concurrency))
        self.client = HttpClient(self.root, api_key=api_key, timeout=timeout,
                                 policy=RetryPolicy(retries=retries, base=backoff))
        self.stall_after = stall_after
        self.report = report
        self._pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="verdict-remote")
        self._closed = threading.Event()
        try:
            self.info = ServerInfo(kind) if kind else self._result(self._pool.submit(self._detect, model))
            self.method: Method = make_method(self.info.kind, self.client, self.api, model,
                                              self.yes_ids + self.no_ids, self.tokenizer, self.info)
            if not kind:
                self.method = self._result(self._pool.submit(self._settle, model))
        except BaseException:  # a server we can't use, or Ctrl-C while it is asked: no thread left behind
            self.close()
            raise
        self.context_length = min(facts.context_length, self.info.context_length or facts.context_length)

    @classmethod
    def from_options(cls, url: str, tokenizer_model: Union[str, Path], *, api_key_env: Optional[str] = None,
                     **options) -> "RemoteBackend":
        """As the command line builds it: the API key comes from an environment variable."""
        api_key = None
        if api_key_env:
            api_key = os.environ.get(api_key_env)
            if not api_key:
                raise ValueError(f"--api-key-env {api_key_env}: that environment variable is not set")
        return cls(url, tokenizer_model, api_key=api_key, **options)

    @property
    def exact(self) -> bool:
        """Whether the server's method gives the margin exactly (up to the server's arithmetic)."""
        return self.method.exact

    def describe(self) -> str:
        """One line: the server's kind, how margins are got from it, and why that way."""
        if self.method.name == "openai":
            kind = "an OpenAI-compatible server"
            exactness = ("top-k logprobs: exact margins where every Yes/No form is listed, "
                         "else approximate and the row says so")
        else:
            kind, exactness = self.info.kind, ("exact" if self.method.exact else "approximate") + " margins"
        how = "".join(f"; {h}" for h in (self.info.how, self.method.how) if h)
        return f"{kind} at {self.url} ({exactness}, {self.concurrency} requests in flight{how})"

    def notes(self) -> list[str]:
        return list(self.method.notes)

    def close(self) -> None:
        """Cancel the requests in flight (they end at once) and stop the threads."""
        self._closed.set()
        self.client.close()
        self._pool.shutdown(wait=True, cancel_futures=True)

    # --- the ScoringBackend interface ----------------------------------------------------------
    def score(self, prompts: Sequence[Prompt], layers: Sequence[int] = (), answer: bool = True) -> list[PromptScore]:
        if layers or not answer:
            raise ValueError("an inference server returns no hidden states (supports_states is False)")
        ids = [[t for segment in prompt for t in segment.ids] for prompt in prompts]
        if any(not p for p in ids):
            raise ValueError("every prompt needs at least one token")
        results: list[Optional[PromptScore]] = [None] * len(prompts)
        first_of: dict[tuple, list[int]] = {}
        for i, prompt in enumerate(prompts):
            first_of.setdefault(tuple(prompt[:2]), []).append(i)
        # Wave 1: the first prompt of each document, packed into requests of `batch` prompts.
        # Wave 2: a document's other prompts, once its first is back (its prefix is then cached).
        groups = list(first_of.values())
        batch = max(1, self.method.batch)
        leaders = [g[0] for g in groups]
        pending: dict[Future, list[int]] = {}
        followers = {g[0]: g[1:] for g in groups if len(g) > 1}
        for k in range(0, len(leaders), batch):
            chunk = leaders[k : k + batch]
            pending[self._pool.submit(self._ask, [ids[i] for i in chunk])] = chunk
        last = said = time.monotonic()
        while pending:
            done, _ = wait(list(pending), timeout=POLL, return_when=FIRST_COMPLETED)
            now = time.monotonic()
            if not done:
                if now - max(last, said) >= self.stall_after:
                    self._say_stalled(now - last, len(pending))
                    said = now
                continue
            last = now
            for future in done:
                members = pending.pop(future)
                for i, result in zip(members, future.result()):
                    results[i] = result
                rest = [j for i in members for j in followers.pop(i, [])]
                for k in range(0, len(rest), batch):
                    chunk = rest[k : k + batch]
                    pending[self._pool.submit(self._ask, [ids[j] for j in chunk])] = chunk
        return results  # type: ignore[return-value]

    def _settle(self, model: Optional[str]) -> Method:
        """The method the detected server really answers (see `servers.settle`), asked within one
        request's budget."""
        with self.client.time_budget(self.client.policy.budget(self.client.timeout)):
            return settle(self.method, self.yes_ids[:1], model, self.info)

    def _detect(self, model: Optional[str]) -> ServerInfo:
        """The server's kind, asked within one request's budget (a server that hangs at start
        is given up on as soon as one hanging request would be)."""
        with self.client.time_budget(self.client.policy.budget(self.client.timeout)):
            return detect(self.client, self.api, self.yes_ids[:1], model)

    @staticmethod
    def _result(future: Future):
        """`future.result()`, waited for in slices of POLL seconds (see the module docstring)."""
        while True:
            done, _ = wait([future], timeout=POLL)
            if done:
                return future.result()

    def _ask(self, prompts: list[list[int]]) -> list[PromptScore]:
        """One request's prompts as scores; a failure after the retries is each prompt's error.
        The HTTP client retries what fails on the wire; an answer of the wrong shape (a 200 from
        a confused proxy, say) is asked again here, as often."""
        policy = self.client.policy
        with self.client.time_budget(policy.budget(self.client.timeout)):
            return self._ask_within_budget(prompts)

    def _ask_within_budget(self, prompts: list[list[int]]) -> list[PromptScore]:
        policy = self.client.policy
        for attempt in range(policy.retries + 1):
            try:
                got = self.method.ask(prompts)
                return [self._score(g) for g in got]
            except (RemoteError, KeyError, IndexError, TypeError, ValueError) as exc:
                odd_answer = isinstance(exc, BadAnswer) or not isinstance(exc, RemoteError)
                if odd_answer and attempt < policy.retries and not self._closed.is_set():
                    self.client.sleep(max(0.0, min(policy.delay(attempt), self.client.time_left())))
                    continue
                reason = str(exc) if isinstance(exc, RemoteError) else f"unexpected answer ({type(exc).__name__}: {exc})"
                return [PromptScore(math.nan, math.nan, error=f"server: {reason}") for _ in prompts]
        raise AssertionError("unreachable")

    def _say_stalled(self, seconds: float, in_flight: int) -> None:
        if self.report is not None:
            budget = self.client.policy.budget(self.client.timeout)
            self.report(f"no answer from {self.url} for {seconds:.0f} s ({in_flight} request(s) waiting); "
                        f"each gives up after at most {budget:.0f} s with its retries")

    def _score(self, got) -> PromptScore:
        try:
            margin, mass = answer(self.yes_ids, self.no_ids, got)
        except RemoteError as exc:
            return PromptScore(math.nan, math.nan, error=f"server: {exc}")
        return PromptScore(margin, mass, warning=approximation(self.yes_ids, self.no_ids, got, self.tokenizer))
