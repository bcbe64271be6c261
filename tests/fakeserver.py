"""A small real HTTP server (stdlib, loopback, a thread) that answers like vLLM, llama.cpp's
server, Ollama, a generic OpenAI-compatible server (llama-cpp-python's shape: a text prompt,
`logprobs: k`, top logprobs keyed by token text, logit_bias not applied to them) or one with chat
completions only, from a made-up but fixed language model, and misbehaves on request.

The "model": the next-token logits after a prompt are a pseudo-random vector seeded by the
prompt's token ids (`logprobs_for`), so a test can compute every answer independently of the
client. Faults, drawn per request from a seeded generator: a dropped connection (no answer), 429
with Retry-After, 503, a slow answer, a 200 whose body is not JSON, an answer dripped one byte at
a time, and no answer at all (the request hangs until the server stops). Also: the first
`models_errors` GETs of the model list answer 500 (a transient error at start), and every request
after the first `hang_after` hangs. `gate` (a threading.Event) can hold every request after the
first `hold_after` until it is set.
"""
from __future__ import annotations

import hashlib
import json
import random
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional

import numpy as np


def logprobs_for(ids, vocab: int) -> np.ndarray:
    """The made-up model's next-token log-probabilities after `ids` (float64, (vocab,))."""
    seed = int.from_bytes(hashlib.sha256(np.asarray(ids, dtype=np.int64).tobytes()).digest()[:8], "little")
    logits = np.random.default_rng(seed).normal(0.0, 3.0, vocab)
    return logits - np.log(np.exp(logits - logits.max()).sum()) - logits.max()


def expected_margin(ids, yes, no, vocab: int) -> tuple[float, float]:
    lp = logprobs_for(ids, vocab)
    y = np.log(np.exp(lp[yes]).sum())
    n = np.log(np.exp(lp[no]).sum())
    return float(y - n), float(np.exp(y) + np.exp(n))


@dataclass
class Faults:
    drop: float = 0.0  # close the connection without answering
    too_many: float = 0.0  # 429 with Retry-After
    unavailable: float = 0.0  # 503
    malformed: float = 0.0  # 200 with a body that is not JSON
    slow: float = 0.0  # answer after a short wait
    drip: float = 0.0  # the whole answer, one byte every `drip_every` seconds
    hang: float = 0.0  # read the request, never answer (until the server stops)
    drip_every: float = 0.25
    retry_after: str = "0"
    models_errors: int = 0  # the first N GETs of /v1/models answer 500
    seed: int = 0


