"""A small JSON-over-HTTP client for inference servers: keep-alive connections per thread,
deadlines, retries with exponential backoff and jitter, and cancellation.

Time is bounded three ways. Each attempt has a deadline for the request as a whole (connect,
send, the full answer): a server that drips one byte a second or never answers is cut off when
it passes, not only when one read stalls. A caller may give the work of one thread a budget
(`HttpClient.time_budget`): no attempt starts, and no retry waits, past it. `cancel` ends every
request in flight at once (their sockets are shut down) and every wait for a retry.

Retried: connection errors and timeouts, 429 and 5xx answers (honouring `Retry-After`), and a
200 whose body is not JSON (a proxy or a server cut off mid-answer). Not retried: other 4xx
answers, which mean the request itself is wrong. Standard library only.
"""
from __future__ import annotations

import contextlib
import email.utils
import http.client
import json
import random
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional
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

    retries: int = 3
    base: float = 0.5
    cap: float = 30.0

    def delay(self, attempt: int, retry_after: Optional[float] = None) -> float:
        if retry_after is not None:
            return min(self.cap, max(0.0, retry_after)) + random.uniform(0, self.base)
        return random.uniform(0, min(self.cap, self.base * 2**attempt))

    def budget(self, timeout: float) -> float:
        """The longest one request may take with its retries, without Retry-After: every attempt
        until its deadline, and the longest backoff between them."""
        return timeout * (self.retries + 1) + sum(min(self.cap, self.base * 2**k) for k in range(self.retries))


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


# --- deadlines --------------------------------------------------------------------------------------
class _Watch:
    """One attempt under the watchdog: its deadline, its socket once it has one, and how it ended."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.sock: Optional[socket.socket] = None
        self.expired = False  # the deadline passed before the attempt finished
        self.cancelled = False


def _shut(sock: Optional[socket.socket]) -> None:
    """Wake whatever blocks on `sock` (connect, send, recv): it sees the connection end. The plain
    socket method, also for TLS sockets, whose own `shutdown` would unwrap them under a reader."""
    if sock is not None:
        try:
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        except OSError:
            pass


class _Watchdog:
    """Shuts down the socket of every attempt that passes its deadline (one thread per client,
    asleep until the nearest deadline), or of every attempt at once on `cancel`."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._watches: set[_Watch] = set()
        self._thread: Optional[threading.Thread] = None
        self._stopped = False
        self.cancelled = False

    @contextlib.contextmanager
    def watching(self, deadline: float) -> Iterator[_Watch]:
        watch = _Watch(deadline)
        with self._cond:
            if self.cancelled:
                watch.cancelled = True
            self._watches.add(watch)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="verdict-http-deadlines", daemon=True)
                self._thread.start()
            self._cond.notify()
        try:
            yield watch
        finally:
            with self._cond:
                self._watches.discard(watch)

    def attach(self, watch: _Watch, sock: socket.socket) -> None:
        """Watch `sock` for `watch` (shut at once if the attempt already ran out or was cancelled)."""
        with self._cond:
            watch.sock = sock
            if watch.expired or watch.cancelled:
                _shut(sock)

    def finish(self, watch: _Watch) -> bool:
        """The attempt is done; True when its deadline (or a cancel) came first."""
        with self._cond:
            self._watches.discard(watch)
            return watch.expired or watch.cancelled

    def cancel(self) -> None:
        with self._cond:
            self.cancelled = True
            for watch in self._watches:
                watch.cancelled = True
                _shut(watch.sock)

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()

    def _run(self) -> None:
        with self._cond:
            while not self._stopped:
                now = time.monotonic()
                for watch in [w for w in self._watches if w.deadline <= now]:
                    watch.expired = True
                    self._watches.discard(watch)
                    _shut(watch.sock)
                soonest = min((w.deadline for w in self._watches), default=None)
                self._cond.wait(None if soonest is None else max(0.0, soonest - now))


