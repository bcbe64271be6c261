"""How to get the next-token log-probabilities of the Yes/No forms out of each kind of server,
with the exactest method it offers, detected once per server.

  vllm       `/v1/completions` with the prompt's token ids and `logprob_token_ids` (the forms'
             logprobs, whatever their rank; raw, before any processing). Exact, label mass too.
             Lists of prompts per request. An older vLLM without `logprob_token_ids`: its top 20.
  llama.cpp  `/completion` with the token ids, `n_probs` and `cache_prompt` (probabilities of the
             raw distribution). `n_probs` grows until every form is in the list: exact. A prompt
             asked again for more is evaluated whole (`cache_prompt` false).
  mlx_lm     `/v1/completions` with the prompt's text, `top_logprobs` and a +100 `logit_bias` on
             every form. mlx_lm.server computes logprobs after the bias, so the forms top the
             list and differences between them stay exact (the margin is exact; the label mass
             is not computable). More forms than the list holds: several requests sharing one
             reference form.
  ollama     `/api/generate` (raw prompt) with `top_logprobs` 20 and no logit bias: approximate;
             a form outside the top 20 is taken at the smallest logprob listed.
  openai     any other OpenAI-compatible server (llama-cpp-python's, say), chosen when a test
             request shows that the server's logprobs ignore logit_bias: `/v1/completions` with
             the prompt's text and `logprobs: k`, k growing (x8) up to what the server allows
             until the margin is pinned down. A form still outside the list is bounded by the
             smallest logprob listed: the row then says it is approximate and by how much.

Every method returns, per prompt, the logprobs it got for each form (`FormLogprobs`); the margin
is computed from them exactly as the local engine does (logsumexp over forms). Where some forms
were not listed, `margin_bounds` gives the interval the true margin lies in.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

from engine.remote.http import RETRY_STATUSES, BadAnswer, HttpClient, RemoteError

BIAS = 100.0  # the largest logit bias OpenAI-compatible servers accept
# A margin known to within this many nats counts as exact: it is below what servers' arithmetic
# differs by on the same weights (float32 logits, another matmul order).
TOLERANCE = 1e-4


@dataclass
class FormLogprobs:
    """Logprobs of the Yes/No forms at one prompt's last position.

    `logprobs` maps a form's id to its logprob, or to its log-probability up to a constant shared
    by all forms (`normalized` False: a logit bias was used). `complete`: every form is in it.
    """

    logprobs: dict[int, float]
    normalized: bool = True
    complete: bool = True
    floor: Optional[float] = None  # the smallest logprob of the list the forms were looked up in
    listed: int = 0  # how many logprobs that list held


def answer(yes_ids: Sequence[int], no_ids: Sequence[int], got: FormLogprobs) -> tuple[float, float]:
    """(margin, label mass) from form logprobs, as the local engine computes them. A form that is
    missing counts at the smallest logprob received (an upper bound); the mass is NaN unless
    every form came back normalized."""
    floor = got.floor if got.floor is not None else min(got.logprobs.values(), default=-math.inf)

    def side(ids: Sequence[int]) -> float:
        values = [got.logprobs.get(i, floor) for i in ids]
        top = max(values)
        if top == -math.inf:
            return -math.inf
        return top + math.log(sum(math.exp(v - top) for v in values))

    if not got.logprobs:
        listed = f"among the {got.listed} logprobs the server listed" if got.listed else "in the server's answer"
        raise RemoteError(f"no Yes/No form is {listed}: the margin is unknown")
    yes, no = side(yes_ids), side(no_ids)
    if yes == -math.inf and no == -math.inf:
        raise RemoteError("the server returned no logprob for any Yes/No form")
    margin = yes - no
    mass = math.exp(yes) + math.exp(no) if got.normalized and got.complete else math.nan
    return margin, mass


def margin_bounds(yes_ids: Sequence[int], no_ids: Sequence[int], got: FormLogprobs) -> tuple[float, float]:
    """The interval the true margin lies in: a form missing from `got` has a logprob between
    -inf and the floor (it was not in the list). Both ends are the margin when every form came back."""
    floor = got.floor if got.floor is not None else min(got.logprobs.values(), default=-math.inf)

    def lse(values: list[float]) -> float:
        top = max(values, default=-math.inf)
        return top if top == -math.inf else top + math.log(sum(math.exp(v - top) for v in values))

    def side(ids: Sequence[int]) -> tuple[float, float]:
        found = [got.logprobs[i] for i in ids if i in got.logprobs]
        return lse(found), lse(found + [floor] * (len(ids) - len(found)))

    (yes_low, yes_high), (no_low, no_high) = side(yes_ids), side(no_ids)
    return yes_low - no_high, yes_high - no_low


def approximation(yes_ids: Sequence[int], no_ids: Sequence[int], got: FormLogprobs, tokenizer) -> Optional[str]:
    """What a row should say when the forms' logprobs leave its margin uncertain by more than
    `TOLERANCE` nats; None when they pin it down."""
    low, high = margin_bounds(yes_ids, no_ids, got)
    if high - low <= TOLERANCE:
        return None
    missing = ", ".join(repr(tokenizer.decode([i])) for i in [*yes_ids, *no_ids] if i not in got.logprobs)
    where = (f"is at least {low:.4f}" if high == math.inf else f"is at most {high:.4f}" if low == -math.inf
             else f"lies in [{low:.4f}, {high:.4f}]")
    return (f"approximate margin: the Yes/No forms {missing} are not among the {got.listed} logprobs the "
            f"server listed; each counts at the smallest one listed, and the true margin {where}")


@dataclass
class Method:
    """One server's way of answering; `ask` scores a list of prompts (token ids) in one go."""

    client: HttpClient
    api: str  # the OpenAI-style prefix, e.g. "/v1"
    model: str
    forms: list[int]  # every Yes and No form
    tokenizer: Any
    name: str = "openai"
    exact: bool = True
    batch: int = 1  # prompts per request
    notes: list[str] = field(default_factory=list)
    how: str = ""  # why this method was chosen, when it is a fallback

    def ask(self, prompts: Sequence[Sequence[int]]) -> list[FormLogprobs]:
        raise NotImplementedError


