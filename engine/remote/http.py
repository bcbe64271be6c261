"""A small JSON-over-HTTP client for inference servers: keep-alive connections per thread,
timeouts, and retries with exponential backoff and jitter.

Retried: connection errors and timeouts, 429 and 5xx answers (honouring `Retry-After`), and a
200 whose body is not JSON (a proxy or a server cut off mid-answer). Not retried: other 4xx
answers, which mean the request itself is wrong. Standard library only.
"""
from __future__ import annotations

import email.utils
import http.client
import json
import random
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional
from urllib.parse import urlsplit

RETRY_STATUSES = {408, 425, 429, 500, 502, 503, 504}


class RemoteError(RuntimeError):
    """A request failed for good. `status` is the HTTP status (None: no answer at all)."""

    def __init__(self, message: str, status: Optional[int] = None, retryable: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable


class BadAnswer(RemoteError):
    """A 2xx answer that is not what the protocol promises (wrong shape, missing fields)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, 200, retryable=True)


@dataclass
class RetryPolicy:
    """How often and how long to wait: attempt k waits uniform(0, min(cap, base * 2**k)) seconds
    ("full jitter"), or what the server's Retry-After says (at most `cap`)."""

    retries: int = 6
    base: float = 0.5
    cap: float = 30.0

    def delay(self, attempt: int, retry_after: Optional[float] = None) -> float:
        if retry_after is not None:
            return min(self.cap, max(0.0, retry_after)) + random.uniform(0, self.base)
        return random.uniform(0, min(self.cap, self.base * 2**attempt))


def parse_retry_after(value: Optional[str]) -> Optional[float]:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); None if absent or odd."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class HttpClient:
    """JSON requests to one server, safe to use from many threads (one connection each)."""

    def __init__(self, base_url: str, *, api_key: Optional[str] = None, timeout: float = 120.0,
                 policy: Optional[RetryPolicy] = None, sleep: Callable[[float], None] = time.sleep) -> None:
        parts = urlsplit(base_url.rstrip("/"))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{base_url!r} is not an http(s) URL")
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.prefix = parts.path.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout
        self.policy = policy or RetryPolicy()
        self.sleep = sleep
        self._local = threading.local()
        self.retried = 0  # requests sent again, over the client's life (for reports)
        self._lock = threading.Lock()

    def url(self, path: str) -> str:
        return f"{self.scheme}://{self.host}:{self.port}{self.prefix}{path}"

    # --- one attempt ----------------------------------------------------------------------------
    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            kind = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
            conn = kind(self.host, self.port, timeout=self.timeout)
            self._local.conn = conn
        return conn

    def _drop_connection(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def _once(self, method: str, path: str, body: Optional[bytes]) -> tuple[int, Any, Optional[float]]:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        conn = self._connection()
        try:
            conn.request(method, self.prefix + path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:  # refused, reset, timed out, cut off
            self._drop_connection()
            reason = "timed out" if isinstance(exc, socket.timeout) else f"{type(exc).__name__}: {exc}"
            raise RemoteError(f"{method} {self.url(path)}: {reason}", retryable=True) from exc
        if response.getheader("Connection", "").lower() == "close" or response.version == 10:
            self._drop_connection()
        retry_after = parse_retry_after(response.getheader("Retry-After"))
        status = response.status
        try:
            parsed = json.loads(data) if data else None
        except ValueError:
            if status == 200:
                raise RemoteError(f"{method} {self.url(path)}: the answer is not JSON", 200, retryable=True)
            parsed = data.decode("utf-8", "replace")[:300]
        return status, parsed, retry_after

    # --- with retries ---------------------------------------------------------------------------
    def request(self, method: str, path: str, payload: Any = None, *, retries: Optional[int] = None) -> Any:
        """The parsed JSON answer of a 2xx response. Raises RemoteError after the retries, or at
        once for a 4xx other than 408/425/429."""
        body = None if payload is None else json.dumps(payload).encode("utf-8")
        budget = self.policy.retries if retries is None else retries
        attempt = 0
        while True:
            retry_after = None
            try:
                status, parsed, retry_after = self._once(method, path, body)
                if 200 <= status < 300:
                    return parsed
                error = RemoteError(f"{method} {self.url(path)}: HTTP {status}: {_message(parsed)}", status,
                                    retryable=status in RETRY_STATUSES)
            except RemoteError as exc:
                error = exc
            if not error.retryable or attempt >= budget:
                raise error
            with self._lock:
                self.retried += 1
            self.sleep(self.policy.delay(attempt, retry_after))
            attempt += 1

    def get(self, path: str, **kwargs) -> Any:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, payload: Any, **kwargs) -> Any:
        return self.request("POST", path, payload, **kwargs)


def _message(parsed: Any) -> str:
    """The server's own words about an error, short."""
    if isinstance(parsed, dict):
        error = parsed.get("error", parsed)
        if isinstance(error, dict):
            error = error.get("message", error)
        return str(error)[:300]
    return str(parsed)[:300]