@dataclass
class FakeServer:
    kind: str  # "vllm", "llama.cpp", "ollama", "openai" or "chat"
    vocab: int
    faults: Faults = field(default_factory=Faults)
    hold_after: Optional[int] = None
    hang_after: Optional[int] = None  # every request after the first N hangs
    tokenizer: object = None  # text -> ids for the kinds that take text (ollama, openai)
    max_logprobs: Optional[int] = None  # openai: a larger `logprobs` is refused with a 400 naming this
    bias_in_logprobs: bool = False  # openai: apply logit_bias before the logprobs, as mlx_lm.server does
    requests: int = 0
    answered: int = 0  # completions answered with a 200 and valid JSON
    bodies: list = field(default_factory=list)
    gate: threading.Event = field(default_factory=threading.Event)
    held: threading.Event = field(default_factory=threading.Event)  # set once a request waits at the gate
    hanging: threading.Event = field(default_factory=threading.Event)  # set once a request hangs
    gets: list = field(default_factory=list)  # the paths of GET requests, in order

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(self.faults.seed)
        self._stopping = threading.Event()  # ends hanging and dripping requests
        self._models_errors = self.faults.models_errors
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def _send(self, status: int, payload, headers: Optional[dict] = None, raw: Optional[bytes] = None):
                body = raw if raw is not None else json.dumps(payload).encode()
                if self.drip:  # status line, headers and body, one byte at a time
                    head = (f"HTTP/1.1 {status} OK\r\nContent-Type: application/json\r\n"
                            f"Content-Length: {len(body)}\r\n\r\n").encode()
                    for k in range(len(head + body)):
                        if server._stopping.wait(server.faults.drip_every):
                            break
                        try:
                            self.wfile.write((head + body)[k : k + 1])
                        except OSError:  # the client gave up
                            break
                    self.close_connection = True
                    return
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            drip = False

            def do_GET(self):
                server._get(self)

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length))
                server._post(self, body)

        class Quiet(ThreadingHTTPServer):
            def handle_error(self, request, client_address) -> None:  # a client that went away
                pass

        self.httpd = Quiet(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "FakeServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stopping.set()
        self.gate.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    # --- endpoints --------------------------------------------------------------------------------
    def _get(self, h) -> None:
        with self._lock:
            self.gets.append(h.path)
            failing = h.path == "/v1/models" and self._models_errors > 0
            self._models_errors -= failing
        if failing:
            return h._send(500, {"error": "model list not ready"})
        if self.kind == "vllm" and h.path == "/v1/models":
            return h._send(200, {"object": "list", "data": [{"id": "fake-model", "owned_by": "vllm",
                                                             "max_model_len": 4096}]})
        if self.kind == "ollama" and h.path == "/api/version":
            return h._send(200, {"version": "0.13.0"})
        if self.kind == "llama.cpp" and h.path == "/props":
            return h._send(200, {"default_generation_settings": {"n_ctx": 4096}, "build_info": "fake"})
        if self.kind in ("openai", "chat") and h.path == "/v1/models":
            return h._send(200, {"object": "list", "data": [{"id": "fake.gguf", "owned_by": "me"}]})
        if self.kind == "llama.cpp" and h.path == "/v1/models":
            return h._send(200, {"object": "list", "data": [{"id": "fake", "meta": {"n_vocab": self.vocab}}]})
        h._send(404, {"error": "not found"})

    def _fault(self) -> Optional[str]:
        f = self.faults
        with self._lock:
            self.requests += 1
            n = self.requests
            x = self._rng.random()
        if self.hold_after is not None and n > self.hold_after and not self.gate.is_set():
            self.held.set()
            self.gate.wait(60)
        if self.hang_after is not None and n > self.hang_after:
            return "hang"
        for name, p in (("drop", f.drop), ("429", f.too_many), ("503", f.unavailable),
                        ("malformed", f.malformed), ("slow", f.slow), ("drip", f.drip), ("hang", f.hang)):
            if x < p:
                return name
            x -= p
        return None

    def _post(self, h, body) -> None:
        fault = self._fault()
        h.drip = fault == "drip"
        if fault == "drop":
            h.close_connection = True
            h.connection.shutdown(2)
            return
        if fault == "429":
            return h._send(429, {"error": "slow down"}, {"Retry-After": self.faults.retry_after})
        if fault == "503":
            return h._send(503, {"error": "overloaded"})
        if fault == "malformed":
            return h._send(200, None, raw=b'{"choices": [{"index": 0, "logprobs": ')
        if fault == "hang":
            self.hanging.set()
            self._stopping.wait()
            h.close_connection = True
            return
        if fault == "slow":
            threading.Event().wait(0.05)  # the server is slow; the client just waits for it
        if self.kind == "vllm" and h.path == "/v1/completions":
            answer = self._vllm(body)
        elif self.kind == "llama.cpp" and h.path == "/completion":
            answer = self._llamacpp(body)
        elif self.kind == "ollama" and h.path == "/api/generate":
            answer = self._ollama(body)
        elif self.kind == "openai" and h.path == "/v1/completions":
            k = int(body.get("logprobs") or 0)  # True is 1, as pydantic reads it
            if self.max_logprobs is not None and k > self.max_logprobs:
                return h._send(400, {"error": {"message": f"logprobs must be at most {self.max_logprobs}, got {k}"}})
            answer = self._openai(body, k)
        elif self.kind == "chat" and h.path == "/v1/chat/completions":
            answer = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "Yes"}}]}
        else:
            return h._send(404, {"error": f"no {h.path}"})
        with self._lock:
            self.answered += 1
            self.bodies.append(body)
        h._send(200, answer)

    def _vllm(self, body) -> dict:
        prompts = body["prompt"]
        assert body["max_tokens"] == 1 and body.get("return_tokens_as_token_ids") is True
        choices = []
        for index, ids in enumerate(prompts):
            lp = logprobs_for(ids, self.vocab)
            wanted = body.get("logprob_token_ids") or []
            top = {f"token_id:{t}": float(lp[t]) for t in wanted}
            best = int(np.argmax(lp))
            choices.append({"index": index, "text": "x", "finish_reason": "length",
                            "logprobs": {"tokens": [f"token_id:{best}"], "token_logprobs": [float(lp[best])],
                                         "top_logprobs": [top], "text_offset": [0]}})
        choices.reverse()  # vLLM may list choices in any order; `index` says which prompt
        return {"id": "cmpl-fake", "object": "text_completion", "model": body.get("model"), "choices": choices}

    def _llamacpp(self, body) -> dict:
        ids = body["prompt"]
        assert body["n_predict"] == 1 and body["cache_prompt"] is (body["n_probs"] == 64)  # whole when asked again
        lp = logprobs_for(ids, self.vocab)
        order = np.argsort(-lp)[: body["n_probs"]]
        top = [{"id": int(t), "token": f"t{t}", "logprob": float(lp[t]), "bytes": []} for t in order]
        return {"content": "x", "completion_probabilities": [
            {"id": int(order[0]), "token": "x", "logprob": float(lp[order[0]]), "bytes": [], "top_logprobs": top}]}

    def _ollama(self, body) -> dict:
        assert body["raw"] is True and body["options"]["num_predict"] == 1 and body["top_logprobs"] <= 20
        lp = logprobs_for(self.tokenizer.encode(body["prompt"]), self.vocab)
        order = np.argsort(-lp)[: body["top_logprobs"]]
        top = [{"token": self.tokenizer.decode([int(t)]), "logprob": float(lp[t])} for t in order]
        return {"model": body["model"], "response": top[0]["token"], "done": True,
                "logprobs": [{"token": top[0]["token"], "logprob": top[0]["logprob"], "top_logprobs": top}]}

    def _openai(self, body, k: int) -> dict:
        """llama-cpp-python's answer: the raw distribution's top k, keyed by token text (tokens
        that print alike keep one entry), the bias only in the choice of the token."""
        assert body["max_tokens"] == 1 and isinstance(body["prompt"], str)
        lp = logprobs_for(self.tokenizer.encode(body["prompt"]), self.vocab)
        order = np.argsort(-lp)[:k]
        if self.bias_in_logprobs:
            return self._biased(body, lp)
        top = {self.tokenizer.decode([int(t)]): float(lp[t]) for t in order}  # a later twin overwrites
        best = self.tokenizer.decode([int(order[0])]) if k else "x"
        return {"object": "text_completion", "model": body.get("model"), "choices": [
            {"index": 0, "text": best, "finish_reason": "length",
             "logprobs": {"tokens": [best], "text_offset": [0], "token_logprobs": [float(lp.max())],
                          "top_logprobs": [top] if k else [None]}}],
                "usage": {"prompt_tokens": len(self.tokenizer.encode(body["prompt"])), "completion_tokens": 1}}

    def _biased(self, body, lp: np.ndarray) -> dict:
        """mlx_lm.server's answer: logprobs after the bias, with token ids."""
        biased = lp.copy()
        for t, b in (body.get("logit_bias") or {}).items():
            biased[int(t)] += b
        biased -= np.log(np.exp(biased - biased.max()).sum()) + biased.max()
        order = np.argsort(-biased)[: int(body["top_logprobs"])]
        top = [{"id": int(t), "token": self.tokenizer.decode([int(t)]), "logprob": float(biased[t])} for t in order]
        return {"choices": [{"index": 0, "text": top[0]["token"], "logprobs": {"content": [
            {"id": top[0]["id"], "logprob": top[0]["logprob"], "top_logprobs": top}]}}]}