class VLLM(Method):
    """vLLM: token ids in, `logprob_token_ids` out (fallback: the top 20)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.name, self.batch = "vllm", 16
        self.by_ids = True

    def ask(self, prompts):
        body: dict[str, Any] = {
            "model": self.model,
            "prompt": [list(p) for p in prompts],
            "max_tokens": 1,
            "temperature": 0.0,
            "return_tokens_as_token_ids": True,
        }
        if self.by_ids:
            body.update(logprobs=1, logprob_token_ids=list(self.forms))
        else:
            body.update(logprobs=20)
        try:
            reply = self.client.post(f"{self.api}/completions", body)
        except RemoteError as exc:
            if self.by_ids and exc.status == 400 and "logprob_token_ids" in str(exc):
                self.by_ids, self.exact = False, False
                self.notes.append("this vLLM has no logprob_token_ids: margins from its top 20 logprobs "
                                  "(approximate when a Yes/No form is not among them)")
                return self.ask(prompts)
            raise
        choices = sorted(_choices(reply, len(prompts)), key=lambda c: c.get("index", 0))
        out = []
        for choice in choices:
            tops = (choice.get("logprobs") or {}).get("top_logprobs") or [None]
            got = _by_token_id(tops[0] or {}, self.tokenizer)
            found = {i: got[i] for i in self.forms if i in got}
            out.append(FormLogprobs(found, normalized=True, complete=len(found) == len(self.forms),
                                    floor=min(got.values(), default=None), listed=len(got)))
        return out


class LlamaCpp(Method):
    """llama.cpp server: token ids in, the top `n_probs` of the raw distribution out; `n_probs`
    grows (x8, up to the vocabulary) until every form is among them."""

    def __init__(self, *args, n_vocab: Optional[int] = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.name = "llama.cpp"
        self.n_vocab = n_vocab or 1 << 20
        self.n_probs = max(64, 4 * len(self.forms))

    def ask(self, prompts):
        return [self._one(list(p)) for p in prompts]

    def _one(self, ids: list[int]) -> FormLogprobs:
        n_probs = self.n_probs
        while True:
            # Asked again for more, the prompt is evaluated whole: from the cache, llama.cpp would
            # re-evaluate its last token alone, and that arithmetic moves the default model's
            # margins by up to 0.07 from the first answer's.
            again = n_probs > self.n_probs
            body = {"prompt": ids, "n_predict": 1, "n_probs": n_probs, "cache_prompt": not again,
                    "temperature": 0.0, "post_sampling_probs": False}
            reply = self.client.post("/completion", body)
            probs = (reply or {}).get("completion_probabilities") if isinstance(reply, dict) else None
            if not probs or not isinstance(probs[0], dict) or "top_logprobs" not in probs[0]:
                raise RemoteError("llama.cpp answered without completion_probabilities[].top_logprobs "
                                  "(a llama.cpp server from 2025 or later is needed)")
            got = {int(e["id"]): float(e["logprob"]) for e in probs[0]["top_logprobs"]}
            found = {i: got[i] for i in self.forms if i in got}
            if len(found) == len(self.forms) or n_probs >= self.n_vocab or len(got) < n_probs:
                return FormLogprobs(found, normalized=True, complete=len(found) == len(self.forms),
                                    floor=min(got.values(), default=None), listed=len(got))
            n_probs = min(self.n_vocab, n_probs * 8)


class LogitBiasIgnored(RemoteError):
    """The server answered, but the logit bias did not lift the forms into its logprobs."""


class BiasedTopLogprobs(Method):
    """mlx_lm.server (and OpenAI-style servers that apply logit_bias before their logprobs):
    the prompt's text, +100 on every form, their top logprobs."""

    def __init__(self, *args, top: int = 11, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.name = "mlx_lm"
        self.top = top

    def groups(self) -> list[list[int]]:
        """Forms per request: all at once when they fit, else chunks that each include the first
        form, so that every request's logprobs can be put on one scale."""
        if len(self.forms) <= self.top:
            return [list(self.forms)]
        ref, rest = self.forms[0], self.forms[1:]
        size = self.top - 1
        return [[ref] + rest[k : k + size] for k in range(0, len(rest), size)]

    def ask(self, prompts):
        return [self._one(list(p)) for p in prompts]

    def _one(self, ids: list[int]) -> FormLogprobs:
        text = self.tokenizer.decode(ids)
        merged: dict[int, float] = {}
        for group in self.groups():
            body = {"model": self.model, "prompt": text, "max_tokens": 1, "temperature": 0.0,
                    "logprobs": True, "top_logprobs": self.top,
                    "logit_bias": {str(i): BIAS for i in group}}
            reply = self.client.post(f"{self.api}/completions", body)
            choice = _choices(reply, 1)[0]
            got = _top_entries(choice, self.tokenizer)
            missing = [i for i in group if i not in got]
            if missing:
                raise LogitBiasIgnored(f"the server ignored logit_bias: forms {missing} are not in its top "
                                       f"{self.top} logprobs")
            shift = got[group[0]] - merged[group[0]] if merged else 0.0
            merged.update({i: got[i] - shift for i in group})
        return FormLogprobs(merged, normalized=False, complete=True)


class TopLogprobs(Method):
    """Any OpenAI-compatible `/v1/completions`: the prompt's text and its top `k` next-token
    logprobs (`logprobs: k`), no logit bias. `k` starts at 64 and grows (x8) while the forms'
    margin is not pinned down to `TOLERANCE`, up to the vocabulary and to what the server allows
    (learnt from its refusal, or from a list that stops growing)."""

    START = 64

    def __init__(self, *args, n_vocab: Optional[int] = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.name, self.exact = "openai", False
        self.n_vocab = n_vocab or self.tokenizer.vocab_size
        self.allowed = self.n_vocab  # the largest k the server answers; lowered when it refuses more
        self.by_text = {self.tokenizer.decode([i]): i for i in self.forms}

    def ask(self, prompts):
        return [self._one(list(p)) for p in prompts]

    def _one(self, ids: list[int]) -> FormLogprobs:
        text = self.tokenizer.decode(ids)
        yes_no = self.forms
        k, before = min(self.START, self.allowed), -1
        while True:
            try:
                got = self._top(text, k)
            except RemoteError as exc:
                smaller = self._refused(exc, k)
                if smaller is None:
                    raise
                k = self.allowed = smaller
                continue
            found = {i: got[i] for i in yes_no if i in got}
            result = FormLogprobs(found, normalized=True, complete=len(found) == len(yes_no),
                                  floor=min(got.values(), default=None), listed=len(got))
            if result.complete or len(got) <= before:  # all there, or the server lists no more than this
                if len(got) <= before:
                    self.allowed = min(self.allowed, k // 8)
                return result
            half = len(yes_no) // 2  # the forms are Yes/No pairs: every yes form, then every no form
            low, high = margin_bounds(yes_no[:half], yes_no[half:], result)
            if high - low <= TOLERANCE or k >= self.allowed:
                return result
            k, before = min(self.allowed, k * 8), len(got)

    def _top(self, text: str, k: int) -> dict[int, float]:
        body = {"model": self.model, "prompt": text, "max_tokens": 1, "temperature": 0.0, "logprobs": k}
        choice = _choices(self.client.post(f"{self.api}/completions", body), 1)[0]
        logprobs = choice.get("logprobs") or {}
        content = logprobs.get("content")
        if isinstance(content, list) and content:  # the chat-style shape, with token ids or texts
            entries = content[0].get("top_logprobs") or []
            return {int(e["id"]) if "id" in e else self.by_text.get(e.get("token"), -1 - n): float(e["logprob"])
                    for n, e in enumerate(entries)}
        tops = logprobs.get("top_logprobs")
        if not (isinstance(tops, list) and tops and isinstance(tops[0], dict)):
            raise BadAnswer("the answer has no top logprobs (choices[0].logprobs.top_logprobs)")
        entries = [(key, value.get("logprob") if isinstance(value, dict) else value) for key, value in tops[0].items()]
        if entries and all(str(key).startswith("token_id:") for key, _ in entries):  # vLLM's keys
            return {int(key[len("token_id:"):]): float(value) for key, value in entries}
        # Keyed by token text (a digit is text here too): the forms by theirs, every other token
        # under a number of its own.
        return {self.by_text.get(key, -1 - n): float(value) for n, (key, value) in enumerate(entries)}

    def _refused(self, exc: RemoteError, k: int) -> Optional[int]:
        """A smaller k to try when the server refused `k` logprobs (the largest number below k
        that its message names, else a quarter of k); None when the refusal is about something else."""
        if exc.status not in (400, 422) or "logprob" not in str(exc).lower() or k <= 1:
            return None
        named = [int(n) for n in re.findall(r"\d+", str(exc)) if 0 < int(n) < k]
        return max(named) if named else max(1, k // 4)


class Ollama(Method):
    """Ollama: a raw prompt, its top 20 logprobs, no logit bias (approximate)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.name, self.exact = "ollama", False
        self.notes.append("Ollama has no logit_bias and returns its top 20 logprobs: a Yes/No form outside "
                          "them counts at the smallest logprob listed (approximate margins)")

    def ask(self, prompts):
        return [self._one(list(p)) for p in prompts]

    def _one(self, ids: list[int]) -> FormLogprobs:
        body = {"model": self.model, "prompt": self.tokenizer.decode(ids), "raw": True, "stream": False,
                "logprobs": True, "top_logprobs": 20, "options": {"num_predict": 1, "temperature": 0}}
        reply = self.client.post("/api/generate", body)
        entries = (reply or {}).get("logprobs") if isinstance(reply, dict) else None
        if not entries:
            raise RemoteError("Ollama answered without logprobs (Ollama 0.12.11 or later is needed)")
        by_text = {self.tokenizer.decode([i]): i for i in self.forms}
        found: dict[int, float] = {}
        listed = entries[0].get("top_logprobs") or []
        for e in listed:
            i = by_text.get(e.get("token"))
            if i is not None and i not in found:
                found[i] = float(e["logprob"])
        return FormLogprobs(found, normalized=True, complete=len(found) == len(self.forms),
                            floor=min((float(e["logprob"]) for e in listed), default=None), listed=len(listed))


# --- reading answers ------------------------------------------------------------------------------
def _choices(reply: Any, n: int) -> list[dict]:
    choices = reply.get("choices") if isinstance(reply, dict) else None
    if not isinstance(choices, list) or len(choices) != n or not all(isinstance(c, dict) for c in choices):
        raise BadAnswer(f"expected {n} choice(s) in the answer, got {_shape(reply)}")
    return choices


def _shape(reply: Any) -> str:
    if isinstance(reply, dict) and isinstance(reply.get("choices"), list):
        return f"{len(reply['choices'])}"
    return type(reply).__name__


def _by_token_id(top: dict, tokenizer) -> dict[int, float]:
    """A {"token_id:N": logprob} (or {token text: logprob}) map as {N: logprob}."""
    out = {}
    for key, value in top.items():
        lp = value.get("logprob") if isinstance(value, dict) else value
        if isinstance(key, str) and key.startswith("token_id:"):
            out[int(key[len("token_id:"):])] = float(lp)
        elif isinstance(key, str) and key.isdigit():
            out[int(key)] = float(lp)
    return out


def _top_entries(choice: dict, tokenizer) -> dict[int, float]:
    """The first position's top logprobs by token id, from the chat-style shape mlx_lm.server
    returns (`logprobs.content[0].top_logprobs[]` with `id`) or the legacy one (a dict)."""
    logprobs = choice.get("logprobs") or {}
    content = logprobs.get("content")
    if isinstance(content, list) and content:
        return {int(e["id"]): float(e["logprob"]) for e in content[0].get("top_logprobs") or [] if "id" in e}
    tops = logprobs.get("top_logprobs")
    if isinstance(tops, list) and tops and isinstance(tops[0], dict):
        return _by_token_id(tops[0], tokenizer)
    raise BadAnswer("the answer has no top logprobs")


# --- detection ------------------------------------------------------------------------------------
@dataclass
class ServerInfo:
    kind: str  # vllm, llama.cpp, mlx_lm, ollama
    model: Optional[str] = None  # the served model's id, when the server lists one
    context_length: Optional[int] = None
    n_vocab: Optional[int] = None
    how: str = ""  # how the kind was told, when not from the server's own list of models
    listed: Optional[str] = None  # the first model id the server lists, whatever its kind


def detect(client: HttpClient, api: str, probe: Sequence[int] = (1,), model: Optional[str] = None) -> ServerInfo:
    """Which kind of server this is, from what it answers on its own endpoints. Transient errors
    are retried (the client's policy); when the model list stays unavailable, one scoring request
    (`probe`: token ids) tells vLLM, which echoes token ids, from mlx_lm.server."""
    version = _try_get(client, "/api/version")
    if isinstance(version, dict) and "version" in version:
        return ServerInfo("ollama")
    props = _try_get(client, "/props")
    if isinstance(props, dict) and ("default_generation_settings" in props or "build_info" in props):
        settings = props.get("default_generation_settings") or {}
        models = _try_get(client, f"{api}/models")
        n_vocab = None
        if isinstance(models, dict) and models.get("data"):
            n_vocab = (models["data"][0].get("meta") or {}).get("n_vocab")
        return ServerInfo("llama.cpp", context_length=settings.get("n_ctx"), n_vocab=n_vocab)
    try:  # mlx_lm.server's /v1/models fails when the Hugging Face cache folder is missing
        models = client.get(f"{api}/models")
    except RemoteError as exc:
        return _probe(client, api, probe, model, exc)
    data = models.get("data") if isinstance(models, dict) else None
    first = data[0] if isinstance(data, list) and data and isinstance(data[0], dict) else {}
    if first.get("owned_by") == "vllm":
        return ServerInfo("vllm", model=first.get("id"), context_length=first.get("max_model_len"))
    return ServerInfo("mlx_lm", model=None, listed=first.get("id") if isinstance(first.get("id"), str) else None)


def _probe(client: HttpClient, api: str, probe: Sequence[int], model: Optional[str], why: RemoteError) -> ServerInfo:
    """The kind from one scoring request in vLLM's shape: vLLM answers it with token ids;
    mlx_lm.server refuses it (its `logprobs` is a boolean) or answers without them."""
    body: dict[str, Any] = {"prompt": [list(probe)], "max_tokens": 1, "temperature": 0.0, "logprobs": 1,
                            "return_tokens_as_token_ids": True}
    if model:
        body["model"] = model
    how = f"GET {api}/models failed ({why}); told by a test request to {api}/completions"
    try:
        reply = client.post(f"{api}/completions", body)
    except RemoteError as exc:
        if exc.status is not None and 400 <= exc.status < 500 and exc.status not in RETRY_STATUSES:
            return ServerInfo("mlx_lm", how=how)
        raise RemoteError(f"cannot tell which kind of server this is: GET {api}/models failed ({why}), "
                          f"and so did a test request ({exc})", exc.status) from exc
    try:
        token = reply["choices"][0]["logprobs"]["tokens"][0]
    except (KeyError, IndexError, TypeError):
        token = None
    return ServerInfo("vllm" if isinstance(token, str) and token.startswith("token_id:") else "mlx_lm", how=how)


def _try_get(client: HttpClient, path: str) -> Any:
    """GET that answers None for "not here" (4xx) instead of raising."""
    try:
        return client.get(path)
    except RemoteError as exc:
        if exc.status is not None and 400 <= exc.status < 500:
            return None
        raise


def make_method(kind: str, client: HttpClient, api: str, model: Optional[str], forms: list[int], tokenizer,
                info: Optional[ServerInfo] = None) -> Method:
    """The method for a server kind (see the module docstring)."""
    common = dict(client=client, api=api, forms=forms, tokenizer=tokenizer)
    if kind == "vllm":
        return VLLM(model=model or (info.model if info else None) or "", **common)
    if kind == "llama.cpp":
        return LlamaCpp(model=model or "", n_vocab=info.n_vocab if info else None, **common)
    if kind == "ollama":
        if not model:
            raise RemoteError("Ollama needs the model's name: --backend-model NAME")
        return Ollama(model=model, **common)
    if kind == "mlx_lm":
        return BiasedTopLogprobs(model=model or "default_model", **common)
    if kind == "openai":
        listed = (info.model or info.listed) if info else None
        return TopLogprobs(model=model or listed or "default_model", **common)
    raise ValueError(f"unknown server kind {kind!r}")


def settle(method: Method, probe: Sequence[int], model: Optional[str] = None,
           info: Optional[ServerInfo] = None) -> Method:
    """For a server told only as OpenAI-compatible (`BiasedTopLogprobs`): one test request on
    `probe` (token ids) shows whether its logprobs honour logit_bias. If it refuses the request or
    ignores the bias, the generic top-k method, itself tried once. A server without
    `/completions` (chat completions only) is refused, naming what is missing. `model`: the name
    the user gave (default: the generic method asks for the first one the server lists)."""
    if not isinstance(method, BiasedTopLogprobs):
        return method
    try:
        method.ask([probe])
        return method
    except LogitBiasIgnored as exc:
        why = str(exc)
    except RemoteError as exc:
        _refuse_without_completions(method, exc)
        if exc.status is None or exc.status >= 500 or exc.status in RETRY_STATUSES:
            raise
        why = f"a request with logit_bias and top_logprobs was refused ({exc})"
    except (KeyError, IndexError, TypeError, ValueError) as exc:  # an answer of another shape
        why = f"a request with logit_bias and top_logprobs got an answer of another shape ({type(exc).__name__}: {exc})"
    generic = make_method("openai", method.client, method.api, model, method.forms, method.tokenizer, info)
    try:
        generic.ask([probe])
    except (RemoteError, KeyError, IndexError, TypeError, ValueError) as exc:
        if isinstance(exc, RemoteError):
            _refuse_without_completions(method, exc)
        raise RemoteError(f"this server offers no next-token logprobs Verdict can use: {why}; and a request for "
                          f"its top logprobs (`logprobs: k` on {method.api}/completions) failed too ({exc})",
                          getattr(exc, "status", None)) from exc
    generic.how = f"chosen because {why}"
    return generic


def _refuse_without_completions(method: Method, exc: RemoteError) -> None:
    if exc.status in (404, 405, 501):
        raise RemoteError(f"{method.api}/completions answered HTTP {exc.status}: this server seems to offer chat "
                          f"completions only. Verdict renders the prompt itself and needs a text-completions "
                          f"endpoint ({method.api}/completions) that returns next-token logprobs (`logprobs`)",
                          exc.status) from exc