# --- the client -------------------------------------------------------------------------------------
class HttpClient:
    """JSON requests to one server, safe to use from many threads (one connection each).

    `timeout`: seconds for one attempt as a whole (connect, send, the full answer)."""

    def __init__(self, base_url: str, *, api_key: Optional[str] = None, timeout: float = 60.0,
                 policy: Optional[RetryPolicy] = None, sleep: Optional[Callable[[float], Any]] = None) -> None:
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
        self._cancelled = threading.Event()
        self.sleep: Callable[[float], Any] = sleep or self._cancelled.wait  # a cancel ends the wait
        self._local = threading.local()
        self._watchdog = _Watchdog()
        self._tls: Optional[ssl.SSLContext] = ssl.create_default_context() if self.scheme == "https" else None
        self.retried = 0  # requests sent again, over the client's life (for reports)
        self._lock = threading.Lock()

    def url(self, path: str) -> str:
        return f"{self.scheme}://{self.host}:{self.port}{self.prefix}{path}"

    # --- cancelling and budgets -----------------------------------------------------------------
    def cancel(self) -> None:
        """End every request in flight now (each raises RemoteError, not retried) and refuse new ones."""
        self._cancelled.set()
        self._watchdog.cancel()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def close(self) -> None:
        """Cancel what is in flight and stop the deadline thread."""
        self.cancel()
        self._watchdog.stop()

    @contextlib.contextmanager
    def time_budget(self, seconds: float) -> Iterator[None]:
        """Within the block, this thread's requests (with their retries and waits) end within
        `seconds`: no attempt starts and no wait lasts past it, and attempts are cut at it."""
        before = getattr(self._local, "until", None)
        self._local.until = time.monotonic() + seconds
        try:
            yield
        finally:
            self._local.until = before

    def time_left(self) -> float:
        """Seconds left of this thread's budget (infinite outside `time_budget`)."""
        until = getattr(self._local, "until", None)
        return float("inf") if until is None else until - time.monotonic()

    # --- one attempt ----------------------------------------------------------------------------
    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            self._local.conn = conn
        return conn

    def _drop_connection(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def _connect(self, watch: _Watch) -> socket.socket:
        """A connected socket (TLS for https), watched from before its connect on, so that the
        deadline or a cancel also ends a connect or a handshake that hangs."""
        error: Optional[OSError] = None
        for family, kind, proto, _, address in socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM):
            sock = socket.socket(family, kind, proto)
            try:
                self._watchdog.attach(watch, sock)
                sock.settimeout(max(0.001, watch.deadline - time.monotonic()))
                sock.connect(address)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if self._tls is not None:
                    sock = self._tls.wrap_socket(sock, server_hostname=self.host, do_handshake_on_connect=False)
                    self._watchdog.attach(watch, sock)
                    sock.do_handshake()
                return sock
            except OSError as exc:
                sock.close()
                error = exc
        raise error or OSError(f"no address for {self.host}")

    def _once(self, method: str, path: str, body: Optional[bytes], seconds: float) -> tuple[int, Any, Optional[float]]:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        with self._watchdog.watching(time.monotonic() + seconds) as watch:
            try:
                conn = self._connection()
                if conn.sock is None:
                    conn.sock = self._connect(watch)
                else:
                    self._watchdog.attach(watch, conn.sock)
                conn.sock.settimeout(max(0.001, watch.deadline - time.monotonic()))
                conn.request(method, self.prefix + path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
                failure: Optional[BaseException] = None
            except (OSError, http.client.HTTPException) as exc:  # refused, reset, timed out, cut off
                failure = exc
            if self._watchdog.finish(watch) or failure is not None:
                self._drop_connection()
                raise self._failed(method, path, watch, failure, seconds) from failure
        if response.getheader("Connection", "").lower() == "close" or response.version == 10:
            self._drop_connection()
        retry_after = parse_retry_after(response.getheader("Retry-After"))
        status = response.status
        try:
            parsed = json.loads(data) if data else None
        except ValueError:
            if status == 200:
                raise RemoteError(f"{method} {self.url(path)}: the answer is not JSON", 200, retryable=True) from None
            parsed = data.decode("utf-8", "replace")[:300]
        return status, parsed, retry_after

    def _failed(self, method: str, path: str, watch: _Watch, exc: Optional[BaseException],
                seconds: float) -> RemoteError:
        where = f"{method} {self.url(path)}"
        if watch.cancelled:
            return RemoteError(f"{where}: cancelled")
        if watch.expired or isinstance(exc, socket.timeout):
            return RemoteError(f"{where}: no complete answer within {seconds:g} s (timed out)", retryable=True)
        return RemoteError(f"{where}: {type(exc).__name__}: {exc}", retryable=True)

    # --- with retries ---------------------------------------------------------------------------
    def request(self, method: str, path: str, payload: Any = None, *, retries: Optional[int] = None) -> Any:
        """The parsed JSON answer of a 2xx response. Raises RemoteError after the retries, at
        once for a 4xx other than 408/425/429, and when cancelled or out of time."""
        body = None if payload is None else json.dumps(payload).encode("utf-8")
        budget = self.policy.retries if retries is None else retries
        attempt = 0
        error: Optional[RemoteError] = None
        while True:
            if self.cancelled:
                raise RemoteError(f"{method} {self.url(path)}: cancelled")
            left = self.time_left()
            if left <= 0:
                raise error or RemoteError(f"{method} {self.url(path)}: no time left for this request")
            retry_after = None
            try:
                status, parsed, retry_after = self._once(method, path, body, min(self.timeout, left))
                if 200 <= status < 300:
                    return parsed
                error = RemoteError(f"{method} {self.url(path)}: HTTP {status}: {_message(parsed)}", status,
                                    retryable=status in RETRY_STATUSES)
            except RemoteError as exc:
                error = exc
            if not error.retryable or attempt >= budget or self.cancelled:
                raise error
            with self._lock:
                self.retried += 1
            self.sleep(max(0.0, min(self.policy.delay(attempt, retry_after), self.time_left())))
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
